import crypto from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TokenIssuer } from '../../src/modules/auth/tokens.js';
import { WsClient, api, register, startTestHub, type Session, type TestHub } from '../helpers/hub.js';
import { expectError } from '../helpers/rest.js';

let t: TestHub;
const PASSWORD = 'correct horse battery';

beforeAll(async () => {
  t = await startTestHub();
});
afterAll(async () => t?.close());

function uniqueEmail(prefix = 'user'): string {
  return `${prefix}-${crypto.randomBytes(4).toString('hex')}@example.test`;
}

async function login(email: string, password = PASSWORD, device_name?: string) {
  return api(t.url, 'POST', '/api/auth/login', { body: { email, password, ...(device_name ? { device_name } : {}) } });
}

describe('register', () => {
  it('creates the account with an argon2id hash and returns a working session (201)', async () => {
    const email = uniqueEmail('Reg').replace('reg', 'Reg');
    const res = await api(t.url, 'POST', '/api/auth/register', { body: { email, name: '  Regina ', password: PASSWORD } });
    expect(res.status).toBe(201);
    expect(res.body).toMatchObject({
      expires_in: t.config.auth.access_token_ttl_s,
      user: { email: email.toLowerCase(), name: 'Regina', is_admin: false, avatar_url: null },
    });
    expect(res.body.token).toEqual(expect.any(String));
    expect(res.body.refresh_token).toEqual(expect.any(String));
    expect(res.body.device_id).toMatch(/^[0-9a-f-]{36}$/);

    const { rows } = await t.hub.db.query<{ password_hash: string }>('SELECT password_hash FROM users WHERE id = $1', [res.body.user.id]);
    expect(rows[0].password_hash.startsWith('$argon2id$')).toBe(true);
    expect(rows[0].password_hash).not.toContain(PASSWORD);

    const me = await api(t.url, 'GET', '/api/me', { token: res.body.token });
    expect(me.status).toBe(200);
    expect(me.body).toMatchObject({ id: res.body.user.id, email: email.toLowerCase(), name: 'Regina' });
  });

  it('refuses a second account with the same email, whatever its case (409 EMAIL_TAKEN)', async () => {
    const email = uniqueEmail('dup');
    expect((await api(t.url, 'POST', '/api/auth/register', { body: { email, name: 'Dup', password: PASSWORD } })).status).toBe(201);
    expectError(await api(t.url, 'POST', '/api/auth/register', { body: { email, name: 'Dup2', password: PASSWORD } }), 409, 'EMAIL_TAKEN');
    expectError(await api(t.url, 'POST', '/api/auth/register', { body: { email: email.toUpperCase(), name: 'Dup3', password: PASSWORD } }), 409, 'EMAIL_TAKEN');
    const { rows } = await t.hub.db.query('SELECT id FROM users WHERE email = $1', [email]);
    expect(rows).toHaveLength(1);
  });

  it.each([
    ['missing password', { email: uniqueEmail(), name: 'X' }],
    ['short password', { email: uniqueEmail(), name: 'X', password: 'short' }],
    ['malformed email', { email: 'not-an-email', name: 'X', password: PASSWORD }],
    ['empty name', { email: uniqueEmail(), name: '', password: PASSWORD }],
    ['blank name', { email: uniqueEmail(), name: '   ', password: PASSWORD }],
    ['unknown property', { email: uniqueEmail(), name: 'X', password: PASSWORD, admin: true }],
  ])('rejects a bad body (%s) with 400 VALIDATION_FAILED', async (_label, body) => {
    const res = await api(t.url, 'POST', '/api/auth/register', { body });
    expectError(res, 400, 'VALIDATION_FAILED');
    expect(Object.keys(res.body)).toEqual(['error']);
    expect(Object.keys(res.body.error).sort()).toEqual(['code', 'message']);
  });
  it('refuses a U+0000 in the name (400 VALIDATION_FAILED), and one in a login email is a 400 too, not a 500', async () => {
    const reg = await api(t.url, 'POST', '/api/auth/register', { body: { email: 'nul-name@example.test', name: 'A\u0000B', password: 'correct horse battery' } });
    expectError(reg, 400, 'VALIDATION_FAILED');
    expectError(await api(t.url, 'POST', '/api/auth/login', { body: { email: 'x\u0000@example.test', password: 'whatever long' } }), 400, 'VALIDATION_FAILED');
  });
});

