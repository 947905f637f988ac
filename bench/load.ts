/**
 * The load generator of `npm run bench`: the workloads, driven through the public protocol only (REST
 * to register users and create rooms; WebSocket `message.send` frames with a `txn_id`, `message.sent`
 * acknowledgements, `message.new` deliveries; docs/WEBSOCKET_API.md). The same code drives the hub
 * and the bare relay (bench/relay.ts). It runs in the bench's own process, never in the server's.
 *
 * Every message's content starts with its send time (`performance.now()` of this process, ms), so a
 * member receiving it knows its send → delivery latency; acknowledgements are matched by `txn_id`.
 * A delivery is a `message.new` received by a member other than the sender (the hub also echoes a
 * message to its sender's sockets; those copies are not counted).
 */
import WebSocket from 'ws';
import { api, register, type Session } from '../test/helpers/hub.js';

/** A server under test: its base URLs. */
export interface Target {
  /** http://127.0.0.1:<port> */
  url: string;
  /** ws://127.0.0.1:<port> */
  wsUrl: string;
}

/** Nearest-rank percentiles and maximum of a set of latencies, ms. */
export interface Latency {
  p50: number;
  p95: number;
  p99: number;
  max: number;
}

export interface WorkloadResult {
  /** Messages sent, acknowledged (`message.sent`: persisted, on the hub) and delivered (member receipts). */
  sent: number;
  acked: number;
  delivered: number;
  /** Deliveries due: sent × members other than the sender. */
  expected: number;
  /** Send rate achieved by the generator, messages/s (first to last send). */
  sentPerS: number;
  /** Deliveries per second, from the first send to the last delivery. */
  deliveriesPerS: number;
  /** Acknowledged (persisted) messages per second, from the first send to the last acknowledgement. */
  persistedPerS: number;
  /** Send → member receipt, over every delivery, ms. */
  deliveryMs: Latency;
  /** Send → `message.sent`, ms. */
  ackMs: Latency;
  /** Last delivery − last send, ms. */
  tailMs: number;
  /** Why the server fell behind or the run is incomplete; null when it kept up. */
  behind: string | null;
  /** This process's CPU time (user + system) over the run's wall time: 1 = one core busy. */
  generatorCpu: number;
  /** `error` frames by code, and closes by the server (`close <code>`). */
  errors: Record<string, number>;
}

/** Members of the rooms of workloads (a) and (c): one sender and this many listeners. */
export const LISTENERS = 20;
/** Senders of workload (b), in a room of SENDERS + 1 members. */
export const SENDERS = 10;
/** Messages each sender of workload (b) keeps unacknowledged: it sends the next when one is acknowledged. */
export const WINDOW = 1;
/** Paced sending stops, as fallen behind, once the server lags by more than this, ms (see `Run.lagMs`). */
const MAX_LAG_MS = 1_000;
/** A run gives up waiting for deliveries after this long without any progress, ms. */
const STALL_MS = 5_000;

/** Nearest-rank percentiles; zeros when empty. */
function summarize(values: number[]): Latency {
  const sorted = Float64Array.from(values).sort();
  const at = (p: number) => sorted[Math.max(0, Math.ceil((p / 100) * sorted.length) - 1)] ?? 0;
  return { p50: at(50), p95: at(95), p99: at(99), max: sorted[sorted.length - 1] ?? 0 };
}

/** A lean WebSocket client: every parsed frame goes to `onFrame` with its receipt time (ms). */
export class BenchSocket {
  onFrame: (frame: any, at: number, socket: BenchSocket) => void = () => undefined;
  /** Close code when the server closed the socket. */
  closedBy: number | null = null;
  private closing = false;

  private constructor(
    readonly ws: WebSocket,
    readonly userId: string,
  ) {}

