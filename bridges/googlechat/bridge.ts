/**
 * The Google Chat bridge: a Google Chat space and a Switchboard room become one conversation.
 *
 * It reuses the kit's pieces (the durable `FileStore`, the per-lane `WorkQueue` with dedupe, backoff
 * and dead letters, the `HubClient`, the hub transaction endpoint's rules) and follows the kit's
 * `Bridge` closely, but runs its own event handling: Google Chat needs what the kit's remote events
 * do not have yet (inbound edits and deletions, several reactions per person, threads, connector
 * state such as subscriptions and catch-up marks, multi-part messages). See docs/BRIDGES-GOOGLECHAT.md.
 *
 * Google -> hub, three ways in, one queue: interaction events (`POST {events_path}`, bearer token
 * verified, 401 otherwise), Workspace Events via Pub/Sub push (`POST {pubsub_path}`, push token
 * verified, 401 otherwise) and the catch-up (`spaces.messages.list` since the last message seen,
 * on start and whenever a subscription is (re)made). Each event is persisted (deduped by id) before
 * the answer, then handled in order per space: ghosts post with the original time and the message
 * name as remote id; thread replies become hub replies to the thread's first message.
 * Hub -> Google: `PUT /transactions/{txn_id}` (Bearer hs_token), persisted before the 200, then per
 * room in order: messages relay-formatted by the app (split over 32,000 bytes; files uploaded and
 * posted by the delegated user), replies in the target's thread, edits, deletions, reactions.
 *
 * Store keys (besides the queue's `q:`, `seen:`, `dead:`, `txn:`): `ghost:<users/…>` {hubId,name,
 * avatarUrl}, `portal:<spaces/…>` {roomId,members}, `room:<room id>` space, `space:<spaces/…>`
 * {displayName,active}, `sub:<spaces/…>` subscription {name,expireTime}, `lastseen:<spaces/…>`
 * createTime of the newest message received, `remote:<message>` {hubId,roomId,dir,thread},
 * `hubmsg:<hub id>` {remoteId,parts,portal,dir,thread,name}, `thread:<thread>` first message seen in
 * it, `gone:<message>` deleted before it arrived, `ireact:<reaction>` {hubId,ghost,emoji},
 * `oreact:<message>:<emoji>` {name,users}, `ours:<reaction>` reactions the bridge made.
 */
