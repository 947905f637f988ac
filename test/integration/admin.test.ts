import { spawn } from 'node:child_process';
import crypto from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createUser } from '../../src/modules/admin/admin.service.js';
import { WsClient, api, register, startTestHub, type Session, type TestHub } from '../helpers/hub.js';
import { createRoom, expectError, sendMessage } from '../helpers/rest.js';

const PASSWORD = 'correct horse battery';
const email = (prefix: string) => `${prefix}-${crypto.randomBytes(4).toString('hex')}@example.test`;
const NIL = '00000000-0000-0000-0000-000000000000';

async function login(base: string, address: string, password = PASSWORD) {
  return api(base, 'POST', '/api/auth/login', { body: { email: address, password } });
}

/** Runs `tsx src/cli.ts <args>` to completion. */
function cli(args: string[], env: Record<string, string> = {}): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', 'src/cli.ts', ...args], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

describe('admin API', () => {
  let t: TestHub;
  let boss: Session;
  let alice: Session;
  let bob: Session;
  const bossEmail = email('boss');

  beforeAll(async () => {
    t = await startTestHub({ auth: { admin_emails: [bossEmail.toUpperCase()] } });
    // As `switchboard user create` does (without --admin: the config list makes the admin).
    await createUser(t.hub.db, { email: bossEmail, name: 'Boss', password: PASSWORD, admin: false }, t.hub.config.federation.server_name);
    boss = (await login(t.url, bossEmail)).body;
    alice = await register(t.url, 'Alice');
    bob = await register(t.url, 'Bob');
  });
  afterAll(async () => t?.close());

  it('is for admins only: 403 FORBIDDEN for other users, 401 without a token', async () => {
    const calls: [string, string, unknown?][] = [
      ['GET', '/api/admin/users'],
      ['POST', `/api/admin/users/${bob.user.id}/deactivate`],
      ['GET', '/api/admin/rooms'],
      ['DELETE', `/api/admin/rooms/${NIL}`],
      ['GET', '/api/admin/stats'],
      ['POST', '/api/admin/invites', {}],
      ['GET', '/api/admin/invites'],
      ['DELETE', '/api/admin/invites/some-code'],
    ];
    for (const [method, url, body] of calls) {
      expectError(await api(t.url, method, url, { token: alice.token, body }), 403, 'FORBIDDEN');
      expectError(await api(t.url, method, url, { body }), 401, 'UNAUTHORIZED');
    }
    const { rows } = await t.hub.db.query('SELECT deactivated_at FROM users WHERE id = $1', [bob.user.id]);
    expect(rows[0].deactivated_at).toBeNull();
  });

  it('answers 400 VALIDATION_FAILED to offsets beyond a bigint and to invite codes outside their alphabet', async () => {
    for (const url of ['/api/admin/users?offset=100000000000000000000', '/api/admin/rooms?offset=100000000000000000000', '/api/admin/invites/bad%00code']) {
      expectError(await api(t.url, url.startsWith('/api/admin/invites') ? 'DELETE' : 'GET', url, { token: boss.token }), 400, 'VALIDATION_FAILED');
    }
  });

  it('treats a user whose email is in auth.admin_emails as admin (case-insensitively)', async () => {
    const res = await api(t.url, 'GET', '/api/admin/stats', { token: boss.token });
    expect(res.status).toBe(200);
  });

  it('lets nobody claim an address listed in auth.admin_emails by registering without an invite', async () => {
    const listed = email('second-boss');
    const t2 = await startTestHub({ auth: { admin_emails: [listed] } });
    try {
      const claim = await api(t2.url, 'POST', '/api/auth/register', { body: { email: listed.toUpperCase(), name: 'Mallory', password: PASSWORD } });
      expectError(claim, 403, 'INVALID_INVITE');
      const { rows } = await t2.hub.db.query('SELECT count(*)::int AS n FROM users');
      expect(rows[0].n).toBe(0);
      // With an invite from an admin, the owner of the address can register, and is an admin.
      const rootUser = await createUser(t2.hub.db, { email: email('root2'), name: 'Root', password: PASSWORD, admin: true }, t2.hub.config.federation.server_name);
      const root = (await login(t2.url, rootUser.email!)).body;
      const invite = await api(t2.url, 'POST', '/api/admin/invites', { token: root.token, body: {} });
      const owner = await api(t2.url, 'POST', '/api/auth/register', { body: { email: listed, name: 'Owner', password: PASSWORD, invite_code: invite.body.code } });
      expect(owner.status).toBe(201);
      expect((await api(t2.url, 'GET', '/api/admin/stats', { token: owner.body.token })).status).toBe(200);
      // Other addresses still register freely on this open server.
      expect((await api(t2.url, 'POST', '/api/auth/register', { body: { email: email('plain'), name: 'Plain', password: PASSWORD } })).status).toBe(201);
    } finally {
      await t2.close();
    }
  });

  it('lists and searches users with their email and state', async () => {
    const all = await api(t.url, 'GET', '/api/admin/users?limit=2', { token: boss.token });
    expect(all.status).toBe(200);
    expect(all.body.users).toHaveLength(2);
    expect(all.body.total).toBe(3);
    const found = await api(t.url, 'GET', `/api/admin/users?q=${encodeURIComponent(alice.user.email.slice(0, 8).toUpperCase())}`, { token: boss.token });
    expect(found.body.total).toBe(1);
    expect(found.body.users[0]).toMatchObject({ id: alice.user.id, email: alice.user.email, name: 'Alice', is_admin: false, deactivated_at: null });
  });

  it('reports server stats', async () => {
    const roomId = (await createRoom(t.url, alice, { type: 'group', name: 'Stats', members: [bob.user.id] })).id;
    await sendMessage(t.url, alice, roomId, 'counted');
    const ws = await WsClient.connect(t.wsUrl, bob.token);
    const res = await api(t.url, 'GET', '/api/admin/stats', { token: boss.token });
    expect(res.body).toMatchObject({ users: 3, deactivated_users: 0, rooms: 1, messages: 1, sockets: 1 });
    expect(res.body.stream_position).toBe(await t.hub.stream.maxPosition());
    expect(res.body.stream_position).toBeGreaterThan(0);
    ws.close();
    await ws.waitClosed();
  });

  it('deactivates a user: their sockets close at once with 4401, tokens and login stop working, content stays', async () => {
    const carol = await register(t.url, 'Carol');
    const roomId = (await createRoom(t.url, carol, { type: 'group', name: 'Carol room', members: [bob.user.id] })).id;
    const sent = await sendMessage(t.url, carol, roomId, 'still here afterwards');
    const phone = await WsClient.connect(t.wsUrl, carol.token);
    const second = await login(t.url, carol.user.email);
    const laptop = await WsClient.connect(t.wsUrl, second.body.token);

    const res = await api(t.url, 'POST', `/api/admin/users/${carol.user.id}/deactivate`, { token: boss.token });
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ id: carol.user.id, deactivated_at: expect.any(String) });
    expect((await phone.waitClosed(1000)).code).toBe(4401);
    expect((await laptop.waitClosed(1000)).code).toBe(4401);

    expectError(await api(t.url, 'GET', '/api/me', { token: carol.token }), 401, 'UNAUTHORIZED');
    expectError(await api(t.url, 'POST', '/api/auth/refresh', { body: { refresh_token: carol.refresh_token } }), 401, 'INVALID_REFRESH_TOKEN');
    expectError(await login(t.url, carol.user.email), 401, 'INVALID_CREDENTIALS');
    await expect(WsClient.connect(t.wsUrl, carol.token)).rejects.toThrow('401');

    const history = await api(t.url, 'GET', `/api/rooms/${roomId}/messages`, { token: bob.token });
    expect(history.body.messages.map((m: any) => m.id)).toContain(sent.id);
    const { rows } = await t.hub.db.query('SELECT count(*)::int AS n FROM devices WHERE user_id = $1 AND revoked_at IS NULL', [carol.user.id]);
    expect(rows[0].n).toBe(0);

    const listed = await api(t.url, 'GET', '/api/admin/users?q=carol', { token: boss.token });
    expect(listed.body.users[0].deactivated_at).toBe(res.body.deactivated_at);
    // Idempotent: the first deactivation time is kept.
    const again = await api(t.url, 'POST', `/api/admin/users/${carol.user.id}/deactivate`, { token: boss.token });
    expect(again.body.deactivated_at).toBe(res.body.deactivated_at);
  });

  it('refuses to deactivate oneself or an unknown user', async () => {
    expectError(await api(t.url, 'POST', `/api/admin/users/${boss.user.id}/deactivate`, { token: boss.token }), 403, 'FORBIDDEN');
    expectError(await api(t.url, 'POST', `/api/admin/users/${NIL}/deactivate`, { token: boss.token }), 404, 'INVALID_USER');
  });

  it('lists rooms and deletes any room: members get room.deleted, messages are kept', async () => {
    const room = await createRoom(t.url, alice, { type: 'group', name: 'Doomed Room', members: [bob.user.id] });
    await sendMessage(t.url, alice, room.id, 'before deletion');
    const listed = await api(t.url, 'GET', '/api/admin/rooms?q=doomed', { token: boss.token });
    expect(listed.body.total).toBe(1);
    expect(listed.body.rooms[0]).toMatchObject({ id: room.id, name: 'Doomed Room', type: 'group', member_count: 2, message_count: 1 });

    const ws = await WsClient.connect(t.wsUrl, bob.token);
    const del = await api(t.url, 'DELETE', `/api/admin/rooms/${room.id}`, { token: boss.token });
    expect(del.status).toBe(204);
    const event = await ws.next('room.deleted');
    expect(event).toMatchObject({ room_id: room.id, deleted_by: boss.user.id });
    expectError(await api(t.url, 'GET', `/api/rooms/${room.id}`, { token: bob.token }), 404, 'INVALID_ROOM');
    expect((await api(t.url, 'GET', '/api/admin/rooms?q=doomed', { token: boss.token })).body.total).toBe(0);
    const { rows } = await t.hub.db.query('SELECT count(*)::int AS n FROM messages WHERE room_id = $1', [room.id]);
    expect(rows[0].n).toBe(1);
    expectError(await api(t.url, 'DELETE', `/api/admin/rooms/${room.id}`, { token: boss.token }), 404, 'INVALID_ROOM');
    ws.close();
  });

  // The CLI is a second process on the hub's database: that needs a server (DATABASE_URL); an embedded one has one session.
  it.skipIf(!process.env.DATABASE_URL)('`switchboard user create --admin` creates an admin who can use the admin API', async () => {
    const url = t.config.database.url;
    const rootEmail = email('root');
    const created = await cli(['--database-url', url, 'user', 'create', '--email', rootEmail, '--name', 'Root', '--admin'], { NEW_USER_PASSWORD: PASSWORD });
    expect(created.stderr).toBe('');
    expect(created.code).toBe(0);
    expect(created.stdout).toMatch(/^created user [0-9a-f-]{36} <root-[0-9a-f]+@example\.test> \(admin\)$/m);

    const root = await login(t.url, rootEmail);
    expect(root.status).toBe(200);
    expect(root.body.user.is_admin).toBe(true);
    expect((await api(t.url, 'GET', '/api/admin/stats', { token: root.body.token })).status).toBe(200);

    const plain = await cli(['--database-url', url, 'user', 'create', '--email', email('plain'), '--name', 'Plain', '--password', PASSWORD]);
    expect(plain.code).toBe(0);
    expect(plain.stdout).not.toContain('(admin)');

    const dup = await cli(['--database-url', url, 'user', 'create', '--email', rootEmail, '--name', 'Again', '--password', PASSWORD]);
    expect(dup.code).toBe(1);
    expect(dup.stderr).toContain('EMAIL_TAKEN');
    const noPassword = await cli(['--database-url', url, 'user', 'create', '--email', email('nopw'), '--name', 'No']);
    expect(noPassword.code).toBe(1);
    expect(noPassword.stderr).toContain('password');
  });
});

