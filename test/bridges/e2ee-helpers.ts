/** Helpers for end-to-bridge encryption tests: hub users' E2EE devices (the SDK on libsignal) and a scan of the hub's database. */
import WebSocket from 'ws';
import { E2eeClient, MemoryStore } from '../../sdk/src/e2ee/index.js';
import type { ClientOptions, ServerEvent, SwitchboardClient, WebSocketConstructor } from '../../sdk/src/index.js';

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

/** Waits until `check` returns something truthy, at most `timeoutMs`. @returns it. */
export async function until<T>(check: () => T | undefined | false, what: string, timeoutMs = 10_000): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = check();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what} (${timeoutMs} ms)`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

