/**
 * A seeded fuzzer against a hub on the embedded PGlite and, when DATABASE_URL is set, one on PostgreSQL
 * (the same inputs for each), with
 * a WhatsApp and a Google Chat bridge: REST requests generated from the OpenAPI document (every
 * operation, with params, query strings and bodies mutated: wrong types, huge and non-finite numbers,
 * deep nesting, long strings, nulls, arrays for scalars, broken JSON), WebSocket frames, correctly
 * signed WhatsApp webhooks and Google Chat events (so their parsing is reached) and bridge
 * transactions. It fails on any 5xx (or a WebSocket `INTERNAL` error), a crash, a request that hangs,
 * RSS growth over a bound, and (at the hub's close) any response the OpenAPI document does not allow.
 *
 * The seed is printed; FUZZ_SEED=<n> replays a run, FUZZ_INPUTS=<n> changes how many inputs it makes.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pino } from 'pino';
import WebSocket from 'ws';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Bridge } from '../../bridges/kit/bridge.js';
import { createBridge } from '../../bridges/run.js';
import { listTools } from '../../src/modules/agents/tools.js';
import { ClientFrames } from '../../src/ws/frames.js';
import { bridgeConfig } from '../bridges/bridge-config.js';
import { WhatsAppSimulator } from '../bridges/whatsapp-sim.js';
import { freePort } from '../e2e/spawn.js';
import { googleChatBridge, googleChatBridgeConfig } from '../googlechat/setup.js';
import { GoogleChatSimulator } from '../googlechat/sim.js';
import { api, register, startTestHub, type Session, type TestHub } from '../helpers/hub.js';

const SEED = Number(process.env.FUZZ_SEED ?? 20261202);
const INPUTS = Number(process.env.FUZZ_INPUTS ?? 10_000);
const CONCURRENCY = 8;
/** A request unanswered this long hangs (generous: argon2 hashing queues up on a loaded machine). */
const REQUEST_TIMEOUT_MS = 30_000;
const RSS_GROWTH_BOUND_BYTES = 400 * 1048576;
/** Operations that hash a password when their input is valid. */
const PASSWORD_HASHING = ['register', 'login'];

/** mulberry32: a small seeded PRNG, [0, 1). */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
let random = prng(SEED);
const int = (n: number) => Math.floor(random() * n);
const pick = <T,>(items: readonly T[]): T => items[int(items.length)];
const chance = (p: number) => random() < p;

/** JSON text nested `depth` deep (built as text: JSON.stringify would recurse). */
const deepJson = (depth: number) => (chance(0.5) ? '['.repeat(depth) + ']'.repeat(depth) : '{"a":'.repeat(depth) + '1' + '}'.repeat(depth));
function deepValue(depth: number): unknown {
  let v: unknown = 'x';
  for (let i = 0; i < depth; i++) v = chance(0.5) ? [v] : { a: v };
  return v;
}

/** Values that break assumptions; strings are also used raw in paths and query strings. */
const HOSTILE_STRINGS = ['', ' ', 'Infinity', '-Infinity', 'NaN', '1e400', '-1', '0', '1.5', '9007199254740993', '99999999999999999999', 'null', 'true', '[]', '{}',
  'a\u0000b', '\ud800', 'x'.repeat(5000), '🙂'.repeat(2000), '../../etc/passwd', "'; DROP TABLE users; --", '%', '%00', '%ZZ', '\\', '<script>', ' '.repeat(300), 'ǅ'.repeat(100)];
function hostile(): unknown {
  switch (int(9)) {
    case 0: return null;
    case 1: return pick([true, false]);
    case 2: return pick([0, -1, 1e308, -1e308, 2 ** 53 + 2, 0.5, -0]);
    case 3: return [pick(HOSTILE_STRINGS), 1];
    case 4: return { a: 1, __proto__x: pick(HOSTILE_STRINGS) };
    case 5: return deepValue(int(60));
    case 6: return Array.from({ length: int(30) }, () => pick(HOSTILE_STRINGS));
    default: return pick(HOSTILE_STRINGS);
  }
}

