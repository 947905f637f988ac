/** Helpers for end-to-bridge encryption tests: hub users' E2EE devices (the SDK on libsignal) and a scan of the hub's database. */
import WebSocket from 'ws';
import { expect } from 'vitest';
import { E2eeClient, MemoryStore } from '../../sdk/src/e2ee/index.js';
import type { ClientOptions, ServerEvent, SwitchboardClient, WebSocketConstructor } from '../../sdk/src/index.js';
import type { TestHub } from '../helpers/hub.js';

export const password = 'correct horse battery';
export const options = (baseUrl: string): ClientOptions => ({ baseUrl, WebSocket: WebSocket as unknown as WebSocketConstructor, reconnectDelayMs: 50, maxReconnectDelayMs: 200 });

export interface Device {
  client: SwitchboardClient;
  e2ee: E2eeClient;
  /** `message.new`s after the SDK's decrypting transform, in order. */
  received: { room_id: string; id: string; content: string; user_id: string; encrypted: boolean }[];
  /** Decrypted edits (`message-edited`), in order. */
  edits: { message_id: string; content: string }[];
}

/** Makes `client`'s session an E2EE device (keys in memory) and connects it. */
export async function device(client: SwitchboardClient): Promise<Device> {
  const e2ee = await E2eeClient.start(client, new MemoryStore());
  const received: Device['received'] = [];
  const edits: Device['edits'] = [];
  client.on('message.new', (e: Extract<ServerEvent, { type: 'message.new' }>) =>
    received.push({ room_id: e.room_id, id: e.message.id, content: e.message.content, user_id: e.message.user_id, encrypted: e.message.encrypted }));
  e2ee.on('message-edited', (e) => edits.push({ message_id: e.message_id, content: e.content }));
  await client.connect();
  return { client, e2ee, received, edits };
}

/** Waits until `check` returns something truthy. @returns it. */
export async function until<T>(check: () => T | undefined | false, what: string, timeoutMs = 10_000): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = check();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

/** Every text, jsonb, json, bytea and array column of every table of the hub's database that holds `marker`. */
export async function columnsHolding(hub: TestHub, marker: string): Promise<string[]> {
  const { rows: columns } = await hub.hub.db.query<{ table_name: string; column_name: string; data_type: string }>(
    `SELECT c.table_name, c.column_name, c.data_type FROM information_schema.columns c
       JOIN information_schema.tables t ON t.table_schema = c.table_schema AND t.table_name = c.table_name AND t.table_type = 'BASE TABLE'
      WHERE c.table_schema = 'public' AND c.data_type IN ('text', 'character varying', 'jsonb', 'json', 'bytea', 'ARRAY', 'tsvector')`,
  );
  expect(columns.length).toBeGreaterThan(20);
  const found: string[] = [];
  for (const c of columns) {
    const col = `"${c.column_name}"`;
    const test = c.data_type === 'bytea' ? `position(convert_to($1, 'UTF8') in ${col}) > 0` : `${col}::text ILIKE '%' || $1 || '%'`;
    const { rows } = await hub.hub.db.query<{ n: number }>(`SELECT count(*)::int AS n FROM "${c.table_name}" WHERE ${test}`, [marker]);
    if (rows[0].n > 0) found.push(`${c.table_name}.${c.column_name}`);
  }
  return found;
}
