/**
 * The WebSocket side (docs/WEBSOCKET_API.md): one socket at a time to `GET /ws`, authenticated with a
 * fresh access token; after any close but 4401 it reconnects with a growing, jittered delay and
 * resumes with `?since=<highest stream_position received>`, so the hub replays what was missed.
 * Room events at or below that position are dropped (nothing twice), and events are handed on in
 * the order received, one at a time (an async E2EE transform cannot reorder them).
 *
 * A ping every `pingIntervalMs` without a pong within `pongTimeoutMs` counts as a dead connection;
 * in a browser, the `offline` / `online` events close and reopen the socket at once.
 */
import { isRoomEvent, type ClientFrame, type ServerEvent } from './events.js';

/** The WebSocket constructor: the browser's, Node 22's global one, or the `ws` package's. */
export type WebSocketLike = {
  readonly readyState: number;
  send(data: string): void;
  close(code?: number, reason?: string): void;
  onopen: ((ev: unknown) => void) | null;
  onclose: ((ev: { code: number; reason: string }) => void) | null;
  onmessage: ((ev: { data: unknown }) => void) | null;
  onerror: ((ev: unknown) => void) | null;
};
export type WebSocketConstructor = new (url: string) => WebSocketLike;

/** `connecting`: opening or catching up; `live`: `ready` received; `offline`: waiting to reconnect; `closed`: stopped. */
export type ConnectionState = 'connecting' | 'live' | 'offline' | 'closed';

export interface RealtimeOptions {
  /** ws(s)://host[:port] */
  wsBaseUrl: string;
  WebSocket: WebSocketConstructor;
  accessToken: (forceRefresh: boolean) => Promise<string>;
  /** Each event, in order (room events already deduplicated); may return a promise, awaited before the next. */
  onEvent: (event: ServerEvent) => void | Promise<void>;
  onState: (state: ConnectionState) => void;
  /** The socket was closed with 4401: the session was revoked. */
  onRevoked: () => void;
  /** First reconnect delay, ms (default 500); doubles up to `maxDelayMs` (default 30 000). */
  baseDelayMs?: number;
  maxDelayMs?: number;
  pingIntervalMs?: number;
  pongTimeoutMs?: number;
  /** The position to resume from (a stored one), default 0: a fresh start. */
  since?: number;
}

const OPEN = 1;

export class RealtimeConnection {
  private socket: WebSocketLike | null = null;
  private state: ConnectionState = 'closed';
  private attempts = 0;
  private position: number;
  private reconnectTimer?: ReturnType<typeof setTimeout>;
  private pingTimer?: ReturnType<typeof setInterval>;
  private pongTimer?: ReturnType<typeof setTimeout>;
  private chain: Promise<void> = Promise.resolve();
  private failedBeforeOpen = 0;
  private readonly onOffline = () => this.drop('offline');
  private readonly onOnline = () => this.reconnectNow();

  constructor(private readonly opts: RealtimeOptions) {
    this.position = opts.since ?? 0;
  }

  /** The highest `stream_position` received (room events and `ready`): what a resume starts from. */
  get streamPosition(): number {
    return this.position;
  }

  get connectionState(): ConnectionState {
    return this.state;
  }

  /** Opens the socket (and keeps it open until `stop`). */
  start(): void {
    if (this.state !== 'closed') return;
    const win = globalThis as { addEventListener?: (type: string, fn: () => void) => void };
    win.addEventListener?.('offline', this.onOffline);
    win.addEventListener?.('online', this.onOnline);
    void this.open();
  }

  /** Closes the socket for good. */
  stop(): void {
    const win = globalThis as { removeEventListener?: (type: string, fn: () => void) => void };
    win.removeEventListener?.('offline', this.onOffline);
    win.removeEventListener?.('online', this.onOnline);
    clearTimeout(this.reconnectTimer);
    this.stopPing();
    this.setState('closed');
    const socket = this.socket;
    this.socket = null;
    socket?.close(1000, 'client stopped');
  }

  /** Sends a frame when the socket is live. @returns false when it is not (the caller keeps it). */
  send(frame: ClientFrame): boolean {
    if (this.state !== 'live' || this.socket?.readyState !== OPEN) return false;
    this.socket.send(JSON.stringify(frame));
    return true;
  }

