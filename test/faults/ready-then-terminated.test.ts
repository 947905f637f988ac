/**
 * A backend terminated just as its connection became ready: PostgreSQL's ReadyForQuery and its
 * `FATAL 57P01 terminating connection due to administrator command` arrive in one TCP read, so the
 * error reaches the new client before the code that asked for it has run a statement (what CI saw
 * once during test/faults/database-loss.test.ts, as an uncaught exception). The hub must neither
 * crash nor fail the request: the statement or transaction runs again on a new connection. A TCP
 * proxy between the database module and PostgreSQL appends that FATAL to the startup answer of the
 * next connection once armed. Needs PostgreSQL (DATABASE_URL).
 */
import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/load.js';
import { openDatabase, type Database } from '../../src/db/database.js';

const hasServer = Boolean(process.env.DATABASE_URL);
if (!hasServer) console.log('SKIPPED the ready-then-terminated fault tests: they need PostgreSQL (DATABASE_URL).');

/** A backend message `ErrorResponse` (https://www.postgresql.org/docs/current/protocol-message-formats.html). */
function fatalTerminated(): Buffer {
  const fields = [
    ['S', 'FATAL'],
    ['V', 'FATAL'],
    ['C', '57P01'],
    ['M', 'terminating connection due to administrator command'],
  ];
  const body = Buffer.concat([...fields.map(([k, v]) => Buffer.from(`${k}${v}\0`)), Buffer.from([0])]);
  const header = Buffer.alloc(5);
  header.write('E');
  header.writeInt32BE(body.length + 4, 1);
  return Buffer.concat([header, body]);
}

/** A proxy to `target` that, once armed, ends the next new connection right after its first ReadyForQuery, with a FATAL in the same write. */
async function readyThenTerminated(target: { host: string; port: number }) {
  let armed = false;
  let cuts = 0;
  const sockets = new Set<net.Socket>();
  const server = net.createServer((client) => {
    const upstream = net.connect(target);
    sockets.add(client).add(upstream);
    const cutThis = armed;
    armed = false;
    let buffer = Buffer.alloc(0);
    let ready = false;
    upstream.on('data', (chunk) => {
      if (!cutThis || ready) return void (client.writable && client.write(chunk));
      buffer = Buffer.concat([buffer, chunk]);
      // Walk whole backend messages (type byte, int32 length) up to the first ReadyForQuery ('Z').
      let offset = 0;
      while (buffer.length >= offset + 5) {
        const end = offset + 1 + buffer.readInt32BE(offset + 1);
        if (buffer.length < end) break;
        const type = String.fromCharCode(buffer[offset]);
        offset = end;
        if (type === 'Z') {
          ready = true;
          cuts++;
          client.end(Buffer.concat([buffer.subarray(0, offset), fatalTerminated()]));
          upstream.destroy();
          return;
        }
      }
    });
    client.on('data', (chunk) => upstream.writable && upstream.write(chunk));
    const close = () => (client.destroy(), upstream.destroy());
    client.on('error', close).on('close', () => upstream.end());
    upstream.on('error', close).on('close', () => !cutThis && client.destroy());
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as net.AddressInfo).port,
    /** Cuts the next connection made, and drops those open now (so the pool must make a new one). */
    arm() {
      armed = true;
      for (const s of sockets) s.destroy();
      sockets.clear();
    },
    get cuts() {
      return cuts;
    },
    close: () => {
      for (const s of sockets) s.destroy();
      return new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

describe.skipIf(!hasServer)('a connection terminated as it becomes ready', () => {
  let proxy: Awaited<ReturnType<typeof readyThenTerminated>>;
  let db: Database;
  const uncaught: unknown[] = [];
  const onUncaught = (err: unknown) => uncaught.push(err);

  beforeAll(async () => {
    process.on('uncaughtException', onUncaught);
    const direct = new URL(process.env.DATABASE_URL!);
    proxy = await readyThenTerminated({ host: direct.hostname, port: Number(direct.port || 5432) });
    const viaProxy = new URL(process.env.DATABASE_URL!);
    viaProxy.hostname = '127.0.0.1';
    viaProxy.port = String(proxy.port);
    const config = loadConfig({ env: {}, loadDotEnv: false });
    db = await openDatabase({ ...config, database: { ...config.database, url: viaProxy.toString(), pool_max: 1 } });
  });
  afterAll(async () => {
    process.off('uncaughtException', onUncaught);
    await db?.close();
    await proxy?.close();
  });

  it('runs a statement again on a new connection, without an uncaught error', async () => {
    for (let i = 0; i < 3; i++) {
      proxy.arm();
      const { rows } = await db.query('SELECT $1::int AS n', [i]);
      expect(rows).toEqual([{ n: i }]);
      expect(proxy.cuts).toBe(i + 1);
    }
    expect(uncaught).toEqual([]);
  });

  it('runs a transaction again on a new connection, without an uncaught error', async () => {
    const before = proxy.cuts;
    proxy.arm();
    const value = await db.transaction(async (tx) => (await tx.query('SELECT 41 + 1 AS n')).rows[0].n);
    expect(value).toBe(42);
    expect(proxy.cuts).toBe(before + 1);
    expect(uncaught).toEqual([]);
  });
});
