/**
 * The bridge runtime every network shares: an HTTP server for the hub's transactions (and the
 * connector's routes), the durable store and queue, the remote <-> hub id mappings, ghosts and
 * portals, threads, reactions, and the two directions:
 *
 * - remote -> hub: the connector hands `RemoteEvent`s to `receive`; they are persisted (deduped by
 *   id) before the connector answers its network, then handled in order per remote chat: posted to
 *   the hub as ghosts, with the original timestamp and the remote id (so a repeat after a crash is
 *   answered with the first message).
 * - hub -> remote: `PUT /transactions/{txn_id}` (Bearer hs_token) persists the events (deduped by
 *   txn_id and stream position) before answering 200; then each is handed to the connector, in order
 *   per room.
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
 * Store keys: `ghost:<remote user>` {hubId,name,avatarUrl}, `portal:<remote chat>` {roomId,members},
 * `room:<room id>` remote chat, `remote:<remote msg>` {hubId,roomId,dir,thread}, `hubmsg:<hub msg>`
 * {remoteId,parts,portal,dir,thread,name}, `thread:<remote thread>` first remote msg seen in it,
 * `gone:<remote msg>` deleted before it arrived, `ireact:<remote reaction>` {hubId,ghost,emoji},
 * `oreact:<hub msg>:<emoji>` {users,id} the bridge's reaction for hub users, `ownreact:<remote
 * reaction>` reactions the bridge made, `lastin:<chat>` last inbound remote msg, `readup:<chat>`
 * last read receipt sent, `txn:<id>` / `seen:<key>` dedupe, `q:<seq>` queue, `dead:<seq>` dead
 * letters, `c:<key>` the connector's own state. Time-valued keys (`txn:`, `seen:`, `gone:`,
 * `ownreact:`) are dropped after 7 days.
 */
import crypto from 'node:crypto';
import path from 'node:path';
import Fastify, { type FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import { HubClient, HubError } from './hub-client.js';
import { WorkQueue, type NewItem, type WorkItem } from './queue.js';
import { FileStore, type Op } from './store.js';
import { RemoteError, type BridgeContext, type BridgedMessage, type Connector, type RemoteEvent, type RemotePortal, type RemoteUser } from './types.js';

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
  log: Logger;
}

/** Typing older than this when it arrives is dropped (it was held up by an outage), ms. */
const TYPING_STALE_MS = 10_000;
/** Time-valued keys are kept this long (Meta and Pub/Sub redeliver for up to 7 days), ms. */
const DEDUPE_TTL_MS = 7 * 24 * 3600 * 1000;
const TIMED_KEYS = ['seen:', 'txn:', 'gone:', 'ownreact:'];
/** Prefix of the connector's own state keys. */
const CONNECTOR_PREFIX = 'c:';
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

interface GhostRecord {
  hubId: string;
  name: string;
  avatarUrl?: string;
}
interface PortalRecord {
  roomId: string;
  members: string[];
}
interface MsgRecord {
  hubId: string;
  roomId: string;
  dir: 'in' | 'out';
  thread?: string;
}
interface HubMsgRecord {
  /** The main part: what replies, reactions and receipts point at. */
  remoteId: string;
  parts: string[];
  portal: string;
  dir: 'in' | 'out';
  thread?: string;
  /** The hub sender's name (relay formatting of edits). */
  name?: string;
}
interface InReaction {
  hubId: string;
  ghost: string;
  emoji: string;
}
interface OutReaction {
  /** Hub users who have this reaction. */
  users: string[];
  /** The remote reaction id, when the network gave one. */
  id?: string;
}

export class Bridge {
  readonly hub: HubClient;
  store!: FileStore;
  queue!: WorkQueue;
  app!: FastifyInstance;
  botId = '';
  private namespace = '';
  private readonly ghostIds = new Set<string>();
  /** Per remote chat: the outbound call in flight (settled, never rejecting). */
  private readonly sending = new Map<string, Promise<void>>();
  private readonly log: Logger;
  private readonly ctx: BridgeContext;

