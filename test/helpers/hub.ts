/**
 * Test harness: a real hub on a fresh database per call. With DATABASE_URL set (CI: the machine's
 * PostgreSQL) a new database is created on that server and dropped afterwards; otherwise the embedded
 * PGlite runs in a temporary data dir.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import crypto from 'node:crypto';
import pg from 'pg';
import { pino } from 'pino';
import WebSocket from 'ws';
import { vi } from 'vitest';
import type { FastifyInstance } from 'fastify';
import { buildApp } from '../../src/app.js';
import { loadConfig } from '../../src/config/load.js';
import type { Config } from '../../src/config/schema.js';
import { migrate, openDatabase } from '../../src/db/database.js';
import { createHub, type Hub } from '../../src/hub.js';
import { checkResponsesAgainstDocument } from './openapi-responses.js';

export type DeepPartial<T> = { [K in keyof T]?: T[K] extends object ? (T[K] extends unknown[] ? T[K] : DeepPartial<T[K]>) : T[K] };

/** Creates an empty database on the server at DATABASE_URL. @returns its URL and a drop function. */
export async function createScratchDatabase(baseUrl: string): Promise<{ url: string; drop(): Promise<void> }> {
  const name = `sb_test_${crypto.randomBytes(6).toString('hex')}`;
  const admin = new pg.Client({ connectionString: baseUrl });
  await admin.connect();
  await admin.query(`CREATE DATABASE ${name}`);
  await admin.end();
  const url = new URL(baseUrl);
  url.pathname = `/${name}`;
  return {
    url: url.toString(),
    async drop() {
      const c = new pg.Client({ connectionString: baseUrl });
      await c.connect();
      await c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      await c.end();
    },
  };
}

export interface TestHub {
  app: FastifyInstance;
  hub: Hub;
  config: Config;
  /** http://127.0.0.1:<port> */
  url: string;
  /** ws://127.0.0.1:<port> */
  wsUrl: string;
  close(): Promise<void>;
}

function merge(base: any, over: any): any {
  for (const [k, v] of Object.entries(over ?? {})) {
    base[k] = v && typeof v === 'object' && !Array.isArray(v) ? merge(base[k] ?? {}, v) : v;
  }
  return base;
}

/**
 * Starts a hub listening on a free loopback port, on a fresh database, with Redis pub/sub when REDIS_URL
 * is set (on its own channel prefix). `shareWith`: a second node on the same database and channels.
 * Every response is checked against the hub's OpenAPI document; `close()` fails on a violation.
 */
export async function startTestHub(overrides: DeepPartial<Config> = {}, opts: { shareWith?: TestHub } = {}): Promise<TestHub> {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'sb-test-'));
  const scratch = opts.shareWith || !process.env.DATABASE_URL ? null : await createScratchDatabase(process.env.DATABASE_URL);
  const config = merge(loadConfig({ env: {}, loadDotEnv: false }), {
    data_dir: dataDir,
    server: { port: 0 },
    database: { url: opts.shareWith?.config.database.url ?? scratch?.url ?? '', pool_max: 5 },
    redis: { url: process.env.REDIS_URL ?? '', channel_prefix: opts.shareWith?.config.redis.channel_prefix ?? `sbtest:${crypto.randomBytes(4).toString('hex')}:` },
    auth: { jwt_secret: opts.shareWith?.config.auth.jwt_secret ?? crypto.randomBytes(32).toString('hex') },
    log: { level: process.env.TEST_LOG_LEVEL ?? 'silent' },
    realtime: { presence_grace_ms: 0 },
  });
  merge(config, overrides);
  const log = pino({ level: config.log.level });
  const db = await openDatabase(config, log);
  await migrate(db);
  const hub = await createHub(config, db, log);
  const app = await buildApp(hub);
  const violations = checkResponsesAgainstDocument(app);
  await app.listen({ host: '127.0.0.1', port: 0 });
  const port = (app.server.address() as { port: number }).port;
  return {
    app,
    hub,
    config,
    url: `http://127.0.0.1:${port}`,
    wsUrl: `ws://127.0.0.1:${port}`,
    /** Stops the hub; fails when a response broke the OpenAPI document (see ./openapi-responses.ts). */
    async close() {
      await app.close();
      await scratch?.drop();
      fs.rmSync(dataDir, { recursive: true, force: true });
      if (violations.length) throw new Error(`Responses the OpenAPI document does not allow:\n${violations.join('\n')}`);
    },
  };
}

export interface Session {
  token: string;
  refresh_token: string;
  device_id: string;
  user: { id: string; name: string; email: string; username: string; address: string };
}

