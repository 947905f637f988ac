/**
 * The audit trail: admin and operator actions are recorded with who, what, when and from where, and
 * read back through GET /api/admin/audit (admins only).
 */
import crypto from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createUser } from '../../src/modules/admin/admin.service.js';
import { api, register, startTestHub, type Session, type TestHub } from '../helpers/hub.js';
import { createRoom, expectError } from '../helpers/rest.js';

const PASSWORD = 'correct horse battery';
const email = (prefix: string) => `${prefix}-${crypto.randomBytes(4).toString('hex')}@example.test`;

let t: TestHub;
let root: Session;
let alice: Session;

async function entries(query = ''): Promise<any[]> {
  const res = await api(t.url, 'GET', `/api/admin/audit${query}`, { token: root.token });
  expect(res.status).toBe(200);
  return res.body.entries;
}

beforeAll(async () => {
  t = await startTestHub({ auth: { registration: 'open' } });
  const created = await createUser(t.hub.db, { email: email('root'), name: 'Root', password: PASSWORD, admin: true }, t.hub.config.federation.server_name);
  root = (await api(t.url, 'POST', '/api/auth/login', { body: { email: created.email, password: PASSWORD } })).body;
  alice = await register(t.url, 'Alice');
});
afterAll(async () => t?.close());

describe('the audit trail', () => {
  it('records the CLI creating a user and the registration policy seen at start', async () => {
    const all = await entries();
    expect(all.find((e) => e.action === 'user.create')).toMatchObject({ via: 'cli', actor_id: null, target_type: 'user', target_id: root.user.id, detail: { admin: true } });
    expect(all.find((e) => e.action === 'config.registration')).toMatchObject({ via: 'config', detail: { policy: 'open', previous: null } });
  });

  it('records admin actions with the admin, the address and the user agent, newest first', async () => {
    const room = (await createRoom(t.url, alice, { type: 'group', name: 'doomed' })).id;
    const headers = { 'user-agent': 'audit-test/1.0' };
    expect((await api(t.url, 'POST', `/api/admin/users/${alice.user.id}/deactivate`, { token: root.token, headers })).status).toBe(200);
    expect((await api(t.url, 'DELETE', `/api/admin/rooms/${room}`, { token: root.token, headers })).status).toBe(204);
    const invite = await api(t.url, 'POST', '/api/admin/invites', { token: root.token, body: { max_uses: 3 }, headers });
    expect((await api(t.url, 'DELETE', `/api/admin/invites/${invite.body.code}`, { token: root.token, headers })).status).toBe(204);
    const bot = await api(t.url, 'POST', '/api/bots', { token: root.token, body: { name: 'Helper', scopes: ['rooms:read'] }, headers });
    expect(bot.status).toBe(201);

    const recent = (await entries()).slice(0, 5);
    expect(recent.map((e) => e.action)).toEqual(['bot.create', 'invite.delete', 'invite.create', 'room.delete', 'user.deactivate']);
    for (const e of recent) expect(e).toMatchObject({ actor_id: root.user.id, via: 'api', ip: '127.0.0.1', user_agent: 'audit-test/1.0' });
    expect(recent[3]).toMatchObject({ target_type: 'room', target_id: room });
    expect(recent[4]).toMatchObject({ target_type: 'user', target_id: alice.user.id });
    expect(recent[2].detail).toMatchObject({ max_uses: 3 });
    // The invite code itself is a secret: never in the trail.
    expect(JSON.stringify(recent)).not.toContain(invite.body.code);
    expect(new Date(recent[0].at).getTime()).toBeGreaterThan(Date.now() - 60_000);
  });

  it('records agent tokens made and revoked by users', async () => {
    const bob = await register(t.url, 'Bob');
    const made = await api(t.url, 'POST', '/api/agent-tokens', { token: bob.token, body: { name: 'script', scopes: ['rooms:read'] } });
    expect(made.status).toBe(201);
    expect((await api(t.url, 'DELETE', `/api/agent-tokens/${made.body.id}`, { token: bob.token })).status).toBe(204);
    const mine = await entries(`?actor_id=${bob.user.id}`);
    expect(mine.map((e) => [e.action, e.target_id])).toEqual([
      ['agent_token.revoke', made.body.id],
      ['agent_token.create', made.body.id],
    ]);
    expect(JSON.stringify(mine)).not.toContain(made.body.token);
  });

  it('records nothing when the action fails', async () => {
    const before = (await entries()).length;
    expectError(await api(t.url, 'POST', `/api/admin/users/${crypto.randomUUID()}/deactivate`, { token: root.token }), 404, 'INVALID_USER');
    expectError(await api(t.url, 'DELETE', '/api/admin/invites/no-such-code', { token: root.token }), 404, 'NOT_FOUND');
    expect((await entries()).length).toBe(before);
  });

  it('filters by action, pages with before, and is for admins only', async () => {
    const deactivations = await entries('?action=user.deactivate');
    expect(deactivations.every((e) => e.action === 'user.deactivate')).toBe(true);
    const page = await entries('?limit=2');
    const next = await entries(`?limit=2&before=${page[1].id}`);
    expect(next[0].id).toBeLessThan(page[1].id);
    const carol = await register(t.url, 'Carol');
    expectError(await api(t.url, 'GET', '/api/admin/audit', { token: carol.token }), 403, 'FORBIDDEN');
  });

  it('records the registration policy again only when it changed', async () => {
    await t.hub.audit.recordRegistrationPolicy('open');
    await t.hub.audit.recordRegistrationPolicy('invite');
    const policies = (await entries('?action=config.registration')).map((e) => e.detail);
    expect(policies).toEqual([
      { policy: 'invite', previous: 'open' },
      { policy: 'open', previous: null },
    ]);
  });
});
