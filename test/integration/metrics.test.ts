/**
 * GET /metrics: the Prometheus text with switchboard_build_info, on the hub's listener by default,
 * behind a bearer token with metrics.token, and on a listener of its own with metrics.listen.
 */
import net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { PACKAGE_VERSION } from '../../src/lib/package.js';
import { freePort } from '../e2e/spawn.js';
import { api, startTestHub, type TestHub } from '../helpers/hub.js';

let t: TestHub | null = null;
afterEach(async () => {
  await t?.close();
  t = null;
});

/** GET <base>/metrics with an optional Authorization header: status, content type and text. */
async function scrape(base: string, authorization?: string) {
  const res = await fetch(`${base}/metrics`, { headers: authorization ? { authorization } : {} });
  return { status: res.status, type: res.headers.get('content-type'), text: await res.text(), res };
}

/** True when something accepts TCP connections on 127.0.0.1:port. */
function accepting(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1');
    socket.once('connect', () => (socket.destroy(), resolve(true)));
    socket.once('error', () => resolve(false));
  });
}

describe('GET /metrics', () => {
  it('serves the Prometheus text on the hub listener, with the build info', async () => {
    t = await startTestHub();
    const m = await scrape(t.url);
    expect(m.status).toBe(200);
    expect(m.type).toMatch(/^text\/plain; version=0\.0\.4/);
    const commit = process.env.GIT_COMMIT || 'unknown';
    expect(m.text).toContain(`switchboard_build_info{version="${PACKAGE_VERSION}",node_version="${process.version}",commit="${commit}"} 1`);
    expect(m.text).toMatch(/^switchboard_ws_connections 0$/m);
    expect(m.text).toContain('# TYPE switchboard_http_request_duration_seconds histogram');
    expect(m.text).toContain('process_resident_memory_bytes');
  });

  it('with metrics.token, answers 401 without the bearer token and 200 with it', async () => {
    t = await startTestHub({ metrics: { token: 'scrape-me-please' } });
    const none = await scrape(t.url);
    expect(none.status).toBe(401);
    expect(none.res.headers.get('www-authenticate')).toBe('Bearer');
    expect(JSON.parse(none.text).error.code).toBe('UNAUTHORIZED');
    expect((await scrape(t.url, 'Bearer scrape-me-too')).status).toBe(401);
    expect((await scrape(t.url, 'scrape-me-please')).status).toBe(401);
    const ok = await scrape(t.url, 'Bearer scrape-me-please');
    expect(ok.status).toBe(200);
    expect(ok.text).toContain('switchboard_build_info{');
    // The token guards /metrics only: the API still answers as before.
    expect((await api(t.url, 'GET', '/healthz')).status).toBe(200);
  });

  it('with metrics.listen, serves it only on that listener, which closes with the hub', async () => {
    const port = await freePort();
    t = await startTestHub({ metrics: { listen: `127.0.0.1:${port}`, token: 'tok' } });
    const own = `http://127.0.0.1:${port}`;
    expect((await scrape(t.url, 'Bearer tok')).status).toBe(404);
    expect((await scrape(own)).status).toBe(401);
    const ok = await scrape(own, 'Bearer tok');
    expect(ok.status).toBe(200);
    expect(ok.text).toContain('switchboard_build_info{');
    const other = await fetch(`${own}/api/me`);
    expect(other.status).toBe(404);
    expect((await other.json()).error.code).toBe('NOT_FOUND');
    await t.close();
    t = null;
    expect(await accepting(port)).toBe(false);
  });
});