  constructor(
    private readonly opts: BridgeOptions,
    readonly connector: Connector,
  ) {
    this.log = opts.log;
    this.hub = new HubClient(opts.hubUrl, opts.asToken, opts.log);
    const key = (k: string) => CONNECTOR_PREFIX + k;
    this.ctx = {
      log: opts.log,
      state: {
        get: <T>(k: string) => this.store.get<T>(key(k)),
        entries: <T>(prefix: string) => this.store.entries<T>(key(prefix)).map(([k, v]): [string, T] => [k.slice(CONNECTOR_PREFIX.length), v]),
        batch: (ops) => this.store.batch(ops.map(withPrefix)),
      },
      receive: (events, ops = []) => this.receive(events, ops.map(withPrefix)),
    };
  }

  /**
   * Opens the store, waits for the hub (retrying), starts the connector and the HTTP server, and
   * resumes whatever was queued before a restart.
   * @returns the URL it listens on.
   */
  async start(): Promise<string> {
    this.store = await FileStore.open(path.join(this.opts.dataDir, 'state.jsonl'), (key, value) =>
      !TIMED_KEYS.some((p) => key.startsWith(p)) || Date.now() - (value as number) < DEDUPE_TTL_MS,
    );
    for (const [, g] of this.store.entries<GhostRecord>('ghost:')) this.ghostIds.add(g.hubId);
    this.queue = new WorkQueue(this.store, (item) => this.handle(item), (item, err) => this.deadLetter(item, err), this.opts, this.log);
    await this.whoami();

    const url = new URL(this.opts.url);
    // forceCloseConnections: an idle keep-alive connection would hold close() up for its timeout; a
    // request cut off is retried by its sender (the hub or the network).
    this.app = Fastify({ loggerInstance: this.log, bodyLimit: 32 * 1048576, forceCloseConnections: true }) as unknown as FastifyInstance;
    this.app.addContentTypeParser('application/json', { parseAs: 'buffer' }, (req, body, done) => {
      req.rawBody = body as Buffer;
      try {
        done(null, (body as Buffer).length ? JSON.parse((body as Buffer).toString('utf8')) : {});
      } catch (err) {
        (err as { statusCode?: number }).statusCode = 400;
        done(err as Error, undefined);
      }
    });
    this.app.get('/health', async () => ({ status: 'ok', queued: this.queue.size }));
    this.app.put('/transactions/:txn_id', async (req, reply) => {
      const auth = req.headers.authorization ?? '';
      if (!auth.startsWith('Bearer ')) return reply.code(401).send({ error: { code: 'UNAUTHORIZED', message: 'Missing hs_token' } });
      if (!safeEqual(auth.slice(7), this.opts.hsToken)) return reply.code(403).send({ error: { code: 'FORBIDDEN', message: 'Wrong hs_token' } });
      await this.onTransaction((req.params as { txn_id: string }).txn_id, req.body as { events?: any[]; ephemeral?: any[] });
      return {};
    });
    this.connector.routes?.(this.app, this.ctx);
    await this.connector.start(this.ctx);
    await this.app.listen({ host: url.hostname.replace(/^\[|\]$/g, ''), port: Number(url.port || (url.protocol === 'https:' ? 443 : 80)) });
    this.queue.start();
    const address = this.app.server.address() as { port: number };
    return `${url.protocol}//${url.hostname}:${address.port}`;
  }

  async stop(): Promise<void> {
    await this.app?.close();
    await this.queue?.stop();
    await this.connector.stop();
    await this.store?.close();
  }

  /** Persists remote events (skipping known ids) with `ops`, in one write; resolves once durable. */
  private async receive(events: RemoteEvent[], ops: Op[]): Promise<void> {
    await this.queue.enqueue(events.map((ev) => ({ lane: `in:${ev.portal.id}`, key: `${this.connector.network}:${ev.id}`, kind: 'remote', data: ev })), ops);
  }

