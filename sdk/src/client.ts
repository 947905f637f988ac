/**
 * `SwitchboardClient`: one signed-in device session. `api` is a typed client for the whole REST API
 * (openapi-fetch over the types generated from the hub's OpenAPI document), with the access token
 * added and renewed before it expires; `connect()` opens the WebSocket (./realtime.ts), feeds the
 * room store (./store.ts) and flushes the outbox (./outbox.ts); `on()` subscribes to typed events.
 *
 * E2EE can hook in through `transform`: `outgoing` turns a draft into the frame's fields (say an
 * `envelope` instead of `content`) once, when the message is written, so a resend carries the very
 * same frame; `incoming` turns a received message (with its `envelope`) into one with plaintext,
 * before the store and the listeners see it.
 */
import createClient, { type Client, type Middleware } from 'openapi-fetch';
import { SwitchboardError } from './errors.js';
import type { ClientFrame, EventMessage, EventOf, PresenceStatus, SendFrame, ServerEvent, ServerEventType } from './events.js';
import { Outbox, type OutboxItem } from './outbox.js';
import { RealtimeConnection, type ConnectionState, type WebSocketConstructor } from './realtime.js';
import { AuthSession, MemorySessionStore, type SessionStore, type StoredSession } from './session.js';
import { RoomStore } from './store.js';
import type { Attachment, BodyOf, paths, SessionTokens } from './types.js';

/** The E2EE hooks (see the module comment). */
export interface MessageTransform {
  outgoing?(draft: { room_id: string; content: string; reply_to?: string; attachments?: string[] }): Promise<Partial<SendFrame>>;
  incoming?(message: EventMessage, roomId: string): Promise<EventMessage>;
}

export interface ClientOptions {
  /** The hub, e.g. "https://chat.example.com" (no trailing slash needed). */
  baseUrl: string;
  /** Default: the global fetch. */
  fetch?: typeof fetch;
  /** Default: the global WebSocket (browsers, Node 22+); on Node 20 pass the `ws` package's. */
  WebSocket?: WebSocketConstructor;
  /** Where the session is kept between runs (default: memory only). */
  sessionStore?: SessionStore;
  /** Renew the access token this long before it expires, ms (default 60 000, at most a third of its lifetime). */
  refreshMarginMs?: number;
  /** Reconnect delays: the first, ms (default 500), doubling up to `maxReconnectDelayMs` (default 30 000). */
  reconnectDelayMs?: number;
  maxReconnectDelayMs?: number;
  /** Ping interval and pong timeout of the socket, ms (defaults 25 000 and 10 000). */
  pingIntervalMs?: number;
  pongTimeoutMs?: number;
  transform?: MessageTransform;
}

type Listener<T extends ServerEventType> = (event: EventOf<T>) => void;
type ClientEvent = 'state' | 'outbox' | 'ended';

export class SwitchboardClient {
  /** The typed REST client: `client.api.GET('/api/rooms/{id}', { params: { path: { id } } })`. */
  readonly api: Client<paths>;
  readonly store: RoomStore;
  readonly outbox = new Outbox();
  private readonly auth: AuthSession;
  private readonly fetchFn: typeof fetch;
  private realtime?: RealtimeConnection;
  private readonly listeners = new Map<string, Set<(payload: never) => void>>();
  private loaded = false;

  private constructor(
    private readonly opts: ClientOptions,
    session: StoredSession,
    private readonly sessionStore: SessionStore,
  ) {
    this.fetchFn = opts.fetch ?? globalThis.fetch.bind(globalThis);
    const margin = opts.refreshMarginMs ?? Math.min(60_000, (session.tokens.expires_in * 1000) / 3);
    this.auth = new AuthSession(this.baseUrl, this.fetchFn, session, sessionStore, margin);
    this.auth.onEnded = (error) => this.ended(error);
    this.store = new RoomStore(session.tokens.user.id);
    this.api = createClient<paths>({ baseUrl: this.baseUrl, fetch: (req) => this.fetchFn(req) });
    const auth: Middleware = {
      onRequest: async ({ request, schemaPath }) => {
        if (PUBLIC_PATHS.has(schemaPath)) return request;
        request.headers.set('authorization', `Bearer ${await this.auth.accessToken()}`);
        return request;
      },
    };
    this.api.use(auth);
    this.outbox.onChange(() => this.emit('outbox', undefined));
  }

