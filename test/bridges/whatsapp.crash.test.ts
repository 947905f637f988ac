/**
 * The bridge as a separate worker process (`switchboard bridge whatsapp`), killed with SIGKILL in the
 * middle of a send while messages flow both ways, and the hub restarted twice (once while the worker
 * is down, once while it is catching up). Meta-style redelivery: webhooks that were not answered 200
 * are delivered again, and every webhook is delivered a second time on top. Afterwards each message
 * must exist exactly once on the other side, in order.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pino } from 'pino';
import { stringify } from 'smol-toml';
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { FastifyInstance } from 'fastify';
import { buildApp } from '../../src/app.js';
import { loadConfig } from '../../src/config/load.js';
import type { Config } from '../../src/config/schema.js';
import { migrate, openDatabase } from '../../src/db/database.js';
import { createHub } from '../../src/hub.js';
import { REPO_ROOT, freePort } from '../e2e/spawn.js';
import { api, createScratchDatabase, register, type Session } from '../helpers/hub.js';
import { bridgeConfig } from './bridge-config.js';
import { WhatsAppSimulator } from './whatsapp-sim.js';

const MARIA = '15550002222';
const OUT = 25;
const IN = 20;

let sim: WhatsAppSimulator;
let tmp: string;
let config: Config;
let scratch: Awaited<ReturnType<typeof createScratchDatabase>> | null = null;
let app: FastifyInstance | null = null;
let worker: Worker | null = null;
let alice: Session;
let hubUrl: string;

interface Worker {
  child: ChildProcess;
  exited: Promise<void>;
  output(): string;
}

/** Starts the hub on the configured port and database (the same ones across restarts). */
async function startHub(): Promise<void> {
  const log = pino({ level: 'silent' });
  const db = await openDatabase(config, log);
  await migrate(db);
  const hub = await createHub(config, db, log);
  app = await buildApp(hub);
  await app.listen({ host: '127.0.0.1', port: config.server.port });
}

async function restartHub(): Promise<void> {
  await app!.close();
  await startHub();
}

/** `node bin/switchboard.js bridge whatsapp -c <file>`; resolves once it listens. */
async function spawnWorker(configFile: string): Promise<Worker> {
  const child = spawn(process.execPath, ['bin/switchboard.js', 'bridge', 'whatsapp', '-c', configFile], {
    cwd: REPO_ROOT,
    env: { PATH: process.env.PATH, HOME: process.env.HOME },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const tail: string[] = [];
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const listening = new Promise<void>((resolve, reject) => {
    const onData = (chunk: string) => {
      for (const line of chunk.split('\n')) {
        if (!line) continue;
        tail.push(line);
        if (tail.length > 100) tail.shift();
        if (line.startsWith('bridge whatsapp listening on')) resolve();
      }
    };
    child.stdout!.setEncoding('utf8').on('data', onData);
    child.stderr!.setEncoding('utf8').on('data', onData);
    void exited.then(() => reject(new Error(`bridge worker exited before listening:\n${tail.join('\n')}`)));
  });
  await listening;
  return { child, exited, output: () => tail.join('\n') };
}

/** Polls `check` until it returns something truthy (the state lives in two processes and a database). */
async function eventually<T>(what: string, check: () => Promise<T | false | undefined>, timeoutMs = 60_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await check();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}\nworker output:\n${worker?.output()}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/** Delivers a webhook until the bridge answers 200, as Meta retries. */
async function deliverUntilAccepted(payload: unknown): Promise<void> {
  await eventually('webhook accepted', async () => (await sim.deliver(payload)) === 200);
}

beforeAll(async () => {
  sim = new WhatsAppSimulator();
  await sim.start();
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'sb-wa-crash-'));
  scratch = process.env.DATABASE_URL ? await createScratchDatabase(process.env.DATABASE_URL) : null;
  const [hubPort, bridgePort] = [await freePort(), await freePort()];
  hubUrl = `http://127.0.0.1:${hubPort}`;
  config = loadConfig({ env: {}, loadDotEnv: false });
  config.data_dir = path.join(tmp, 'hub');
  config.server.port = hubPort;
  config.database.url = scratch?.url ?? '';
  config.database.pool_max = 5;
  config.auth.jwt_secret = crypto.randomBytes(32).toString('hex');
  config.realtime.presence_grace_ms = 0;
  config.bridges = [
    bridgeConfig({
      id: 'whatsapp',
      network: 'whatsapp',
      url: `http://127.0.0.1:${bridgePort}`,
      hub_url: hubUrl,
      as_token: crypto.randomBytes(24).toString('hex'),
      hs_token: crypto.randomBytes(24).toString('hex'),
      data_dir: path.join(tmp, 'bridge'),
      retry_max_ms: 300,
      max_attempts: 50,
      whatsapp: { api_base_url: sim.apiBaseUrl, phone_number_id: sim.phoneNumberId, access_token: sim.accessToken, app_secret: sim.appSecret, verify_token: 'v', send_rate_per_s: 100 },
    }),
  ];
  await startHub();
  alice = await register(hubUrl, 'Alice');
  config.bridges[0].whatsapp!.portal_members = [alice.user.id];
  fs.writeFileSync(path.join(tmp, 'bridge.toml'), stringify({ data_dir: config.data_dir, log: { level: 'warn' }, bridges: config.bridges }));
  sim.webhookUrl = `${config.bridges[0].url}/whatsapp/webhook`;
});

