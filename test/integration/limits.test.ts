import crypto from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WsClient, api, register, startTestHub, type Session, type TestHub } from '../helpers/hub.js';
import { createRoom, expectError } from '../helpers/rest.js';

const PASSWORD = 'correct horse battery';
const email = (prefix: string) => `${prefix}-${crypto.randomBytes(4).toString('hex')}@example.test`;
/** Requests as if from `ip` (the hubs under test trust X-Forwarded-For). */
const from = (ip: string) => ({ 'x-forwarded-for': ip });

function expectRateLimited(res: Awaited<ReturnType<typeof api>>, maxRetryS: number): void {
  expectError(res, 429, 'RATE_LIMITED');
  const retryAfter = Number(res.headers.get('retry-after'));
  expect(retryAfter).toBeGreaterThanOrEqual(1);
  expect(retryAfter).toBeLessThanOrEqual(maxRetryS);
}

describe('login and registration limits', () => {
  let t: TestHub;
  beforeAll(async () => {
    t = await startTestHub({
      server: { trust_proxy: true },
      rate_limits: { login_per_ip_per_min: 3, login_per_account_per_min: 2, register_per_ip_per_hour: 2 },
    });
  });
  afterAll(async () => t?.close());

  const login = (body: { email: string; password: string }, ip: string) => api(t.url, 'POST', '/api/auth/login', { body, headers: from(ip) });

  it('answers 429 RATE_LIMITED with Retry-After once one IP passes its login limit; other IPs are unaffected', async () => {
    for (let i = 0; i < 3; i++) expectError(await login({ email: email('nobody'), password: 'wrong password' }, '10.0.0.1'), 401, 'INVALID_CREDENTIALS');
    expectRateLimited(await login({ email: email('nobody'), password: 'wrong password' }, '10.0.0.1'), 60);
    expectError(await login({ email: email('nobody'), password: 'wrong password' }, '10.0.0.2'), 401, 'INVALID_CREDENTIALS');
  });

  it('limits attempts on one account from any IP, case-insensitively, and a refused login opens no session', async () => {
    const victim = await api(t.url, 'POST', '/api/auth/register', { body: { email: email('victim'), name: 'Victim', password: PASSWORD }, headers: from('10.0.1.9') });
    expect(victim.status).toBe(201);
    const address: string = victim.body.user.email;
    expectError(await login({ email: address, password: 'guess one' }, '10.0.1.1'), 401, 'INVALID_CREDENTIALS');
    expectError(await login({ email: address.toUpperCase(), password: 'guess two' }, '10.0.1.2'), 401, 'INVALID_CREDENTIALS');
    // The right password, from a fresh IP, is refused too: the account's window is used up.
    expectRateLimited(await login({ email: address, password: PASSWORD }, '10.0.1.3'), 60);
    const { rows } = await t.hub.db.query('SELECT id FROM devices WHERE user_id = $1', [victim.body.user.id]);
    expect(rows).toHaveLength(1); // only the registration's session
    // Another account from the same IPs still gets an answer.
    expectError(await login({ email: email('other'), password: 'guess' }, '10.0.1.3'), 401, 'INVALID_CREDENTIALS');
  });

  it('limits registrations per IP per hour and creates nothing when refused', async () => {
    for (let i = 0; i < 2; i++) {
      const res = await api(t.url, 'POST', '/api/auth/register', { body: { email: email('reg'), name: 'Reg', password: PASSWORD }, headers: from('10.0.2.1') });
      expect(res.status).toBe(201);
    }
    const refused = email('refused');
    expectRateLimited(await api(t.url, 'POST', '/api/auth/register', { body: { email: refused, name: 'No', password: PASSWORD }, headers: from('10.0.2.1') }), 3600);
    const { rows } = await t.hub.db.query('SELECT id FROM users WHERE email = $1', [refused]);
    expect(rows).toHaveLength(0);
    const elsewhere = await api(t.url, 'POST', '/api/auth/register', { body: { email: email('reg'), name: 'Reg', password: PASSWORD }, headers: from('10.0.2.2') });
    expect(elsewhere.status).toBe(201);
  });
});

