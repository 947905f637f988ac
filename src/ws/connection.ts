/**
 * One client socket. Room events reach it in stream order, exactly once: while it catches up from
 * `since` it buffers live events, then replays the backlog from the database, then flushes the buffer
 * skipping what the backlog already covered (`lastPosition`). Its send queue is bounded: a socket
 * whose unsent bytes pass `max_send_queue_bytes` is closed with 4408 and should resume with `since`.
 */
import type { WebSocket } from 'ws';
import type { AuthContext } from '../modules/auth/auth.service.js';
import { CLOSE } from '../events/socket-control.js';
import type { StreamEvent } from '../events/stream.js';
import { forDevice, isPerDevice } from '../events/catalog.js';
import { encodeEvent, wireJson } from '../events/wire.js';

/** Live events buffered during catch-up before the socket is treated as a slow consumer. */
const MAX_PENDING_EVENTS = 10_000;

/** The `net.Socket` under a `ws` socket (`ws` keeps it as `_socket`), for corking a burst of writes. */
interface RawSocketHolder {
  _socket?: { cork(): void; uncork(): void } | null;
}

/** Called after each room event written to a socket (the fan-out reports it to its listeners). */
export type StreamWriteHook = (conn: Connection, event: StreamEvent) => void;

export class Connection {
  /** Rooms whose events this socket receives (kept current by room.updated events). */
  readonly rooms = new Set<string>();
  /** Stream position of the last room event written to this socket. */
  lastPosition: number;
  private live = false;
  private corked = false;
  /** Catch-up writes made and flushed so far, and who waits for the two to meet (backpressure). */
  private catchUpWrites = 0;
  private flushedWrites = 0;
  private allFlushed?: () => void;
  private readonly onFlushed = () => {
    if (++this.flushedWrites < this.catchUpWrites || !this.allFlushed) return;
    const resolve = this.allFlushed;
    this.allFlushed = undefined;
    resolve();
  };
  private pending: StreamEvent[] = [];

  constructor(
    readonly socket: WebSocket,
    readonly auth: AuthContext,
    startPosition: number,
    private readonly maxQueueBytes: number,
    private readonly onStreamWrite: StreamWriteHook,
  ) {
    this.lastPosition = startPosition;
  }

  get userId(): string {
    return this.auth.userId;
  }

  /** Live events buffered while catching up, in stream order. */
  get buffered(): readonly StreamEvent[] {
    return this.pending;
  }

  /** False while catching up (live events are buffered then). */
  get isLive(): boolean {
    return this.live;
  }

  get open(): boolean {
    return this.socket.readyState === this.socket.OPEN;
  }

  /**
   * Queues one JSON event. @returns false when the socket is closed or was just closed for being
   * too slow.
   */
  send(event: unknown, callback?: (err?: Error) => void): boolean {
    return this.sendData(Buffer.from(JSON.stringify(event)), callback);
  }

  /** Queues one text frame of UTF-8 JSON. @returns as `send`. */
  private sendData(data: Buffer, callback?: (err?: Error) => void): boolean {
    if (!this.open) return false;
    // An event larger than the whole bound still goes out when nothing else is queued.
    if (this.socket.bufferedAmount > 0 && this.socket.bufferedAmount + data.length > this.maxQueueBytes) {
      this.close(CLOSE.SLOW_CONSUMER, 'send queue full; reconnect with since');
      return false;
    }
    this.cork();
    this.socket.send(data, { binary: false }, callback);
    return true;
  }

  /** Holds this tick's writes back and hands them to the kernel together at its end (fewer syscalls in a burst). */
  private cork(): void {
    if (this.corked) return;
    const raw = (this.socket as unknown as RawSocketHolder)._socket;
    if (!raw) return;
    this.corked = true;
    raw.cork();
    process.nextTick(() => {
      this.corked = false;
      raw.uncork();
    });
  }

  /** A room event for this socket: written now when live, buffered while catching up. */
  deliver(event: StreamEvent): void {
    if (this.live) {
      this.write(event);
      return;
    }
    this.pending.push(event);
    if (this.pending.length > MAX_PENDING_EVENTS) this.close(CLOSE.SLOW_CONSUMER, 'too far behind; reconnect with since');
  }

  /**
   * Replays the backlog after `since` page by page, waiting for each page to be flushed to the
   * kernel before reading the next (so memory stays bounded), then goes live.
   * @param readPage events after a position, in stream order (empty when done).
   * @returns how many backlog events were written.
   */
  async catchUp(since: number, readPage: (after: number) => Promise<StreamEvent[]>): Promise<number> {
    let written = 0;
    this.lastPosition = since;
    const closed = new Promise<void>((resolve) => this.socket.once('close', () => resolve()));
    let page = await readPage(since);
    while (page.length > 0 && this.open) {
      // The next page is read while this one is written.
      const next = readPage(page[page.length - 1].stream_position);
      next.catch(() => undefined); // awaited below; a failure there ends the catch-up
      for (const event of page) {
        // Backpressure: past half the queue bound, wait until everything written so far reached the kernel.
        if (this.socket.bufferedAmount > this.maxQueueBytes / 2 && this.flushedWrites < this.catchUpWrites) {
          await Promise.race([new Promise<void>((resolve) => (this.allFlushed = resolve)), closed]);
        }
        if (this.write(event, this.onFlushed)) {
          written++;
          this.catchUpWrites++;
        }
      }
      page = await next;
    }
    const buffered = this.pending;
    this.pending = [];
    this.live = true;
    for (const event of buffered) this.write(event);
    return written;
  }

  close(code: number, reason: string): void {
    if (this.socket.readyState === this.socket.OPEN || this.socket.readyState === this.socket.CONNECTING) this.socket.close(code, reason);
  }

  /** @returns true when written; `flushed` then fires once the frame reaches the kernel (or the socket closes). */
  private write(event: StreamEvent, flushed?: () => void): boolean {
    if (event.stream_position <= this.lastPosition) return false;
    // An encrypted message's envelopes: this socket gets only its own device's.
    const data = isPerDevice(event.payload) ? Buffer.from(wireJson({ ...event, payload: forDevice(event.payload, this.auth.deviceId) })) : encodeEvent(event);
    if (!this.sendData(data, flushed)) return false;
    this.lastPosition = event.stream_position;
    this.onStreamWrite(this, event);
    return true;
  }
}
