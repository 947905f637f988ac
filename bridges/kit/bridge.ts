/**
 * The bridge runtime every network shares: an HTTP server for the hub's transactions (and the
 * connector's webhook), the durable store and queue, the remote <-> hub id mappings, ghosts and
 * portals, and the two directions:
 *
 * - remote -> hub: the connector hands `RemoteEvent`s to `receive`; they are persisted (deduped by
 *   id) before the connector answers its network, then posted to the hub as ghosts, with the original
 *   timestamp and the remote id (so a repeat after a crash is answered with the first message).
 * - hub -> remote: `PUT /transactions/{txn_id}` (Bearer hs_token) persists the events (deduped by
 *   txn_id and stream position) before answering 200; then each is handed to the connector. Events
 *   sent by the bridge's own users (its bot and ghosts) are dropped: no echoes.
 *
 * Store keys: `ghost:<remote user>` {hubId,name}, `portal:<remote chat>` {roomId,members},
 * `room:<room id>` remote chat, `remote:<remote msg>` {hubId,roomId,dir}, `hubmsg:<hub msg>`
 * {remoteId,portal,dir}, `react:<chat>:<user>:<remote msg>` emoji, `lastin:<chat>` last inbound
 * remote msg, `txn:<id>` / `seen:<key>` dedupe (kept 7 days), `q:<seq>` queue, `dead:<seq>` dead letters.
 */
