/**
 * Federation across a crash: two hubs as child processes (`node bin/switchboard.js serve`), A the host
 * server of a shared room and B a participant, each on its own database (a scratch database on
 * DATABASE_URL, or its own PGlite data dir). B is SIGKILLed while A's user sends 200 messages and
 * restarts at once on the same data dir and database (on PGlite once the dead hub's lock is stale): B converges on A's order, and B's user resuming
 * with `since` gets every message once, in order. Then the host A is SIGKILLed while B's user sends 50:
 * the sends are answered pending and sequenced once, in the order sent, on both hubs, when A is back.
 * Last, B is SIGKILLed between storing a transaction of A's and A hearing its 200 (the relay in front
 * of B forwards the request and swallows the answer): A's retry, to the restarted B, stores nothing
 * twice. Each hub is reached through a loopback TCP relay on a port fixed before it starts, so its
 * peer's URL holds across the restart (the hub's own port is new).
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WsClient, api, createScratchDatabase, register, type Session } from '../helpers/hub.js';
import { spawnHub, type SpawnedHub } from '../e2e/spawn.js';

const MESSAGES = 200;
const names = ['a.test', 'b.test'];

/**
 * A loopback TCP relay on a fixed port to a target port that may change. With `swallow` set, a new
 * connection whose first request is a transaction (`PUT /_federation/v1/send/`, typing aside) is
 * forwarded but its answer is not: `swallow` gets the answer's first bytes, and the client's side is
 * closed only when the target's is.
 */
class Relay {
  private server = net.createServer((c) => this.onConn(c));
  private sockets = new Set<net.Socket>();
  port = 0;
  target = 0;
  swallow: ((answer: string) => void) | null = null;
  async listen(): Promise<void> {
    await new Promise<void>((r) => this.server.listen(0, '127.0.0.1', r));
    this.port = (this.server.address() as net.AddressInfo).port;
  }
  private onConn(c: net.Socket): void {
    const up = net.connect(this.target, '127.0.0.1');
    for (const s of [c, up]) (this.sockets.add(s), s.on('close', () => this.sockets.delete(s)), s.on('error', () => (c.destroy(), up.destroy())));
    const swallow = this.swallow;
    if (!swallow) return void c.pipe(up).pipe(c);
    c.once('data', (first: Buffer) => {
      up.write(first);
      c.pipe(up);
      if (!/^PUT \/_federation\/v1\/send\/(?!typing-)/.test(first.toString('latin1'))) return void up.pipe(c);
      up.once('data', (answer: Buffer) => swallow(answer.toString('latin1')));
      up.on('data', () => undefined);
      up.on('close', () => c.destroy());
    });
  }
  /** Swallows answers to transactions on new connections (see above); open connections are closed so the next request opens one. */
  swallowAnswers(onAnswer: ((answer: string) => void) | null): void {
    this.swallow = onAnswer;
    if (onAnswer) for (const s of this.sockets) s.destroy();
  }
  close(): Promise<void> {
    return new Promise((r) => this.server.close(() => r()));
  }
}