/** A path segment: percent-encoded UTF-8 (a lone surrogate as its WTF-8 bytes), never empty. */
const encode = (s: string) => (/\p{Cs}/u.test(s) ? s.split('').map((c) => (/\p{Cs}/u.test(c) ? '%ED%A0%80' : encodeURIComponent(c))).join('') : encodeURIComponent(s)) || 'x';

/** A value of JSON schema `schema` (refs resolved in `doc`), from `ids` where a uuid is wanted. */
function sample(schema: any, doc: any, ids: string[], depth = 0): unknown {
  if (!schema || depth > 8) return null;
  if (schema.$ref) return sample(doc.components.schemas[schema.$ref.split('/').pop()], doc, ids, depth + 1);
  const alts = schema.anyOf ?? schema.oneOf;
  if (alts) return sample(pick(alts), doc, ids, depth + 1);
  if (schema.const !== undefined) return schema.const;
  if (schema.enum) return pick(schema.enum);
  switch (Array.isArray(schema.type) ? pick(schema.type) : schema.type) {
    case 'object': {
      const out: Record<string, unknown> = {};
      for (const [k, s] of Object.entries(schema.properties ?? {})) if ((schema.required ?? []).includes(k) || chance(0.6)) out[k] = sample(s, doc, ids, depth + 1);
      return out;
    }
    case 'array': return Array.from({ length: int(Math.min(schema.maxItems ?? 3, 3) + 1) }, () => sample(schema.items, doc, ids, depth + 1));
    case 'integer': return Math.round((schema.minimum ?? 0) + random() * Math.min(100, (schema.maximum ?? 100) - (schema.minimum ?? 0)));
    case 'number': return random() * 100;
    case 'boolean': return chance(0.5);
    case 'null': return null;
    case 'string':
      if (schema.format === 'uuid') return pick(ids);
      if (schema.format === 'email') return `fuzz-${int(1e6)}@example.test`;
      if (schema.format === 'date-time') return new Date(Date.now() - int(1e9)).toISOString();
      if (schema.format === 'uri') return 'https://example.test/x';
      return 'fuzz ' + 'x'.repeat(Math.max(0, int(Math.min(schema.maxLength ?? 20, 20)) - 5 + (schema.minLength ?? 0)));
    default: return pick([1, 'x', null, {}]);
  }
}

/** `value` with one random node (or the whole, for shallow values) replaced by a hostile value. */
function mutate(value: unknown): unknown {
  if (chance(0.15) || value === null || typeof value !== 'object') return hostile();
  const copy: any = Array.isArray(value) ? [...value] : { ...(value as object) };
  const keys = Object.keys(copy);
  if (keys.length === 0 || chance(0.15)) {
    copy[pick(['extra', 'type', 'id', 'content', 'events', '0'])] = hostile();
    return copy;
  }
  const key = pick(keys);
  copy[key] = chance(0.5) ? mutate(copy[key]) : hostile();
  return copy;
}

interface Operation {
  method: string;
  path: string;
  operationId: string;
  params: { name: string; in: string; schema: any; required?: boolean }[];
  body?: any;
  multipart: boolean;
}

let t: TestHub;
let wa: WhatsAppSimulator;
let gchat: GoogleChatSimulator;
let bridges: Bridge[] = [];
let dir: string;
let admin: Session;
let others: Session[];
/** Users of the fuzzed sockets, not in `ids` (so REST fuzzing does not deactivate them mid-run). */
let socketUsers: Session[];
let agentToken: string;
const ids: string[] = [];
const failures: string[] = [];
let inputs = 0;

