/**
 * The federation workload (`BENCH_WORKLOADS=federation`, docs/PERFORMANCE.md; hubs only): two hubs,
 * A (`a.bench`) and B (`b.bench`), each on its own database of the kind under test, each reached by
 * the other through a loopback TCP relay in this process (so A can be cut off from B). Alice of A
 * creates a group room with Bob of B; A hosts it.
 *
 * - latency: Alice sends FED_LATENCY_MESSAGES one after another on her socket on A, each timed from
 *   the send to `message.new` on Bob's socket on B (A writes it, its relay sequences it, A's queue to
 *   B sends it, B applies it);
 * - catch-up: the relay in front of B is cut, Alice sends FED_OUTAGE_MESSAGES (all acknowledged on A
 *   and queued for B: `switchboard_federation_queue_depth` on A's /metrics), the cut is healed, and
 *   the rate is the messages over the time from the first of them on Bob's socket to the last
 *   (events/s). The time from the heal to the last is given too: it includes A's next retry (at most
 *   `federation.retry_max_ms`, 1 s here).
 */
import { api } from '../test/helpers/hub.js';
import { BenchSocket, registerUsers, type Latency, type Target } from './load.js';
import { CutProxy } from '../test/helpers/tcp-proxy.js';

export const FED_LATENCY_MESSAGES = 300;
export const FED_OUTAGE_MESSAGES = 2_000;
/** A's longest wait between retries to B, ms. */
export const FED_RETRY_MAX_MS = 1_000;

export interface FederationResult {
  /** Send on A → `message.new` on B, one message at a time. */
  latency: { sent: number; ms: Latency };
  /** After an outage: messages queued on A for B, their rate on B (first → last), and heal → last, ms. */
  catchUp: { messages: number; perS: number; healToLastMs: number };
}

/** A started hub of the pair. */
export interface FederatedHub {
  target: Target;
  stop(): Promise<void>;
}

/** Starts hub `name` with `toml` (the federation section) added to the bench's own config. */
export type StartFederatedHub = (name: 'a' | 'b', toml: string) => Promise<FederatedHub>;

function summarize(values: number[]): Latency {
  const sorted = [...values].sort((a, b) => a - b);
  const at = (q: number) => sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))] ?? 0;
  return { p50: at(0.5), p95: at(0.95), p99: at(0.99), max: sorted[sorted.length - 1] ?? 0 };
}

