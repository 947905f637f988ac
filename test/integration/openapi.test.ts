/** The OpenAPI document served at /docs/json describes the REST API, each feature's routes included. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { api, startTestHub, type TestHub } from '../helpers/hub.js';

let t: TestHub;
beforeAll(async () => {
  t = await startTestHub();
});
afterAll(async () => t?.close());

describe('OpenAPI', () => {
  it('serves a document listing the routes of every module with their methods', async () => {
    const res = await api(t.url, 'GET', '/docs/json');
    expect(res.status).toBe(200);
    expect(res.body.openapi).toMatch(/^3\./);
    const documented = new Set<string>();
    for (const [path, ops] of Object.entries<Record<string, unknown>>(res.body.paths)) {
      for (const method of Object.keys(ops)) documented.add(`${method.toUpperCase()} ${path}`);
    }
    const missing: string[] = [];
    for (const key of [
      'POST /api/auth/register',
      'POST /api/auth/login',
      'GET /api/rooms',
      'POST /api/rooms/{room_id}/messages',
      'GET /api/rooms/{room_id}/messages',
      'PATCH /api/messages/{id}',
      'GET /api/messages/{id}/history',
      'POST /api/attachments',
      'GET /api/attachments/{id}',
      'GET /api/search/messages',
      'GET /api/search/token',
      'GET /api/admin/users',
      'POST /api/agent-tokens',
      'GET /api/mcp/tools',
      'POST /api/mcp/tools/{name}',
    ]) {
      if (!documented.has(key)) missing.push(key);
    }
    expect(missing).toEqual([]);
  });
});