/** Starts the hub on `database` and its bridges, and makes the ids the inputs point at; the PRNG restarts at SEED. */
async function setUp(database: Database): Promise<void> {
  random = prng(SEED);
  ids.length = 0;
  failures.length = 0;
  inputs = 0;
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sb-fuzz-'));
  wa = new WhatsAppSimulator();
  await wa.start();
  gchat = new GoogleChatSimulator();
  await gchat.start();
  const [waPort, gcPort] = [await freePort(), await freePort()];
  t = await startTestHub({
    ...(database === 'embedded' ? { database: { url: '' } } : {}),
    rate_limits: { login_per_ip_per_min: 0, login_per_account_per_min: 0, register_per_ip_per_hour: 0, messages_per_user_per_min: 0, ws_frames_per_s: 0 },
    bridges: [
      bridgeConfig({
        id: 'whatsapp',
        network: 'whatsapp',
        url: `http://127.0.0.1:${waPort}`,
        as_token: crypto.randomBytes(24).toString('hex'),
        hs_token: crypto.randomBytes(24).toString('hex'),
        data_dir: path.join(dir, 'wa'),
        retry_max_ms: 100,
        max_attempts: 2,
        whatsapp: { api_base_url: wa.apiBaseUrl, phone_number_id: wa.phoneNumberId, access_token: wa.accessToken, app_secret: wa.appSecret, verify_token: 'fuzz-verify', send_rate_per_s: 1000 },
      }),
      googleChatBridgeConfig(gchat, dir, gcPort),
    ],
  });
  admin = await register(t.url, 'Admin');
  // An admin (as `switchboard user create --admin` makes one), so the admin routes are reached too.
  await t.hub.db.query('UPDATE users SET is_admin = true WHERE id = $1', [admin.user.id]);
  others = [await register(t.url, 'Bob'), await register(t.url, 'Carol')];
  socketUsers = [await register(t.url, 'Dave'), await register(t.url, 'Erin')];
  const logger = pino({ level: process.env.TEST_LOG_LEVEL ?? 'silent' });
  bridges = [createBridge(t.config, 'whatsapp', logger, t.url), googleChatBridge(t.config, t.url)];
  wa.webhookUrl = `${await bridges[0].start()}/whatsapp/webhook`;
  const gcUrl = await bridges[1].start();
  gchat.interactionUrl = `${gcUrl}/googlechat/events`;
  gchat.pushEndpoint = gchat.pushAudience = `${gcUrl}/googlechat/pubsub`;

  // Things for ids to point at: rooms, a message, an attachment, users.
  const room = await api(t.url, 'POST', '/api/rooms', { token: admin.token, body: { type: 'group', name: 'Fuzz', members: [...others, ...socketUsers].map((o) => o.user.id) } });
  const channel = await api(t.url, 'POST', '/api/rooms', { token: others[0].token, body: { type: 'channel', name: 'Open', visibility: 'public' } });
  const message = await api(t.url, 'POST', `/api/rooms/${room.body.id}/messages`, { token: admin.token, body: { content: 'hello' } });
  const form = new FormData();
  form.append('file', new Blob([Buffer.from('hello file')]), 'a.txt');
  const file = await (await fetch(`${t.url}/api/attachments`, { method: 'POST', headers: { authorization: `Bearer ${admin.token}` }, body: form })).json();
  expect([room.status, channel.status, message.status, file.id]).toEqual([201, 201, 201, expect.any(String)]);
  ids.push(room.body.id, channel.body.id, message.body.id, file.id, admin.user.id, ...others.map((o) => o.user.id), crypto.randomUUID());
  const scopes = [...new Set(listTools().map((tool) => tool.scope))];
  agentToken = (await api(t.url, 'POST', '/api/agent-tokens', { token: admin.token, body: { name: 'fuzz', scopes } })).body.token;
  expect(agentToken).toMatch(/^sbat_/);
}

async function tearDown(): Promise<void> {
  for (const b of bridges) await b.stop();
  await t?.close(); // fails on responses the OpenAPI document does not allow
  await wa?.close();
  await gchat?.close();
  fs.rmSync(dir, { recursive: true, force: true });
  bridges = [];
}