describe('login', () => {
  let email: string;
  beforeAll(async () => {
    email = uniqueEmail('login');
    expect((await api(t.url, 'POST', '/api/auth/register', { body: { email, name: 'Logan', password: PASSWORD } })).status).toBe(201);
  });

  it('opens a new device session with the right password (any email case)', async () => {
    const res = await login(email.toUpperCase(), PASSWORD, 'laptop');
    expect(res.status).toBe(200);
    expect(res.body.user.email).toBe(email);
    const me = await api(t.url, 'GET', '/api/me', { token: res.body.token });
    expect(me.status).toBe(200);
    expect(me.body.email).toBe(email);
    const devices = await api(t.url, 'GET', '/api/devices', { token: res.body.token });
    expect(devices.body.find((d: any) => d.id === res.body.device_id)).toMatchObject({ name: 'laptop', current: true });
  });

  it('answers 401 INVALID_CREDENTIALS for a wrong password or an unknown email', async () => {
    expectError(await login(email, 'wrong password!'), 401, 'INVALID_CREDENTIALS');
    expectError(await login(uniqueEmail('nobody')), 401, 'INVALID_CREDENTIALS');
  });
});

describe('access tokens', () => {
  let s: Session;
  beforeAll(async () => {
    s = await register(t.url, 'Tokyo');
  });

  it('rejects a missing or malformed token (401 UNAUTHORIZED)', async () => {
    expectError(await api(t.url, 'GET', '/api/me'), 401, 'UNAUTHORIZED');
    expectError(await api(t.url, 'GET', '/api/me', { token: 'not.a.jwt' }), 401, 'UNAUTHORIZED');
  });

  it('rejects a token signed with another secret (401 UNAUTHORIZED)', async () => {
    const forger = new TokenIssuer(crypto.randomBytes(32), 900);
    const forged = await forger.sign({ userId: s.user.id, deviceId: s.device_id });
    expectError(await api(t.url, 'GET', '/api/me', { token: forged }), 401, 'UNAUTHORIZED');
  });

  it('rejects an expired token with 401 TOKEN_EXPIRED', async () => {
    // The hub's own issuer format and secret, with a lifetime that ended a minute ago.
    const issuer = new TokenIssuer(new TextEncoder().encode(t.config.auth.jwt_secret), -60);
    const expired = await issuer.sign({ userId: s.user.id, deviceId: s.device_id });
    expectError(await api(t.url, 'GET', '/api/me', { token: expired }), 401, 'TOKEN_EXPIRED');
    // The same session with a live token still works: only the expiry was wrong.
    expect((await api(t.url, 'GET', '/api/me', { token: s.token })).status).toBe(200);
  });
});

describe('refresh', () => {
  it('rotates: the new pair works, the old refresh token is retired', async () => {
    const s = await register(t.url, 'Rota');
    const r1 = await api(t.url, 'POST', '/api/auth/refresh', { body: { refresh_token: s.refresh_token } });
    expect(r1.status).toBe(200);
    expect(r1.body.device_id).toBe(s.device_id);
    expect(r1.body.refresh_token).not.toBe(s.refresh_token);
    expect((await api(t.url, 'GET', '/api/me', { token: r1.body.token })).body.id).toBe(s.user.id);

    const r2 = await api(t.url, 'POST', '/api/auth/refresh', { body: { refresh_token: r1.body.refresh_token } });
    expect(r2.status).toBe(200);
    expect(r2.body.refresh_token).not.toBe(r1.body.refresh_token);
  });

  it('treats a retired token presented again as reuse: 401 REFRESH_TOKEN_REUSED and the whole session is revoked', async () => {
    const s = await register(t.url, 'Reuse');
    const ws = await WsClient.connect(t.wsUrl, s.token);
    const r1 = await api(t.url, 'POST', '/api/auth/refresh', { body: { refresh_token: s.refresh_token } });
    expect(r1.status).toBe(200);

    expectError(await api(t.url, 'POST', '/api/auth/refresh', { body: { refresh_token: s.refresh_token } }), 401, 'REFRESH_TOKEN_REUSED');

    // The newest refresh token of the family and every access token of the device stop working.
    expectError(await api(t.url, 'POST', '/api/auth/refresh', { body: { refresh_token: r1.body.refresh_token } }), 401, 'INVALID_REFRESH_TOKEN');
    expectError(await api(t.url, 'GET', '/api/me', { token: r1.body.token }), 401, 'UNAUTHORIZED');
    expectError(await api(t.url, 'GET', '/api/me', { token: s.token }), 401, 'UNAUTHORIZED');
    expect((await ws.waitClosed()).code).toBe(4401);

    // Another session of the same user is unaffected.
    const other = await login(s.user.email);
    expect((await api(t.url, 'GET', '/api/me', { token: other.body.token })).status).toBe(200);
  });

  it('answers 401 INVALID_REFRESH_TOKEN for an unknown token', async () => {
    expectError(await api(t.url, 'POST', '/api/auth/refresh', { body: { refresh_token: 'made-up' } }), 401, 'INVALID_REFRESH_TOKEN');
  });
});