async function until<T>(what: string, fn: () => Promise<T | undefined | false>, ms: number): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Every message of the room on a hub, oldest first (by that hub's stream position). */
async function allMessages(url: string, token: string, roomId: string): Promise<any[]> {
  const all: any[] = [];
  let res = await api(url, 'GET', `/api/rooms/${roomId}/messages?limit=100`, { token });
  for (;;) {
    expect(res.status).toBe(200);
    const page: any[] = res.body.messages;
    all.push(...page);
    if (page.length < 100) break;
    const oldest = [...page].sort((x, y) => x.stream_position - y.stream_position)[0];
    res = await api(url, 'GET', `/api/rooms/${roomId}/messages?limit=100&before=${oldest.id}`, { token });
  }
  return all.sort((x, y) => x.stream_position - y.stream_position);
}


/** The message ids the hub at `url` lists in `roomId` for `s`, once it lists at least `count` (waits up to 45 s). */
function convergedOn(url: string, s: Session, roomId: string, count: number): Promise<string[]> {
  return until(
    'the hub to converge',
    async () => {
      const ids = (await allMessages(url, s.token, roomId)).map((m) => m.id);
      return ids.length >= count ? ids : undefined;
    },
    45_000,
  );
}

describe('federation across a SIGKILL', () => {
  const relays = [new Relay(), new Relay()];
  const scratch: { url: string; drop(): Promise<void> }[] = [];
  const dataDirs: string[] = [];
  const tomls: string[] = [];
  const hubs: SpawnedHub[] = [];

  /**
   * Starts hub i on its data dir. On PGlite a SIGKILLed hub's lock on the embedded database counts as
   * stale only after 10 s (src/db/database.ts), so a restart is retried until then.
   */
  const start = async (i: number) => {
    const end = Date.now() + 30_000;
    for (;;) {
      try {
        hubs[i] = await spawnHub({ command: ['node', 'bin/switchboard.js', 'serve'], dataDir: dataDirs[i], toml: tomls[i], timeoutMs: 90_000 });
        break;
      } catch (err) {
        if (!String(err).includes('is in use by another Switchboard process') || Date.now() > end) throw err;
        await new Promise((r) => setTimeout(r, 1000));
      }
    }
    relays[i].target = Number(new URL(hubs[i].url).port);
  };

  beforeAll(async () => {
    if (!process.env.DATABASE_URL) console.log('federation crash test: no DATABASE_URL, each hub on its own embedded PGlite data dir');
    for (const r of relays) await r.listen();
    for (const [i, name] of names.entries()) {
      dataDirs.push(fs.mkdtempSync(path.join(os.tmpdir(), `sb-fed-crash-${name}-`)));
      if (process.env.DATABASE_URL) scratch.push(await createScratchDatabase(process.env.DATABASE_URL));
      const peer = 1 - i;
      tomls.push(
        [
          ...(scratch[i] ? [`[database]\nurl = "${scratch[i].url}"`] : []),
          `[auth]\njwt_secret = "${crypto.randomBytes(32).toString('hex')}"`,
          '[rate_limits]\nws_frames_per_s = 0\nmessages_per_user_per_min = 0',
          `[federation]\nenabled = true\nserver_name = "${name}"\nretry_max_ms = 500`,
          `[[federation.peers]]\nserver_name = "${names[peer]}"\nurl = "http://127.0.0.1:${relays[peer].port}"`,
          '',
        ].join('\n'),
      );
    }
    await Promise.all(names.map((_, i) => start(i)));
  }, 120_000);

  afterAll(async () => {
    await Promise.all(hubs.map((h) => h?.stop()));
    await Promise.all(relays.map((r) => r.close()));
    await Promise.all(scratch.map((s) => s.drop()));
    for (const d of dataDirs) fs.rmSync(d, { recursive: true, force: true });
  });

  let alice: Session, bob: Session;
  let roomId: string;

  it('B SIGKILLed while A sends 200: after the restart B converges, and its user resuming with since gets each once, in order', async () => {
    alice = await register(hubs[0].url, 'Alice');
    bob = await register(hubs[1].url, 'Bob');
    const b = await api(hubs[0].url, 'GET', `/api/users/lookup?address=${encodeURIComponent(bob.user.address)}`, { token: alice.token });
    expect(b.status).toBe(200);
    const room = await api(hubs[0].url, 'POST', '/api/rooms', { token: alice.token, body: { type: 'group', name: 'Crash', members: [b.body.id] } });
    expect(room.status).toBe(201);
    roomId = room.body.id;

    // Bob sees a first message live; his resume point is its stream position on B.
    const bobWs = await WsClient.connect(hubs[1].wsUrl, bob.token);
    const first = await api(hubs[0].url, 'POST', `/api/rooms/${roomId}/messages`, { token: alice.token, body: { content: 'before' } });
    expect(first.status).toBe(201);
    const seen = await bobWs.next('message.new', (e) => e.message.id === first.body.id, 20_000);
    const since: number = seen.stream_position;
    expect(since).toBeGreaterThan(0);

    const aliceWs = await WsClient.connect(hubs[0].wsUrl, alice.token);
    for (let k = 0; k < MESSAGES; k++) aliceWs.send({ type: 'message.send', room_id: roomId, content: `m${k}`, txn_id: `crash-${k}` });
    // B is killed once its user has seen part of the burst live.
    await bobWs.next('message.new', (e) => e.room_id === roomId && e.message.content.startsWith('m'), 30_000);
    await hubs[1].kill();
    expect(bobWs.all('message.new').length).toBeLessThan(MESSAGES + 1); // killed mid-burst
    bobWs.close();
    const restarted = start(1); // at once, on the same data dir and database
    await aliceWs.next('message.sent', (e) => e.txn_id === `crash-${MESSAGES - 1}`, 30_000); // acks come in frame order
    expect(aliceWs.all('error')).toEqual([]);
    expect(aliceWs.all('message.sent').filter((e) => e.txn_id?.startsWith('crash-'))).toHaveLength(MESSAGES);
    aliceWs.close();
    await restarted;

    const listA = await allMessages(hubs[0].url, alice.token, roomId);
    expect(listA.slice(1).map((m) => m.content)).toEqual(Array.from({ length: MESSAGES }, (_, k) => `m${k}`)); // frame order
    const onA = listA.map((m) => m.id);
    const onB = await convergedOn(hubs[1].url, bob, roomId, onA.length);
    expect(onB).toEqual(onA);

    const resumed = await WsClient.connect(hubs[1].wsUrl, bob.token, { since });
    const replayed = resumed.all('message.new').filter((e) => e.room_id === roomId).map((e) => e.message.id);
    expect(replayed).toEqual(onA.slice(1)); // the host's order, each once ('before' was seen already)
    resumed.close();
  }, 150_000);

  it('the host A SIGKILLed while B sends 50: the sends are pending, then sequenced once, in the order sent, on both hubs, after A restarts', async () => {
    const bobWs = await WsClient.connect(hubs[1].wsUrl, bob.token);
    const send = (k: number) => bobWs.send({ type: 'message.send', room_id: roomId, content: `b${k}`, txn_id: `host-crash-${k}` });
    for (let k = 0; k < 10; k++) {
      send(k); // one at a time while A is up: their order is the order sent
      await bobWs.next('message.sent', (e) => e.txn_id === `host-crash-${k}`, 30_000);
    }
    await hubs[0].kill();
    for (let k = 10; k < 50; k++) send(k);
    await bobWs.next('message.sent', (e) => e.txn_id === 'host-crash-49', 60_000);
    expect(bobWs.all('error')).toEqual([]);
    const acks = bobWs.all('message.sent').filter((e) => e.txn_id?.startsWith('host-crash-'));
    expect(acks).toHaveLength(50);
    for (const a of acks.slice(10)) expect(a).toMatchObject({ pending: true, stream_position: 0 });
    bobWs.close();

    await start(0);
    // Every send once, in the order sent (the 40 pipelined ones too), the same on both hubs.
    const lists: string[][] = [];
    for (const [i, s] of [[0, alice], [1, bob]] as const) {
      const got = await until(
        `the 50 on ${names[i]}`,
        async () => {
          const list = (await allMessages(hubs[i].url, s.token, roomId)).filter((m) => /^b\d+$/.test(m.content));
          return list.length >= 50 ? list : undefined;
        },
        45_000,
      );
      expect(got.map((m) => m.content)).toEqual(Array.from({ length: 50 }, (_, k) => `b${k}`));
      expect([...got.map((m) => m.id)].sort()).toEqual(acks.map((a) => a.message_id).sort());
      lists.push(got.map((m) => m.id));
    }
    expect(lists[1]).toEqual(lists[0]);
  }, 150_000);

  it('B SIGKILLed between storing a transaction and A hearing its 200: A\'s retry stores nothing twice', async () => {
    const before = await allMessages(hubs[1].url, bob.token, roomId);
    const since: number = before[before.length - 1].stream_position;
    const answered = new Promise<string>((resolve) => relays[1].swallowAnswers(resolve));
    const sent: string[] = [];
    for (let k = 0; k < 5; k++) {
      const res = await api(hubs[0].url, 'POST', `/api/rooms/${roomId}/messages`, { token: alice.token, body: { content: `swallowed ${k}` } });
      expect(res.status).toBe(201);
      sent.push(res.body.id);
    }
    // B stored the transaction and answered; A has not heard it.
    expect(await answered).toMatch(/^HTTP\/1\.1 200 /);
    await hubs[1].kill();
    relays[1].swallowAnswers(null);
    await start(1);

    const onA = (await allMessages(hubs[0].url, alice.token, roomId)).map((m) => m.id);
    const onB = await convergedOn(hubs[1].url, bob, roomId, onA.length);
    expect(onB).toEqual(onA); // each once, in the host's order
    expect(onB.slice(-5)).toEqual(sent);
    // B's event log has each once too: a resume from before the transaction replays the 5, once each.
    const resumed = await WsClient.connect(hubs[1].wsUrl, bob.token, { since });
    expect(resumed.all('message.new').filter((e) => e.room_id === roomId).map((e) => e.message.id)).toEqual(sent);
    resumed.close();
  }, 150_000);
});