describe('message and WebSocket limits', () => {
  let t: TestHub;
  let alice: Session;
  let bob: Session;
  let roomId: string;
  beforeAll(async () => {
    t = await startTestHub({
      limits: { max_ws_frame_bytes: 2048 },
      rate_limits: { messages_per_user_per_min: 3, ws_frames_per_s: 1, ws_burst: 4 },
    });
    alice = await register(t.url, 'Alice');
    bob = await register(t.url, 'Bob');
    roomId = (await createRoom(t.url, alice, { type: 'group', name: 'Limits', members: [bob.user.id] })).id;
  });
  afterAll(async () => t?.close());

  it('counts REST and WebSocket sends against one per-user limit; refused sends store nothing', async () => {
    const send = (content: string) => api(t.url, 'POST', `/api/rooms/${roomId}/messages`, { token: alice.token, body: { content } });
    expect((await send('one')).status).toBe(201);
    expect((await send('two')).status).toBe(201);
    const ws = await WsClient.connect(t.wsUrl, alice.token);
    ws.send({ type: 'message.send', room_id: roomId, content: 'three', txn_id: 'ok-3' });
    expect((await ws.next('message.sent')).txn_id).toBe('ok-3');

    ws.send({ type: 'message.send', room_id: roomId, content: 'four', txn_id: 'over-4' });
    const err = await ws.next('error');
    expect(err).toMatchObject({ code: 'RATE_LIMITED', txn_id: 'over-4' });
    expect(err.retry_after_ms).toBeGreaterThan(0);
    expect(err.retry_after_ms).toBeLessThanOrEqual(60_000);
    expectRateLimited(await send('five'), 60);

    const { rows } = await t.hub.db.query<{ content: string }>('SELECT content FROM messages WHERE room_id = $1 ORDER BY stream_position', [roomId]);
    expect(rows.map((r) => r.content)).toEqual(['one', 'two', 'three']);
    // Another user's limit is their own.
    expect((await api(t.url, 'POST', `/api/rooms/${roomId}/messages`, { token: bob.token, body: { content: 'bob' } })).status).toBe(201);
    expect(ws.closed).toBeNull();
    ws.close();
  });

  it('refuses frames over the per-connection rate with RATE_LIMITED and keeps the socket open', async () => {
    const ws = await WsClient.connect(t.wsUrl, bob.token);
    for (let i = 0; i < 8; i++) ws.send({ type: 'ping', txn_id: `p${i}` });
    // The bucket holds 4 frames and refills one a second: the first 4 pass, the rest are refused.
    for (let i = 0; i < 4; i++) await ws.next('pong', (e) => e.txn_id === `p${i}`);
    let last: any;
    for (let i = 4; i < 8; i++) {
      last = await ws.next('error', (e) => e.txn_id === `p${i}`);
      expect(last.code).toBe('RATE_LIMITED');
      expect(last.retry_after_ms).toBeGreaterThan(0);
      expect(last.retry_after_ms).toBeLessThanOrEqual(1000);
    }
    expect(ws.all('pong')).toHaveLength(4);
    // After the advertised wait the same socket is served again.
    await new Promise((resolve) => setTimeout(resolve, last.retry_after_ms));
    ws.send({ type: 'ping', txn_id: 'again' });
    await ws.next('pong', (e) => e.txn_id === 'again');
    expect(ws.closed).toBeNull();
    ws.close();
  });

  it('closes a socket that sends a frame over limits.max_ws_frame_bytes with 1009', async () => {
    const ws = await WsClient.connect(t.wsUrl, bob.token);
    ws.send({ type: 'ping', txn_id: 'x'.repeat(4096) });
    expect((await ws.waitClosed()).code).toBe(1009);
  });

  it('sends no CORS headers when server.cors_origins is empty', async () => {
    const res = await api(t.url, 'OPTIONS', '/api/rooms', { headers: { origin: 'https://app.example', 'access-control-request-method': 'POST' } });
    expect(res.status).toBe(404);
    expect(res.headers.get('access-control-allow-origin')).toBeNull();
  });
});

describe('CORS', () => {
  let t: TestHub;
  beforeAll(async () => {
    t = await startTestHub({ server: { cors_origins: ['https://app.example'] } });
  });
  afterAll(async () => t?.close());

  it('answers a preflight from a listed origin, before authentication', async () => {
    const res = await api(t.url, 'OPTIONS', '/api/rooms/00000000-0000-0000-0000-000000000000', {
      headers: { origin: 'https://app.example', 'access-control-request-method': 'DELETE', 'access-control-request-headers': 'authorization,content-type' },
    });
    expect(res.status).toBe(204);
    expect(res.headers.get('access-control-allow-origin')).toBe('https://app.example');
    expect(res.headers.get('access-control-allow-methods')).toContain('DELETE');
    expect(res.headers.get('access-control-allow-headers')).toContain('authorization');
    expect(res.headers.get('access-control-allow-credentials')).toBeNull();
  });

  it('allows the listed origin on actual requests, even errors, and exposes Retry-After', async () => {
    const res = await api(t.url, 'GET', '/api/me', { headers: { origin: 'https://app.example' } });
    expect(res.status).toBe(401);
    expect(res.headers.get('access-control-allow-origin')).toBe('https://app.example');
    expect(res.headers.get('access-control-expose-headers')).toContain('retry-after');
  });

  it('refuses other origins: no Access-Control-Allow-Origin, so browsers block the call', async () => {
    const pre = await api(t.url, 'OPTIONS', '/api/rooms', { headers: { origin: 'https://evil.example', 'access-control-request-method': 'POST' } });
    expect(pre.headers.get('access-control-allow-origin')).toBeNull();
    const res = await api(t.url, 'GET', '/healthz', { headers: { origin: 'https://evil.example' } });
    expect(res.headers.get('access-control-allow-origin')).toBeNull();
  });
});