import crypto from 'node:crypto';
import path from 'node:path';
import Fastify, { type FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import { HubClient, HubError } from './hub-client.js';
import { WorkQueue, type NewItem, type WorkItem } from './queue.js';
import { FileStore } from './store.js';
import { RemoteError, type BridgeContext, type Connector, type RemoteEvent, type RemoteUser } from './types.js';

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
/** Dedupe keys are kept this long (Meta redelivers webhooks for up to 7 days). */
const DEDUPE_TTL_MS = 7 * 24 * 3600 * 1000;

interface PortalRecord {
  roomId: string;
  members: string[];
}
interface MsgRecord {
  hubId: string;
  roomId: string;
  dir: 'in' | 'out';
}
interface HubMsgRecord {
  remoteId: string;
  portal: string;
  dir: 'in' | 'out';
}

export class Bridge {
  readonly hub: HubClient;
  store!: FileStore;
  queue!: WorkQueue;
  app!: FastifyInstance;
  botId = '';
  private namespace = '';
  private readonly ghostIds = new Set<string>();
  private readonly log: Logger;
  private readonly ctx: BridgeContext;

  constructor(
    private readonly opts: BridgeOptions,
    readonly connector: Connector,
  ) {
    this.log = opts.log;
    this.hub = new HubClient(opts.hubUrl, opts.asToken, opts.log);
    this.ctx = { log: opts.log, receive: (events) => this.receive(events) };
  }

  /**
   * Opens the store, waits for the hub (retrying), starts the connector and the HTTP server, and
   * resumes whatever was queued before a restart.
   * @returns the URL it listens on.
   */
  async start(): Promise<string> {
    this.store = await FileStore.open(path.join(this.opts.dataDir, 'state.jsonl'), (key, value) =>
      !(key.startsWith('seen:') || key.startsWith('txn:')) || Date.now() - (value as number) < DEDUPE_TTL_MS,
    );
    for (const [, g] of this.store.entries<{ hubId: string }>('ghost:')) this.ghostIds.add(g.hubId);
    this.queue = new WorkQueue(this.store, (item) => this.handle(item), (item, err) => this.deadLetter(item, err), this.opts, this.log);
    await this.whoami();

    const url = new URL(this.opts.url);
    this.app = Fastify({ loggerInstance: this.log, bodyLimit: 32 * 1048576 }) as unknown as FastifyInstance;
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

  /** Persists remote events (skipping known ids) and resolves once they are durable. */
  async receive(events: RemoteEvent[]): Promise<void> {
    await this.queue.enqueue(events.map((ev) => ({ lane: `in:${ev.portal.id}`, key: `${this.connector.network}:${ev.id}`, kind: 'remote', data: ev })));
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

  private handle(item: WorkItem): Promise<void> {
    if (item.kind === 'remote') return this.handleRemote(item.data as RemoteEvent);
    if (item.kind === 'hub') return this.handleHub(item.data);
    return this.postNotice(item.data.roomId, item.data.text, item.data.replyTo, item.key);
  }

  /** What to do when an item can never be handled: a notice in the room for a failed outbound send. */
  private deadLetter(item: WorkItem, err: Error): NewItem[] {
    if (item.kind !== 'hub') return [];
    const ev = item.data;
    const code = err instanceof RemoteError && err.code !== undefined ? ` (error ${err.code})` : '';
    const what = ev.type === 'message.new' ? 'This message was not delivered' : `A ${ev.type} was not delivered`;
    const replyTo = ev.type === 'message.new' ? ev.message.id : ev.message_id;
    return [{ lane: `notice:${ev.room_id}`, key: `notice:${item.key}`, kind: 'notice', data: { roomId: ev.room_id, text: `⚠️ ${what} to ${this.connector.network}${code}: ${err.message}`, replyTo } }];
  }

  // ---- remote -> hub ----

  private async handleRemote(ev: RemoteEvent): Promise<void> {
    if (ev.type === 'notice') {
      const roomId = await this.ensurePortal(ev.portal);
      const replyTo = ev.targetId ? await this.hubIdOf(ev.targetId) : undefined;
      return this.postNotice(roomId, ev.text, replyTo, undefined, ev.id);
    }
    const ghost = await this.ensureGhost(ev.sender);
    const roomId = await this.ensurePortal(ev.portal, ghost);
    if (ev.type === 'message') {
      if (this.store.has(`remote:${ev.id}`)) return;
      const replyTo = ev.replyTo ? await this.hubIdOf(ev.replyTo) : undefined;
      const attachments: string[] = [];
      if (ev.media && this.connector.downloadMedia) attachments.push(await this.hub.upload(ghost, await this.connector.downloadMedia(ev.media)));
      const sent = await this.hub.call<{ id: string }>('POST', `/api/rooms/${roomId}/messages`, {
        as: ghost,
        body: { content: ev.text, ts: ev.ts, remote_id: ev.id, ...(replyTo ? { reply_to: replyTo } : {}), ...(attachments.length ? { attachments } : {}) },
      });
      await this.store.batch([
        { put: `remote:${ev.id}`, value: { hubId: sent.id, roomId, dir: 'in' } satisfies MsgRecord },
        { put: `hubmsg:${sent.id}`, value: { remoteId: ev.id, portal: ev.portal.id, dir: 'in' } satisfies HubMsgRecord },
        { put: `lastin:${ev.portal.id}`, value: ev.id },
      ]);
      return;
    }
    const target = await this.hubIdOf(ev.targetId);
    if (!target) {
      this.log.info({ id: ev.id, target: ev.targetId }, `${ev.type} for a message the bridge does not know; ignored`);
      return;
    }
    if (ev.type === 'reaction') {
      const key = `react:${ev.portal.id}:${ev.sender.id}:${ev.targetId}`;
      const previous = this.store.get<string>(key);
      if (previous && previous !== ev.emoji) await this.hub.call('DELETE', `/api/messages/${target}/reactions/${encodeURIComponent(previous)}`, { as: ghost });
      if (ev.emoji) await this.hub.call('PUT', `/api/messages/${target}/reactions/${encodeURIComponent(ev.emoji)}`, { as: ghost });
      await this.store.batch([ev.emoji ? { put: key, value: ev.emoji } : { del: key }]);
      return;
    }
    if (ev.receipt === 'read') await this.hub.call('POST', `/api/rooms/${roomId}/read`, { as: ghost, body: { message_id: target } });
    else await this.hub.call('POST', `/api/bridge/messages/${target}/delivered`, { as: ghost });
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

  /** The ghost of a remote user, created (or renamed) on the hub when needed. @returns its hub id. */
  private async ensureGhost(user: RemoteUser): Promise<string> {
    const key = `ghost:${user.id}`;
    const known = this.store.get<{ hubId: string; name: string }>(key);
    if (known && (known.name === user.name || !user.name)) return known.hubId;
    const localpart = this.namespace + user.id.toLowerCase().replace(/[^a-z0-9_.=-]/g, (c) => `=${c.charCodeAt(0).toString(16)}`);
    const ghost = await this.hub.call<{ id: string }>('POST', '/api/bridge/ghosts', { body: { localpart, name: user.name || user.id } });
    await this.store.put(key, { hubId: ghost.id, name: user.name });
    this.ghostIds.add(ghost.id);
    return ghost.id;
  }

  /**
   * The portal room of a remote chat, created on first use, with `ghost` and the connector's portal
   * members (also those configured later) as members. @returns the room id.
   */
  private async ensurePortal(portal: { id: string; name: string }, ghost?: string): Promise<string> {
    const key = `portal:${portal.id}`;
    const known = this.store.get<PortalRecord>(key);
    const wanted = [...(ghost ? [ghost] : []), ...(this.connector.portalMembers?.() ?? [])];
    if (known && wanted.every((id) => known.members.includes(id))) return known.roomId;
    const members = [...new Set([...(known?.members ?? []), ...wanted])];
    const res = await this.hub.call<{ room_id: string }>('POST', '/api/bridge/portals', { body: { remote_id: portal.id, name: portal.name, members } });
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

  private async handleHub(ev: any): Promise<void> {
    const portal = this.store.get<string>(`room:${ev.room_id}`);
    if (!portal) return;
    const c = this.connector;
    switch (ev.type) {
      case 'message.new': {
        const m = ev.message;
        if (this.isOurs(m.user_id) || this.store.has(`hubmsg:${m.id}`) || m.deleted) return;
        const media = [];
        for (const a of m.attachments ?? []) media.push({ data: await this.hub.download(a.id), mimeType: a.mime_type, fileName: a.filename });
        const replyTo = m.reply_to ? this.store.get<HubMsgRecord>(`hubmsg:${m.reply_to}`)?.remoteId : undefined;
        const remoteId = await c.sendMessage(portal, { hubId: m.id, text: m.content, senderName: m.user_name, replyTo, media });
        await this.store.batch([
          { put: `hubmsg:${m.id}`, value: { remoteId, portal, dir: 'out' } satisfies HubMsgRecord },
          { put: `remote:${remoteId}`, value: { hubId: m.id, roomId: ev.room_id, dir: 'out' } satisfies MsgRecord },
        ]);
        return;
      }
      case 'reaction.added':
      case 'reaction.removed': {
        const target = this.store.get<HubMsgRecord>(`hubmsg:${ev.message_id}`);
        if (this.isOurs(ev.user_id) || !target || !c.sendReaction) return;
        return c.sendReaction(portal, target.remoteId, ev.type === 'reaction.added' ? ev.key : '');
      }
      case 'message.edited': {
        const target = this.store.get<HubMsgRecord>(`hubmsg:${ev.message_id}`);
        if (this.isOurs(ev.editor_id) || target?.dir !== 'out' || !c.sendEdit) return;
        return c.sendEdit(portal, target.remoteId, ev.content);
      }
      case 'message.deleted': {
        const target = this.store.get<HubMsgRecord>(`hubmsg:${ev.message_id}`);
        if (this.isOurs(ev.deleted_by) || target?.dir !== 'out' || !c.sendRedaction) return;
        return c.sendRedaction(portal, target.remoteId);
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

  /** Typing is best effort: not queued, failures only logged, and ignored when older than 10 s (a retried transaction). */
  private async onTyping(ev: { room_id: string; user_id: string; typing: boolean; ts?: number }): Promise<void> {
    const portal = this.store.get<string>(`room:${ev.room_id}`);
    const last = portal ? this.store.get<string>(`lastin:${portal}`) : undefined;
    if (!ev.typing || this.isOurs(ev.user_id) || !portal || !last || !this.connector.sendTyping) return;
    if (ev.ts !== undefined && Date.now() - ev.ts > TYPING_STALE_MS) return;
    await this.connector.sendTyping(portal, last).catch((err) => this.log.warn({ err: err.message }, 'typing not sent'));
  }
}

/** Constant-time string comparison (hashes first, so lengths do not leak). */
export function safeEqual(a: string, b: string): boolean {
  const ha = crypto.createHash('sha256').update(a).digest();
  const hb = crypto.createHash('sha256').update(b).digest();
  return crypto.timingSafeEqual(ha, hb);
}