/**
 * One HTTP input, injected into the app `url` belongs to (the hub's or a bridge's: the whole request
 * path, hooks and handlers, without the cost of sockets); a 5xx or a timeout is a failure.
 */
async function send(what: string, url: string, init: RequestInit): Promise<void> {
  inputs++;
  what = what.slice(0, 300);
  const { origin, pathname, search } = new URL(url);
  const app = origin === new URL(t.url).origin ? t.app : bridges.find((b) => origin === new URL(t.config.bridges[bridges.indexOf(b)].url).origin)?.app;
  if (!app) throw new Error(`no app at ${origin}`);
  const headers = { ...(init.headers as Record<string, string>) };
  let payload: string | Buffer | undefined = init.body as string | undefined;
  if (init.body instanceof FormData) {
    const encoded = new Response(init.body);
    headers['content-type'] = encoded.headers.get('content-type')!;
    payload = Buffer.from(await encoded.arrayBuffer());
  }
  let timer: NodeJS.Timeout | undefined;
  try {
    const res = await Promise.race([
      app.inject({ method: (init.method ?? 'GET') as 'GET', url: pathname + search, headers, payload }),
      new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error('timeout')), REQUEST_TIMEOUT_MS))),
    ]);
    if (res.statusCode >= 500) failures.push(`${res.statusCode} ${what}: ${res.body.slice(0, 300)}`);
  } catch (err) {
    failures.push(`${(err as Error).message === 'timeout' ? 'hang' : 'error'} ${what}: ${(err as Error).message}`);
  } finally {
    clearTimeout(timer);
  }
}

function operations(doc: any): Operation[] {
  const ops: Operation[] = [];
  for (const [p, methods] of Object.entries<any>(doc.paths)) {
    for (const [method, op] of Object.entries<any>(methods)) {
      const content = op.requestBody?.content ?? {};
      ops.push({ method: method.toUpperCase(), path: p, operationId: op.operationId, params: op.parameters ?? [], body: content['application/json']?.schema, multipart: 'multipart/form-data' in content });
    }
  }
  return ops;
}

/** A request for `op`: valid-looking values, each part mutated now and then. */
function restInput(op: Operation, doc: any): { what: string; url: string; init: RequestInit } {
  let urlPath = op.path;
  const query = new URLSearchParams();
  for (const param of op.params) {
    const valid = sample(param.schema, doc, ids);
    if (param.in === 'path') {
      const value = chance(0.3) ? String(pick(HOSTILE_STRINGS)) : String(valid);
      // Now and then raw (printable ASCII only: anything else is no URL a client can send).
      urlPath = urlPath.replace(`{${param.name}}`, chance(0.1) && /^[\x21-\x7e]+$/.test(value) ? value : encode(value));
    } else if (param.in === 'query' && (param.required || chance(0.7))) {
      const value = chance(0.3) ? hostile() : valid;
      for (const v of Array.isArray(value) ? value : [value]) query.append(param.name, typeof v === 'object' ? JSON.stringify(v) : String(v));
      if (chance(0.05)) query.append(param.name, String(valid)); // given twice
    }
  }
  if (chance(0.05)) query.append(pick(['limit', 'offset', 'user_id', 'since', 'x']), pick(HOSTILE_STRINGS));
  const headers: Record<string, string> = {};
  const auth = op.path.startsWith('/api/mcp/') ? agentToken : op.path.startsWith('/api/bridge/') ? t.config.bridges[0].as_token : admin.token;
  // Sessions are not given away (logout, device revocation): those calls go without a token.
  if (!['logout', 'revokeDevice'].includes(op.operationId) && chance(0.95)) headers.authorization = `Bearer ${chance(0.03) ? pick(HOSTILE_STRINGS.filter((h) => /^[\x21-\x7e]*$/.test(h))) : auth}`;
  let body: BodyInit | undefined;
  if (op.multipart) {
    const form = new FormData();
    if (chance(0.8)) form.append(pick(['file', 'x']), new Blob([crypto.randomBytes(int(3000))]), String(pick(['a.png', 'b.txt', ...HOSTILE_STRINGS])));
    body = form;
  } else if (op.method !== 'GET' && op.method !== 'HEAD' && (op.body || chance(0.1))) {
    headers['content-type'] = chance(0.97) ? 'application/json' : pick(['text/plain', 'application/json; charset=latin1', 'application/xml']);
    const roll = random();
    if (roll < 0.05) body = deepJson(pick([40, 1000, 10_000]));
    else if (roll < 0.1) body = pick(['', 'null', '[]', '"x"', '1e400', '{', '{"a":1,}', '\u0000', '{"__proto__":{"x":1}}', '{"constructor":{"prototype":{}}}']);
    else {
      const valid = op.body ? sample(op.body, doc, ids) : {};
      body = JSON.stringify(chance(0.6) ? mutate(valid) : valid);
    }
  }
  const qs = query.toString();
  return { what: `${op.method} ${urlPath}${qs ? `?${qs}` : ''} ${typeof body === 'string' ? body.slice(0, 200) : ''}`, url: `${t.url}${urlPath}${qs ? `?${qs}` : ''}`, init: { method: op.method, headers, body } };
}

