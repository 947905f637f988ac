/**
 * The connection breaks after COMMIT was sent and before its answer came back: the one case where the
 * hub cannot know by itself whether a write happened. It asks PostgreSQL (`pg_xact_status`) on a new
 * connection, so a committed write counts as done (not written twice, not answered as an error) even
 * for a send without a txn_id. The break is made by a TCP proxy between the hub and PostgreSQL that
 * passes the COMMIT on and then cuts the hub's side. Needs PostgreSQL (DATABASE_URL).
 */
import net from 'node:net';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { api, createScratchDatabase, register, startTestHub, type TestHub } from '../helpers/hub.js';

const hasServer = Boolean(process.env.DATABASE_URL);
if (!hasServer) console.log('SKIPPED the lost COMMIT fault test: it needs PostgreSQL (DATABASE_URL).');

/**
 * A proxy to `target` that, once armed, cuts the next connection sending a simple-query `COMMIT`:
 * the COMMIT reaches the server (whose side is ended, not reset), the client's side is destroyed.
 */
async function commitCutter(target: { host: string; port: number }) {
  let armed = false;
  let cuts = 0;
  const sockets = new Set<net.Socket>();
  const server = net.createServer((client) => {
    const upstream = net.connect(target);
    sockets.add(client).add(upstream);
    let buffer = Buffer.alloc(0);
    let startup = true;
    client.on('data', (chunk) => {
      buffer = Buffer.concat([buffer, chunk]);
      // Forward whole messages, looking at each: the startup message has no type byte, the others do.
      for (;;) {
        const headerLength = startup ? 0 : 1;
        if (buffer.length < headerLength + 4) return;
        const length = headerLength + buffer.readInt32BE(headerLength);
        if (buffer.length < length) return;
        const message = buffer.subarray(0, length);
        buffer = buffer.subarray(length);
        const isCommit = !startup && message[0] === 0x51 && message.subarray(5, length - 1).toString() === 'COMMIT';
        startup = false;
        upstream.write(message);
        if (armed && isCommit) {
          armed = false;
          cuts++;
          upstream.end(); // the server reads the COMMIT, then the end of the stream
          client.destroy(); // the hub never hears back
          return;
        }
      }
    });
    upstream.on('data', (chunk) => client.writable && client.write(chunk));
    const close = () => (client.destroy(), upstream.destroy());
    client.on('error', close).on('close', () => upstream.end());
    upstream.on('error', close).on('close', () => client.destroy());
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as net.AddressInfo).port,
    arm: () => (armed = true),
    get cuts() {
      return cuts;
    },
    close: () => {
      for (const s of sockets) s.destroy();
      return new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

describe.skipIf(!hasServer)('a connection lost during COMMIT', () => {
  let scratch: { url: string; drop(): Promise<void> };
  let proxy: Awaited<ReturnType<typeof commitCutter>>;
  let t: TestHub;

  beforeAll(async () => {
    scratch = await createScratchDatabase(process.env.DATABASE_URL!);
    const direct = new URL(scratch.url);
    proxy = await commitCutter({ host: direct.hostname, port: Number(direct.port || 5432) });
    const viaProxy = new URL(scratch.url);
    viaProxy.hostname = '127.0.0.1';
    viaProxy.port = String(proxy.port);
    t = await startTestHub({ database: { url: viaProxy.toString() } });
  }, 60_000);
  afterAll(async () => {
    await t?.close();
    await proxy?.close();
    await scratch?.drop();
  });

  it('counts a write that committed as done, once, even without a txn_id', async () => {
    const alice = await register(t.url, 'Alice');
    const bob = await register(t.url, 'Bob');
    const roomId = (await api(t.url, 'POST', '/api/rooms', { token: alice.token, body: { type: 'direct', members: [bob.user.id] } })).body.id;

    for (let i = 0; i < 3; i++) {
      proxy.arm();
      const sent = await api(t.url, 'POST', `/api/rooms/${roomId}/messages`, { token: alice.token, body: { content: `cut ${i}` } });
      expect(proxy.cuts).toBe(i + 1);
      expect(sent.status).toBe(201);
    }
    const check = new pg.Client({ connectionString: scratch.url });
    await check.connect();
    const { rows } = await check.query('SELECT content FROM messages WHERE room_id = $1 ORDER BY stream_position', [roomId]);
    await check.end();
    expect(rows.map((r) => r.content)).toEqual(['cut 0', 'cut 1', 'cut 2']);
    const history = await api(t.url, 'GET', `/api/rooms/${roomId}/messages`, { token: bob.token });
    expect(history.body.messages.map((m: { content: string }) => m.content)).toEqual(['cut 0', 'cut 1', 'cut 2']);
  }, 60_000);
});
