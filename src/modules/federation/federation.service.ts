/**
 * Federation (docs/FEDERATION.md): rooms shared between hubs, each sequenced by its host (the hub
 * where it was created); every participating hub keeps a full copy and speaks for its own users.
 *
 * - The relay follows this hub's event log (cursor in `federation_cursor`). For a room this hub hosts
 *   it turns every event into a PDU, gives it the next `room_seq` and the `prev_hash` chain, signs it,
 *   stores it in `federation_events` and queues it for every other hub with members (a hub that just
 *   got its first member is queued a snapshot instead: the room, its members and the last 100
 *   events), all in the transaction that moves the cursor. For a room another hub hosts it forwards
 *   what this hub's own users did to the host, signed by this hub as origin.
 * - Inbound transactions (`receive`) are applied through the owning services, as the sender's
 *   user on this hub (a shadow user for remote senders), so local clients see them like any event.
 * - One durable outbound queue per peer (`federation_outbox`), sent by a `TransactionSender`.
 */
import crypto from 'node:crypto';
import { Readable } from 'node:stream';
import { Gauge, type Registry } from 'prom-client';
import type { Logger } from 'pino';
import type { Config } from '../../config/schema.js';
import type { Database, Queryable } from '../../db/database.js';
import type { Role, RoomType, TypingEvent, WireRoomEvent } from '../../events/catalog.js';
import type { PubSub } from '../../events/pubsub.js';
import { Follower } from '../../events/follower.js';
import { toWire, type EventStream, type StreamEvent } from '../../events/stream.js';
import { TransactionSender } from '../../events/transaction-sender.js';
import { AppError } from '../../errors.js';
import type { AttachmentsService, OpenedFile, RemoteFile } from '../attachments/attachments.service.js';
import type { AttachmentRow } from '../attachments/attachments.repository.js';
import { attachmentView } from '../attachments/attachments.view.js';
import type { MessagesService } from '../messages/messages.service.js';
import type { MessageView, SendInput } from '../messages/messages.view.js';
import type { RoomsService } from '../rooms/rooms.service.js';
import type { PresenceService, PresenceStatus, PresenceView } from '../presence/presence.service.js';
import type { TypingService } from '../typing/typing.service.js';
import type { UserRow } from '../users/users.repository.js';
import type { UsersService } from '../users/users.service.js';
import { publicKeyFromRaw, type FederationKey } from './federation.keys.js';
import { federationRepository as repo } from './federation.repository.js';
import { hashJson, signJson, signRequest, verifyJson, verifyRequest } from './federation.signatures.js';

/** A federated event. `room_seq`, `prev_hash` and `signatures[host]` are set by the host. */
export interface Pdu {
  event_id: string;
  room_id: string;
  type: 'message' | 'edit' | 'redact' | 'reaction' | 'read' | 'leave' | 'room';
  /** The acting user's address (@username:server_name); the host's server_name for `room`. */
  sender: string;
  origin: string;
  origin_ts: number;
  content: Record<string, any>;
  room_seq?: number;
  prev_hash?: string;
  /** server_name → Ed25519 signature (base64url) over the canonical JSON of the PDU without `signatures` (and, for the origin's, without room_seq/prev_hash). */
  signatures: Record<string, string>;
}

export interface Snapshot {
  room_id: string;
  host: string;
  /** The newest `room` PDU: the room and its members. */
  state: Pdu;
  /** The last 100 events, oldest first. */
  events: Pdu[];
}

type PeerView = Awaited<ReturnType<FederationService['peerStatus']>>[number];

export interface FedTransaction {
  events: Pdu[];
  snapshots?: Snapshot[];
  ephemeral: unknown[];
}

const MENTION_ID = /<@([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})>/gi;
const MENTION_ADDRESS = /<@(@[a-z0-9._-]{1,32}:[a-z0-9.-]+(?::[0-9]+)?)>/g;
const RELAY_BATCH = 200;
const OUT_BATCH = 100;
const SNAPSHOT_EVENTS = 100;
const REQUEST_TIMEOUT_MS = 15_000;
/** How often received transaction ids older than `federation.txn_retention_s` are deleted, at most, ms. */
const PRUNE_EVERY_MS = 3_600_000;
/** How long fetching a file from its hub may take, whole, ms. */
const MEDIA_TIMEOUT_MS = 300_000;
/** How long a send in a room hosted elsewhere waits for the host's order before it is answered as pending, ms. */
const PENDING_WAIT_MS = 3000;

/** A peer's answer other than 2xx. */
export class PeerAnswerError extends Error {
  constructor(
    message: string,
    readonly status: number,
  ) {
    super(message);
  }

  /**
   * A refusal the peer will repeat however often it is asked: a 4xx other than 401 (its keys or
   * configuration may change), 408, 425 and 429.
   */
  get forGood(): boolean {
    return this.status >= 400 && this.status < 500 && ![401, 408, 425, 429].includes(this.status);
  }
}

/** The presence statuses a peer may send (as a local user may set). */
const PRESENCE_STATUSES: PresenceStatus[] = ['online', 'away', 'busy', 'offline'];

export class FederationService {
  readonly serverName: string;
  private readonly relay: Follower;
  private readonly senders = new Map<string, TransactionSender<FedTransaction>>();
  private unsubscribe?: () => void;
  private readonly abort = new AbortController();
  private readonly roomLocks = new Map<string, Promise<void>>();
  /** Typing subscriptions of the federated rooms, by room id. */
  private readonly typingSubs = new Map<string, () => void>();
  /** Sends waiting for the host to order them, by message id. */
  private readonly awaiting = new Map<string, () => void>();
  /** Per peer: the queue position up to which items go one per transaction (a batch was refused, to isolate the item at fault). */
  private readonly splitUntil = new Map<string, number>();
  private pruneTimer?: NodeJS.Timeout;

  constructor(
    private readonly db: Database,
    private readonly stream: EventStream,
    private readonly users: UsersService,
    private readonly rooms: RoomsService,
    private readonly messages: MessagesService,
    private readonly attachments: AttachmentsService,
    private readonly pubsub: PubSub,
    private readonly typing: TypingService,
    private readonly presence: PresenceService,
    private readonly config: Config,
    private readonly key: FederationKey,
    private readonly log: Logger,
  ) {
    this.serverName = config.federation.server_name;
    this.relay = new Follower({ name: 'federation relay', log, step: () => this.relayStep(), retry: { baseMs: 250, maxMs: 5000 } });
  }

  get enabled(): boolean {
    return this.config.federation.enabled;
  }

  /** `GET /_federation/v1/key`. */
  keyDocument() {
    return { server_name: this.serverName, keys: [{ key_id: this.key.keyId, public_key: this.key.publicKey }], valid_until_ms: Date.now() + 86_400_000 };
  }

