/**
 * The bridge runtime every network shares, lifecycle and intake: it finds the connector's
 * capabilities (once), opens the store, waits for the hub, runs the HTTP server (the hub's transactions, `GET /health` and the connector's routes), and
 * takes in both directions through one durable queue, handing each item to its direction's handler:
 *
 * - remote -> hub (`remote-to-hub.ts`): the connector hands `RemoteEvent`s to `receive`; they are
 *   persisted (deduped by id) before the connector answers its network, then handled in order per
 *   remote chat.
 * - hub -> remote (`hub-to-remote.ts`): `PUT /transactions/{txn_id}` (Bearer hs_token) persists the
 *   events (deduped by txn_id and stream position) before answering 200; then each is handled in
 *   order per room.
 *
 * Echoes. Events written by the bridge's own users (its bot and ghosts) never go out. What the
 * network echoes back of the bridge's own sends is dropped by id: a message whose remote id is
 * mapped already, an edit of a message the bridge sent (only the bridge's identity can edit it), a
 * reaction whose id `sendReaction` returned. That check would race with the send (an echo can be
 * received before the send's answer is stored), so inbound handling of a chat waits while an
 * outbound call to that chat is in flight: every echo then finds the ids it is checked against.
 * A connector whose network marks its echoes (Google Chat's client-assigned ids) also drops them
 * itself, which covers a send whose answer was lost.
 *
 * What an item that can never be handled leaves is a dead letter (queue.ts) and a notice in the
 * room. The store layout is in `state.ts`.
 */