import path from 'node:path';
import Fastify, { type FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import type { Static } from 'typebox';
import { ConfigError } from '../../src/config/load.js';
import type { GoogleChatSettingsSchema } from '../../src/config/schema.js';
import { safeEqual, type BridgeOptions } from '../kit/bridge.js';
import { HubClient, HubError } from '../kit/hub-client.js';
import { WorkQueue, type NewItem, type WorkItem } from '../kit/queue.js';
import { FileStore, type Op } from '../kit/store.js';
import { RemoteError, type RemotePortal, type RemoteUser } from '../kit/types.js';
import { CLIENT_ID_PREFIX, fromInteraction, fromPush, outboundTexts, spaceInfo, type ChatEvent, type ChatMessage, type Lifecycle, type SpaceInfo } from './convert.js';
import { GoogleChat } from './google.js';
import { TokenError, TokenVerifier } from './verify.js';

export type GoogleChatSettings = Static<typeof GoogleChatSettingsSchema>;

/** Dedupe keys are kept this long (Pub/Sub retains unacknowledged messages up to 7 days). */
const DEDUPE_TTL_MS = 7 * 24 * 3600 * 1000;

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
interface Part {
  name: string;
  /** Created by the delegated user (it carries files), so only that user may change it. */
  asUser: boolean;
}
interface HubMsgRecord {
  remoteId: string;
  parts: Part[];
  portal: string;
  dir: 'in' | 'out';
  thread?: string;
  /** The hub sender's name (relay formatting of edits). */
  name?: string;
}
interface SpaceRecord {
  displayName: string;
  active: boolean;
}

/** The `client-…` id (and request id) of part `i` of hub message `hubId`. */
function clientId(hubId: string, i: number): string {
  return `${CLIENT_ID_PREFIX}${hubId.toLowerCase()}-${i}`;
}

export class GoogleChatBridge {
  readonly hub: HubClient;
  readonly google: GoogleChat;
  store!: FileStore;
  queue!: WorkQueue;
  app!: FastifyInstance;
  botId = '';
  private namespace = '';
  private readonly ghostIds = new Set<string>();
  private readonly verifier: TokenVerifier;
  private readonly renewals = new Map<string, NodeJS.Timeout>();
  private readonly activating = new Set<string>();
  private stopped = false;
  private readonly log: Logger;

  constructor(
    private readonly opts: BridgeOptions,
    private readonly settings: GoogleChatSettings,
  ) {
    this.log = opts.log;
    this.hub = new HubClient(opts.hubUrl, opts.asToken, opts.log);
    this.google = new GoogleChat({
      credentialsFile: settings.credentials_file,
      delegatedUser: settings.delegated_user,
      apiBaseUrl: settings.api_base_url,
      tokenUrl: settings.token_url,
      eventsBaseUrl: settings.events_api_base_url,
    });
    this.verifier = new TokenVerifier({
      audienceMode: settings.audience_mode,
      projectNumber: settings.project_number,
      endpointUrl: settings.endpoint_url,
      pubsubAudience: settings.pubsub_audience,
      pubsubServiceAccount: settings.pubsub_service_account,
      chatCertsUrl: settings.chat_certs_url,
      oidcJwksUrl: settings.oidc_jwks_url,
    });
  }

  /**
   * Opens the store, waits for the hub, starts the HTTP server and the queue (resuming what was
   * queued), then, in the background, (re)subscribes every bridged space and catches up on it.
   * @returns the URL it listens on.
   */
  async start(): Promise<string> {
    this.stopped = false;
    this.store = await FileStore.open(path.join(this.opts.dataDir, 'state.jsonl'), (key, value) =>
      !(key.startsWith('seen:') || key.startsWith('txn:')) || Date.now() - (value as number) < DEDUPE_TTL_MS,
    );
    for (const [, g] of this.store.entries<{ hubId: string }>('ghost:')) this.ghostIds.add(g.hubId);
    this.queue = new WorkQueue(this.store, (item) => this.handle(item), (item, err) => this.deadLetter(item, err), this.opts, this.log);
    await this.whoami();

    const url = new URL(this.opts.url);
    // forceCloseConnections: a keep-alive connection that went idle after close() began would hold it
    // open for the keep-alive timeout; a request cut off is retried by its sender (hub or Pub/Sub).
    this.app = Fastify({ loggerInstance: this.log, bodyLimit: 32 * 1048576, forceCloseConnections: true }) as unknown as FastifyInstance;
    this.app.get('/health', async () => ({ status: 'ok', queued: this.queue.size }));
    this.app.put('/transactions/:txn_id', async (req, reply) => {
      const auth = req.headers.authorization ?? '';
      if (!auth.startsWith('Bearer ')) return reply.code(401).send({ error: { code: 'UNAUTHORIZED', message: 'Missing hs_token' } });
      if (!safeEqual(auth.slice(7), this.opts.hsToken)) return reply.code(403).send({ error: { code: 'FORBIDDEN', message: 'Wrong hs_token' } });
      await this.onTransaction((req.params as { txn_id: string }).txn_id, req.body as { events?: any[] });
      return {};
    });
    this.app.post(this.settings.events_path, async (req, reply) => {
      try {
        await this.verifier.verifyChat(req.headers.authorization);
      } catch (err) {
        if (!(err instanceof TokenError)) throw err;
        this.log.warn({ ip: req.ip, err: err.message }, 'interaction event refused');
        return reply.code(401).send({ error: 'unauthorized' });
      }
      await this.onInteraction(req.body);
      // An empty object: no synchronous reply message in Chat.
      return {};
    });
    this.app.post(this.settings.pubsub_path, async (req, reply) => {
      try {
        await this.verifier.verifyPubsub(req.headers.authorization);
      } catch (err) {
        if (!(err instanceof TokenError)) throw err;
        this.log.warn({ ip: req.ip, err: err.message }, 'Pub/Sub push refused');
        return reply.code(401).send({ error: 'unauthorized' });
      }
      const body = req.body as { subscription?: string; message?: { data?: string; attributes?: Record<string, string> } };
      if (this.settings.pubsub_subscription && body?.subscription !== this.settings.pubsub_subscription) {
        this.log.warn({ subscription: body?.subscription }, 'push from an unexpected subscription refused');
        return reply.code(403).send({ error: 'unexpected subscription' });
      }
      await this.onPush(body?.message);
      // 204 acknowledges the Pub/Sub message.
      return reply.code(204).send();
    });
    await this.app.listen({ host: url.hostname.replace(/^\[|\]$/g, ''), port: Number(url.port || (url.protocol === 'https:' ? 443 : 80)) });
    this.queue.start();
    const spaces = new Set([...this.settings.spaces, ...this.store.entries<SpaceRecord>('space:').filter(([, s]) => s.active).map(([k]) => k.slice('space:'.length))]);
    for (const space of spaces) void this.activate(space);
    const address = this.app.server.address() as { port: number };
    return `${url.protocol}//${url.hostname}:${address.port}`;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    for (const timer of this.renewals.values()) clearTimeout(timer);
    this.renewals.clear();
    await this.app?.close();
    await this.queue?.stop();
    await this.store?.close();
  }

  /**
   * Persists Google events (skipping known ids) in one durable write with the newest message time per
   * space (the catch-up mark), and resolves once they are durable; handling follows per space.
   */
  async receive(events: ChatEvent[]): Promise<void> {
    const latest = new Map<string, number>();
    for (const ev of events) if (ev.type === 'message') latest.set(ev.space, Math.max(latest.get(ev.space) ?? 0, ev.ts));
    const marks: Op[] = [];
    for (const [space, ts] of latest) {
      const seen = this.store.get<string>(`lastseen:${space}`);
      if (!seen || Date.parse(seen) < ts) marks.push({ put: `lastseen:${space}`, value: new Date(ts).toISOString() });
    }
    await this.queue.enqueue(events.map((ev) => ({ lane: `in:${ev.space}`, key: `googlechat:${ev.id}`, kind: 'remote', data: ev })), marks);
  }

  // ---- Google -> bridge ----

  private async onInteraction(body: unknown): Promise<void> {
    const { action, space, events } = fromInteraction(body);
    if (!space) return;
    if (action === 'removed') {
      await this.store.put(`space:${space.name}`, { displayName: space.displayName, active: false } satisfies SpaceRecord);
      clearTimeout(this.renewals.get(space.name));
      const sub = this.store.get<{ name: string }>(`sub:${space.name}`);
      if (sub) void this.google.unsubscribe(sub.name).catch((err) => this.log.warn({ err: err.message }, 'subscription not deleted'));
    }
    const fresh = (action === 'added' || action === 'message') && !this.store.get<SpaceRecord>(`space:${space.name}`)?.active;
    if (fresh) await this.register(space);
    await this.receive(events);
    if (fresh) void this.activate(space.name);
  }

  private async onPush(message: { data?: string; attributes?: Record<string, string> } | undefined): Promise<void> {
    let data: unknown;
    try {
      data = JSON.parse(Buffer.from(message?.data ?? '', 'base64').toString('utf8'));
    } catch {
      this.log.warn({ attributes: message?.attributes }, 'undecodable push acknowledged and dropped');
      return;
    }
    const { events, lifecycle } = fromPush(message?.attributes ?? {}, data);
    if (lifecycle) this.onLifecycle(lifecycle);
    await this.receive(events.filter((ev) => this.store.get<SpaceRecord>(`space:${ev.space}`)?.active));
  }

  /** Subscription lifecycle: renew on a reminder, re-create (and catch up) once expired or suspended. */
  private onLifecycle(ev: Lifecycle): void {
    const space = ev.subscription.targetResource?.replace('//chat.googleapis.com/', '') ?? this.store.entries<{ name: string }>('sub:').find(([, s]) => s.name === ev.subscription.name)?.[0].slice(4);
    this.log.info({ type: ev.type, subscription: ev.subscription.name, space }, 'subscription lifecycle event');
    if (space && this.store.get<SpaceRecord>(`space:${space}`)?.active) void this.activate(space);
  }

  /** Marks a space bridged; its catch-up starts now (no history import). */
  private async register(space: SpaceInfo): Promise<void> {
    const ops: Op[] = [{ put: `space:${space.name}`, value: { displayName: space.displayName, active: true } satisfies SpaceRecord }];
    if (!this.store.has(`lastseen:${space.name}`)) ops.push({ put: `lastseen:${space.name}`, value: new Date().toISOString() });
    await this.store.batch(ops);
  }

  /**
   * Brings a space up to date, retrying transient failures with backoff: registers a configured space
   * (its portal announced by a notice), renews or re-creates its Workspace Events subscription
   * (scheduling the next renewal `subscription_renew_before_s` before expiry), then lists what was
   * said since the last message seen and queues it (duplicates of what arrives by push are dropped).
   */
  private async activate(space: string): Promise<void> {
    if (this.activating.has(space)) return;
    this.activating.add(space);
    try {
      for (let attempt = 1; !this.stopped; attempt++) {
        try {
          if (!this.store.has(`space:${space}`)) {
            const info = spaceInfo(await this.google.getSpace(space))!;
            await this.register(info);
            await this.receive([{ type: 'notice', id: `configured:${space}`, space, ts: Date.now(), text: `✅ This room mirrors the Google Chat space "${info.displayName}".` }]);
          }
          if (this.settings.pubsub_topic) await this.subscribe(space);
          await this.catchUp(space);
          return;
        } catch (err) {
          if (this.stopped) return;
          const transient = !(err instanceof RemoteError) || err.transient;
          if (!transient) {
            this.log.error({ space, err: (err as Error).message }, 'space not activated');
            return;
          }
          const delay = Math.min(this.opts.retryMaxMs, 250 * 2 ** Math.min(attempt, 10));
          this.log.warn({ space, err: (err as Error).message, delay_ms: delay }, 'space activation retried');
          await new Promise((resolve) => setTimeout(resolve, delay));
        }
      }
    } finally {
      this.activating.delete(space);
    }
  }

  /** Renews the space's subscription, or creates one when there is none (anymore), and schedules the next renewal. */
  private async subscribe(space: string): Promise<void> {
    const known = this.store.get<{ name: string }>(`sub:${space}`);
    const ttl = this.settings.subscription_ttl_s;
    const sub = (known && (await this.google.renew(known.name, ttl))) || (await this.google.subscribe(space, this.settings.pubsub_topic, ttl));
    await this.store.put(`sub:${space}`, { name: sub.name, expireTime: sub.expireTime });
    clearTimeout(this.renewals.get(space));
    if (this.stopped) return;
    const delay = Math.max(0, Date.parse(sub.expireTime) - Date.now() - this.settings.subscription_renew_before_s * 1000);
    this.renewals.set(space, setTimeout(() => void this.activate(space), delay));
    this.log.info({ space, subscription: sub.name, expires: sub.expireTime }, 'subscribed');
  }

  /** Queues the messages created since the space's last seen message (none on the first activation). */
  private async catchUp(space: string): Promise<void> {
    const since = this.store.get<string>(`lastseen:${space}`);
    if (!since) return;
    const events: ChatEvent[] = [];
    for (const m of await this.google.listSince(space, since)) {
      const ev = fromPush({ 'ce-type': 'google.workspace.chat.message.v1.created' }, { message: m }).events[0];
      if (ev) events.push(ev);
    }
    const before = this.queue.size;
    await this.receive(events);
    this.log.info({ space, since, listed: events.length, queued: this.queue.size - before }, 'caught up');
  }

  // ---- bridge -> hub ----

  private handle(item: WorkItem): Promise<void> {
    if (item.kind === 'remote') return this.handleRemote(item.data as ChatEvent);
    if (item.kind === 'hub') return this.handleHub(item.data);
    return this.postNotice(item.data.roomId, item.data.text, item.data.replyTo, item.key);
  }

  private async handleRemote(ev: ChatEvent): Promise<void> {
    const portal: RemotePortal = { id: ev.space, name: this.store.get<SpaceRecord>(`space:${ev.space}`)?.displayName ?? ev.space };
    switch (ev.type) {
      case 'notice':
        return this.postNotice(await this.ensurePortal(portal), ev.text, undefined, undefined, `googlechat:${ev.id}`);
      case 'member': {
        const ghost = await this.ensureGhost(ev.sender);
        if (ev.joined) await this.ensurePortal(portal, ghost);
        else await this.postNotice(await this.ensurePortal(portal), `${ev.sender.name || 'Someone'} left the Google Chat space.`, undefined, undefined, `googlechat:${ev.id}`);
        return;
      }
      case 'message':
        return this.postMessage(portal, ev.sender, ev.message, ev.ts);
      case 'edit': {
        const target = await this.hubIdOf(ev.message.name);
        if (!target) return this.log.info({ message: ev.message.name }, 'edit of a message the bridge does not know; ignored');
        const ghost = await this.ensureGhost(ev.sender);
        await this.hub.call('PATCH', `/api/messages/${target}`, { as: ghost, body: { content: ev.message.text } });
        return;
      }
      case 'delete': {
        const target = await this.hubIdOf(ev.target);
        // Deleted before it arrived (events are not ordered): never post it.
        if (!target) return this.store.put(`gone:${ev.target}`, Date.now());
        // As the bot (the portal's owner): a space manager may delete other people's messages.
        await this.hub.call('DELETE', `/api/messages/${target}`);
        return;
      }
      case 'reaction': {
        if (this.store.has(`ours:${ev.reaction}`) || ev.sender.id === this.store.get<string>('self:user')) return;
        const target = await this.hubIdOf(ev.target);
        if (!target) return this.log.info({ target: ev.target }, 'reaction to a message the bridge does not know; ignored');
        const ghost = await this.ensureGhost(ev.sender);
        await this.hub.call('PUT', `/api/messages/${target}/reactions/${encodeURIComponent(ev.emoji)}`, { as: ghost });
        await this.store.put(`ireact:${ev.reaction}`, { hubId: target, ghost, emoji: ev.emoji });
        return;
      }
      case 'unreaction': {
        const r = this.store.get<{ hubId: string; ghost: string; emoji: string }>(`ireact:${ev.reaction}`);
        if (!r) return;
        await this.hub.call('DELETE', `/api/messages/${r.hubId}/reactions/${encodeURIComponent(r.emoji)}`, { as: r.ghost });
        await this.store.del(`ireact:${ev.reaction}`);
        return;
      }
    }
  }

  /** Posts a Chat message as its sender's ghost; a thread reply answers the thread's first message. */
  private async postMessage(portal: RemotePortal, sender: RemoteUser, m: ChatMessage, ts: number): Promise<void> {
    if (this.store.has(`remote:${m.name}`) || this.store.has(`gone:${m.name}`)) return;
    const ghost = await this.ensureGhost(sender);
    const roomId = await this.ensurePortal(portal, ghost);
    const root = m.thread ? this.store.get<string>(`thread:${m.thread}`) : undefined;
    const replyTo = m.threadReply && root ? await this.hubIdOf(root) : undefined;
    const attachments: string[] = [];
    const notes: string[] = [];
    for (const f of m.media) {
      try {
        attachments.push(await this.hub.upload(ghost, { data: await this.google.download(f.id), mimeType: f.mimeType, fileName: f.fileName ?? 'file' }));
      } catch (err) {
        if ((err instanceof HubError || err instanceof RemoteError) && !err.transient) notes.push(`📎 ${f.fileName} (not bridged: ${err.message})`);
        else throw err;
      }
    }
    const content = [m.text, ...notes].filter(Boolean).join('\n') || (attachments.length ? '' : '(empty message)');
    const sent = await this.hub.call<{ id: string }>('POST', `/api/rooms/${roomId}/messages`, {
      as: ghost,
      body: { content, ts, remote_id: m.name, ...(replyTo ? { reply_to: replyTo } : {}), ...(attachments.length ? { attachments } : {}) },
    });
    const ops: Op[] = [
      { put: `remote:${m.name}`, value: { hubId: sent.id, roomId, dir: 'in', thread: m.thread } satisfies MsgRecord },
      { put: `hubmsg:${sent.id}`, value: { remoteId: m.name, parts: [{ name: m.name, asUser: false }], portal: portal.id, dir: 'in', thread: m.thread } satisfies HubMsgRecord },
    ];
    if (m.thread && !root) ops.push({ put: `thread:${m.thread}`, value: m.name });
    await this.store.batch(ops);
  }

  /** The hub id of a Chat message: from the mapping, else from the hub (what the bridge posted). */
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

  /** The ghost of a Google user, created or updated (name, avatar) on the hub when needed. @returns its hub id. */
  private async ensureGhost(user: RemoteUser): Promise<string> {
    const key = `ghost:${user.id}`;
    const known = this.store.get<{ hubId: string; name: string; avatarUrl?: string }>(key);
    if (known && (!user.name || known.name === user.name) && (!user.avatarUrl || known.avatarUrl === user.avatarUrl)) return known.hubId;
    const id = user.id.replace(/^users\//, '');
    const localpart = this.namespace + id.toLowerCase().replace(/[^a-z0-9_.=-]/g, (c) => `=${c.charCodeAt(0).toString(16)}`);
    const name = (user.name || known?.name || `Google Chat user ${id}`).slice(0, 100);
    const avatarUrl = user.avatarUrl ?? known?.avatarUrl;
    const ghost = await this.hub.call<{ id: string }>('POST', '/api/bridge/ghosts', { body: { localpart, name, ...(avatarUrl ? { avatar_url: avatarUrl } : {}) } });
    await this.store.put(key, { hubId: ghost.id, name, avatarUrl });
    this.ghostIds.add(ghost.id);
    return ghost.id;
  }

  /** The portal room of a space, created on first use, with `ghost` and the configured hub users (also those configured later) as members. */
  private async ensurePortal(portal: RemotePortal, ghost?: string): Promise<string> {
    const key = `portal:${portal.id}`;
    const known = this.store.get<PortalRecord>(key);
    const wanted = [...(ghost ? [ghost] : []), ...this.settings.portal_members];
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

  // ---- hub -> Google ----

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

  /** Persists a transaction's room events (typing and receipts have no Chat API for apps) before the 200. */
  private async onTransaction(txnId: string, body: { events?: any[] }): Promise<void> {
    if (this.store.has(`txn:${txnId}`)) return;
    const items: NewItem[] = [];
    for (const ev of body.events ?? []) {
      if (typeof ev.stream_position === 'number') items.push({ lane: `out:${ev.room_id}`, key: `hub:${ev.stream_position}`, kind: 'hub', data: ev });
    }
    items.sort((a, b) => a.data.stream_position - b.data.stream_position);
    await this.queue.enqueue(items, [{ put: `txn:${txnId}`, value: Date.now() }]);
  }

  private isOurs(userId: string | undefined): boolean {
    return userId === this.botId || (userId !== undefined && this.ghostIds.has(userId));
  }

  /** A failed outbound send becomes a notice in the room, answering the message concerned. */
  private deadLetter(item: WorkItem, err: Error): NewItem[] {
    if (item.kind !== 'hub') return [];
    const ev = item.data;
    const code = err instanceof RemoteError && err.code !== undefined ? ` (${err.code})` : '';
    const what = ev.type === 'message.new' ? 'This message was not delivered' : `A ${ev.type} was not delivered`;
    const replyTo = ev.type === 'message.new' ? ev.message.id : ev.message_id;
    return [{ lane: `notice:${ev.room_id}`, key: `notice:${item.key}`, kind: 'notice', data: { roomId: ev.room_id, text: `⚠️ ${what} to Google Chat${code}: ${err.message}`, replyTo } }];
  }

  private async handleHub(ev: any): Promise<void> {
    const space = this.store.get<string>(`room:${ev.room_id}`);
    if (!space) return;
    switch (ev.type) {
      case 'message.new': {
        const m = ev.message;
        if (this.isOurs(m.user_id) || this.store.has(`hubmsg:${m.id}`) || m.deleted) return;
        this.requireActive(space);
        const thread = m.reply_to ? this.store.get<HubMsgRecord>(`hubmsg:${m.reply_to}`)?.thread : undefined;
        const refs = [];
        for (const a of m.attachments ?? []) refs.push(await this.google.upload(space, { data: await this.hub.download(a.id), mimeType: a.mime_type, fileName: a.filename }));
        const parts: Part[] = [];
        let inThread = thread;
        for (const [i, text] of outboundTexts(this.settings.relay_format, m.user_name, m.content).entries()) {
          const created = await this.google.createMessage(space, { id: clientId(m.id, i), text, thread: inThread, attachments: i === 0 ? refs : undefined });
          parts.push({ name: created.name!, asUser: i === 0 && refs.length > 0 });
          inThread ??= created.thread?.name ?? undefined;
        }
        await this.store.batch([
          { put: `hubmsg:${m.id}`, value: { remoteId: parts[0].name, parts, portal: space, dir: 'out', thread: inThread, name: m.user_name } satisfies HubMsgRecord },
          ...parts.map((p) => ({ put: `remote:${p.name}`, value: { hubId: m.id, roomId: ev.room_id, dir: 'out', thread: inThread } satisfies MsgRecord })),
          // It started a thread: replies there answer it.
          ...(inThread && !thread ? [{ put: `thread:${inThread}`, value: parts[0].name }] : []),
        ]);
        return;
      }
      case 'message.edited': {
        const rec = this.store.get<HubMsgRecord>(`hubmsg:${ev.message_id}`);
        if (this.isOurs(ev.editor_id) || rec?.dir !== 'out') return;
        this.requireActive(space);
        const texts = outboundTexts(this.settings.relay_format, rec.name ?? '', ev.content);
        const parts = [...rec.parts];
        for (const [i, text] of texts.entries()) {
          if (parts[i]) await this.google.updateText(parts[i].name, text, parts[i].asUser);
          else parts.push({ name: (await this.google.createMessage(space, { id: clientId(ev.message_id, i), text, thread: rec.thread })).name!, asUser: false });
        }
        for (const p of parts.slice(texts.length)) await this.google.deleteMessage(p.name, p.asUser);
        const kept = parts.slice(0, texts.length);
        await this.store.batch([
          { put: `hubmsg:${ev.message_id}`, value: { ...rec, parts: kept } },
          ...kept.map((p) => ({ put: `remote:${p.name}`, value: { hubId: ev.message_id, roomId: ev.room_id, dir: 'out', thread: rec.thread } satisfies MsgRecord })),
        ]);
        return;
      }
      case 'message.deleted': {
        const rec = this.store.get<HubMsgRecord>(`hubmsg:${ev.message_id}`);
        if (this.isOurs(ev.deleted_by) || rec?.dir !== 'out') return;
        for (const p of rec.parts) await this.google.deleteMessage(p.name, p.asUser);
        return;
      }
      case 'reaction.added':
      case 'reaction.removed':
        return this.sendReaction(ev, space);
    }
  }

  /**
   * A hub user's reaction becomes the delegated user's reaction (Chat reactions need user
   * authentication): one per emoji and message, kept while at least one hub user has that reaction.
   */
  private async sendReaction(ev: { type: string; message_id: string; user_id: string; key: string }, space: string): Promise<void> {
    const rec = this.store.get<HubMsgRecord>(`hubmsg:${ev.message_id}`);
    if (this.isOurs(ev.user_id) || !rec) return;
    if (!/\p{Extended_Pictographic}/u.test(ev.key)) return this.log.info({ key: ev.key }, 'reaction is not an emoji; Google Chat takes emoji only');
    this.requireActive(space);
    const key = `oreact:${rec.remoteId}:${ev.key}`;
    const state = this.store.get<{ name: string | null; users: string[] }>(key) ?? { name: null, users: [] };
    const ops: Op[] = [];
    if (ev.type === 'reaction.added') {
      if (state.users.includes(ev.user_id)) return;
      if (state.users.length === 0) {
        const made = await this.google.addReaction(rec.remoteId, ev.key);
        state.name = made?.name ?? null;
        if (made) ops.push({ put: `ours:${made.name}`, value: Date.now() }, { put: 'self:user', value: made.user });
      }
      state.users.push(ev.user_id);
    } else {
      if (!state.users.includes(ev.user_id)) return;
      state.users = state.users.filter((u) => u !== ev.user_id);
      if (state.users.length === 0 && state.name) await this.google.removeReaction(state.name);
    }
    ops.push(state.users.length ? { put: key, value: state } : { del: key });
    await this.store.batch(ops);
  }

  /** @throws RemoteError (permanent) when the app was removed from the space. */
  private requireActive(space: string): void {
    if (this.store.get<SpaceRecord>(`space:${space}`)?.active === false) throw new RemoteError('the app was removed from the Google Chat space', false);
  }
}

/** A Google Chat bridge from its `[[bridges]]` entry (the kit's options plus `[bridges.googlechat]`). */
export function createGoogleChatBridge(opts: BridgeOptions, settings: GoogleChatSettings | undefined): GoogleChatBridge {
  if (!settings?.credentials_file) throw new ConfigError('bridges.googlechat', 'needs credentials_file (the service account key file)');
  return new GoogleChatBridge(opts, settings);
}