  /** Starts the relay (its cursor at the stream's end on first start) and the peers' senders. */
  async start(): Promise<void> {
    if (!this.enabled) return;
    await repo.initCursor(this.db, await this.stream.maxPosition());
    this.unsubscribe = this.stream.onEvents((events) => {
      for (const e of events) if (e.type === 'message.new') this.awaiting.get((toWire(e) as WireRoomEvent & { type: 'message.new' }).message.id)?.();
      this.relay.wake();
    });
    this.messages.routeRemoteSends((userId, roomId, input, attachmentIds) => this.forwardSend(userId, roomId, input, attachmentIds));
    this.attachments.fetchRemoteWith((origin, id, thumbnail) => this.fetchMedia(origin, id, thumbnail));
    this.rooms.onLeave((tx, roomId, userId) => this.forwardLeave(tx, roomId, userId));
    this.presence.onChange((userId, view) => void this.sendPresence(userId, view).catch((err) => this.log.debug({ err }, 'presence not sent')));
    for (const roomId of await repo.roomIds(this.db)) this.followTyping(roomId);
    for (const state of await repo.outStates(this.db)) this.sender(state.peer).wake();
    for (const peer of this.config.federation.peers) this.sender(peer.server_name);
    this.relay.wake();
    const prune = () => void this.pruneReceivedTxns().catch((err) => this.log.warn({ err }, 'pruning federation_txns failed; tried again later'));
    prune();
    this.pruneTimer = setInterval(prune, Math.min(PRUNE_EVERY_MS, (this.config.federation.txn_retention_s * 1000) / 2)).unref();
  }

  /**
   * Deletes the ids of transactions received more than `federation.txn_retention_s` ago (run at start
   * and periodically). A peer repeating such an old transaction is deduplicated per event only.
   * @returns how many were deleted.
   */
  async pruneReceivedTxns(): Promise<number> {
    const n = await repo.pruneTxns(this.db, this.config.federation.txn_retention_s);
    if (n) this.log.info({ deleted: n }, 'pruned received federation transaction ids');
    return n;
  }

  async stop(): Promise<void> {
    clearInterval(this.pruneTimer);
    this.unsubscribe?.();
    for (const unsubscribe of this.typingSubs.values()) unsubscribe();
    this.typingSubs.clear();
    this.abort.abort();
    await this.relay.stop();
    await Promise.all([...this.senders.values()].map((s) => s.stop()));
  }

  // ---- peers, keys, signed requests ----

  private peerConfig(server: string) {
    return this.config.federation.peers.find((p) => p.server_name === server);
  }

  private peerUrl(server: string): string {
    return (this.peerConfig(server)?.url ?? `https://${server}`).replace(/\/$/, '');
  }

  /** May `server` federate with this hub at all (listed, or open; never denied)? */
  private allowed(server: string): boolean {
    if (server === this.serverName || this.config.federation.deny.includes(server)) return false;
    return this.config.federation.open || !!this.peerConfig(server);
  }