  /** Skips the wait of a pending reconnect (e.g. the network came back). */
  reconnectNow(): void {
    if (this.state !== 'offline') return;
    clearTimeout(this.reconnectTimer);
    this.attempts = 0;
    void this.open();
  }

  private async open(): Promise<void> {
    // A browser that knows it is offline: wait for its `online` event rather than retry in vain.
    if ((globalThis as { navigator?: { onLine?: boolean } }).navigator?.onLine === false) return this.setState('offline');
    this.setState('connecting');
    let token: string;
    try {
      // Two failed opens in a row may be an access token the hub refuses: refresh it first.
      token = await this.opts.accessToken(this.failedBeforeOpen >= 2);
    } catch {
      return this.scheduleReconnect();
    }
    if (this.state === 'closed') return;
    const params = new URLSearchParams({ access_token: token });
    if (this.position > 0) params.set('since', String(this.position));
    const socket = new this.opts.WebSocket(`${this.opts.wsBaseUrl}/ws?${params}`);
    this.socket = socket;
    let opened = false;
    socket.onopen = () => {
      opened = true;
      this.failedBeforeOpen = 0;
      this.startPing(socket);
    };
    socket.onmessage = (ev) => {
      if (socket !== this.socket) return;
      let event: ServerEvent;
      try {
        event = JSON.parse(String(ev.data));
      } catch {
        return;
      }
      this.chain = this.chain.then(() => this.receive(event)).catch(() => undefined);
    };
    socket.onerror = () => undefined;
    socket.onclose = (ev) => {
      if (socket !== this.socket) return;
      this.socket = null;
      this.stopPing();
      if (!opened) this.failedBeforeOpen++;
      if (this.state === 'closed') return;
      if (ev.code === 4401) {
        this.setState('closed');
        return this.opts.onRevoked();
      }
      this.scheduleReconnect();
    };
  }

  private async receive(event: ServerEvent): Promise<void> {
    if (event.type === 'pong') clearTimeout(this.pongTimer);
    if (isRoomEvent(event)) {
      if (event.stream_position <= this.position) return; // already had it
      this.position = event.stream_position;
    }
    if (event.type === 'ready') {
      this.position = Math.max(this.position, event.stream_position);
      this.attempts = 0;
    }
    try {
      await this.opts.onEvent(event);
    } catch (err) {
      // A `ready` that could not be handled (loading the rooms failed): try again on a new socket.
      if (event.type === 'ready') return this.drop('ready failed');
      throw err;
    }
    if (event.type === 'ready') this.setState('live');
  }

  private scheduleReconnect(): void {
    if (this.state === 'closed') return;
    this.setState('offline');
    const max = this.opts.maxDelayMs ?? 30_000;
    const ceiling = Math.min(max, (this.opts.baseDelayMs ?? 500) * 2 ** Math.min(this.attempts++, 16));
    // Half fixed, half random ("equal jitter"): clients cut off together do not come back together.
    const delay = ceiling / 2 + Math.random() * (ceiling / 2);
    clearTimeout(this.reconnectTimer);
    this.reconnectTimer = setTimeout(() => void this.open(), delay);
  }

  /**
   * Gives up on the current socket at once (the network is gone or the hub stopped answering):
   * a closing handshake over a dead network could take long, so its close is not waited for.
   */
  private drop(reason: string): void {
    const socket = this.socket;
    if (!socket) return;
    this.socket = null;
    this.stopPing();
    socket.close(4000, reason);
    this.scheduleReconnect();
  }

  private startPing(socket: WebSocketLike): void {
    const interval = this.opts.pingIntervalMs ?? 25_000;
    this.pingTimer = setInterval(() => {
      if (socket.readyState !== OPEN) return;
      socket.send(JSON.stringify({ type: 'ping' }));
      clearTimeout(this.pongTimer);
      this.pongTimer = setTimeout(() => this.drop('no pong'), this.opts.pongTimeoutMs ?? 10_000);
    }, interval);
  }

  private stopPing(): void {
    clearInterval(this.pingTimer);
    clearTimeout(this.pongTimer);
  }

  private setState(state: ConnectionState): void {
    if (this.state === state) return;
    this.state = state;
    this.opts.onState(state);
  }
}