  /** Creates an account (201) and signs in. @throws SwitchboardError (EMAIL_TAKEN, VALIDATION_FAILED, REGISTRATION_CLOSED, …). */
  static async register(opts: ClientOptions, body: BodyOf<'register'>): Promise<SwitchboardClient> {
    return SwitchboardClient.signIn(opts, '/api/auth/register', body);
  }

  /** Signs in with email and password. @throws SwitchboardError INVALID_CREDENTIALS, RATE_LIMITED. */
  static async login(opts: ClientOptions, body: BodyOf<'login'>): Promise<SwitchboardClient> {
    return SwitchboardClient.signIn(opts, '/api/auth/login', body);
  }

  /**
   * The session kept in `opts.sessionStore` (a reloaded page), refreshed when its access token has
   * expired. @returns null when there is none, or it can no longer be refreshed.
   */
  static async restore(opts: ClientOptions & { sessionStore: SessionStore }): Promise<SwitchboardClient | null> {
    const stored = await opts.sessionStore.load();
    if (!stored) return null;
    const client = new SwitchboardClient(opts, stored, opts.sessionStore);
    try {
      await client.auth.accessToken();
      return client;
    } catch (err) {
      if (err instanceof SwitchboardError && err.status === 401) return null;
      throw err;
    }
  }