  /** The peer's public key: pinned in the config, else pinned on first use (fetched from its /key). */
  private async keyFor(server: string): Promise<crypto.KeyObject | null> {
    if (!this.allowed(server)) return null;
    const configured = this.peerConfig(server)?.public_key;
    if (configured) return publicKeyFromRaw(configured);
    let pinned = await repo.pinnedKey(this.db, server);
    if (!pinned) {
      const res = await fetch(`${this.peerUrl(server)}/_federation/v1/key`, { signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS) }).catch(() => null);
      const doc = res?.ok ? ((await res.json().catch(() => null)) as { server_name?: string; keys?: { public_key: string }[] } | null) : null;
      const fetched = doc?.server_name === server ? doc.keys?.[0]?.public_key : undefined;
      if (!fetched) return null;
      pinned = await repo.pinKey(this.db, server, fetched);
    }
    return publicKeyFromRaw(pinned);
  }

  /**
   * Checks a request's HTTP message signature (see federation.signatures.ts); a peer that calls in
   * has its outbound queue retried at once.
   * @returns the origin's server_name.
   * @throws AppError FEDERATION_UNAUTHORIZED (401) when federation is off or the request is not validly signed by an allowed hub.
   */
  async authenticate(req: { method: string; path: string; headers: Record<string, string | string[] | undefined>; body: string }): Promise<string> {
    if (!this.enabled) throw new AppError('FEDERATION_UNAUTHORIZED', 'Federation is disabled');
    let origin: string;
    try {
      origin = await verifyRequest(req, this.serverName, (server) => this.keyFor(server));
    } catch (err) {
      throw new AppError('FEDERATION_UNAUTHORIZED', `Request signature refused: ${(err as Error).message}`);
    }
    this.senders.get(origin)?.retryNow();
    return origin;
  }

  /** A signed request to a peer. @returns the parsed JSON answer. @throws unless 2xx. */
  private async request(server: string, method: 'GET' | 'PUT', path: string, body?: unknown): Promise<any> {
    const text = body === undefined ? '' : JSON.stringify(body);
    const headers = await signRequest(this.key, this.serverName, { method, destination: server, path, body: text });
    const res = await fetch(`${this.peerUrl(server)}${path}`, {
      method,
      headers,
      body: body === undefined ? undefined : text,
      signal: AbortSignal.any([this.abort.signal, AbortSignal.timeout(REQUEST_TIMEOUT_MS)]),
    });
    const answer = await res.json().catch(() => null);
    if (!res.ok) throw new PeerAnswerError(`${server} answered ${method} ${path} with ${res.status}: ${JSON.stringify(answer)}`, res.status);
    return answer;
  }

  // ---- media: files of messages, fetched from the hub they were uploaded to ----

  /**
   * The bytes of a file (or its thumbnail) of hub `origin`: a signed `GET /_federation/v1/media/:id`.
   * @throws AppError FEDERATION_UNAVAILABLE (503) unless `origin` answers 200.
   */
  private async fetchMedia(origin: string, id: string, thumbnail: boolean): Promise<AsyncIterable<Uint8Array>> {
    const path = `/_federation/v1/media/${encodeURIComponent(id)}${thumbnail ? '/thumbnail' : ''}`;
    if (!this.enabled || !this.allowed(origin)) throw new AppError('FEDERATION_UNAVAILABLE', `Hub ${origin} is not federated with this one`);
    const headers = await signRequest(this.key, this.serverName, { method: 'GET', destination: origin, path, body: '' });
    const res = await fetch(`${this.peerUrl(origin)}${path}`, { headers, signal: AbortSignal.any([this.abort.signal, AbortSignal.timeout(MEDIA_TIMEOUT_MS)]) }).catch((err: Error) => {
      throw new AppError('FEDERATION_UNAVAILABLE', `Hub ${origin} did not answer: ${err.message}`);
    });
    if (!res.ok || !res.body) {
      const answer = await res.text().catch(() => '');
      throw new AppError('FEDERATION_UNAVAILABLE', `Hub ${origin} answered ${res.status} for the file: ${answer.slice(0, 200)}`);
    }
    return Readable.fromWeb(res.body as import('node:stream/web').ReadableStream<Uint8Array>);
  }

  /**
   * `GET /_federation/v1/media/:id` (and `/thumbnail`) from `origin`: a file stored on this hub, for a
   * hub with a member in a federated room (that does not deny it) where a message carries the file.
   * @throws AppError INVALID_ATTACHMENT (404: unknown, not stored here, no thumbnail), FEDERATION_FORBIDDEN (403).
   */
  async media(origin: string, id: string, thumbnail: boolean): Promise<OpenedFile> {
    return this.attachments.openForPeer(id, thumbnail, async (roomIds) => {
      const shared: string[] = [];
      for (const roomId of roomIds) {
        const room = await repo.room(this.db, roomId);
        if (room && !room.deny.includes(origin)) shared.push(roomId);
      }
      const members = await this.users.findMany([...new Set([...(await this.rooms.memberIdsOf(this.db, shared)).values()].flat())]);
      if (!members.some((u) => u.server === origin)) throw new AppError('FEDERATION_FORBIDDEN', `${origin} shares no room where that file was sent`);
    });
  }

  /** The durable outbound queue of `peer` (created on first use). */
  private sender(peer: string): TransactionSender<FedTransaction> {
    let sender = this.senders.get(peer);
    if (sender) return sender;
    let ready: Promise<void> | undefined;
    const ensure = () => (ready ??= repo.ensureOutState(this.db, peer));
    sender = new TransactionSender<FedTransaction>({
      name: `federation peer ${peer}`,
      log: this.log,
      retry: { baseMs: 250, maxMs: this.config.federation.retry_max_ms },
      deliver: (txnId, body) => this.request(peer, 'PUT', `/_federation/v1/send/${encodeURIComponent(txnId)}`, body),
      refusedForGood: (err) => err instanceof PeerAnswerError && err.forGood,
      store: {
        state: async () => (await ensure(), repo.outState<FedTransaction>(this.db, peer)),
        collect: async (after) => {
          if ((this.splitUntil.get(peer) ?? 0) <= after) this.splitUntil.delete(peer);
          const limit = this.splitUntil.has(peer) ? 1 : OUT_BATCH;
          const items = await repo.outboxAfter(this.db, peer, after, limit);
          if (items.length === 0) return { body: null, upto: after, more: false };
          const body: FedTransaction = { events: [], snapshots: [], ephemeral: [] };
          for (const it of items) (it.kind === 'snapshot' ? body.snapshots! : it.kind === 'event' ? body.events : body.ephemeral).push(it.item);
          return { body, upto: items[items.length - 1].id, more: items.length === limit };
        },
        open: (prevSeq, txnId, upto, body) => repo.openOut(this.db, peer, prevSeq, txnId, upto, body),
        advance: (upto) => repo.advanceOut(this.db, peer, upto),
        close: (txnId) => repo.closeOut(this.db, peer, txnId),
        refused: (txnId, body, err) => this.refused(peer, txnId, body, err as PeerAnswerError),
      },
    });
    this.senders.set(peer, sender);
    return sender;
  }

  /**
   * `peer` refused transaction `txnId` for good (403 or another permanent 4xx, see PeerAnswerError):
   * the peer refuses a whole transaction for one event it will not take, so a transaction of several
   * items is given up and its items sent again one per transaction; a single item refused is
   * dead-lettered (`federation_dead_letters`, counted in the peers view and /metrics) and the queue
   * goes on.
   */
  private async refused(peer: string, txnId: string, body: FedTransaction, err: PeerAnswerError): Promise<void> {
    const items = body.events.length + (body.snapshots?.length ?? 0) + body.ephemeral.length;
    const state = await repo.outState<FedTransaction>(this.db, peer);
    if (state.pending_txn_id !== txnId) return; // another node settled it
    if (items > 1) {
      this.splitUntil.set(peer, state.pending_upto!);
      await repo.abandonOut(this.db, peer, txnId);
      return;
    }
    await this.db.transaction((tx) => repo.deadLetterOut(tx, peer, txnId, err.status, err.message.slice(0, 2000)));
    this.log.error({ peer, txn_id: txnId, status: err.status, err: err.message }, 'federation transaction refused for good: dead-lettered');
  }

  /**
   * `GET /api/admin/federation/peers`: per peer, `state` ("ok", "retrying" or "idle"), `queue_depth`
   * (items not yet accepted), `oldest_pending_age_ms`, `failures`, `backoff_ms` (until the next try),
   * `last_success_at`, `dead_letters` (transactions it refused for good).
   */
  async peerStatus() {
    const stats = await repo.queueStats(this.db);
    const states = await repo.outStates(this.db);
    const dead = await repo.deadLetterCounts(this.db);
    const names = [...new Set([...this.config.federation.peers.map((p) => p.server_name), ...states.map((s) => s.peer), ...stats.keys(), ...dead.keys()])].sort();
    const now = Date.now();
    return names.map((name) => {
      const st = states.find((s) => s.peer === name);
      const q = stats.get(name);
      const live = this.senders.get(name)?.status();
      const depth = q?.depth ?? 0;
      return {
        server_name: name,
        state: live && live.failures > 0 ? 'retrying' : depth > 0 ? 'sending' : 'idle',
        queue_depth: depth,
        oldest_pending_age_ms: q?.oldest ? Math.max(0, now - q.oldest.getTime()) : null,
        failures: live?.failures ?? 0,
        backoff_ms: live?.retry_at_ms ? Math.max(0, live.retry_at_ms - now) : 0,
        last_success_at: st?.last_success_at?.toISOString() ?? null,
        dead_letters: dead.get(name) ?? 0,
      };
    });
  }

  /**
   * The peers' view in /metrics: `switchboard_federation_queue_depth`, `_oldest_pending_seconds`,
   * `_failures` and `_backoff_seconds`, `_last_success_timestamp_seconds`, `_dead_letters`, each labelled `peer`.
   */
  registerMetrics(registry: Registry): void {
    const gauges = {
      queue_depth: ['switchboard_federation_queue_depth', 'Items queued for a peer and not yet accepted by it', (p: PeerView) => p.queue_depth],
      oldest: ['switchboard_federation_oldest_pending_seconds', 'Age of the oldest item queued for a peer', (p: PeerView) => (p.oldest_pending_age_ms ?? 0) / 1000],
      failures: ['switchboard_federation_failures', 'Failed transaction attempts to a peer in a row', (p: PeerView) => p.failures],
      backoff: ['switchboard_federation_backoff_seconds', 'Until the next attempt to a peer', (p: PeerView) => p.backoff_ms / 1000],
      success: ['switchboard_federation_last_success_timestamp_seconds', 'When a peer last accepted a transaction (0: never)', (p: PeerView) => (p.last_success_at ? Date.parse(p.last_success_at) / 1000 : 0)],
      dead: ['switchboard_federation_dead_letters', 'Transactions a peer refused for good (403 or another permanent 4xx), kept in federation_dead_letters', (p: PeerView) => p.dead_letters],
    } as const;
    const peerStatus = () => this.peerStatus();
    // One read of the peers per scrape, shared by the gauges.
    let scrape: Promise<PeerView[]> | null = null;
    for (const [name, help, value] of Object.values(gauges)) {
      new Gauge({
        name,
        help,
        labelNames: ['peer'],
        registers: [registry],
        async collect() {
          scrape ??= peerStatus().finally(() => setTimeout(() => (scrape = null), 0));
          this.reset();
          for (const p of await scrape) this.set({ peer: p.server_name }, value(p));
        },
      });
    }
  }

  /**
   * Sets the hubs a federated room refuses: nothing more is sent to them and their events for the
   * room are refused (403). @returns the room's federation settings.
   * @throws AppError INVALID_ROOM (404) when the room is not federated.
   */
  async setRoomDeny(roomId: string, deny: string[]): Promise<{ room_id: string; host: string; deny: string[]; servers: string[] }> {
    return this.db.transaction(async (tx) => {
      const room = await repo.room(tx, roomId, true);
      if (!room) throw new AppError('INVALID_ROOM', 'Not a federated room');
      const servers = room.servers.filter((s) => !deny.includes(s));
      await repo.setDeny(tx, roomId, deny);
      await repo.setRoomLog(tx, roomId, room.seq, room.last_hash, servers);
      return { room_id: roomId, host: room.host, deny, servers };
    });
  }

  // ---- addresses and users ----

  /** `@username:server` → its parts. @throws AppError VALIDATION_FAILED (400). */
  parseAddress(address: string): { username: string; server: string } {
    const m = /^@([a-z0-9._-]{1,32}):([a-z0-9.-]+(?::[0-9]+)?)$/.exec(address);
    if (!m) throw new AppError('VALIDATION_FAILED', `Not an address: ${address}`);
    return { username: m[1], server: m[2] };
  }

  /** The user of this hub an address names (creating the shadow user of a remote one). */
  private async userFor(address: string, name?: string): Promise<UserRow> {
    const { username, server } = this.parseAddress(address);
    if (server === this.serverName) {
      const u = await this.users.findByUsername(username, null);
      if (!u) throw new AppError('INVALID_USER', `Unknown user: ${address}`);
      return u;
    }
    const existing = await this.users.findByUsername(username, server);
    if (existing && (name === undefined || existing.name === name)) return existing;
    return this.users.upsertShadow({ server, username, name: name ?? existing?.name ?? username });
  }

  /**
   * `GET /api/users/lookup?address=`: the user of this hub with that address; for a remote address
   * the peer is asked (`GET /_federation/v1/users/:username`) and the shadow user created.
   * @throws AppError INVALID_USER (404), VALIDATION_FAILED (400), FEDERATION_UNAVAILABLE (502).
   */
  async lookup(address: string) {
    const { username, server } = this.parseAddress(address);
    if (server === this.serverName) {
      const u = await this.users.findByUsername(username, null);
      if (!u || u.deactivated_at) throw new AppError('INVALID_USER', 'User not found');
      return this.users.view(u);
    }
    if (!this.enabled || !this.allowed(server)) throw new AppError('INVALID_USER', `Hub ${server} is not federated with this one`);
    let profile: { username: string; name: string } | null;
    try {
      profile = await this.request(server, 'GET', `/_federation/v1/users/${encodeURIComponent(username)}`);
    } catch (err) {
      if (/ answered GET .* with 404/.test((err as Error).message)) throw new AppError('INVALID_USER', 'User not found');
      throw new AppError('FEDERATION_UNAVAILABLE', `Hub ${server} did not answer: ${(err as Error).message}`);
    }
    return this.users.view(await this.users.upsertShadow({ server, username, name: profile!.name }));
  }

  /** `GET /_federation/v1/users/:username`: a local user's public profile. @throws AppError INVALID_USER (404). */
  async profile(username: string) {
    const u = await this.users.findByUsername(username, null);
    if (!u || u.deactivated_at) throw new AppError('INVALID_USER', 'User not found');
    return { username: u.username, name: u.name, address: `@${u.username}:${this.serverName}` };
  }

  private address(u: UserRow): string {
    return `@${u.username}:${u.server ?? this.serverName}`;
  }

  /**
   * A local user's send in a room another hub hosts: queued (durably) to the host, which orders it;
   * this hub writes it when the host's order comes back, so every hub lists the room's messages in
   * the host's order. Answers with the message once it is written here, or after PENDING_WAIT_MS as
   * `pending` (kept, and sent when the host is reachable, in the order sent).
   * @returns null for rooms this hub hosts (and rooms that are not federated); else, once the send is
   *   queued to the host, `sent`: its answer to come.
   * @throws AppError NOT_A_MEMBER (403), INVALID_ATTACHMENT (404: an attachment unknown or not uploaded by the sender).
   */
  async forwardSend(userId: string, roomId: string, input: SendInput, attachmentIds: string[]): Promise<{ sent: Promise<{ message: MessageView; created: boolean; pending?: boolean }> } | null> {
    const room = await repo.room(this.db, roomId);
    if (!room || room.host === this.serverName) return null;
    await this.rooms.requireMember(this.db, roomId, userId);
    const files = attachmentIds.length ? await this.attachments.findMany(this.db, attachmentIds) : [];
    const missing = attachmentIds.find((id) => files.find((a) => a.id === id)?.uploader_id !== userId);
    if (missing) throw new AppError('INVALID_ATTACHMENT', `Unknown attachment: ${missing}`);
    const attached = attachmentIds.map((id) => files.find((a) => a.id === id)!);
    const user = (await this.users.find(this.db, userId))!;
    // A repeated txn_id names the same message.
    const id = input.txn_id ? uuidFrom(`${userId}:${input.txn_id}`) : crypto.randomUUID();
    const written = () =>
      this.messages.get(userId, id).catch((err) => (err instanceof AppError && err.code === 'INVALID_MESSAGE' ? null : Promise.reject(err)));
    const existing = await written();
    if (existing) return { sent: Promise.resolve({ message: existing, created: false }) };
    const createdAt = new Date().toISOString();
    const mentioned = await this.users.findMany([...new Set([...input.content.matchAll(MENTION_ID)].map((m) => m[1].toLowerCase()))]);
    const pdu: Pdu = {
      event_id: `m:${id}`,
      room_id: roomId,
      type: 'message',
      sender: this.address(user),
      origin: this.serverName,
      origin_ts: Date.now(),
      content: {
        id,
        content: this.mentionsOut(input.content, new Map(mentioned.map((u) => [u.id, u]))),
        reply_to: input.reply_to ?? null,
        created_at: createdAt,
        ...(attached.length ? { attachments: attached.map(remoteFile) } : {}),
      },
      signatures: {},
    };
    pdu.signatures[this.serverName] = signJson(this.key, unsigned(pdu));
    const arrived = new Promise<void>((resolve) => {
      this.awaiting.set(id, resolve);
      setTimeout(resolve, PENDING_WAIT_MS).unref();
    });
    try {
      await this.db.transaction((tx) => repo.enqueue(tx, room.host, 'event', pdu));
    } catch (err) {
      this.awaiting.delete(id);
      throw err;
    }
    this.sender(room.host).wake();
    // Written here once the host's order comes back; else answered pending (kept, sent when the host is back).
    const pendingAnswer = () => ({
      message: {
        id,
        room_id: roomId,
        user_id: userId,
        user_name: user.name,
        content: input.content,
        created_at: createdAt,
        edited_at: null,
        reply_to: input.reply_to ?? null,
        attachments: attached.map(attachmentView),
        mentions: [],
        reactions: [],
        stream_position: 0,
        delivered_at: null,
        deleted: false,
        encrypted: false,
        envelope: null,
      },
      created: true,
      pending: true,
    });
    const answer = async () => {
      const message = await written();
      return message ? { message, created: true } : pendingAnswer();
    };
    return { sent: arrived.finally(() => this.awaiting.delete(id)).then(answer) };
  }

  /**
   * A user of this hub leaving a room another hub hosts: the leave is written here at once and, in
   * the same transaction, queued to the host, which applies it (when the user is still a member
   * there) and sequences the room's new member list to every hub.
   */
  private async forwardLeave(tx: Queryable, roomId: string, userId: string): Promise<void> {
    const room = await repo.room(tx, roomId);
    if (!room || room.host === this.serverName) return;
    const user = await this.users.find(tx, userId);
    if (!user || user.server) return; // shadow users' membership comes from the host
    const pdu: Pdu = { event_id: `leave:${crypto.randomUUID()}`, room_id: roomId, type: 'leave', sender: this.address(user), origin: this.serverName, origin_ts: Date.now(), content: {}, signatures: {} };
    pdu.signatures[this.serverName] = signJson(this.key, unsigned(pdu));
    await repo.enqueue(tx, room.host, 'event', pdu);
  }

  // ---- typing: ephemeral, best effort ----

  /** Follows the typing of this hub's users in a federated room (pub/sub `room:<id>`). */
  private followTyping(roomId: string): void {
    if (this.typingSubs.has(roomId)) return;
    this.typingSubs.set(roomId, this.pubsub.subscribe(`room:${roomId}`, (m: TypingEvent) => void this.sendTyping(m).catch(() => undefined)));
  }

  /**
   * Sends a local user's typing change straight to the other hubs with members in the room, once,
   * not queued: typing is best effort and worthless after an outage.
   */
  private async sendTyping(m: TypingEvent): Promise<void> {
    if (m?.type !== 'typing') return;
    const user = await this.users.find(this.db, m.user_id);
    if (!user || user.server) return; // remote users' typing came from their hub
    await this.sendEphemeral(await this.hubsWithMembersIn([m.room_id]), 'typing', { type: 'typing', room_id: m.room_id, user: this.address(user), typing: m.typing });
  }

  /**
   * Sends a local user's presence change straight to every other hub with members in a federated
   * room the user is in (and that room does not deny), once, not queued: like typing, presence is
   * best effort, and a change lost in an outage is corrected by the next one.
   */
  private async sendPresence(userId: string, view: PresenceView): Promise<void> {
    const user = await this.users.find(this.db, userId);
    if (!user || user.server) return; // remote users' presence came from their hub
    const servers = await this.hubsWithMembersIn(await this.rooms.roomIdsFor(userId));
    await this.sendEphemeral(servers, 'presence', { type: 'presence', user: this.address(user), status: view.status, status_text: view.status_text });
  }

  /** The other hubs with members in the federated rooms among `roomIds`, leaving out those a room denies. */
  private async hubsWithMembersIn(roomIds: string[]): Promise<string[]> {
    const rooms = roomIds.length ? await repo.rooms(this.db, roomIds) : [];
    if (rooms.length === 0) return [];
    const members = await this.rooms.memberIdsOf(this.db, rooms.map((r) => r.room_id));
    const users = new Map((await this.users.findMany([...new Set([...members.values()].flat())])).map((u) => [u.id, u]));
    const servers = new Set<string>();
    for (const room of rooms) {
      for (const id of members.get(room.room_id) ?? []) {
        const server = users.get(id)?.server;
        if (server && !room.deny.includes(server)) servers.add(server);
      }
    }
    return [...servers];
  }

  /** One ephemeral item straight to each of `servers`, in a transaction of its own, not queued (best effort). */
  private async sendEphemeral(servers: string[], kind: string, item: unknown): Promise<void> {
    const body: FedTransaction = { events: [], ephemeral: [item] };
    await Promise.allSettled(servers.map((s) => this.request(s, 'PUT', `/_federation/v1/send/${kind}-${crypto.randomUUID()}`, body)));
  }

  /** Presence of one of `origin`'s own users whom this hub knows (a shadow user), applied as that user's presence here. */
  private async applyPresence(origin: string, item: { user?: unknown; status?: unknown; status_text?: unknown }): Promise<void> {
    if (typeof item.user !== 'string' || !PRESENCE_STATUSES.includes(item.status as PresenceStatus)) return;
    if (item.status_text !== undefined && (typeof item.status_text !== 'string' || item.status_text.length > 200)) return;
    const { username, server } = this.parseAddress(item.user);
    if (server !== origin) return;
    const user = await this.users.findByUsername(username, server);
    if (!user) return;
    await this.presence.update(user.id, item.status as PresenceStatus, item.status_text as string | undefined);
  }

  /** Typing and presence from `origin`: only of its own users (typing: members of the room). */
  private async applyEphemeral(origin: string, items: unknown[]): Promise<void> {
    for (const item of items as { type?: string; room_id?: string; user?: string; typing?: boolean }[]) {
      if (item?.type === 'presence') {
        await this.applyPresence(origin, item);
        continue;
      }
      if (item?.type !== 'typing' || typeof item.room_id !== 'string' || typeof item.user !== 'string') continue;
      const room = await repo.room(this.db, item.room_id);
      if (!room || room.deny.includes(origin)) continue;
      const { username, server } = this.parseAddress(item.user);
      if (server !== origin) continue;
      const user = await this.users.findByUsername(username, server);
      if (!user) continue;
      const member = await this.rooms.requireMember(this.db, item.room_id, user.id).then(() => true, () => false);
      if (!member) continue;
      if (item.typing) await this.typing.start(item.room_id, user.id, user.name);
      else await this.typing.stop(item.room_id, user.id);
    }
  }

  // ---- the relay: local events → PDUs ----

  private async relayStep(): Promise<boolean> {
    const cursor = (await repo.cursor(this.db))!;
    const rows = await this.stream.readAfter(cursor, RELAY_BATCH);
    if (rows.length === 0) return false;
    const ids = new Set<string>();
    for (const r of rows) {
      const e = toWire(r) as WireRoomEvent;
      for (const id of actorIds(e)) ids.add(id);
      if (e.type === 'room.updated') for (const id of r.notify_user_ids) ids.add(id);
      const text = e.type === 'message.new' ? e.message.content : e.type === 'message.edited' ? e.content : '';
      for (const m of text.matchAll(MENTION_ID)) ids.add(m[1].toLowerCase());
    }
    const users = new Map((await this.users.findMany([...ids])).map((u) => [u.id, u]));
    const fileIds = rows.flatMap((r) => {
      const e = toWire(r) as WireRoomEvent;
      return e.type === 'message.new' ? e.message.attachments.map((a) => a.id) : [];
    });
    const files = new Map(fileIds.length ? (await this.attachments.findMany(this.db, fileIds)).map((a) => [a.id, a]) : []);
    const woken = new Set<string>();
    await this.db.transaction(async (tx) => {
      for (const row of rows) for (const peer of await this.relayOne(tx, row, users, files)) woken.add(peer);
      await repo.setCursor(tx, rows[rows.length - 1].stream_position);
    });
    for (const peer of woken) this.sender(peer).wake();
    return rows.length === RELAY_BATCH;
  }

  /** @returns the peers queued something. */
  private async relayOne(tx: Queryable, row: StreamEvent, users: Map<string, UserRow>, files: Map<string, AttachmentRow>): Promise<string[]> {
    const e = toWire(row) as WireRoomEvent;
    let room = await repo.room(tx, e.room_id, true);
    if (!room) {
      if (e.type !== 'room.updated' || !e.room.members.some((m) => users.get(m.user_id)?.server)) return [];
      await repo.insertRoom(tx, e.room_id, this.serverName);
      room = (await repo.room(tx, e.room_id, true))!;
      this.followTyping(e.room_id);
    }
    const pdu = this.toPdu(e, users, files);
    if (!pdu) return [];
    if (room.host !== this.serverName) {
      // A leave of this hub's user was queued with it (forwardLeave): wake the host's queue.
      if (e.type === 'room.updated' && row.notify_user_ids.some((id) => users.get(id) && !users.get(id)!.server)) return [room.host];
      // A participant forwards only what its own users did; the host orders it.
      // Sends were forwarded before they were written here (forwardSend).
      const actor = pdu.type === 'room' || pdu.type === 'message' ? undefined : users.get(actorIds(e)[0]);
      if (!actor || actor.server) return [];
      pdu.signatures[this.serverName] = signJson(this.key, unsigned(pdu));
      await repo.enqueue(tx, room.host, 'event', pdu);
      return [room.host];
    }
    // The host sequences it.
    pdu.room_seq = room.seq + 1;
    pdu.prev_hash = room.last_hash;
    pdu.signatures[this.serverName] = signJson(this.key, unsigned(pdu));
    const hash = hashJson(unsigned(pdu));
    await repo.insertEvent(tx, room.room_id, pdu.room_seq, pdu.event_id, pdu);
    let servers = room.servers;
    if (e.type === 'room.updated') {
      servers = [...new Set(e.room.members.map((m) => users.get(m.user_id)?.server).filter((s): s is string => !!s))].filter((s) => !room.deny.includes(s));
    }
    await repo.setRoomLog(tx, room.room_id, pdu.room_seq, hash, servers);
    const queued: string[] = [];
    // Hubs that lost their last member still hear of their removal.
    const removedServers = e.type === 'room.updated' ? room.servers.filter((s) => !servers.includes(s)) : [];
    for (const peer of [...servers, ...removedServers]) {
      if (!room.servers.includes(peer)) {
        const events = (await repo.lastEvents(tx, room.room_id, SNAPSHOT_EVENTS)) as Pdu[];
        await repo.enqueue(tx, peer, 'snapshot', { room_id: room.room_id, host: this.serverName, state: pdu, events } satisfies Snapshot);
      } else {
        await repo.enqueue(tx, peer, 'event', pdu);
      }
      queued.push(peer);
    }
    return queued;
  }

  /** `<@user id>` mentions → `<@address>` (ids are this hub's; `users` has the rows of those mentioned). */
  private mentionsOut(content: string, users: Map<string, UserRow>): string {
    return content.replace(MENTION_ID, (whole, id: string) => {
      const u = users.get(id.toLowerCase());
      return u ? `<@${this.address(u)}>` : whole;
    });
  }

  /** `<@address>` mentions → `<@user id>` of this hub (shadow users created as needed). */
  private async mentionsIn(content: string): Promise<string> {
    const addresses = [...new Set([...content.matchAll(MENTION_ADDRESS)].map((m) => m[1]))];
    const ids = new Map<string, string>();
    for (const a of addresses) ids.set(a, (await this.userFor(a).catch(() => null))?.id ?? '');
    return content.replace(MENTION_ADDRESS, (whole, a: string) => (ids.get(a) ? `<@${ids.get(a)}>` : whole));
  }

  /** The PDU of a local event (unsigned, unsequenced), or null for what does not cross. `files`: the attachments of its messages. */
  private toPdu(e: WireRoomEvent, users: Map<string, UserRow>, files: Map<string, AttachmentRow>): Pdu | null {
    const addr = (id: string) => {
      const u = users.get(id);
      return u ? this.address(u) : null;
    };
    const base = (type: Pdu['type'], actor: string | null, content: Record<string, any>, eventId: string): Pdu | null =>
      actor ? { event_id: eventId, room_id: e.room_id, type, sender: actor, origin: this.serverName, origin_ts: Date.now(), content, signatures: {} } : null;
    const local = `${this.serverName}:${e.stream_position}`;
    switch (e.type) {
      case 'message.new': {
        const m = e.message;
        const attached = m.attachments.flatMap((a) => (files.has(a.id) ? [remoteFile(files.get(a.id)!)] : []));
        return base(
          'message',
          addr(m.user_id),
          { id: m.id, content: this.mentionsOut(m.content, users), reply_to: m.reply_to, created_at: m.created_at, ...(attached.length ? { attachments: attached } : {}) },
          `m:${m.id}`,
        );
      }
      case 'message.edited':
        return base('edit', addr(e.editor_id), { message_id: e.message_id, content: this.mentionsOut(e.content, users) }, local);
      case 'message.deleted':
        return base('redact', addr(e.deleted_by), { message_id: e.message_id }, local);
      case 'reaction.added':
      case 'reaction.removed':
        return base('reaction', addr(e.user_id), { message_id: e.message_id, key: e.key, add: e.type === 'reaction.added' }, local);
      case 'message.read':
        return base('read', addr(e.user_id), { message_id: e.message_id }, local);
      case 'room.updated': {
        const { members, ...room } = e.room;
        const list = members.map((m) => ({ address: addr(m.user_id), name: m.name, role: m.role }));
        return base('room', this.serverName, { room: { id: room.id, type: room.type, name: room.name, topic: room.topic, visibility: room.visibility, allow_edits: room.allow_edits }, members: list }, local);
      }
      default:
        return null;
    }
  }

  // ---- inbound ----

  /**
   * `PUT /_federation/v1/send/:txn_id` from `origin` (already authenticated). Idempotent per
   * (origin, txn_id); events are deduplicated by id. Every event is checked before any is applied:
   * an event whose sender is not a user of `origin` (unsequenced events) or whose room does not accept
   * `origin` refuses the whole transaction and nothing is stored.
   * @throws AppError FEDERATION_FORBIDDEN (403).
   */
  async receive(origin: string, txnId: string, txn: FedTransaction): Promise<void> {
    if (await repo.txnSeen(this.db, origin, txnId)) return;
    const originKey = (await this.keyFor(origin))!;
    // Check everything first.
    for (const pdu of txn.events) await this.check(origin, originKey, pdu);
    for (const snap of txn.snapshots ?? []) {
      if (snap.host !== origin) throw new AppError('FEDERATION_FORBIDDEN', 'A snapshot must come from the room\'s host');
      const known = await repo.room(this.db, snap.room_id);
      if (known && known.host !== origin) throw new AppError('FEDERATION_FORBIDDEN', 'That room has another host');
      for (const pdu of [snap.state, ...snap.events]) {
        if (pdu.room_id !== snap.room_id || !verifyJson(originKey, unsigned(pdu), pdu.signatures[origin] ?? '')) throw new AppError('FEDERATION_FORBIDDEN', 'Bad event signature');
      }
    }
    for (const snap of txn.snapshots ?? []) await this.withRoom(snap.room_id, () => this.applySnapshot(snap));
    const events = txn.events;
    for (let i = 0; i < events.length; ) {
      const pdu = events[i];
      // A run of the host's messages in one room is written through one group commit.
      let j = i + 1;
      const inRun = (p: Pdu) => p.room_seq !== undefined && p.type === 'message' && p.room_id === pdu.room_id;
      if (inRun(pdu)) while (j < events.length && inRun(events[j])) j++;
      const run = events.slice(i, j);
      i = j;
      await this.withRoom(pdu.room_id, async () => {
        if (pdu.room_seq === undefined) await this.applyForwarded(origin, pdu);
        else if (run.length === 1) await this.applySequenced(origin, pdu);
        else await this.applySequencedMessages(origin, run);
      });
    }
    await this.applyEphemeral(origin, txn.ephemeral ?? []);
    await repo.recordTxn(this.db, origin, txnId);
  }

  /** Runs `fn` after any other inbound work on the same room (this node). */
  private async withRoom(roomId: string, fn: () => Promise<void>): Promise<void> {
    const prev = this.roomLocks.get(roomId) ?? Promise.resolve();
    const next = prev.then(fn, fn);
    const tail = next.catch(() => undefined);
    this.roomLocks.set(roomId, tail);
    try {
      await next;
    } finally {
      if (this.roomLocks.get(roomId) === tail) this.roomLocks.delete(roomId);
    }
  }

  private async check(origin: string, originKey: crypto.KeyObject, pdu: Pdu): Promise<void> {
    const room = await repo.room(this.db, pdu.room_id);
    if (!room) throw new AppError('FEDERATION_FORBIDDEN', `Unknown room ${pdu.room_id}`);
    if (room.deny.includes(origin)) throw new AppError('FEDERATION_FORBIDDEN', `The room refuses ${origin}`);
    if (pdu.room_seq === undefined) {
      // Forwarded to the host by a participant: only its own users, only when we host the room.
      if (room.host !== this.serverName) throw new AppError('FEDERATION_FORBIDDEN', 'This hub does not host that room');
      if (this.parseAddress(pdu.sender).server !== origin || pdu.origin !== origin) {
        throw new AppError('FEDERATION_FORBIDDEN', `${origin} may only send events of its own users`);
      }
      if (pdu.type === 'room') throw new AppError('FEDERATION_FORBIDDEN', 'Only the host changes the room');
    } else if (room.host !== origin) {
      throw new AppError('FEDERATION_FORBIDDEN', 'Sequenced events come from the room\'s host only');
    }
    if (!verifyJson(originKey, unsigned(pdu), pdu.signatures[origin] ?? '')) throw new AppError('FEDERATION_FORBIDDEN', 'Bad event signature');
  }

  /** The host applies a participant's event; the relay then sequences it like any local event. */
  private async applyForwarded(origin: string, pdu: Pdu): Promise<void> {
    const sender = await this.userFor(pdu.sender);
    try {
      await this.apply(sender, pdu);
    } catch (err) {
      if (err instanceof AppError && err.status < 500) {
        if (err.code === 'NOT_A_MEMBER') throw new AppError('FEDERATION_FORBIDDEN', `${pdu.sender} is not a member of the room`);
        this.log.warn({ err, origin, event_id: pdu.event_id }, 'federated event refused by the room rules');
        return;
      }
      throw err;
    }
  }

  /** A participant applies the host's events strictly in room_seq order, fetching gaps. */
  private async applySequenced(host: string, pdu: Pdu): Promise<void> {
    const room = await repo.room(this.db, pdu.room_id);
    if (!room) return;
    if (pdu.room_seq! <= room.seq) return; // seen
    if (pdu.room_seq! > room.seq + 1) {
      const missing = (await this.request(host, 'GET', `/_federation/v1/rooms/${pdu.room_id}/events?after_seq=${room.seq}&limit=${pdu.room_seq! - room.seq - 1}`)) as {
        events: Pdu[];
      };
      const hostKey = (await this.keyFor(host))!;
      for (const gap of missing.events) {
        if (gap.room_seq! >= pdu.room_seq!) break;
        if (!verifyJson(hostKey, unsigned(gap), gap.signatures[host] ?? '')) throw new Error('bad signature on a fetched event');
        await this.applyOne(gap, (await repo.room(this.db, pdu.room_id))!);
      }
    }
    const now = (await repo.room(this.db, pdu.room_id))!;
    if (pdu.room_seq !== now.seq + 1) throw new Error(`gap in room ${pdu.room_id}: have ${now.seq}, got ${pdu.room_seq}`);
    await this.applyOne(pdu, now);
  }

  /**
   * The host's consecutive messages of one room: the first is applied as any event (filling a gap
   * before it), the others, when they follow it without a gap, are submitted to the group commit
   * together, in order (a reply waits for the group of the message it answers, which the group
   * commit could not find in its own batch), and logged in one transaction once written (a crash in
   * between: the repeat finds them written and only logs them).
   */
  private async applySequencedMessages(host: string, run: Pdu[]): Promise<void> {
    await this.applySequenced(host, run[0]);
    const room = await repo.room(this.db, run[0].room_id);
    if (!room) return;
    const rest = run.filter((p) => p.room_seq! > room.seq);
    if (rest.some((p, k) => p.room_seq !== room.seq + 1 + k)) {
      for (const pdu of rest) await this.applySequenced(host, pdu);
      return;
    }
    let group: { sender: UserRow; input: SendInput }[] = [];
    const write = async () => {
      // Submitted at once, in order: the group commit writes them in this order.
      const written = await Promise.allSettled(group.map((s) => this.messages.sendReplicated(s.sender.id, rest[0].room_id, s.input)));
      for (const [k, w] of written.entries()) {
        if (w.status === 'fulfilled') continue;
        if (!(w.reason instanceof AppError && w.reason.status < 500)) throw w.reason;
        this.log.warn({ err: w.reason, message_id: group[k].input.id }, 'sequenced event not applicable here; skipped');
      }
      group = [];
    };
    for (const pdu of rest) {
      const sender = await this.userFor(pdu.sender);
      const input = await this.messageInput(sender, pdu);
      if (!input) continue;
      if (input.reply_to && group.some((s) => s.input.id === input.reply_to)) await write();
      group.push({ sender, input });
    }
    await write();
    const last = rest[rest.length - 1];
    await this.db.transaction(async (tx) => {
      for (const pdu of rest) await repo.insertEvent(tx, pdu.room_id, pdu.room_seq!, pdu.event_id, pdu);
      await repo.setRoomLog(tx, last.room_id, last.room_seq!, hashJson(unsigned(last)));
    });
  }

  /**
   * What a `message` PDU asks this hub to write, as `sender`; null when it is written already (our
   * own back from the host, or a repeat). Files of another hub's user are listed here, to be fetched
   * from that hub on first download.
   */
  private async messageInput(sender: UserRow, pdu: Pdu): Promise<SendInput | null> {
    const c = pdu.content;
    const known = await this.messages.get(sender.id, c.id).then(
      () => true,
      (err) => (err instanceof AppError && err.code === 'INVALID_MESSAGE' ? false : Promise.reject(err)),
    );
    if (known) return null;
    const files = Array.isArray(c.attachments) ? (c.attachments as RemoteFile[]) : [];
    const server = this.parseAddress(pdu.sender).server;
    const attachments = !files.length ? [] : server === this.serverName ? files.map((f) => f.id) : await this.attachments.registerRemote(server, sender.id, files);
    return {
      id: c.id,
      content: await this.mentionsIn(c.content),
      reply_to: c.reply_to ?? undefined,
      txn_id: `fed:${c.id}`,
      ts: Date.parse(c.created_at),
      ...(attachments.length ? { attachments } : {}),
    };
  }

  private async applyOne(pdu: Pdu, room: { seq: number }): Promise<void> {
    if (pdu.room_seq !== room.seq + 1) return;
    if (pdu.type === 'room') await this.applyRoom(pdu);
    else {
      const sender = await this.userFor(pdu.sender);
      try {
        await this.apply(sender, pdu);
      } catch (err) {
        if (!(err instanceof AppError && err.status < 500)) throw err;
        this.log.warn({ err, event_id: pdu.event_id }, 'sequenced event not applicable here; skipped');
      }
    }
    await this.db.transaction(async (tx) => {
      await repo.insertEvent(tx, pdu.room_id, pdu.room_seq!, pdu.event_id, pdu);
      await repo.setRoomLog(tx, pdu.room_id, pdu.room_seq!, hashJson(unsigned(pdu)));
    });
  }

  private async applySnapshot(snap: Snapshot): Promise<void> {
    const known = await repo.room(this.db, snap.room_id);
    if (!known) {
      const local = (snap.state.content.members as { address: string }[]).some((m) => this.parseAddress(m.address).server === this.serverName);
      if (!local) throw new AppError('FEDERATION_FORBIDDEN', 'None of this hub\'s users is in that room');
      // The federation row commits with the room's first room.updated, so the relay never takes
      // the room for one of this hub's own.
      const first = snap.events[0]?.room_seq ?? snap.state.room_seq!;
      await this.applyRoom(snap.state, async (tx) => {
        await repo.insertRoom(tx, snap.room_id, snap.host);
        await repo.setRoomLog(tx, snap.room_id, first - 1, snap.events[0]?.prev_hash ?? '');
      });
      this.followTyping(snap.room_id);
    }
    for (const pdu of snap.events) await this.applyOne(pdu, (await repo.room(this.db, snap.room_id))!);
  }

  private async applyRoom(pdu: Pdu, alsoInTx?: (tx: Queryable) => Promise<void>): Promise<void> {
    const members: { userId: string; role: Role }[] = [];
    for (const m of pdu.content.members as { address: string; name: string; role: Role }[]) {
      const u = await this.userFor(m.address, this.parseAddress(m.address).server === this.serverName ? undefined : m.name);
      members.push({ userId: u.id, role: m.role });
    }
    const r = pdu.content.room as { id: string; type: RoomType; name: string; topic: string; visibility: 'public' | 'private'; allow_edits: boolean };
    await this.rooms.applyReplica({ ...r, id: pdu.room_id }, members, alsoInTx);
  }

  /** Applies one event through the owning service, as `sender`; a repeat changes nothing. */
  private async apply(sender: UserRow, pdu: Pdu): Promise<void> {
    const c = pdu.content;
    switch (pdu.type) {
      case 'message': {
        const input = await this.messageInput(sender, pdu);
        if (input) await this.messages.sendReplicated(sender.id, pdu.room_id, input);
        return;
      }
      case 'edit': {
        const m = await this.messages.get(sender.id, c.message_id);
        const content = await this.mentionsIn(c.content);
        if (m.content !== content) await this.messages.edit(sender.id, c.message_id, content);
        return;
      }
      case 'redact': {
        const m = await this.messages.get(sender.id, c.message_id);
        if (!m.deleted) await this.messages.redact(sender.id, c.message_id);
        return;
      }
      case 'reaction':
        await this.messages.react(sender.id, c.message_id, c.key, c.add);
        return;
      case 'read':
        await this.messages.markRead(sender.id, pdu.room_id, c.message_id);
        return;
      case 'leave': {
        // A repeat, or a leave the host already made (removed meanwhile), changes nothing.
        const member = await this.rooms.requireMember(this.db, pdu.room_id, sender.id).then(() => true, () => false);
        if (member) await this.rooms.leave(sender.id, pdu.room_id);
        return;
      }
      default:
        throw new AppError('VALIDATION_FAILED', `Unknown event type ${pdu.type}`);
    }
  }

  /**
   * `GET /_federation/v1/rooms/:room_id/events?after_seq=N`: the host's (or a participant's copy of
   * the) sequenced events after N, for a hub with members in the room.
   * @throws AppError FEDERATION_FORBIDDEN (403).
   */
  async eventsAfter(origin: string, roomId: string, afterSeq: number, limit: number): Promise<{ events: Pdu[] }> {
    const room = await repo.room(this.db, roomId);
    if (!room || room.deny.includes(origin) || !room.servers.includes(origin)) throw new AppError('FEDERATION_FORBIDDEN', 'Not a participant of that room');
    return { events: (await repo.eventsAfter(this.db, roomId, afterSeq, limit)) as Pdu[] };
  }
}