describe('registration policy', () => {
  let t: TestHub;
  let admin: Session;
  beforeAll(async () => {
    t = await startTestHub({ auth: { registration: 'invite' } });
    const root = await createUser(t.hub.db, { email: email('root'), name: 'Root', password: PASSWORD, admin: true }, t.hub.config.federation.server_name);
    admin = (await login(t.url, root.email!)).body;
  });
  afterAll(async () => t?.close());

  const registerWith = (address: string, invite_code?: string) =>
    api(t.url, 'POST', '/api/auth/register', { body: { email: address, name: 'Invitee', password: PASSWORD, ...(invite_code ? { invite_code } : {}) } });
  const newInvite = async (body: object = {}) => {
    const res = await api(t.url, 'POST', '/api/admin/invites', { token: admin.token, body });
    expect(res.status).toBe(201);
    return res.body;
  };

  it('"invite": needs a valid invite code, each usable max_uses times', async () => {
    expectError(await registerWith(email('none')), 403, 'INVALID_INVITE');
    expectError(await registerWith(email('bogus'), 'no-such-code'), 403, 'INVALID_INVITE');

    const invite = await newInvite({ max_uses: 2 });
    expect(invite).toMatchObject({ max_uses: 2, uses: 0, expires_at: null, created_by: admin.user.id });
    expect((await registerWith(email('first'), invite.code)).status).toBe(201);
    expect((await registerWith(email('second'), invite.code)).status).toBe(201);
    const refused = email('third');
    expectError(await registerWith(refused, invite.code), 403, 'INVALID_INVITE');
    const { rows } = await t.hub.db.query('SELECT id FROM users WHERE email = $1', [refused]);
    expect(rows).toHaveLength(0);

    const listed = await api(t.url, 'GET', '/api/admin/invites', { token: admin.token });
    expect(listed.body.find((i: any) => i.code === invite.code)).toMatchObject({ uses: 2, max_uses: 2 });
  });

  it('does not use up an invite when the registration fails', async () => {
    const invite = await newInvite();
    expectError(await registerWith(admin.user.email, invite.code), 409, 'EMAIL_TAKEN');
    expect((await registerWith(email('after'), invite.code)).status).toBe(201);
  });

  it('refuses expired and withdrawn invites', async () => {
    const expiring = await newInvite({ expires_in_s: 3600 });
    expect(Date.parse(expiring.expires_at) - Date.now()).toBeGreaterThan(3590_000);
    await t.hub.db.query(`UPDATE invite_codes SET expires_at = now() - interval '1 second' WHERE code = $1`, [expiring.code]);
    expectError(await registerWith(email('late'), expiring.code), 403, 'INVALID_INVITE');

    const withdrawn = await newInvite();
    expect((await api(t.url, 'DELETE', `/api/admin/invites/${withdrawn.code}`, { token: admin.token })).status).toBe(204);
    expectError(await registerWith(email('withdrawn'), withdrawn.code), 403, 'INVALID_INVITE');
    expectError(await api(t.url, 'DELETE', `/api/admin/invites/${withdrawn.code}`, { token: admin.token }), 404, 'NOT_FOUND');
  });

  it('"closed": refuses every registration with 403 REGISTRATION_CLOSED', async () => {
    const closed = await startTestHub({ auth: { registration: 'closed' } });
    try {
      const address = email('closed');
      expectError(await api(closed.url, 'POST', '/api/auth/register', { body: { email: address, name: 'X', password: PASSWORD } }), 403, 'REGISTRATION_CLOSED');
      const { rows } = await closed.hub.db.query('SELECT id FROM users');
      expect(rows).toHaveLength(0);
    } finally {
      await closed.close();
    }
  });
});
