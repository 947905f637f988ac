/**
 * Hostile input over REST: what used to be a 500 (non-finite numbers reaching a bigint parameter,
 * JSON nested thousands deep) is a 400 VALIDATION_FAILED on every route, and one user's bad request
 * does not fail anyone else's.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { api, register, startTestHub, type Session, type TestHub } from '../helpers/hub.js';
import { expectError } from '../helpers/rest.js';

let t: TestHub;
let alice: Session;
let bob: Session;
beforeAll(async () => {
  t = await startTestHub();
  alice = await register(t.url, 'Alice');
  bob = await register(t.url, 'Bob');
  await t.hub.db.query('UPDATE users SET is_admin = true WHERE id = $1', [alice.user.id]);
});
afterAll(async () => t?.close());

/** A raw JSON body (text, so it can be nested deeper than JSON.stringify could). */
async function rawJson(method: string, url: string, body: string, token?: string) {
  const res = await fetch(t.url + url, { method, headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) }, body });
  return { status: res.status, body: await res.json(), headers: res.headers };
}

describe('numbers in query strings and bodies', () => {
  const urls = ['/api/rooms/public?limit=', '/api/search/messages?q=x&limit=', '/api/search/messages?q=x&offset=', '/api/users/search?q=a&limit=', '/api/admin/users?offset=', '/api/admin/audit?before='];
  it.each(['Infinity', '-Infinity', '1e400', '-1e400', '+Infinity'])('refuses %s in every integer query parameter with 400', async (n) => {
    for (const url of urls) {
      const res = await api(t.url, 'GET', url + encodeURIComponent(n), { token: alice.token });
      expectError(res, 400, 'VALIDATION_FAILED');
      expect(res.body.error.message).toMatch(/querystring\/\w+ must be/);
    }
  });

  it('still takes the numbers in range', async () => {
    expect((await api(t.url, 'GET', '/api/rooms/public?limit=5', { token: alice.token })).status).toBe(200);
    expect((await api(t.url, 'GET', '/api/search/messages?q=x&limit=3&offset=10', { token: alice.token })).status).toBe(200);
  });

  it('refuses a string coerced to a non-finite number in a body, and 1e400 in JSON', async () => {
    expectError(await api(t.url, 'POST', '/api/admin/invites', { token: alice.token, body: { max_uses: 'Infinity' } }), 400, 'VALIDATION_FAILED');
    expectError(await rawJson('POST', '/api/admin/invites', '{"max_uses":1e400}', alice.token), 400, 'VALIDATION_FAILED');
    const { rows } = await t.hub.db.query('SELECT count(*)::int AS n FROM invite_codes');
    expect(rows[0].n).toBe(0);
  });
});

describe('deeply nested JSON', () => {
  const deep = (n: number) => `{"email":${'['.repeat(n)}${']'.repeat(n)},"password":"whatever long"}`;

  it('is a 400 on every JSON route, with or without a token, for 10,000 levels', async () => {
    expectError(await rawJson('POST', '/api/auth/login', deep(10_000)), 400, 'VALIDATION_FAILED');
    expectError(await rawJson('POST', '/api/auth/register', deep(10_000)), 400, 'VALIDATION_FAILED');
    expectError(await rawJson('POST', '/api/rooms', deep(10_000), alice.token), 400, 'VALIDATION_FAILED');
    expectError(await rawJson('PATCH', '/api/me', deep(10_000), alice.token), 400, 'VALIDATION_FAILED');
    // Routes without a body schema walk it too: the agent tools and the MCP endpoint.
    const agent = await api(t.url, 'POST', '/api/agent-tokens', { token: alice.token, body: { name: 'deep', scopes: ['rooms:read'] } });
    expect(agent.status).toBe(201);
    expectError(await rawJson('POST', '/api/mcp/tools/list_rooms', `{"x":${'['.repeat(10_000)}${']'.repeat(10_000)}}`, agent.body.token), 400, 'VALIDATION_FAILED');
    const mcp = await rawJson('POST', '/mcp', `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"list_rooms","arguments":${'{"a":'.repeat(5000)}1${'}'.repeat(5000)}}}`, agent.body.token);
    expectError(mcp, 400, 'VALIDATION_FAILED');
  });

  it('names where it is too deep (a body the route schema does not look into)', async () => {
    const agent = await api(t.url, 'POST', '/api/agent-tokens', { token: alice.token, body: { name: 'deep2', scopes: ['rooms:read'] } });
    const res = await rawJson('POST', '/api/mcp/tools/list_rooms', `{"x":${'['.repeat(40)}${']'.repeat(40)}}`, agent.body.token);
    expectError(res, 400, 'VALIDATION_FAILED');
    expect(res.body.error.message).toMatch(/^body\/x(\/0)+ is nested deeper than 32 levels$/);
  });
});

describe('one user’s bad requests do not fail another user’s', () => {
  it('answers Bob normally while Alice sends hostile requests at the same time', async () => {
    const hostile = Array.from({ length: 30 }, (_, i) =>
      i % 2 ? api(t.url, 'GET', '/api/rooms/public?limit=Infinity', { token: alice.token }) : rawJson('POST', '/api/rooms', `{"name":${'['.repeat(5000)}${']'.repeat(5000)}}`, alice.token),
    );
    const normal = Array.from({ length: 30 }, (_, i) => api(t.url, 'GET', i % 2 ? '/api/rooms/public?limit=10' : '/api/me', { token: bob.token }));
    const [bad, good] = await Promise.all([Promise.all(hostile), Promise.all(normal)]);
    expect(bad.map((r) => r.status)).toEqual(bad.map(() => 400));
    expect(good.map((r) => r.status)).toEqual(good.map(() => 200));
  });
});