afterAll(async () => {
  worker?.child.kill('SIGKILL');
  await worker?.exited;
  await app?.close();
  await scratch?.drop();
  await sim?.close();
  fs.rmSync(tmp, { recursive: true, force: true });
});

it('loses and duplicates nothing when the worker is killed mid-send and the hub restarts', async () => {
  const configFile = path.join(tmp, 'bridge.toml');
  worker = await spawnWorker(configFile);

  // Maria's first message creates the portal room.
  const opening = sim.text(MARIA, 'Maria', 'in 0').payload;
  await deliverUntilAccepted(opening);
  const roomId = await eventually('the portal room', async () => {
    const rooms = (await api(hubUrl, 'GET', '/api/rooms', { token: alice.token })).body;
    return Array.isArray(rooms) && rooms[0]?.id;
  });

  // The worker dies while its send of "out 8" is in flight (WhatsApp never accepted it).
  let killedAt = -1;
  const firstWorker = worker;
  sim.beforeSend = (body) => {
    if (killedAt < 0 && body.text?.body === 'Alice: out 8') {
      killedAt = sim.sent.length;
      firstWorker.child.kill('SIGKILL');
      return false;
    }
    return true;
  };

  const webhooks: unknown[] = [opening];
  const unanswered: unknown[] = [];
  for (let i = 1; i <= IN; i++) {
    const sent = await api(hubUrl, 'POST', `/api/rooms/${roomId}/messages`, { token: alice.token, body: { content: `out ${i}` } });
    expect(sent.status).toBe(201);
    const { payload } = sim.text(MARIA, 'Maria', `in ${i}`);
    webhooks.push(payload);
    if ((await sim.deliver(payload)) !== 200) unanswered.push(payload);
    await new Promise((resolve) => setTimeout(resolve, 25)); // pacing, so the kill lands mid-stream
  }
  await firstWorker.exited;
  expect(killedAt).toBeGreaterThan(0);
  expect(unanswered.length).toBeGreaterThan(0);

  // The hub restarts while the worker is down; more hub messages queue up for WhatsApp.
  await restartHub();
  for (let i = IN + 1; i <= OUT; i++) {
    expect((await api(hubUrl, 'POST', `/api/rooms/${roomId}/messages`, { token: alice.token, body: { content: `out ${i}` } })).status).toBe(201);
  }

  // The worker is back. Meta redelivers what was not answered, then (duplicates) everything again.
  worker = await spawnWorker(configFile);
  for (const payload of unanswered) await deliverUntilAccepted(payload);
  for (const payload of webhooks) expect(await sim.deliver(payload)).toBe(200);
  // And the hub restarts once more while the worker is catching up.
  await restartHub();

  const expectedOut = Array.from({ length: OUT }, (_, i) => `Alice: out ${i + 1}`);
  const expectedIn = Array.from({ length: IN + 1 }, (_, i) => `in ${i}`);
  await eventually('every hub message on WhatsApp', async () => sim.sent.filter((s) => s.type === 'text').length >= OUT);
  const inbound = async () =>
    ((await api(hubUrl, 'GET', `/api/rooms/${roomId}/messages?limit=100`, { token: alice.token })).body.messages as any[])
      .filter((m) => m.user_name === 'Maria')
      .map((m) => m.content);
  await eventually('every WhatsApp message in the hub', async () => (await inbound()).length >= expectedIn.length);

  // Quiet: the worker's queue is empty and the hub has no transaction pending.
  await eventually('the bridge to go idle', async () => {
    const health = await fetch(`${config.bridges[0].url}/health`).then((r) => r.json());
    const { rows } = await app!.hub.db.query('SELECT pending_txn_id FROM bridge_state WHERE bridge_id = $1', ['whatsapp']);
    return health.queued === 0 && rows[0].pending_txn_id === null;
  });

  expect(sim.sent.filter((s) => s.type === 'text').map((s) => s.payload.text.body)).toEqual(expectedOut);
  expect(await inbound()).toEqual(expectedIn);
  console.log(`[figures] crash test: killed after ${killedAt} sends; ${unanswered.length} webhooks unanswered while down; ${webhooks.length + unanswered.length} redeliveries; sim send attempts ${sim.attempts} for ${OUT} messages`);
}, 180_000);