/** A WhatsApp webhook, signed with the app secret (or the verification GET). */
function whatsappInput(): { what: string; url: string; init: RequestInit } {
  if (chance(0.15)) {
    const q = new URLSearchParams();
    for (const k of ['hub.mode', 'hub.verify_token', 'hub.challenge']) if (chance(0.8)) for (let i = 0; i <= int(2); i++) q.append(k, chance(0.5) ? String(pick(HOSTILE_STRINGS)) : k === 'hub.mode' ? 'subscribe' : 'fuzz-verify');
    return { what: `GET webhook ?${q}`, url: `${wa.webhookUrl}?${q}`, init: {} };
  }
  const from = `1555${int(1e7)}`;
  const base = chance(0.5) ? wa.text(from, 'Fuzz', 'hi').payload : wa.inbound(from, 'Fuzz', { type: pick(['image', 'reaction', 'location', 'contacts', 'button', 'interactive', 'weird']), image: { id: 'm1' } }).payload;
  let raw: string;
  if (chance(0.05)) raw = deepJson(pick([40, 10_000]));
  else {
    const payload: any = structuredClone(base);
    const value = payload.entry[0].changes[0].value;
    const targets = [payload, payload.entry[0], payload.entry[0].changes[0], value, value.messages[0], value.contacts[0]];
    for (let i = 0; i <= int(3); i++) {
      const target = pick(targets);
      const key = pick([...Object.keys(target), 'messages', 'contacts', 'statuses', 'text', 'reaction']);
      target[key] = chance(0.5) ? hostile() : mutate(target[key]);
    }
    raw = JSON.stringify(payload);
  }
  const signature = `sha256=${crypto.createHmac('sha256', wa.appSecret).update(raw).digest('hex')}`;
  return { what: `POST webhook ${raw.slice(0, 200)}`, url: wa.webhookUrl, init: { method: 'POST', headers: { 'content-type': 'application/json', 'x-hub-signature-256': signature }, body: raw } };
}

/** A hub -> bridge transaction with the hs_token, events mutated. */
function transactionInput(): { what: string; url: string; init: RequestInit } {
  const bridge = pick(t.config.bridges);
  const event = { type: pick(['message.new', 'message.edited', 'message.deleted', 'reaction.added', 'typing', 'room.updated', 'x']), room_id: pick(ids), stream_position: int(1000), message: { id: pick(ids), room_id: pick(ids), user_id: pick(ids), content: 'x' } };
  const txn = chance(0.1) ? deepJson(pick([40, 10_000])) : JSON.stringify(chance(0.7) ? mutate({ events: [event], ephemeral: [] }) : { events: [event], ephemeral: [] });
  const id = chance(0.1) ? encode(String(pick(HOSTILE_STRINGS))) : `fuzz-${int(1e9)}`;
  return { what: `PUT ${bridge.id} transaction ${txn.slice(0, 200)}`, url: `${bridge.url}/transactions/${id}`, init: { method: 'PUT', headers: { 'content-type': 'application/json', authorization: `Bearer ${bridge.hs_token}` }, body: txn } };
}

