/**
 * Dead peers: a WebSocket client that vanishes without closing (a phone losing its network: no FIN,
 * no close frame, nothing) is found by the heartbeat and its user goes offline; an HTTP request that
 * never sends its announced body is ended by the request timeout.
 */
import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WsClient, api, register, startTestHub, type Session, type TestHub } from '../helpers/hub.js';

/**
 * A TCP proxy to `target` whose connections can be frozen: once frozen, nothing more is forwarded
 * either way and nothing is closed, as when the far side of a network disappears.
 */
async function freezableProxy(target: URL): Promise<{ url: string; freeze(): void; close(): Promise<void> }> {
  const sockets: net.Socket[] = [];
  let frozen = false;
  const server = net.createServer((client) => {
    const upstream = net.connect(Number(target.port), target.hostname);
    sockets.push(client, upstream);
    for (const [from, to] of [[client, upstream], [upstream, client]] as const) {
      from.on('data', (chunk) => (frozen ? undefined : to.write(chunk)));
      from.on('error', () => undefined);
      from.on('close', () => (frozen ? undefined : to.destroy()));
    }
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  return {
    url: `ws://127.0.0.1:${port}`,
    freeze: () => void (frozen = true),
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}

const PING_MS = 300;
const PONG_MS = 300;
const GRACE_MS = 200;

describe('a client that vanishes without closing', () => {
  let t: TestHub;
  let alice: Session;
  let bob: Session;
  beforeAll(async () => {
    t = await startTestHub({ realtime: { ws_ping_interval_ms: PING_MS, ws_pong_timeout_ms: PONG_MS, presence_grace_ms: GRACE_MS } });
    alice = await register(t.url, 'Alice');
    bob = await register(t.url, 'Bob');
    // Presence is shared with room members.
    expect((await api(t.url, 'POST', '/api/rooms', { token: alice.token, body: { type: 'direct', members: [bob.user.id] } })).status).toBe(201);
  });
  afterAll(async () => t?.close());

  it('keeps a socket that answers pings open across many intervals', async () => {
    const ws = await WsClient.connect(t.wsUrl, alice.token);
    await new Promise((r) => setTimeout(r, 4 * PING_MS));
    expect(ws.closed).toBeNull();
    expect((await api(t.url, 'GET', `/api/presence/${alice.user.id}`, { token: bob.token })).body.status).toBe('online');
    ws.close();
    for (let i = 0; i < 100 && t.hub.fanout.socketCount(alice.user.id) > 0; i++) await new Promise((r) => setTimeout(r, 20));
  });

  it('closes the socket and sets the user offline within ping interval + pong timeout + grace', async () => {
    const proxy = await freezableProxy(new URL(t.url));
    try {
      const ws = await WsClient.connect(proxy.url, alice.token);
      const watcher = await WsClient.connect(t.wsUrl, bob.token);
      expect((await api(t.url, 'GET', `/api/presence/${alice.user.id}`, { token: bob.token })).body.status).toBe('online');
      expect(t.hub.fanout.socketCount(alice.user.id)).toBe(1);
      proxy.freeze();
      const frozenAt = Date.now();
      await watcher.next('presence', (e: any) => e.user_id === alice.user.id && e.status === 'offline', 5000);
      const tookMs = Date.now() - frozenAt;
      expect(t.hub.fanout.socketCount(alice.user.id)).toBe(0);
      // The bound, plus scheduling slack on a loaded machine.
      expect(tookMs).toBeLessThan(PING_MS + PONG_MS + GRACE_MS + 1500);
      expect((await api(t.url, 'GET', `/api/presence/${alice.user.id}`, { token: bob.token })).body.status).toBe('offline');
      // The client never heard of it: nothing reached it.
      expect(ws.closed).toBeNull();
      ws.socket.terminate();
      watcher.close();
    } finally {
      await proxy.close();
    }
  });
});

describe('HTTP requests that never finish', () => {
  let t: TestHub;
  beforeAll(async () => {
    t = await startTestHub({ server: { request_timeout_ms: 1000, headers_timeout_ms: 500 } });
  });
  afterAll(async () => t?.close());

  /** Opens a raw connection, writes `text`, and resolves with what the server sent once it closed the connection. */
  function hang(text: string): Promise<{ answer: string; ms: number }> {
    const { port } = new URL(t.url);
    return new Promise((resolve, reject) => {
      const started = Date.now();
      const socket = net.connect(Number(port), '127.0.0.1', () => socket.write(text));
      let answer = '';
      socket.on('data', (d) => (answer += d.toString()));
      socket.on('error', () => undefined);
      socket.on('close', () => resolve({ answer, ms: Date.now() - started }));
      setTimeout(() => reject(new Error('the server held the connection')), 10_000);
    });
  }

  it('ends a request whose announced body never comes (408, connection closed)', async () => {
    const res = await hang('POST /api/auth/login HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 1000\r\n\r\n{"email":');
    expect(res.answer).toMatch(/^HTTP\/1\.1 408/);
    expect(res.ms).toBeLessThan(5000);
  });

  it('ends a request whose headers never end', async () => {
    const res = await hang('GET /healthz HTTP/1.1\r\nhost: x\r\n');
    expect(res.answer).toMatch(/^HTTP\/1\.1 408/);
    expect(res.ms).toBeLessThan(5000);
  });
});