async function until<T>(what: string, fn: () => Promise<T | undefined | false>, ms: number): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > end) throw new Error(`federation bench: timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** Runs the workload on a pair of hubs started by `start`. */
export async function federatedSends(start: StartFederatedHub): Promise<FederationResult> {
  // Relays on ports known before the hubs behind them start (their targets are set once they listen).
  const relays = { a: new CutProxy(), b: new CutProxy() };
  await relays.a.listen();
  await relays.b.listen();
  const toml = (self: 'a' | 'b', peer: 'a' | 'b') =>
    `[federation]\nenabled = true\nserver_name = "${self}.bench"\nretry_max_ms = ${FED_RETRY_MAX_MS}\n` +
    `[[federation.peers]]\nserver_name = "${peer}.bench"\nurl = "http://127.0.0.1:${relays[peer].port}"\n`;
  const hubs: FederatedHub[] = [];
  const sockets: BenchSocket[] = [];
  try {
    const [a, b] = await Promise.all([start('a', toml('a', 'b')), start('b', toml('b', 'a'))]);
    hubs.push(a, b);
    relays.a.target = Number(new URL(a.target.url).port);
    relays.b.target = Number(new URL(b.target.url).port);
    const [alice] = await registerUsers(a.target, 'fed-alice', 1);
    const [bob] = await registerUsers(b.target, 'fed-bob', 1);
    const bobOnA = await api(a.target.url, 'GET', `/api/users/lookup?address=${encodeURIComponent(bob.user.address)}`, { token: alice.token });
    if (bobOnA.status !== 200) throw new Error(`federation bench: lookup of Bob on A answered ${bobOnA.status}`);
    const room = await api(a.target.url, 'POST', '/api/rooms', { token: alice.token, body: { type: 'group', name: 'bench federation', members: [bobOnA.body.id] } });
    if (room.status !== 201) throw new Error(`federation bench: room creation answered ${room.status}`);
    const roomId: string = room.body.id;
    await until('the room on B', async () => (await api(b.target.url, 'GET', `/api/rooms/${roomId}`, { token: bob.token })).status === 200, 60_000);

    // Arrivals on Bob's socket and acknowledgements on Alice's, by content and txn_id.
    const arrived = new Map<string, number>();
    const waiting = new Map<string, () => void>();
    const acked = new Set<string>();
    sockets.push(
      await BenchSocket.connect(b.target, bob, {
        onFrame: (f, at) => {
          if (f.type !== 'message.new' || f.room_id !== roomId) return;
          arrived.set(f.message.content, at);
          waiting.get(f.message.content)?.();
        },
      }),
    );
    const errors: string[] = [];
    const aliceSocket = await BenchSocket.connect(a.target, alice, {
      onFrame: (f) => {
        if (f.type === 'message.sent') acked.add(f.txn_id);
        if (f.type === 'error') errors.push(`${f.code} ${f.message}`);
      },
    });
    sockets.push(aliceSocket);
    const send = (content: string) => aliceSocket.send({ type: 'message.send', room_id: roomId, content, txn_id: content });
    const onB = (content: string, timeoutMs = 30_000) =>
      new Promise<number>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`federation bench: ${content} did not reach B in ${timeoutMs / 1000} s`)), timeoutMs);
        waiting.set(content, () => (clearTimeout(timer), waiting.delete(content), resolve(arrived.get(content)!)));
      });

    // Latency, one at a time (after one warm-up message).
    for (const content of ['warm-up', ...Array.from({ length: FED_LATENCY_MESSAGES }, (_, i) => `latency ${i}`)]) {
      const there = onB(content);
      const sentAt = performance.now();
      send(content);
      const at = await there;
      if (content !== 'warm-up') arrived.set(content, at - sentAt);
    }
    const latencies = Array.from({ length: FED_LATENCY_MESSAGES }, (_, i) => arrived.get(`latency ${i}`)!);

    // Catch-up after an outage.
    relays.b.setCut(true);
    const outage = Array.from({ length: FED_OUTAGE_MESSAGES }, (_, i) => `outage ${i}`);
    for (const content of outage) send(content);
    await until('the outage sends acknowledged on A', async () => {
      if (errors.length) throw new Error(`federation bench: sends failed: ${errors.slice(0, 3).join('; ')}`);
      return outage.every((c) => acked.has(c));
    }, 120_000);
    const depth = async () => Number((await fetch(`${a.target.url}/metrics`).then((r) => r.text())).match(/switchboard_federation_queue_depth\{peer="b\.bench"\} (\d+)/)?.[1] ?? 0);
    await until('the outage sends queued on A for B', async () => (await depth()) >= FED_OUTAGE_MESSAGES, 120_000);
    const last = onB(outage[outage.length - 1], 300_000);
    const healedAt = performance.now();
    relays.b.setCut(false);
    const lastAt = await last;
    await until('every outage send on B', async () => outage.every((c) => arrived.has(c)), 10_000);
    const firstAt = Math.min(...outage.map((c) => arrived.get(c)!));
    return {
      latency: { sent: FED_LATENCY_MESSAGES, ms: summarize(latencies) },
      catchUp: { messages: FED_OUTAGE_MESSAGES, perS: ((FED_OUTAGE_MESSAGES - 1) * 1000) / (lastAt - firstAt), healToLastMs: lastAt - healedAt },
    };
  } finally {
    await Promise.all(sockets.map((s) => s.close()));
    await Promise.all(hubs.map((h) => h.stop()));
    await relays.a.close();
    await relays.b.close();
  }
}