/** A REST call. @returns status and parsed JSON body (null for 204). */
export async function api(base: string, method: string, url: string, opts: { token?: string; body?: unknown; headers?: Record<string, string> } = {}) {
  const res = await fetch(base + url, {
    method,
    headers: {
      ...(opts.body !== undefined ? { 'content-type': 'application/json' } : {}),
      ...(opts.token ? { authorization: `Bearer ${opts.token}` } : {}),
      ...opts.headers,
    },
    body: opts.body !== undefined ? JSON.stringify(opts.body) : undefined,
  });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : null, headers: res.headers };
}

let userCounter = 0;
/** Registers a new user with a unique email. */
export async function register(base: string, name = `User${++userCounter}`): Promise<Session> {
  const email = `${name.toLowerCase()}-${crypto.randomBytes(4).toString('hex')}@example.test`;
  const res = await api(base, 'POST', '/api/auth/register', { body: { email, name, password: 'correct horse battery' } });
  if (res.status !== 201) throw new Error(`register failed: ${res.status} ${JSON.stringify(res.body)}`);
  return res.body;
}

/** A WebSocket test client that records every event and lets a test wait for the next matching one. */
export class WsClient {
  readonly events: any[] = [];
  private cursor = 0;
  private waiters: (() => void)[] = [];
  closed: { code: number; reason: string } | null = null;

  private constructor(readonly socket: WebSocket) {
    socket.on('message', (data) => {
      this.events.push(JSON.parse(data.toString()));
      this.wake();
    });
    socket.on('close', (code, reason) => {
      this.closed = { code, reason: reason.toString() };
      this.wake();
    });
  }

  /** Opens `/ws` with a bearer token (and `since`); resolves once the server says `ready`. */
  static async connect(wsUrl: string, token: string, opts: { since?: number; viaQuery?: boolean; timeoutMs?: number } = {}): Promise<WsClient> {
    const params = new URLSearchParams();
    if (opts.since !== undefined) params.set('since', String(opts.since));
    if (opts.viaQuery) params.set('access_token', token);
    const socket = new WebSocket(`${wsUrl}/ws?${params}`, opts.viaQuery ? {} : { headers: { authorization: `Bearer ${token}` } });
    const client = new WsClient(socket);
    await new Promise<void>((resolve, reject) => {
      socket.once('open', () => resolve());
      socket.once('error', reject);
      socket.once('unexpected-response', (_req, res) => reject(new Error(`upgrade refused: ${res.statusCode}`)));
    });
    await client.next('ready', () => true, opts.timeoutMs);
    return client;
  }

  send(frame: unknown): void {
    this.socket.send(typeof frame === 'string' ? frame : JSON.stringify(frame));
  }

  /**
   * Waits for the next event (after those already taken) of `type` that satisfies `match`; events
   * skipped on the way stay readable through `events`.
   */
  next(type: string, match: (e: any) => boolean = () => true, timeoutMs = 5000): Promise<any> {
    return this.nextMatching((e) => e.type === type && match(e), type, timeoutMs);
  }

  private async nextMatching(match: (e: any) => boolean, what: string, timeoutMs: number): Promise<any> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      for (; this.cursor < this.events.length; this.cursor++) {
        const e = this.events[this.cursor];
        if (match(e)) {
          this.cursor++;
          return e;
        }
      }
      if (this.closed) throw new Error(`socket closed (${this.closed.code} ${this.closed.reason}) while waiting for ${what}`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timed out waiting for ${what}; saw ${JSON.stringify(this.events.slice(-5))}`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left);
        this.waiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
  }

  /** Waits for the next event (after those already taken) of any of `types`. */
  nextOf(types: string[], timeoutMs = 5000): Promise<any> {
    return this.nextMatching((e) => types.includes(e.type), `one of ${types.join(', ')}`, timeoutMs);
  }

  /** Events of a type received so far (taken or not). */
  all(type: string): any[] {
    return this.events.filter((e) => e.type === type);
  }

  async waitClosed(timeoutMs = 5000): Promise<{ code: number; reason: string }> {
    const deadline = Date.now() + timeoutMs;
    while (!this.closed) {
      if (Date.now() > deadline) throw new Error('socket did not close');
      await new Promise<void>((resolve) => this.waiters.push(resolve));
    }
    return this.closed;
  }

  close(): void {
    this.socket.close();
  }

  private wake(): void {
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }
}

/** Resolves once the hub's next `stream.readSince` has answered: a long poll started after it is now waiting. */
export function nextStreamRead(t: TestHub): Promise<void> {
  const original = t.hub.stream.readSince.bind(t.hub.stream);
  return new Promise((resolve) => {
    const spy = vi.spyOn(t.hub.stream, 'readSince').mockImplementation(async (...args) => {
      const events = await original(...args);
      spy.mockRestore();
      resolve();
      return events;
    });
  });
}