import Fastify, { type FastifyError, type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import type { Logger } from 'pino';
import { Type } from 'typebox';
import type { BridgeTransaction } from '../../src/events/catalog.js';
import { backoffDelay } from '../../src/lib/backoff.js';
import { inputProblem } from '../../src/lib/input-bounds.js';
import { BridgeE2ee } from './e2ee.js';
import { safeEqual } from './helpers.js';
import { HubClient, HubError } from './hub-client.js';
import { HubToRemote } from './hub-to-remote.js';
import { WorkQueue, type NewItem, type WorkItem } from './queue.js';
import { RemoteToHub, type HubIdentity } from './remote-to-hub.js';
import { BridgeState, connectorOp } from './state.js';
import type { Op } from './store.js';
import { RemoteError, capabilitiesOf, type BridgeContext, type Connector, type RemoteEvent } from './types.js';

declare module 'fastify' {
  interface FastifyRequest {
    /** The request body as received (webhook signatures are computed over it). */
    rawBody?: Buffer;
  }
}

export interface BridgeOptions {
  id: string;
  /** Where the hub is, e.g. http://127.0.0.1:8081. */
  hubUrl: string;
  asToken: string;
  hsToken: string;
  /** Where the hub reaches the bridge; the bridge listens on its host and port. */
  url: string;
  dataDir: string;
  retryMaxMs: number;
  maxAttempts: number;
  /** `e2ee = true`: the bot is an E2EE device and encrypted portal rooms are bridged (e2ee.ts). */
  e2ee?: boolean;
  log: Logger;
}

/** How a remote event is named in the notice when it could not be bridged. */
const EVENT_NAMES: Record<RemoteEvent['type'], string> = {
  message: 'message',
  edit: 'edit',
  delete: 'deletion',
  reaction: 'reaction',
  unreaction: 'reaction removal',
  receipt: 'receipt',
  join: 'member',
  notice: 'notice',
};

/**
 * What the kit needs of a transaction (`BridgeTransaction`, src/events/catalog.ts) before it queues
 * it: room events with a room, a type and a stream position; ephemeral events with a room and a type.
 * The rest of each event is the catalog's wire shape, read by the handlers.
 */
const TransactionParams = Type.Object({ txn_id: Type.String({ minLength: 1, maxLength: 255 }) });
const RoomRef = { room_id: Type.String({ minLength: 1 }), type: Type.String({ minLength: 1 }) };
const TransactionBody = Type.Object({
  events: Type.Optional(Type.Array(Type.Object({ ...RoomRef, stream_position: Type.Integer({ minimum: 0 }) }))),
  ephemeral: Type.Optional(Type.Array(Type.Object(RoomRef))),
});

/** A notice queued for a room (`kind: 'notice'`): what a dead letter leaves behind. */
interface NoticeItem {
  roomId: string;
  text: string;
  replyTo?: string;
}

export class Bridge {
  readonly hub: HubClient;
  state!: BridgeState;
  queue!: WorkQueue;
  app!: FastifyInstance;
  /** The bot's E2EE device (`e2ee = true`). */
  private e2ee?: BridgeE2ee;
  private remote!: RemoteToHub;
  private outbound!: HubToRemote;
  /** Per remote chat: the outbound call in flight (settled, never rejecting). */
  private readonly sending = new Map<string, Promise<void>>();
  private readonly log: Logger;

  constructor(
    private readonly opts: BridgeOptions,
    readonly connector: Connector,
  ) {
    this.log = opts.log;
    this.hub = new HubClient(opts.hubUrl, opts.asToken, opts.log);
  }

  /**
   * Opens the store, waits for the hub (retrying), starts the connector and the HTTP server, and
   * resumes whatever was queued before a restart.
   * @returns the URL it listens on.
   */
  async start(): Promise<string> {
    const capabilities = capabilitiesOf(this.connector);
    this.state = await BridgeState.open(this.opts.dataDir);
    this.queue = new WorkQueue(this.state.store, (item) => this.handle(item), (item, err) => this.deadLetter(item, err), this.opts, this.log);
    const identity = await this.whoami();
    if (this.opts.e2ee) {
      this.e2ee = new BridgeE2ee(this.hub, this.opts.dataDir, identity.botId, this.log);
      await this.e2ee.start();
    }
    this.remote = new RemoteToHub(this.hub, this.state, this.connector, capabilities, identity, this.e2ee, this.log);
    this.outbound = new HubToRemote(this.hub, this.state, this.connector, capabilities, (userId) => this.remote.isOurs(userId), this.e2ee, this.log);

    const url = new URL(this.opts.url);
    // forceCloseConnections: an idle keep-alive connection would hold close() up for its timeout; a
    // request cut off is retried by its sender (the hub or the network).
    this.app = Fastify({ loggerInstance: this.log, bodyLimit: 32 * 1048576, forceCloseConnections: true }) as unknown as FastifyInstance;
    // Bodies (transactions, webhooks) are bounded before any handler sees them: size (bodyLimit),
    // nesting depth and finite numbers (src/lib/input-bounds.ts); a bad one is a 400.
    this.app.addContentTypeParser('application/json', { parseAs: 'buffer' }, (req, body, done) => {
      req.rawBody = body as Buffer;
      let parsed: unknown;
      try {
        parsed = (body as Buffer).length ? JSON.parse((body as Buffer).toString('utf8')) : {};
      } catch (err) {
        (err as { statusCode?: number }).statusCode = 400;
        return done(err as Error, undefined);
      }
      const problem = inputProblem(parsed, undefined, false);
      if (problem) return done(Object.assign(new Error(`body${problem.path ? `/${problem.path}` : ''} ${problem.message}`), { statusCode: 400 }), undefined);
      done(null, parsed);
    });
    // Errors never leak internals: a 4xx says what was wrong with the request, anything else is
    // logged and answered 500 INTERNAL.
    this.app.setErrorHandler((err: FastifyError, req, reply) => {
      const status = err.statusCode ?? 500;
      if (status >= 400 && status < 500) return reply.code(status).send({ error: { code: status === 413 ? 'PAYLOAD_TOO_LARGE' : 'BAD_REQUEST', message: err.message } });
      req.log.error({ err }, 'request failed');
      return reply.code(500).send({ error: { code: 'INTERNAL', message: 'Internal error' } });
    });
    this.app.get('/health', async () => ({ status: 'ok', queued: this.queue.size }));
    // The hs_token first (401, 403), then the body's shape (400).
    const hubOnly = async (req: FastifyRequest, reply: FastifyReply) => {
      const auth = req.headers.authorization ?? '';
      if (!auth.startsWith('Bearer ')) return reply.code(401).send({ error: { code: 'UNAUTHORIZED', message: 'Missing hs_token' } });
      if (!safeEqual(auth.slice(7), this.opts.hsToken)) return reply.code(403).send({ error: { code: 'FORBIDDEN', message: 'Wrong hs_token' } });
    };
    this.app.put('/transactions/:txn_id', { preValidation: hubOnly, schema: { params: TransactionParams, body: TransactionBody } }, async (req) => {
      await this.onTransaction((req.params as { txn_id: string }).txn_id, req.body as Partial<BridgeTransaction>);
      return {};
    });
    const ctx: BridgeContext = { log: this.log, state: this.state.connector, receive: (events, ops = []) => this.receive(events, ops.map(connectorOp)) };
    this.connector.routes?.(this.app, ctx);
    await this.connector.start(ctx);
    await this.app.listen({ host: url.hostname.replace(/^\[|\]$/g, ''), port: Number(url.port || (url.protocol === 'https:' ? 443 : 80)) });
    this.queue.start();
    const address = this.app.server.address() as { port: number };
    return `${url.protocol}//${url.hostname}:${address.port}`;
  }

  async stop(): Promise<void> {
    await this.app?.close();
    await this.queue?.stop();
    this.e2ee?.stop();
    await this.connector.stop();
    await this.state?.close();
  }

  /** Persists remote events (skipping known ids) with `ops`, in one write; resolves once durable. */
  private async receive(events: RemoteEvent[], ops: Op[]): Promise<void> {
    await this.queue.enqueue(events.map((ev) => ({ lane: `in:${ev.portal.id}`, key: `${this.connector.network}:${ev.id}`, kind: 'remote', data: ev })), ops);
  }

  /** The bridge's bot and ghost namespace, asked of the hub until it answers. @throws HubError when it refuses. */
  private async whoami(): Promise<HubIdentity> {
    for (let attempt = 1; ; attempt++) {
      try {
        const me = await this.hub.call<{ bot_user_id: string; namespace: string }>('GET', '/api/bridge/whoami');
        return { botId: me.bot_user_id, namespace: me.namespace };
      } catch (err) {
        if (!(err instanceof HubError && err.transient)) throw err;
        const delay = backoffDelay(attempt, { maxMs: this.opts.retryMaxMs });
        this.log.warn({ err: err.message, delay_ms: delay }, 'waiting for the hub');
        await new Promise((resolve) => setTimeout(resolve, delay));
      }
    }
  }

  /** Queues a transaction's room events (typing is handed over at once, not queued) and marks the txn id taken. */
  private async onTransaction(txnId: string, body: Partial<BridgeTransaction>): Promise<void> {
    if (this.state.transactions.has(txnId)) return;
    const all = [...(body.events ?? []), ...(body.ephemeral ?? [])];
    const items: NewItem[] = [];
    const ops: Op[] = [this.state.transactions.put(txnId, Date.now())];
    for (const ev of all) {
      // Encryption is for good: what the network sends there from now on is encrypted (E2EE bridges) or dropped.
      // (The body is only loosely checked: a malformed event must not fail the whole transaction.)
      if (ev.type === 'room.updated' && (ev.room as { encrypted?: unknown } | null)?.encrypted === true && typeof ev.room_id === 'string' && !this.state.encryptedRooms.has(ev.room_id)) {
        ops.push(this.state.encryptedRooms.put(ev.room_id, Date.now()));
      }
      if (ev.type === 'typing') {
        void this.outbound.onTyping(ev);
        continue;
      }
      if (typeof ev.stream_position === 'number') items.push({ lane: `out:${ev.room_id}`, key: `hub:${ev.stream_position}`, kind: 'hub', data: ev });
    }
    items.sort((a, b) => a.data.stream_position - b.data.stream_position);
    await this.queue.enqueue(items, ops);
  }

  private async handle(item: WorkItem): Promise<void> {
    if (item.kind === 'remote') {
      const ev = item.data as RemoteEvent;
      await this.sending.get(ev.portal.id);
      return this.remote.handle(ev);
    }
    if (item.kind === 'hub') {
      const portal = this.state.portalOfRoom.get(item.data.room_id);
      if (!portal) return;
      const call = this.outbound.handle(item.data, portal);
      const settled = call.catch(() => undefined);
      this.sending.set(portal, settled);
      try {
        return await call;
      } finally {
        if (this.sending.get(portal) === settled) this.sending.delete(portal);
      }
    }
    const notice = item.data as NoticeItem;
    return this.remote.postNotice(notice.roomId, notice.text, notice.replyTo, item.key);
  }

  /**
   * What to do when an item can never be handled: a notice in the room, answering the message
   * concerned where there is one (the queue has logged it already).
   */
  private deadLetter(item: WorkItem, err: Error): NewItem[] {
    const code = err instanceof RemoteError && err.code !== undefined ? ` (error ${err.code})` : '';
    const network = this.connector.displayName;
    let notice: NoticeItem | undefined;
    if (item.kind === 'hub') {
      const ev = item.data;
      void this.outbound.forget(ev).catch(() => undefined);
      const what = ev.type === 'message.new' ? 'This message was not delivered' : `A ${ev.type} was not delivered`;
      notice = { roomId: ev.room_id, text: `⚠️ ${what} to ${network}${code}: ${err.message}`, replyTo: ev.type === 'message.new' ? ev.message.id : ev.message_id };
    } else if (item.kind === 'remote') {
      const ev = item.data as RemoteEvent;
      const roomId = this.state.portals.get(ev.portal.id)?.roomId;
      const target = 'targetId' in ev && ev.targetId ? this.state.remoteMessages.get(ev.targetId)?.hubId : undefined;
      if (roomId && ev.type !== 'notice') notice = { roomId, text: `⚠️ A ${network} ${EVENT_NAMES[ev.type]} could not be bridged${code}: ${err.message}`, replyTo: target };
    }
    return notice ? [{ lane: `notice:${notice.roomId}`, key: `notice:${item.key}`, kind: 'notice', data: notice }] : [];
  }
}