  /**
   * Opens `/ws` (with `?since=` when given) and resolves once `ready` arrives; frames before it
   * already go to `onFrame` (given here, so a replay is seen from its first event).
   * @throws Error when the socket fails or closes first, or after `timeoutMs`.
   */
  static connect(target: Target, session: Session, opts: { since?: number; onFrame?: BenchSocket['onFrame']; timeoutMs?: number } = {}): Promise<BenchSocket> {
    const query = opts.since === undefined ? '' : `?since=${opts.since}`;
    const ws = new WebSocket(`${target.wsUrl}/ws${query}`, { headers: { authorization: `Bearer ${session.token}` }, perMessageDeflate: false });
    const socket = new BenchSocket(ws, session.user.id);
    if (opts.onFrame) socket.onFrame = opts.onFrame;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('no ready in time')), opts.timeoutMs ?? 30_000);
      ws.on('message', (data) => {
        const at = performance.now();
        const frame = JSON.parse(data.toString());
        socket.onFrame(frame, at, socket);
        if (frame.type === 'ready') {
          clearTimeout(timer);
          resolve(socket);
        }
      });
      ws.on('error', reject); // after `ready` an error is followed by `close`, counted by the run
      ws.once('close', (code) => {
        if (!socket.closing) socket.closedBy = code;
        reject(new Error(`closed (${code}) before ready`));
      });
    });
  }

  send(frame: unknown): void {
    this.ws.send(JSON.stringify(frame));
  }

  /** Closes the socket; resolves once closed (or after 10 s). */
  close(): Promise<void> {
    this.closing = true;
    if (this.ws.readyState === WebSocket.CLOSED) return Promise.resolve();
    return new Promise((resolve) => {
      const timer = setTimeout(() => (this.ws.terminate(), resolve()), 10_000);
      this.ws.once('close', () => (clearTimeout(timer), resolve()));
      this.ws.close();
    });
  }
}

/** Registers `count` users named `<prefix><i>` (a few at a time). */
export async function registerUsers(target: Target, prefix: string, count: number): Promise<Session[]> {
  const users: Session[] = [];
  for (let i = 0; i < count; i += 4) {
    users.push(...(await Promise.all(Array.from({ length: Math.min(4, count - i) }, (_, k) => register(target.url, `${prefix}${i + k}`)))));
  }
  return users;
}

/** Creates a group room of `owner` and `members`. @returns its id. */
export async function createGroup(target: Target, owner: Session, members: Session[]): Promise<string> {
  const res = await api(target.url, 'POST', '/api/rooms', { token: owner.token, body: { type: 'group', name: 'bench', members: members.map((m) => m.user.id) } });
  if (res.status !== 201) throw new Error(`create room failed: ${res.status} ${JSON.stringify(res.body)}`);
  return res.body.id;
}

/**
 * One workload in one room: every member's socket counted into one tally. Open with `Run.open`,
 * call `begin` just before the first send, `send` per message, then `finish`.
 */
class Run {
  private readonly deliveryMs: number[] = [];
  private readonly ackMs: number[] = [];
  private readonly sentAt = new Map<string, number>();
  private readonly errors: Record<string, number> = {};
  sent = 0;
  acked = 0;
  delivered = 0;
  private startedAt = 0;
  private lastSendAt = 0;
  private lastAckAt = 0;
  private lastDeliveryAt = 0;
  private lastDeliveryMs = 0;
  private cpu = process.cpuUsage();
  private waiter: { done: () => boolean; wake: () => void } | null = null;
  /** One per member, in the order given to `open`. */
  sockets: BenchSocket[] = [];
  /** Called with the sending socket on each of its acknowledgements. */
  onAck: (socket: BenchSocket) => void = () => undefined;

  private constructor(
    readonly roomId: string,
    /** Members other than a message's sender, who each should receive it. */
    readonly recipients: number,
  ) {}

  /** Creates a room of `members` (the first one owns it) and connects one socket per member. */
  static async open(target: Target, members: Session[]): Promise<Run> {
    const run = new Run(await createGroup(target, members[0], members.slice(1)), members.length - 1);
    run.sockets = await Promise.all(members.map((m) => BenchSocket.connect(target, m, { onFrame: (f, at, s) => run.count(s, f, at) })));
    return run;
  }

  begin(): void {
    this.cpu = process.cpuUsage();
    this.startedAt = performance.now();
  }

  /** Elapsed since `begin`, ms. */
  get elapsed(): number {
    return performance.now() - this.startedAt;
  }

  send(socket: BenchSocket, txnId: string): void {
    const now = performance.now();
    this.sentAt.set(txnId, now);
    socket.send({ type: 'message.send', room_id: this.roomId, content: `${now} bench message`, txn_id: txnId });
    this.sent++;
    this.lastSendAt = now;
  }

  private count(socket: BenchSocket, frame: any, at: number): void {
    if (frame.type === 'message.new') {
      if (frame.room_id !== this.roomId || frame.message.user_id === socket.userId) return;
      this.lastDeliveryMs = at - parseFloat(frame.message.content);
      this.deliveryMs.push(this.lastDeliveryMs);
      this.delivered++;
      this.lastDeliveryAt = at;
    } else if (frame.type === 'message.sent') {
      const sentAt = this.sentAt.get(frame.txn_id);
      if (sentAt === undefined) return;
      this.sentAt.delete(frame.txn_id);
      this.ackMs.push(at - sentAt);
      this.acked++;
      this.lastAckAt = at;
      this.onAck(socket);
    } else if (frame.type === 'error') {
      this.errors[frame.code] = (this.errors[frame.code] ?? 0) + 1;
    } else {
      return;
    }
    if (this.waiter?.done()) this.waiter.wake();
  }