describe('logout and devices', () => {
  it('logout revokes the session: its access and refresh tokens stop working', async () => {
    const s = await register(t.url, 'Leaver');
    const res = await api(t.url, 'POST', '/api/auth/logout', { token: s.token });
    expect(res.status).toBe(204);
    expectError(await api(t.url, 'GET', '/api/me', { token: s.token }), 401, 'UNAUTHORIZED');
    expectError(await api(t.url, 'POST', '/api/auth/refresh', { body: { refresh_token: s.refresh_token } }), 401, 'INVALID_REFRESH_TOKEN');
  });

  it('lists the active sessions and marks the current one', async () => {
    const s = await register(t.url, 'Multi');
    const second = await login(s.user.email, PASSWORD, 'phone');
    const fromFirst = await api(t.url, 'GET', '/api/devices', { token: s.token });
    expect(fromFirst.status).toBe(200);
    expect(fromFirst.body.map((d: any) => d.id).sort()).toEqual([s.device_id, second.body.device_id].sort());
    expect(fromFirst.body.find((d: any) => d.current).id).toBe(s.device_id);
    expect(fromFirst.body.filter((d: any) => d.current)).toHaveLength(1);
    const fromSecond = await api(t.url, 'GET', '/api/devices', { token: second.body.token });
    expect(fromSecond.body.find((d: any) => d.current)).toMatchObject({ id: second.body.device_id, name: 'phone' });
  });

  it('DELETE /api/devices/:id revokes another device: its token answers 401 and its socket closes with 4401', async () => {
    const s = await register(t.url, 'Revoker');
    const other = (await login(s.user.email, PASSWORD, 'tablet')).body;
    const mine = await WsClient.connect(t.wsUrl, s.token);
    const theirs = await WsClient.connect(t.wsUrl, other.token);

    expect((await api(t.url, 'DELETE', `/api/devices/${other.device_id}`, { token: s.token })).status).toBe(204);
    expect((await theirs.waitClosed()).code).toBe(4401);
    expectError(await api(t.url, 'GET', '/api/me', { token: other.token }), 401, 'UNAUTHORIZED');
    expectError(await api(t.url, 'POST', '/api/auth/refresh', { body: { refresh_token: other.refresh_token } }), 401, 'INVALID_REFRESH_TOKEN');
    const devices = await api(t.url, 'GET', '/api/devices', { token: s.token });
    expect(devices.body.map((d: any) => d.id)).toEqual([s.device_id]);

    // The caller's own socket stays open and working.
    mine.send({ type: 'ping', txn_id: 'still-here' });
    expect((await mine.next('pong')).txn_id).toBe('still-here');
    expect(mine.closed).toBeNull();
    mine.close();
  });

  it('cannot revoke a device of another user, nor one already revoked (404 INVALID_DEVICE)', async () => {
    const s = await register(t.url, 'Owner');
    const stranger = await register(t.url, 'Stranger');
    expectError(await api(t.url, 'DELETE', `/api/devices/${stranger.device_id}`, { token: s.token }), 404, 'INVALID_DEVICE');
    expect((await api(t.url, 'GET', '/api/me', { token: stranger.token })).status).toBe(200);
    const second = (await login(s.user.email)).body;
    expect((await api(t.url, 'DELETE', `/api/devices/${second.device_id}`, { token: s.token })).status).toBe(204);
    expectError(await api(t.url, 'DELETE', `/api/devices/${second.device_id}`, { token: s.token }), 404, 'INVALID_DEVICE');
  });
});