  private static async signIn(opts: ClientOptions, path: string, body: unknown): Promise<SwitchboardClient> {
    const fetchFn = opts.fetch ?? globalThis.fetch.bind(globalThis);
    const res = await fetchFn(`${trimSlash(opts.baseUrl)}${path}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
    const json = await res.json().catch(() => null);
    if (!res.ok) throw SwitchboardError.fromBody(json, res.status);
    const session = AuthSession.stored(json as SessionTokens);
    const store = opts.sessionStore ?? new MemorySessionStore();
    await store.save(session);
    return new SwitchboardClient(opts, session, store);
  }

  get baseUrl(): string {
    return trimSlash(this.opts.baseUrl);
  }

  /** The signed-in user as of sign-in. */
  get user(): SessionTokens['user'] {
    return this.auth.tokens.user;
  }

  get deviceId(): string {
    return this.auth.tokens.device_id;
  }

  /** Installs the E2EE hooks (see the module comment), e.g. `E2eeClient.transform` from `@switchboard/sdk/e2ee`. */
  useTransform(transform: MessageTransform): void {
    this.opts.transform = transform;
  }

  /** The socket's state (`closed` before `connect()`). */
  get connectionState(): ConnectionState {
    return this.realtime?.connectionState ?? 'closed';
  }

  /** A valid access token (renewed first when it is about to expire). */
  accessToken(): Promise<string> {
    return this.auth.accessToken();
  }

  /**
   * Opens the WebSocket and keeps it open (reconnecting and resuming) until `disconnect()`. The first
   * `ready` loads the room list, members, presence and profiles into the store.
   * @returns once the socket is live and the store loaded.
   */
  connect(): Promise<void> {
    const ws = this.opts.WebSocket ?? (globalThis as { WebSocket?: WebSocketConstructor }).WebSocket;
    if (!ws) throw new Error('No WebSocket: pass options.WebSocket (e.g. the `ws` package on Node 20)');
    return new Promise((resolve, reject) => {
      let settled = false;
      // Per call (a connect after a disconnect reuses the connection): settled by the next `live`.
      const offState = this.on('state', (state) => {
        if (state !== 'live' || settled) return;
        settled = true;
        offState();
        resolve();
      });
      this.realtime ??= new RealtimeConnection({
        wsBaseUrl: this.baseUrl.replace(/^http/, 'ws'),
        WebSocket: ws,
        accessToken: async (force) => (force ? this.auth.refresh().then(() => this.auth.tokens.token) : this.auth.accessToken()),
        onEvent: (event) => this.receive(event),
        onState: (state) => {
          if (state !== 'live') this.outbox.requeueSent();
          if (state === 'live') this.flushOutbox();
          this.emit('state', state);
        },
        onRevoked: () => this.ended(new SwitchboardError('UNAUTHORIZED', 'The device session was revoked', 401)),
        baseDelayMs: this.opts.reconnectDelayMs,
        maxDelayMs: this.opts.maxReconnectDelayMs,
        pingIntervalMs: this.opts.pingIntervalMs,
        pongTimeoutMs: this.opts.pongTimeoutMs,
      });
      this.once('ended', (error) => !settled && ((settled = true), reject(error)));
      this.realtime.start();
    });
  }

  /** Closes the socket (the outbox keeps what was not acknowledged). */
  disconnect(): void {
    this.realtime?.stop();
  }

  /** Ends this device session on the hub (its sockets close with 4401) and forgets it locally. */
  async logout(): Promise<void> {
    this.disconnect();
    await this.api.POST('/api/auth/logout').catch(() => undefined);
    await this.auth.end();
  }

  /**
   * Writes a message: it goes into the outbox at once (with a fresh `txn_id`) and out over the
   * socket when it is live, in order, again after every reconnect until the hub acknowledges it.
   * @returns the outbox item (its `txn_id` names it in `message.sent`).
   */
  async send(roomId: string, content: string, opts: { replyTo?: string; attachments?: string[] } = {}): Promise<OutboxItem> {
    const draft = { room_id: roomId, content, ...(opts.replyTo ? { reply_to: opts.replyTo } : {}), ...(opts.attachments?.length ? { attachments: opts.attachments } : {}) };
    const txn_id = randomId();
    const extra = this.opts.transform?.outgoing ? await this.opts.transform.outgoing(draft) : {};
    const frame: SendFrame = { type: 'message.send', ...draft, ...extra, txn_id };
    const item: OutboxItem = { txn_id, room_id: roomId, content, reply_to: opts.replyTo, attachments: opts.attachments, frame, state: 'queued', created_ms: Date.now() };
    this.outbox.add(item);
    this.flushOutbox();
    return item;
  }

  /** Sends a failed outbox item again (same `txn_id`). */
  retry(txnId: string): void {
    this.outbox.requeue(txnId);
    this.flushOutbox();
  }

  /** Sends a frame now if the socket is live. @returns false when it is not (typing, receipts: best effort). */
  sendFrame(frame: ClientFrame): boolean {
    return this.realtime?.send(frame) ?? false;
  }

  setTyping(roomId: string, typing: boolean): boolean {
    return this.sendFrame({ type: typing ? 'typing.start' : 'typing.stop', room_id: roomId });
  }

  /** Moves the caller's read receipt to `messageId` (over the socket, else REST). */
  async markRead(roomId: string, messageId: string): Promise<void> {
    if (this.sendFrame({ type: 'message.read', room_id: roomId, message_id: messageId })) return;
    await this.call(this.api.POST('/api/rooms/{room_id}/read', { params: { path: { room_id: roomId } }, body: { message_id: messageId } }));
  }

  setPresence(status: PresenceStatus, statusText?: string): boolean {
    return this.sendFrame({ type: 'presence.update', status, ...(statusText !== undefined ? { status_text: statusText } : {}) });
  }

  /** Adds or removes the caller's reaction `key` (REST, so it works while the socket is down). */
  async react(messageId: string, key: string, add: boolean): Promise<void> {
    const params = { params: { path: { id: messageId, key } } };
    await this.call(add ? this.api.PUT('/api/messages/{id}/reactions/{key}', params) : this.api.DELETE('/api/messages/{id}/reactions/{key}', params));
  }

  /**
   * Loads a page of a room's history into the store: the latest (with the members' read receipts),
   * or with `older` the one before the first loaded message.
   */
  async loadHistory(roomId: string, opts: { older?: boolean; limit?: number } = {}): Promise<void> {
    const first = opts.older ? this.store.room(roomId)?.messages[0]?.id : undefined;
    if (opts.older && !first) return;
    const page = await this.call(this.api.GET('/api/rooms/{room_id}/messages', { params: { path: { room_id: roomId }, query: { limit: opts.limit ?? 50, ...(first ? { before: first } : {}) } } }));
    const messages = await Promise.all(page.messages.map(async (m) => ({ ...(await this.decode(m, roomId)), stream_position: m.stream_position })));
    this.store.addHistory(roomId, { messages, has_more: page.has_more }, Boolean(opts.older));
    if (!opts.older) this.store.setReceipts(roomId, await this.call(this.api.GET('/api/rooms/{id}/receipts', { params: { path: { id: roomId } } })));
  }

  /**
   * Uploads a file (`POST /api/attachments`, multipart) with progress where the platform reports it
   * (XMLHttpRequest in browsers), else with fetch. @param onProgress fraction sent, 0 to 1.
   * @throws SwitchboardError ATTACHMENT_TOO_LARGE, VALIDATION_FAILED, …
   */
  async upload(file: Blob, filename: string, onProgress?: (fraction: number) => void): Promise<Attachment> {
    const form = new FormData();
    form.append('file', file, filename);
    const token = await this.auth.accessToken();
    const url = `${this.baseUrl}/api/attachments`;
    if (typeof XMLHttpRequest === 'undefined') {
      const res = await this.fetchFn(url, { method: 'POST', headers: { authorization: `Bearer ${token}` }, body: form });
      const body = await res.json().catch(() => null);
      if (!res.ok) throw SwitchboardError.fromBody(body, res.status);
      onProgress?.(1);
      return body as Attachment;
    }
    return new Promise((resolve, reject) => {
      const xhr = new XMLHttpRequest();
      xhr.open('POST', url);
      xhr.setRequestHeader('authorization', `Bearer ${token}`);
      xhr.upload.onprogress = (e) => e.lengthComputable && onProgress?.(e.loaded / e.total);
      xhr.onerror = () => reject(new SwitchboardError('NETWORK', 'Upload failed: no answer', 0));
      xhr.onload = () => {
        const body = safeJson(xhr.responseText);
        if (xhr.status === 201) return onProgress?.(1), resolve(body as Attachment);
        reject(SwitchboardError.fromBody(body, xhr.status));
      };
      xhr.send(form);
    });
  }

  /** Fetches an attachment or thumbnail (`url` as messages carry it: a path on the hub) with the bearer token. */
  async fetchAttachment(url: string): Promise<Blob> {
    const res = await this.fetchFn(`${this.baseUrl}${url}`, { headers: { authorization: `Bearer ${await this.auth.accessToken()}` } });
    if (!res.ok) throw SwitchboardError.fromBody(await res.json().catch(() => null), res.status);
    return res.blob();
  }

  /**
   * Unwraps an `api` call: its data, or throws its error.
   * @throws SwitchboardError with the hub's code, or NETWORK when there was no answer.
   */
  async call<T>(request: Promise<{ data?: T; error?: unknown; response: Response }>): Promise<T> {
    let result: { data?: T; error?: unknown; response: Response };
    try {
      result = await request;
    } catch (err) {
      if (err instanceof SwitchboardError) throw err;
      throw new SwitchboardError('NETWORK', `No answer from the hub: ${(err as Error).message}`, 0);
    }
    if (result.error !== undefined || !result.response.ok) throw SwitchboardError.fromBody(result.error, result.response.status);
    return result.data as T;
  }

  /** Subscribes to a socket event type ('*' for all). @returns the unsubscribe function. */
  on<T extends ServerEventType>(type: T, listener: Listener<T>): () => void;
  on(type: '*', listener: (event: ServerEvent) => void): () => void;
  /** `state`: the socket's state changed; `outbox`: the outbox changed; `ended`: the session ended (log in again). */
  on(type: 'state', listener: (state: ConnectionState) => void): () => void;
  on(type: 'outbox', listener: () => void): () => void;
  on(type: 'ended', listener: (error: SwitchboardError) => void): () => void;
  on(type: string, listener: (payload: never) => void): () => void {
    let set = this.listeners.get(type);
    if (!set) this.listeners.set(type, (set = new Set()));
    set.add(listener);
    return () => set.delete(listener);
  }

  private once(type: ClientEvent, listener: (payload: never) => void): void {
    const off = this.on(type as 'ended', (payload) => {
      off();
      listener(payload as never);
    });
  }

  private emit(type: string, payload: unknown): void {
    for (const l of this.listeners.get(type) ?? []) l(payload as never);
  }

  private async receive(event: ServerEvent): Promise<void> {
    if (event.type === 'message.new') event = { ...event, message: await this.decode(event.message, event.room_id) };
    if (event.type === 'ready' && !this.loaded) await this.loadState();
    if (event.type === 'message.sent' && event.txn_id) this.outbox.acknowledge(event.txn_id);
    if (event.type === 'error' && event.txn_id) this.onFrameError(event);
    this.store.apply(event);
    if (event.type === 'room.updated' && this.loaded) void this.loadProfiles(event.room.members.map((m) => m.user_id)).catch(() => undefined);
    this.emit(event.type, event);
    this.emit('*', event);
  }

  private async decode(message: EventMessage, roomId: string): Promise<EventMessage> {
    return this.opts.transform?.incoming && 'envelope' in message ? this.opts.transform.incoming(message, roomId) : message;
  }

  /** A send the hub refused: retried after a rate limit, otherwise failed (the UI may retry or discard it). */
  private onFrameError(event: EventOf<'error'>): void {
    if (!this.outbox.list().some((i) => i.txn_id === event.txn_id)) return;
    if (event.code === 'RATE_LIMITED') {
      setTimeout(() => this.retry(event.txn_id!), event.retry_after_ms ?? 1000);
      return;
    }
    this.outbox.fail(event.txn_id!, { code: event.code, message: event.message });
  }

  private flushOutbox(): void {
    if (this.connectionState !== 'live') return;
    for (const item of this.outbox.takeQueued()) {
      if (!this.sendFrame(item.frame)) return this.outbox.requeueSent();
    }
  }

  /** After the first `ready`: rooms with members, presence of co-members, and their public profiles. */
  private async loadState(): Promise<void> {
    const summaries = await this.call(this.api.GET('/api/rooms'));
    const rooms = await mapLimit(summaries, 8, (s) => this.call(this.api.GET('/api/rooms/{id}', { params: { path: { id: s.id } } })));
    this.store.setRooms(summaries.map((summary, i) => ({ summary, room: rooms[i] })));
    this.loaded = true;
    await this.loadProfiles(this.store.coMemberIds());
  }

  /** Presence and public profiles (bridge ghosts carry `bridge_id`) of the users among `ids` not known yet. */
  private async loadProfiles(ids: string[]): Promise<void> {
    const unknown = ids.filter((id) => id !== this.user.id && !this.store.user(id));
    if (unknown.length === 0) return;
    const [presence, users] = await Promise.all([
      this.call(this.api.POST('/api/presence/query', { body: { user_ids: unknown.slice(0, 500) } })),
      mapLimit(unknown, 8, (id) => this.call(this.api.GET('/api/users/{id}', { params: { path: { id } } })).catch(() => null)),
    ]);
    this.store.setPresence(presence);
    this.store.setUsers(users.filter((u) => u !== null));
  }

  private ended(error: SwitchboardError): void {
    this.realtime?.stop();
    void this.auth.end();
    this.emit('ended', error);
  }
}

/** Routes that take no access token. */
const PUBLIC_PATHS = new Set(['/api/auth/register', '/api/auth/login', '/api/auth/refresh', '/healthz', '/readyz']);

function trimSlash(url: string): string {
  return url.replace(/\/+$/, '');
}

function safeJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return null;
  }
}

/** A random id for a `txn_id` (crypto.randomUUID where the platform has it: browsers on https or localhost, Node). */
function randomId(): string {
  return globalThis.crypto?.randomUUID?.() ?? `${Date.now().toString(36)}-${Math.random().toString(36).slice(2)}${Math.random().toString(36).slice(2)}`;
}

/** `fn` over `items` with at most `limit` calls in flight. @returns the results in order. */
async function mapLimit<T, R>(items: T[], limit: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array(items.length);
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(limit, items.length) }, async () => {
      while (next < items.length) {
        const i = next++;
        out[i] = await fn(items[i]);
      }
    }),
  );
  return out;
}