/** A Google Chat interaction event with a valid Chat token (through the simulator), mutated. */
async function googleChatInteraction(): Promise<void> {
  const event = { type: pick(['MESSAGE', 'ADDED_TO_SPACE', 'REMOVED_FROM_SPACE', 'X']), space: { name: `spaces/FUZZ${int(50)}`, displayName: 'Fuzz', spaceType: 'SPACE' }, user: { name: `users/${int(1e6)}`, displayName: 'Fuzz' }, message: { name: `spaces/FUZZ1/messages/${int(1e9)}`, text: 'hi', sender: { name: 'users/1' }, attachment: [] } };
  inputs++;
  try {
    const status = await gchat.interact(mutate(mutate(event)) as Record<string, unknown>);
    if (status >= 500 || status === 0) failures.push(`${status} Google Chat interaction`);
  } catch (err) {
    failures.push(`Google Chat interaction: ${(err as Error).message}`);
  }
}

/** A Pub/Sub push with a valid token: attributes and base64 data mutated. */
async function googleChatPush(token: string): Promise<void> {
  const data = chance(0.1) ? deepJson(pick([40, 10_000])) : JSON.stringify(mutate({ message: { name: `spaces/FUZZ1/messages/${int(1e9)}`, text: 'x', sender: { name: 'users/1' } }, reactions: [{ reaction: { name: 'spaces/FUZZ1/messages/1/reactions/2' } }] }));
  const body = mutate({ subscription: gchat.pubsubSubscription, message: { data: Buffer.from(data).toString('base64'), attributes: { 'ce-type': pick(['google.workspace.chat.message.v1.created', 'google.workspace.chat.reaction.v1.batchCreated', 'google.workspace.events.subscription.v1.expirationReminder', 'x']) } } });
  await send(`Google Chat push ${JSON.stringify(body).slice(0, 200)}`, gchat.pushEndpoint, { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` }, body: JSON.stringify(body) });
}

/** WebSocket frames over a few sockets; `INTERNAL` errors or a server close are failures. */
async function fuzzFrames(count: number): Promise<void> {
  const sockets = await Promise.all(
    socketUsers.map(
      (s) =>
        new Promise<WebSocket>((resolve, reject) => {
          const ws = new WebSocket(`${t.wsUrl}/ws`, { headers: { authorization: `Bearer ${s.token}` } });
          ws.on('message', (data) => {
            const ev = JSON.parse(data.toString());
            if (ev.type === 'ready') resolve(ws);
            if (ev.type === 'error' && ev.code === 'INTERNAL') failures.push(`WS INTERNAL: ${ev.message}`);
          });
          ws.on('close', (code) => (code === 1000 || code === 1009 ? undefined : failures.push(`WS closed by the server: ${code}`)));
          ws.on('error', reject);
        }),
    ),
  );
  const types = Object.keys(ClientFrames);
  for (let i = 0; i < count; i++) {
    const ws = pick(sockets);
    const type = pick(types);
    const valid = sample(JSON.parse(JSON.stringify((ClientFrames as any)[type])), {}, ids);
    const roll = random();
    inputs++;
    if (roll < 0.03) ws.send(crypto.randomBytes(int(100)));
    else if (roll < 0.08) ws.send(deepJson(pick([40, 10_000])));
    else if (roll < 0.12) ws.send(pick(['', 'null', '[]', '{', '1e400', '{"type":1}', '{"type":"__proto__"}', '{"type":"constructor"}']));
    else ws.send(JSON.stringify(chance(0.7) ? mutate(valid) : valid));
    if (i % 200 === 0) await new Promise((r) => setTimeout(r, 5));
  }
  // A ping answered on every socket: every frame before it was handled.
  await Promise.all(
    sockets.map(
      (ws) =>
        new Promise<void>((resolve) => {
          const timer = setTimeout(() => (failures.push('WS hang: no pong in 120 s'), resolve()), 120_000);
          ws.on('close', () => (clearTimeout(timer), resolve()));
          ws.on('message', (data) => {
            if (JSON.parse(data.toString()).txn_id === 'fuzz-end') (clearTimeout(timer), resolve());
          });
          ws.send(JSON.stringify({ type: 'ping', txn_id: 'fuzz-end' }));
        }),
    ),
  );
  for (const ws of sockets) ws.close(1000);
}

async function fuzz(): Promise<void> {
  console.log(`fuzz seed ${SEED} (replay with FUZZ_SEED=${SEED}), ${INPUTS} inputs`);
  const doc = JSON.parse(fs.readFileSync(path.join(import.meta.dirname, '../../docs/openapi.json'), 'utf8'));
  const ops = operations(doc).filter((op) => op.path !== '/metrics');
  const pushToken = await gchat.oidcToken({ aud: gchat.pushAudience, email: gchat.pushServiceAccount });
  const rssBefore = process.memoryUsage().rss;
  const started = Date.now();

  // Every operation at least once, then at random; the other kinds in proportion.
  const plan: (() => Promise<void>)[] = [];
  const frames = Math.floor(INPUTS * 0.3);
  for (let i = 0; i < INPUTS - frames; i++) {
    const roll = random();
    if (i < ops.length || roll < 0.8) {
      // Each operation once, then at random; those that hash a password (argon2id, ~0.1 s of CPU) seldom.
      let op = i < ops.length ? ops[i] : pick(ops);
      while (i >= ops.length && PASSWORD_HASHING.includes(op.operationId) && chance(0.9)) op = pick(ops);
      const { what, url, init } = restInput(op, doc);
      plan.push(() => send(what, url, init));
    } else if (roll < 0.88) {
      const { what, url, init } = whatsappInput();
      plan.push(() => send(what, url, init));
    } else if (roll < 0.94) {
      const { what, url, init } = transactionInput();
      plan.push(() => send(what, url, init));
    } else if (roll < 0.97) plan.push(() => googleChatInteraction());
    else plan.push(() => googleChatPush(pushToken));
  }
  let next = 0;
  const took = (since: number) => `${Math.round((Date.now() - since) / 100) / 10} s`;
  await Promise.all([
    Promise.all(Array.from({ length: CONCURRENCY }, async () => {
      while (next < plan.length) await plan[next++]();
    })).then(() => console.log(`fuzz: HTTP inputs done in ${took(started)}`)),
    fuzzFrames(frames).then(() => console.log(`fuzz: WebSocket frames done in ${took(started)}`)),
  ]);

  const health = await fetch(`${t.url}/healthz`);
  expect(health.status).toBe(200);
  const rssGrowth = process.memoryUsage().rss - rssBefore;
  console.log(`fuzz: ${inputs} inputs in ${Date.now() - started} ms, RSS growth ${Math.round(rssGrowth / 1048576)} MiB, ${failures.length} failures`);
  expect(failures.slice(0, 20)).toEqual([]);
  expect(inputs).toBeGreaterThanOrEqual(INPUTS);
  expect(rssGrowth).toBeLessThan(RSS_GROWTH_BOUND_BYTES);
}

type Database = 'postgres' | 'embedded';
/** The embedded database always; PostgreSQL too when DATABASE_URL is set. */
const DATABASES: Database[] = process.env.DATABASE_URL ? ['postgres', 'embedded'] : ['embedded'];

for (const database of DATABASES) {
  describe(`on ${database === 'postgres' ? 'PostgreSQL' : 'the embedded PGlite'}`, () => {
    beforeAll(() => setUp(database), 120_000);
    afterAll(tearDown);
    it(`survives ${INPUTS} generated inputs (seed ${SEED}) with no 5xx, crash, hang or runaway memory`, fuzz, 600_000);
  });
}