/** A UUID (v4 layout) derived from `seed`: the same seed, the same id. */
function uuidFrom(seed: string): string {
  const b = crypto.createHash('sha256').update(seed).digest().subarray(0, 16);
  b[6] = (b[6] & 0x0f) | 0x40;
  b[8] = (b[8] & 0x3f) | 0x80;
  const h = b.toString('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

/** How a federated message describes one of its files. */
function remoteFile(a: AttachmentRow): RemoteFile {
  return { id: a.id, filename: a.filename, mime_type: a.mime_type, size: Number(a.size), sha256: a.sha256, thumbnail_size: a.thumbnail_key ? Number(a.thumbnail_size) : null };
}

/** The PDU without `signatures` (and, for a forwarded one, as the origin signed it). */
function unsigned(pdu: Pdu): Omit<Pdu, 'signatures'> {
  const { signatures: _, ...rest } = pdu;
  return rest;
}

/** The user ids acting in, or named by, a local event. */
function actorIds(e: WireRoomEvent): string[] {
  switch (e.type) {
    case 'message.new':
      return [e.message.user_id];
    case 'message.edited':
      return [e.editor_id];
    case 'message.deleted':
      return [e.deleted_by];
    case 'reaction.added':
    case 'reaction.removed':
    case 'message.read':
      return [e.user_id];
    case 'room.updated':
      return e.room.members.map((m) => m.user_id);
    default:
      return [];
  }
}