  private async whoami(): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      try {
        const me = await this.hub.call<{ bot_user_id: string; namespace: string }>('GET', '/api/bridge/whoami');
        this.botId = me.bot_user_id;
        this.namespace = me.namespace;
        return;
      } catch (err) {
        if (!(err instanceof HubError && err.transient)) throw err;
        const delay = Math.min(this.opts.retryMaxMs, 250 * 2 ** Math.min(attempt, 10));
        this.log.warn({ err: err.message, delay_ms: delay }, 'waiting for the hub');
        await new Promise((resolve) => setTimeout(resolve, delay));
      }
    }
  }

  private async onTransaction(txnId: string, body: { events?: any[]; ephemeral?: any[] }): Promise<void> {
    if (this.store.has(`txn:${txnId}`)) return;
    const all = [...(body.events ?? []), ...(body.ephemeral ?? [])];
    const items: NewItem[] = [];
    for (const ev of all) {
      if (ev.type === 'typing') {
        void this.onTyping(ev);
        continue;
      }
      if (typeof ev.stream_position === 'number') items.push({ lane: `out:${ev.room_id}`, key: `hub:${ev.stream_position}`, kind: 'hub', data: ev });
    }
    items.sort((a, b) => a.data.stream_position - b.data.stream_position);
    await this.queue.enqueue(items, [{ put: `txn:${txnId}`, value: Date.now() }]);
  }

  private isOurs(userId: string | undefined): boolean {
    return userId === this.botId || (userId !== undefined && this.ghostIds.has(userId));
  }

  private async handle(item: WorkItem): Promise<void> {
    if (item.kind === 'remote') {
      const ev = item.data as RemoteEvent;
      await this.sending.get(ev.portal.id);
      return this.handleRemote(ev);
    }
    if (item.kind === 'hub') {
      const portal = this.store.get<string>(`room:${item.data.room_id}`);
      if (!portal) return;
      const call = this.handleHub(item.data, portal);
      const settled = call.catch(() => undefined);
      this.sending.set(portal, settled);
      try {
        return await call;
      } finally {
        if (this.sending.get(portal) === settled) this.sending.delete(portal);
      }
    }
    return this.postNotice(item.data.roomId, item.data.text, item.data.replyTo, item.key);
  }

  /**
   * What to do when an item can never be handled: a notice in the room, answering the message
   * concerned where there is one (the queue has logged it already).
   */
  private deadLetter(item: WorkItem, err: Error): NewItem[] {
    const code = err instanceof RemoteError && err.code !== undefined ? ` (error ${err.code})` : '';
    const network = this.connector.displayName;
    let notice: { roomId: string; text: string; replyTo?: string } | undefined;
    if (item.kind === 'hub') {
      const ev = item.data;
      const what = ev.type === 'message.new' ? 'This message was not delivered' : `A ${ev.type} was not delivered`;
      notice = { roomId: ev.room_id, text: `⚠️ ${what} to ${network}${code}: ${err.message}`, replyTo: ev.type === 'message.new' ? ev.message.id : ev.message_id };
    } else if (item.kind === 'remote') {
      const ev = item.data as RemoteEvent;
      const roomId = this.store.get<PortalRecord>(`portal:${ev.portal.id}`)?.roomId;
      const target = 'targetId' in ev && ev.targetId ? this.store.get<MsgRecord>(`remote:${ev.targetId}`)?.hubId : undefined;
      if (roomId && ev.type !== 'notice') notice = { roomId, text: `⚠️ A ${network} ${EVENT_NAMES[ev.type]} could not be bridged${code}: ${err.message}`, replyTo: target };
    }
    return notice ? [{ lane: `notice:${notice.roomId}`, key: `notice:${item.key}`, kind: 'notice', data: notice }] : [];
  }

  // ---- remote -> hub ----

  private async handleRemote(ev: RemoteEvent): Promise<void> {
    switch (ev.type) {
      case 'message':
        return this.postMessage(ev);
      case 'notice': {
        const roomId = await this.ensurePortal(ev.portal);
        const replyTo = ev.targetId ? await this.hubIdOf(ev.targetId) : undefined;
        return this.postNotice(roomId, ev.text, replyTo, undefined, ev.id);
      }
      case 'edit': {
        // Only the bridge's own identity can edit what the bridge sent: an echo.
        if (this.store.get<MsgRecord>(`remote:${ev.targetId}`)?.dir === 'out') return;
        const target = await this.hubIdOf(ev.targetId);
        if (!target) return this.unknownTarget(ev, ev.targetId);
        const ghost = await this.ensureGhost(ev.sender);
        await this.ensurePortal(ev.portal, ghost);
        await this.hub.call('PATCH', `/api/messages/${target}`, { as: ghost, body: { content: ev.text } });
        return;
      }
      case 'delete': {
        const target = await this.hubIdOf(ev.targetId);
        // Deleted before it arrived (networks do not always keep order): never post it.
        if (!target) return this.store.put(`gone:${ev.targetId}`, Date.now());
        // As the bot, the portal's owner: a remote moderator may delete other people's messages.
        await this.hub.call('DELETE', `/api/messages/${target}`);
        return;
      }
      case 'reaction': {
        if (this.store.has(`ownreact:${ev.reactionId}`)) return;
        const target = await this.hubIdOf(ev.targetId);
        if (!target) return this.unknownTarget(ev, ev.targetId);
        const ghost = await this.ensureGhost(ev.sender);
        await this.ensurePortal(ev.portal, ghost);
        const key = `ireact:${ev.reactionId}`;
        const previous = this.store.get<InReaction>(key);
        if (previous && previous.emoji !== ev.emoji) await this.unreact(previous);
        await this.hub.call('PUT', `/api/messages/${target}/reactions/${encodeURIComponent(ev.emoji)}`, { as: ghost });
        await this.store.put(key, { hubId: target, ghost, emoji: ev.emoji } satisfies InReaction);
        return;
      }
      case 'unreaction': {
        const key = `ireact:${ev.reactionId}`;
        const previous = this.store.get<InReaction>(key);
        if (!previous) return;
        await this.unreact(previous);
        await this.store.del(key);
        return;
      }
      case 'receipt': {
        const target = await this.hubIdOf(ev.targetId);
        if (!target) return this.unknownTarget(ev, ev.targetId);
        const ghost = await this.ensureGhost(ev.sender);
        const roomId = await this.ensurePortal(ev.portal, ghost);
        if (ev.receipt === 'read') await this.hub.call('POST', `/api/rooms/${roomId}/read`, { as: ghost, body: { message_id: target } });
        else await this.hub.call('POST', `/api/bridge/messages/${target}/delivered`, { as: ghost });
        return;
      }
      case 'join':
        await this.ensurePortal(ev.portal, await this.ensureGhost(ev.sender));
        return;
      default: {
        const unknown: never = ev;
        this.log.warn({ event: unknown }, 'remote event of an unknown type ignored');
      }
    }
  }

  /**
   * Posts a remote message as its sender's ghost: a reply answers the bridged message, a thread
   * reply the thread's first message; files are re-uploaded (one that fails for good is named in the
   * text instead).
   */
  private async postMessage(ev: Extract<RemoteEvent, { type: 'message' }>): Promise<void> {
    // Bridged already (a repeat, or the echo of the bridge's own send) or deleted before it arrived.
    if (this.store.has(`remote:${ev.id}`) || this.store.has(`gone:${ev.id}`)) return;
    const ghost = await this.ensureGhost(ev.sender);
    const roomId = await this.ensurePortal(ev.portal, ghost);
    const root = ev.thread ? this.store.get<string>(`thread:${ev.thread}`) : undefined;
    const answers = ev.replyTo ?? (ev.threadReply ? root : undefined);
    const replyTo = answers ? await this.hubIdOf(answers) : undefined;
    const attachments: string[] = [];
    const notes: string[] = [];
    for (const media of ev.media ?? []) {
      try {
        if (!this.connector.downloadMedia) throw new RemoteError(`the ${this.connector.network} connector cannot fetch files`, false);
        attachments.push(await this.hub.upload(ghost, await this.connector.downloadMedia(media)));
      } catch (err) {
        if ((err instanceof HubError || err instanceof RemoteError) && !err.transient) notes.push(`📎 ${media.fileName ?? 'file'} (not bridged: ${err.message})`);
        else throw err;
      }
    }
    const content = [ev.text, ...notes].filter(Boolean).join('\n') || (attachments.length ? '' : '(empty message)');
    const sent = await this.hub.call<{ id: string }>('POST', `/api/rooms/${roomId}/messages`, {
      as: ghost,
      body: { content, ts: ev.ts, remote_id: ev.id, ...(replyTo ? { reply_to: replyTo } : {}), ...(attachments.length ? { attachments } : {}) },
    });
    await this.store.batch([
      { put: `remote:${ev.id}`, value: { hubId: sent.id, roomId, dir: 'in', thread: ev.thread } satisfies MsgRecord },
      { put: `hubmsg:${sent.id}`, value: { remoteId: ev.id, parts: [ev.id], portal: ev.portal.id, dir: 'in', thread: ev.thread } satisfies HubMsgRecord },
      { put: `lastin:${ev.portal.id}`, value: ev.id },
      ...(ev.thread && !root ? [{ put: `thread:${ev.thread}`, value: ev.id }] : []),
    ]);
  }

  private async unreact(r: InReaction): Promise<void> {
    await this.hub.call('DELETE', `/api/messages/${r.hubId}/reactions/${encodeURIComponent(r.emoji)}`, { as: r.ghost });
  }

  private unknownTarget(ev: RemoteEvent, target: string): void {
    this.log.info({ id: ev.id, target }, `${ev.type} for a message the bridge does not know; ignored`);
  }

  /** The hub id of a remote message: from the mapping, else from the hub (what the bridge posted). */
  private async hubIdOf(remoteId: string): Promise<string | undefined> {
    const known = this.store.get<MsgRecord>(`remote:${remoteId}`);
    if (known) return known.hubId;
    try {
      return (await this.hub.call<{ id: string }>('GET', `/api/bridge/messages/by-remote-id/${encodeURIComponent(remoteId)}`)).id;
    } catch (err) {
      if (err instanceof HubError && err.status === 404) return undefined;
      throw err;
    }
  }

  /**
   * The ghost of a remote user, created or updated (name, avatar) on the hub when needed; a user
   * without a name keeps the one it has, or is "<network> user <id>". @returns its hub id.
   */
  private async ensureGhost(user: RemoteUser): Promise<string> {
    const key = `ghost:${user.id}`;
    const known = this.store.get<GhostRecord>(key);
    if (known && (!user.name || known.name === user.name) && (!user.avatarUrl || known.avatarUrl === user.avatarUrl)) return known.hubId;
    const localpart = this.namespace + user.id.toLowerCase().replace(/[^a-z0-9_.=-]/g, (c) => `=${c.charCodeAt(0).toString(16)}`);
    const name = (user.name || known?.name || `${this.connector.displayName} user ${user.id}`).slice(0, 100);
    const avatarUrl = user.avatarUrl ?? known?.avatarUrl;
    const ghost = await this.hub.call<{ id: string }>('POST', '/api/bridge/ghosts', { body: { localpart, name, ...(avatarUrl ? { avatar_url: avatarUrl } : {}) } });
    await this.store.put(key, { hubId: ghost.id, name, avatarUrl } satisfies GhostRecord);
    this.ghostIds.add(ghost.id);
    return ghost.id;
  }

  /**
   * The portal room of a remote chat, created on first use, with `ghost` and the connector's portal
   * members (also those configured later) as members. @returns the room id.
   */
  private async ensurePortal(portal: RemotePortal, ghost?: string): Promise<string> {
    const key = `portal:${portal.id}`;
    const known = this.store.get<PortalRecord>(key);
    const wanted = [...(ghost ? [ghost] : []), ...(this.connector.portalMembers?.() ?? [])];
    if (known && wanted.every((id) => known.members.includes(id))) return known.roomId;
    const members = [...new Set([...(known?.members ?? []), ...wanted])];
    const res = await this.hub.call<{ room_id: string }>('POST', '/api/bridge/portals', { body: { remote_id: portal.id, name: portal.name.slice(0, 200), members } });
    await this.store.batch([
      { put: key, value: { roomId: res.room_id, members } satisfies PortalRecord },
      { put: `room:${res.room_id}`, value: portal.id },
    ]);
    return res.room_id;
  }

  /** Posts a notice as the bridge bot; `txnId`/`remoteId` make a repeat after a crash harmless. */
  private async postNotice(roomId: string, text: string, replyTo?: string, txnId?: string, remoteId?: string): Promise<void> {
    await this.hub.call('POST', `/api/rooms/${roomId}/messages`, {
      body: { content: text, ...(replyTo ? { reply_to: replyTo } : {}), ...(txnId ? { txn_id: txnId } : {}), ...(remoteId ? { remote_id: remoteId } : {}) },
    });
  }

  // ---- hub -> remote ----

  private async handleHub(ev: any, portal: string): Promise<void> {
    const c = this.connector;
    switch (ev.type) {
      case 'message.new': {
        const m = ev.message;
        if (this.isOurs(m.user_id) || this.store.has(`hubmsg:${m.id}`) || m.deleted) return;
        const media = [];
        for (const a of m.attachments ?? []) media.push({ data: await this.hub.download(a.id), mimeType: a.mime_type, fileName: a.filename });
        const replied = m.reply_to ? this.store.get<HubMsgRecord>(`hubmsg:${m.reply_to}`) : undefined;
        const sent = await c.sendMessage(portal, { hubId: m.id, text: m.content, senderName: m.user_name, replyTo: replied?.remoteId, thread: replied?.thread, media });
        const thread = sent.thread ?? replied?.thread;
        await this.store.batch([
          { put: `hubmsg:${m.id}`, value: { remoteId: sent.ids[0], parts: sent.ids, portal, dir: 'out', thread, name: m.user_name } satisfies HubMsgRecord },
          ...sent.ids.map((id) => ({ put: `remote:${id}`, value: { hubId: m.id, roomId: ev.room_id, dir: 'out', thread } satisfies MsgRecord })),
          // It started a thread: replies there answer it.
          ...(thread && !this.store.has(`thread:${thread}`) ? [{ put: `thread:${thread}`, value: sent.ids[0] }] : []),
        ]);
        return;
      }
      case 'reaction.added':
      case 'reaction.removed':
        return this.sendReaction(ev, portal);
      case 'message.edited': {
        const rec = this.store.get<HubMsgRecord>(`hubmsg:${ev.message_id}`);
        if (this.isOurs(ev.editor_id) || rec?.dir !== 'out' || !c.sendEdit) return;
        const parts = await c.sendEdit(portal, bridged(ev.message_id, rec), ev.content);
        await this.store.batch([
          { put: `hubmsg:${ev.message_id}`, value: { ...rec, remoteId: parts[0], parts } satisfies HubMsgRecord },
          ...parts.filter((p) => !rec.parts.includes(p)).map((p) => ({ put: `remote:${p}`, value: { hubId: ev.message_id, roomId: ev.room_id, dir: 'out', thread: rec.thread } satisfies MsgRecord })),
          ...rec.parts.filter((p) => !parts.includes(p)).map((p) => ({ del: `remote:${p}` })),
        ]);
        return;
      }
      case 'message.deleted': {
        const rec = this.store.get<HubMsgRecord>(`hubmsg:${ev.message_id}`);
        if (this.isOurs(ev.deleted_by) || rec?.dir !== 'out' || !c.sendRedaction) return;
        return c.sendRedaction(portal, bridged(ev.message_id, rec));
      }
      case 'message.read': {
        if (this.isOurs(ev.user_id) || !c.sendReadReceipt) return;
        const target = this.store.get<HubMsgRecord>(`hubmsg:${ev.message_id}`);
        const remoteId = target?.dir === 'in' ? target.remoteId : this.store.get<string>(`lastin:${portal}`);
        if (!remoteId || this.store.get<string>(`readup:${portal}`) === remoteId) return;
        await c.sendReadReceipt(portal, remoteId);
        await this.store.put(`readup:${portal}`, remoteId);
        return;
      }
    }
  }

  /**
   * Hub users' reactions become the bridge's reaction on the network: one per emoji and message,
   * made when the first hub user adds it and taken back when the last one removes it.
   */
  private async sendReaction(ev: { type: string; message_id: string; user_id: string; key: string }, portal: string): Promise<void> {
    const c = this.connector;
    const target = this.store.get<HubMsgRecord>(`hubmsg:${ev.message_id}`);
    if (this.isOurs(ev.user_id) || !target || !c.sendReaction || !c.sendReactionRemove) return;
    const key = `oreact:${ev.message_id}:${ev.key}`;
    const state = this.store.get<OutReaction>(key) ?? { users: [] };
    const add = ev.type === 'reaction.added';
    if (add === state.users.includes(ev.user_id)) return;
    const users = add ? [...state.users, ev.user_id] : state.users.filter((u) => u !== ev.user_id);
    const ops: Op[] = [];
    let id = state.id;
    if (add && state.users.length === 0) {
      id = await c.sendReaction(portal, target.remoteId, ev.key);
      if (id) ops.push({ put: `ownreact:${id}`, value: Date.now() });
    }
    if (users.length === 0) await c.sendReactionRemove(portal, target.remoteId, ev.key, id);
    ops.push(users.length ? { put: key, value: { users, id } satisfies OutReaction } : { del: key });
    await this.store.batch(ops);
  }

  /** Typing is best effort: not queued, failures only logged, and ignored when older than 10 s (a retried transaction). */
  private async onTyping(ev: { room_id: string; user_id: string; typing: boolean; ts?: number }): Promise<void> {
    const portal = this.store.get<string>(`room:${ev.room_id}`);
    const last = portal ? this.store.get<string>(`lastin:${portal}`) : undefined;
    if (!ev.typing || this.isOurs(ev.user_id) || !portal || !last || !this.connector.sendTyping) return;
    if (ev.ts !== undefined && Date.now() - ev.ts > TYPING_STALE_MS) return;
    await this.connector.sendTyping(portal, last).catch((err) => this.log.warn({ err: err.message }, 'typing not sent'));
  }
}

function withPrefix(op: Op): Op {
  return 'put' in op ? { put: CONNECTOR_PREFIX + op.put, value: op.value } : { del: CONNECTOR_PREFIX + op.del };
}

function bridged(hubId: string, rec: HubMsgRecord): BridgedMessage {
  return { hubId, parts: rec.parts, thread: rec.thread, senderName: rec.name ?? '' };
}

/** Relay formatting of a hub user's message: `format` with `{name}` and `{body}` replaced; '' sends the body alone. */
export function relay(format: string, name: string, body: string): string {
  if (!format) return body;
  return format.replace(/\{name\}|\{body\}/g, (t) => (t === '{name}' ? name : body));
}

/** Constant-time string comparison (hashes first, so lengths do not leak). */
export function safeEqual(a: string, b: string): boolean {
  const ha = crypto.createHash('sha256').update(a).digest();
  const hb = crypto.createHash('sha256').update(b).digest();
  return crypto.timingSafeEqual(ha, hb);
}