  /** How far behind the server is, ms: the age of the oldest unacknowledged message or the latency of the latest delivery, whichever is more. */
  lagMs(): number {
    const oldest = this.sentAt.values().next().value;
    return Math.max(oldest === undefined ? 0 : performance.now() - oldest, this.lastDeliveryMs);
  }

  /** Everything sent is acknowledged and delivered. */
  get complete(): boolean {
    return this.acked === this.sent && this.delivered === this.sent * this.recipients;
  }

  /**
   * Resolves true once `done()` holds (checked on every counted frame), false after `capMs` or
   * STALL_MS without any acknowledgement or delivery.
   */
  async until(done: () => boolean, capMs: number): Promise<boolean> {
    const deadline = performance.now() + capMs;
    let progress = -1;
    let progressAt = performance.now();
    while (!done()) {
      const now = performance.now();
      if (this.acked + this.delivered !== progress) [progress, progressAt] = [this.acked + this.delivered, now];
      if (now > deadline || now - progressAt > STALL_MS) return false;
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, 100);
        this.waiter = { done, wake: () => (clearTimeout(timer), resolve()) };
      });
      this.waiter = null;
    }
    return true;
  }

  /**
   * Waits (at most `capMs`) for every acknowledgement and delivery, closes the sockets and sums up.
   * @param opts.paced flag deliveries arriving over 1 s after the last send as falling behind.
   * @param opts.behind the caller's own reason the server fell behind, if any.
   */
  async finish(opts: { capMs: number; paced?: boolean; behind?: string | null }): Promise<WorkloadResult> {
    await this.until(() => this.complete, opts.capMs);
    const wall = Math.max(this.lastDeliveryAt, this.lastAckAt, this.lastSendAt) - this.startedAt;
    const cpu = process.cpuUsage(this.cpu);
    for (const s of this.sockets) {
      if (s.closedBy !== null) this.errors[`close ${s.closedBy}`] = (this.errors[`close ${s.closedBy}`] ?? 0) + 1;
    }
    await Promise.all(this.sockets.map((s) => s.close()));
    const expected = this.sent * this.recipients;
    const tailMs = this.lastDeliveryAt - this.lastSendAt;
    const reasons = [
      opts.behind,
      opts.paced && tailMs > 1000 ? `deliveries until ${(tailMs / 1000).toFixed(1)} s after the last send` : null,
      this.acked < this.sent ? `${this.sent - this.acked} sends unacknowledged` : null,
      this.delivered < expected ? `${expected - this.delivered} deliveries missing` : null,
    ].filter((r): r is string => !!r);
    const perS = (n: number, until: number) => (until > this.startedAt ? (n * 1000) / (until - this.startedAt) : 0);
    return {
      sent: this.sent,
      acked: this.acked,
      delivered: this.delivered,
      expected,
      sentPerS: this.sent > 1 ? ((this.sent - 1) * 1000) / (this.lastSendAt - this.startedAt) : 0,
      deliveriesPerS: perS(this.delivered, this.lastDeliveryAt),
      persistedPerS: perS(this.acked, this.lastAckAt),
      deliveryMs: summarize(this.deliveryMs),
      ackMs: summarize(this.ackMs),
      tailMs,
      behind: reasons.length ? reasons.join('; ') : null,
      generatorCpu: (cpu.user + cpu.system) / 1000 / wall,
      errors: this.errors,
    };
  }
}

/** (a) Burst: `users[0]` sends `count` messages back to back, without waiting for acknowledgements, to LISTENERS members. */
export async function burst(target: Target, users: Session[], count = 5_000): Promise<WorkloadResult> {
  const run = await Run.open(target, users.slice(0, LISTENERS + 1));
  run.begin();
  for (let i = 0; i < count; i++) run.send(run.sockets[0], `a-${i}`);
  return run.finish({ capMs: 120_000 });
}

/**
 * (b) SENDERS senders in one room of SENDERS + 1 members, each keeping WINDOW messages
 * unacknowledged (it sends the next on each acknowledgement), for `durationMs`.
 */
