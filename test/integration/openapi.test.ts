/**
 * The OpenAPI document served at /docs/json describes the REST API: every operation named, described
 * and with its responses, valid OpenAPI 3.0, and the same as the copy in docs/openapi.json. That real
 * responses match it is checked in every integration test (test/helpers/openapi-responses.ts).
 */
import { Validator } from '@seriousme/openapi-schema-validator';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { api, startTestHub, type TestHub } from '../helpers/hub.js';

type Operation = {
  operationId?: string;
  summary?: string;
  description?: string;
  tags?: string[];
  security?: unknown[];
  requestBody?: { content: Record<string, { schema: { type?: string; properties?: Record<string, { type?: string; format?: string }>; required?: string[] } }> };
  responses: Record<string, { content?: Record<string, { schema: { $ref?: string } }> }>;
};

let t: TestHub;
let doc: { openapi: string; paths: Record<string, Record<string, Operation>>; security: unknown[] };
const operations: [string, Operation][] = [];
beforeAll(async () => {
  t = await startTestHub();
  const res = await api(t.url, 'GET', '/docs/json');
  expect(res.status).toBe(200);
  doc = res.body;
  for (const [path, ops] of Object.entries(doc.paths)) {
    for (const [method, op] of Object.entries(ops)) operations.push([`${method.toUpperCase()} ${path}`, op]);
  }
});
afterAll(async () => t?.close());

describe('OpenAPI', () => {
  it('is a valid OpenAPI 3.0 document', async () => {
    expect(doc.openapi).toMatch(/^3\.0\./);
    const result = await new Validator().validate(doc);
    expect(result.errors ?? []).toEqual([]);
    expect(result.valid).toBe(true);
  });

  it('lists the routes of every module with their methods, and hides the WebSocket and MCP endpoints', () => {
    const documented = new Set(operations.map(([key]) => key));
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
      'POST /api/bridge/portals',
      'GET /healthz',
    ]) {
      if (!documented.has(key)) missing.push(key);
    }
    expect(missing).toEqual([]);
    expect(Object.keys(doc.paths).filter((p) => p === '/ws' || p === '/mcp')).toEqual([]);
  });

  it('gives every operation a unique operationId, a summary, a description, tags and a success response', () => {
    const incomplete = operations
      .filter(([, op]) => !op.operationId || !op.summary || !op.description || !op.tags?.length || !Object.keys(op.responses).some((s) => /^2\d\d$/.test(s)))
      .map(([key]) => key);
    expect(incomplete).toEqual([]);
    const ids = operations.map(([, op]) => op.operationId);
    expect(ids.filter((id, i) => ids.indexOf(id) !== i)).toEqual([]);
  });

  it('answers errors with the shared Error schema and documents them', () => {
    const notShared: string[] = [];
    for (const [key, op] of operations) {
      for (const [status, response] of Object.entries(op.responses)) {
        if (Number(status) >= 400 && response.content?.['application/json']?.schema.$ref !== '#/components/schemas/Error') notShared.push(`${key} ${status}`);
      }
      // Every route validates its input and maps failures; authenticated ones refuse a missing token.
      expect(Object.keys(op.responses), key).toEqual(expect.arrayContaining(['400', '500']));
    }
    expect(notShared).toEqual([]);
    const [, me] = operations.find(([key]) => key === 'GET /api/me')!;
    expect(Object.keys(me.responses)).toEqual(expect.arrayContaining(['200', '401']));
  });

  it('marks exactly the public routes security: [] and keeps the bearer scheme the default', () => {
    expect(doc.security).toEqual([{ bearer: [] }]);
    const publicOps = operations.filter(([, op]) => Array.isArray(op.security) && op.security.length === 0).map(([key]) => key);
    expect(publicOps.sort()).toEqual(['GET /healthz', 'GET /metrics', 'GET /readyz', 'POST /api/auth/login', 'POST /api/auth/refresh', 'POST /api/auth/register']);
    for (const [key, op] of operations) {
      if (!publicOps.includes(key)) expect(op.security, key).toBeUndefined();
    }
  });

  it('says which statuses the hub really answers: 201 and 204 where it does', () => {
    const statuses = (key: string) => Object.keys(operations.find(([k]) => k === key)![1].responses).filter((s) => s < '400');
    expect(statuses('POST /api/auth/register')).toEqual(['201']);
    expect(statuses('POST /api/rooms')).toEqual(['200', '201']);
    expect(statuses('POST /api/rooms/{room_id}/messages')).toEqual(['200', '201']);
    expect(statuses('DELETE /api/rooms/{id}')).toEqual(['204']);
    expect(statuses('POST /api/auth/logout')).toEqual(['204']);
    expect(statuses('GET /api/attachments/{id}')).toEqual(['200', '206']);
  });

  it('describes the upload as multipart/form-data with a binary file part', () => {
    const [, upload] = operations.find(([key]) => key === 'POST /api/attachments')!;
    const schema = upload.requestBody?.content['multipart/form-data']?.schema;
    expect(schema?.properties?.file).toMatchObject({ type: 'string', format: 'binary' });
    expect(schema?.required).toEqual(['file']);
  });

  it('is committed as docs/openapi.json', async () => {
    await expect(`${JSON.stringify(doc, null, 2)}\n`, 'docs/openapi.json is out of date: regenerate it with `npm run openapi`').toMatchFileSnapshot(
      '../../docs/openapi.json',
    );
  });
});
