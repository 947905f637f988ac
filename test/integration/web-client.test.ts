/**
 * The hub serves the built web client (web/dist): index.html at / and for client URLs, hashed
 * assets immutable, everything with the Content-Security-Policy, and the hub's own paths untouched
 * (an unknown /api/... URL is still a JSON 404).
 */
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CONTENT_SECURITY_POLICY, WEB_ROOT } from '../../src/plugins/web-client.js';
import { startTestHub, type TestHub } from '../helpers/hub.js';

let t: TestHub;
const html = { accept: 'text/html,application/xhtml+xml' };

beforeAll(async () => {
  t = await startTestHub();
});
afterAll(async () => t?.close());

describe('web client', () => {
  it('serves index.html at / with no-cache and the CSP', async () => {
    const res = await fetch(`${t.url}/`, { headers: html });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^text\/html/);
    expect(res.headers.get('cache-control')).toBe('no-cache');
    expect(res.headers.get('content-security-policy')).toBe(CONTENT_SECURITY_POLICY);
    expect(res.headers.get('x-content-type-options')).toBe('nosniff');
    const body = await res.text();
    expect(body).toContain('<div id="app">');
    // No inline script or style: the CSP allows none.
    expect(body).not.toMatch(/<script(?![^>]*\bsrc=)[^>]*>/);
    expect(body).not.toMatch(/<style/);
  });

  it('serves hashed assets as immutable and revalidates the rest', async () => {
    const asset = fs.readdirSync(path.join(WEB_ROOT, 'assets')).find((f) => f.endsWith('.js'))!;
    const res = await fetch(`${t.url}/assets/${asset}`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/javascript/);
    expect(res.headers.get('cache-control')).toBe('public, max-age=31536000, immutable');
    const sw = await fetch(`${t.url}/sw.js`);
    expect(sw.status).toBe(200);
    expect(sw.headers.get('cache-control')).toBe('no-cache');
    const etag = sw.headers.get('etag')!;
    // node:http, since fetch adds `cache-control: no-cache` to conditional requests.
    const status = await new Promise<number>((resolve, reject) =>
      http.get(`${t.url}/sw.js`, { headers: { 'if-none-match': etag } }, (r) => (r.resume(), resolve(r.statusCode!))).on('error', reject),
    );
    expect(status).toBe(304);
  });

  it('answers client URLs with index.html but keeps the hub paths and their 404s', async () => {
    const page = await fetch(`${t.url}/rooms/some/where`, { headers: html });
    expect(page.status).toBe(200);
    expect(await page.text()).toContain('<div id="app">');
    for (const url of ['/api/nope', '/api/rooms/x/y/z', '/docs/nope', '/mcp/nope', '/healthz/x']) {
      const res = await fetch(`${t.url}${url}`, { headers: html });
      expect(res.status, url).toBe(404);
      expect((await res.json()).error.code).toBe('NOT_FOUND');
    }
    // Not a page load: a JSON 404 as before.
    const api = await fetch(`${t.url}/no-such-file.js`);
    expect(api.status).toBe(404);
    expect((await api.json()).error.code).toBe('NOT_FOUND');
    expect((await fetch(`${t.url}/healthz`)).status).toBe(200);
    expect((await fetch(`${t.url}/docs/json`)).status).toBe(200);
    expect((await fetch(`${t.url}/api/me`)).status).toBe(401);
  });
});