export async function ackPaced(target: Target, users: Session[], durationMs = 10_000): Promise<WorkloadResult> {
  const run = await Run.open(target, users.slice(0, SENDERS + 1));
  const senders = run.sockets.slice(0, SENDERS);
  const nextIndex = new Map(senders.map((s) => [s, 0]));
  const sendNext = (s: BenchSocket) => {
    const i = nextIndex.get(s);
    if (i === undefined || run.elapsed >= durationMs) return;
    nextIndex.set(s, i + 1);
    run.send(s, `b-${senders.indexOf(s)}-${i}`);
  };
  run.onAck = sendNext;
  run.begin();
  for (const s of senders) for (let w = 0; w < WINDOW; w++) sendNext(s);
  return run.finish({ capMs: durationMs + 60_000 });
}

/**
 * (c) Paced: `users[0]` sends `rate` messages/s, by a 1 ms timer (not by acknowledgements), to
 * LISTENERS members for `durationMs`. Sending stops early, as fallen behind, once the server lags by
 * over MAX_LAG_MS (an acknowledgement or a delivery that late), so a slow server does not drag the run on.
 */
export async function paced(target: Target, users: Session[], rate: number, durationMs = 10_000): Promise<WorkloadResult> {
  const run = await Run.open(target, users.slice(0, LISTENERS + 1));
  const total = Math.round((rate * durationMs) / 1000);
  let behind: string | null = null;
  run.begin();
  await new Promise<void>((resolve) => {
    const timer = setInterval(() => {
      const due = Math.min(total, Math.floor((run.elapsed * rate) / 1000));
      while (run.sent < due) run.send(run.sockets[0], `c${rate}-${run.sent}`);
      if (run.lagMs() > MAX_LAG_MS) behind = `lagging over ${MAX_LAG_MS / 1000} s at ${(run.elapsed / 1000).toFixed(1)} s (${run.sent} sent, ${run.acked} acked): stopped sending`;
      if (behind || run.sent >= total) {
        clearInterval(timer);
        resolve();
      }
    }, 1);
  });
  return run.finish({ capMs: 30_000, paced: true, behind });
}

/** Round trip: `users[0]` sends `count` messages to `users[1]` one at a time (after 20 unmeasured). */
export async function roundTrip(target: Target, users: Session[], count = 200): Promise<{ ackMs: Latency; deliveryMs: Latency }> {
  const warm = await Run.open(target, users.slice(0, 2));
  for (let i = 0; i < 20; i++) {
    warm.send(warm.sockets[0], `rt-warm-${i}`);
    await warm.until(() => warm.complete, 10_000);
  }
  await warm.finish({ capMs: 10_000 });
  const run = await Run.open(target, users.slice(0, 2));
  run.begin();
  for (let i = 0; i < count; i++) {
    run.send(run.sockets[0], `rt-${i}`);
    if (!(await run.until(() => run.complete, 10_000))) throw new Error(`round trip ${i}: no ack or delivery in 10 s`);
  }
  const { ackMs, deliveryMs } = await run.finish({ capMs: 10_000 });
  return { ackMs, deliveryMs };
}

/** Opens `count` sockets of `session` that stay idle, 50 at a time. @returns them and the time it took, ms. */
export async function openIdle(target: Target, session: Session, count: number): Promise<{ sockets: BenchSocket[]; ms: number }> {
  const started = performance.now();
  const sockets: BenchSocket[] = [];
  for (let i = 0; i < count; i += 50) {
    sockets.push(...(await Promise.all(Array.from({ length: Math.min(50, count - i) }, () => BenchSocket.connect(target, session, { timeoutMs: 60_000 })))));
  }
  return { sockets, ms: performance.now() - started };
}

/**
 * Resume: connects `session` with `?since=` and counts the room events replayed before `ready`,
 * checking that their positions only grow.
 * @returns the count, `ready.resumed`, and the time from opening the socket to the last replayed
 *   event and to `ready`, ms.
 * @throws Error on an out-of-order event, or without `ready` after `timeoutMs`.
 */
export async function resume(target: Target, session: Session, since: number, timeoutMs = 120_000) {
  let events = 0;
  let resumed = -1;
  let last = since;
  let lastEventAt = 0;
  let order: Error | null = null;
  const started = performance.now();
  const socket = await BenchSocket.connect(target, session, {
    since,
    timeoutMs,
    onFrame: (f, at) => {
      if (f.type === 'ready') resumed = f.resumed;
      if (f.type === 'ready' || f.type === 'message.sent' || typeof f.stream_position !== 'number') return;
      if (f.stream_position <= last) order ??= new Error(`replay out of order: ${f.stream_position} after ${last}`);
      [last, lastEventAt, events] = [f.stream_position, at, events + 1];
    },
  });
  const readyMs = performance.now() - started;
  await socket.close();
  if (order) throw order;
  return { events, resumed, toLastEventMs: lastEventAt ? lastEventAt - started : 0, toReadyMs: readyMs };
}