describe('users', () => {
  let alice: Session;
  let bob: Session;
  beforeAll(async () => {
    alice = await register(t.url, 'Alicia');
    const res = await api(t.url, 'POST', '/api/auth/register', { body: { email: uniqueEmail('bobby'), name: 'Bobby Tables', password: PASSWORD } });
    expect(res.status).toBe(201);
    bob = res.body;
  });

  it('GET /api/users/:id returns the public profile without email', async () => {
    const res = await api(t.url, 'GET', `/api/users/${bob.user.id}`, { token: alice.token });
    expect(res.status).toBe(200);
    expect(res.body).toEqual({ id: bob.user.id, name: 'Bobby Tables', avatar_url: null, created_at: expect.any(String), bridge_id: null, username: bob.user.username, address: `@${bob.user.username}:localhost`, server: null });
  });

  it('answers 404 INVALID_USER for an unknown id and 400 for a malformed one', async () => {
    expectError(await api(t.url, 'GET', `/api/users/${crypto.randomUUID()}`, { token: alice.token }), 404, 'INVALID_USER');
    expectError(await api(t.url, 'GET', '/api/users/not-a-uuid', { token: alice.token }), 400, 'VALIDATION_FAILED');
  });

  it('searches by name prefix and by a word inside the name, case-insensitively; LIKE wildcards are literal', async () => {
    const byPrefix = await api(t.url, 'GET', '/api/users/search?q=bobby', { token: alice.token });
    expect(byPrefix.status).toBe(200);
    expect(byPrefix.body.map((u: any) => u.id)).toContain(bob.user.id);
    expect(byPrefix.body.map((u: any) => u.id)).not.toContain(alice.user.id);
    expect(byPrefix.body[0]).not.toHaveProperty('email');
    const byWord = await api(t.url, 'GET', '/api/users/search?q=TAB', { token: alice.token });
    expect(byWord.body.map((u: any) => u.id)).toContain(bob.user.id);
    const wildcard = await api(t.url, 'GET', `/api/users/search?q=${encodeURIComponent('%')}`, { token: alice.token });
    expect(wildcard.status).toBe(200);
    expect(wildcard.body).toEqual([]);
    expectError(await api(t.url, 'GET', '/api/users/search?q=', { token: alice.token }), 400, 'VALIDATION_FAILED');
  });

  it('finds a user by their whole email address, never by a fragment of it', async () => {
    const whole = await api(t.url, 'GET', `/api/users/search?q=${encodeURIComponent(bob.user.email.toUpperCase())}`, { token: alice.token });
    expect(whole.body.map((u: any) => u.id)).toEqual([bob.user.id]);
    const fragment = await api(t.url, 'GET', `/api/users/search?q=${encodeURIComponent(bob.user.email.slice(0, 8))}`, { token: alice.token });
    expect(fragment.body.map((u: any) => u.id)).not.toContain(bob.user.id);
  });

  it('PATCH /api/me changes name and avatar, and clears the avatar with null', async () => {
    const s = await register(t.url, 'Patchy');
    const res = await api(t.url, 'PATCH', '/api/me', { token: s.token, body: { name: ' Patricia ', avatar_url: 'https://example.test/a.png' } });
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ id: s.user.id, name: 'Patricia', avatar_url: 'https://example.test/a.png', email: s.user.email });
    expect((await api(t.url, 'GET', `/api/users/${s.user.id}`, { token: alice.token })).body).toMatchObject({ name: 'Patricia', avatar_url: 'https://example.test/a.png' });

    const nameOnly = await api(t.url, 'PATCH', '/api/me', { token: s.token, body: { name: 'Pat' } });
    expect(nameOnly.body).toMatchObject({ name: 'Pat', avatar_url: 'https://example.test/a.png' });
    const cleared = await api(t.url, 'PATCH', '/api/me', { token: s.token, body: { avatar_url: null } });
    expect(cleared.body).toMatchObject({ name: 'Pat', avatar_url: null });

    expectError(await api(t.url, 'PATCH', '/api/me', { token: s.token, body: { name: '' } }), 400, 'VALIDATION_FAILED');
    expectError(await api(t.url, 'PATCH', '/api/me', { token: s.token, body: { name: '   ' } }), 400, 'VALIDATION_FAILED');
    expectError(await api(t.url, 'PATCH', '/api/me', { token: s.token, body: { email: 'x@example.test' } }), 400, 'VALIDATION_FAILED');
    expect((await api(t.url, 'GET', '/api/me', { token: s.token })).body.name).toBe('Pat');
  });
});
