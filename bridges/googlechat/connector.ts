/**
 * The Google Chat connector: a Google Chat space and a Switchboard room become one conversation.
 * The kit does the rest (store, queue, ghosts, portals, threads, reactions, echoes); this file is
 * what is Google's:
 *
 * - In, three ways: interaction events (`POST {events_path}`, bearer token verified, 401 otherwise),
 *   Workspace Events by Pub/Sub push (`POST {pubsub_path}`, push token verified, 401 otherwise) and
 *   the catch-up (`spaces.messages.list` since the last message seen, whenever a space is activated:
 *   at start and when its subscription is (re)made). The newest message time per space is written
 *   with the events, in the same atomic write.
 * - Out: messages relay-formatted by the app (split over 32,000 bytes; with files, uploaded and
 *   posted by the delegated user), replies in the target's thread, edits, deletions, reactions (by
 *   the delegated user). Typing and read receipts have no Chat API for apps.
 *
 * Connector state: `space:<spaces/…>` {displayName,active}, `sub:<spaces/…>` subscription
 * {name,expireTime}, `lastseen:<spaces/…>` createTime of the newest message received,
 * `asuser:<message>` parts created by the delegated user (only it may change them).
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { Compile } from 'typebox/compile';
import { backoffDelay } from '../../src/lib/backoff.js';
import { inputProblem } from '../../src/lib/input-bounds.js';
import type { Op } from '../kit/store.js';
import { RemoteError, type BridgeContext, type BridgedMessage, type Connector, type EditHandlingConnector, type MediaDownloadingConnector, type MediaFile, type OutboundMessage, type ReactionHandlingConnector, type RedactionHandlingConnector, type RemoteEvent, type RemoteMedia, type SentMessage } from '../kit/types.js';
import { CLIENT_ID_PREFIX, InteractionEvent, PushBody, PushData, fromInteraction, fromPush, messageEvent, outboundTexts, spaceInfo, type Lifecycle, type SpaceInfo } from './convert.js';
import { GoogleChat } from './google.js';
import type { GoogleChatSettings } from './settings.js';
import { TokenError, TokenVerifier } from './verify.js';

const pushData = Compile(PushData);

interface SpaceRecord {
  displayName: string;
  active: boolean;
}

/** The `client-…` id (and request id) of part `i` of hub message `hubId`. */
function clientId(hubId: string, i: number): string {
  return `${CLIENT_ID_PREFIX}${hubId.toLowerCase()}-${i}`;
}

export class GoogleChatConnector implements Connector, EditHandlingConnector, RedactionHandlingConnector, ReactionHandlingConnector, MediaDownloadingConnector {
  readonly network = 'googlechat';
  readonly displayName = 'Google Chat';
  readonly google: GoogleChat;
  private readonly verifier: TokenVerifier;
  private readonly renewals = new Map<string, NodeJS.Timeout>();
  private readonly activating = new Set<string>();
  private stopped = false;
  private ctx!: BridgeContext;

  /** @param retryMaxMs longest wait between retries of a space's activation, ms. @throws Error when `credentials_file` cannot be read. */
  constructor(
    private readonly settings: GoogleChatSettings,
    private readonly retryMaxMs: number,
  ) {
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
      oidcCertsUrl: settings.oidc_certs_url,
    });
  }

  /**
   * The interaction endpoint and the Pub/Sub push endpoint: 401 for a bad token (checked first), 400
   * for a body that is not the shape read (`InteractionEvent`, `PushBody`), 403 for a push of another
   * subscription.
   */
  routes(app: FastifyInstance): void {
    const verified = (verify: (authorization?: string) => Promise<void>, what: string) => async (req: FastifyRequest, reply: FastifyReply) => {
      try {
        await verify(req.headers.authorization);
      } catch (err) {
        if (!(err instanceof TokenError)) throw err;
        this.ctx.log.warn({ ip: req.ip, err: err.message }, `${what} refused`);
        return reply.code(401).send({ error: 'unauthorized' });
      }
    };
    app.post(this.settings.events_path, { preValidation: verified((a) => this.verifier.verifyChat(a), 'interaction event'), schema: { body: InteractionEvent } }, async (req) => {
      await this.onInteraction(req.body);
      // An empty object: no synchronous reply message in Chat.
      return {};
    });
    app.post(this.settings.pubsub_path, { preValidation: verified((a) => this.verifier.verifyPubsub(a), 'Pub/Sub push'), schema: { body: PushBody } }, async (req, reply) => {
      const body = req.body as { subscription?: string; message?: { data?: string; attributes?: Record<string, string> } };
      if (this.settings.pubsub_subscription && body?.subscription !== this.settings.pubsub_subscription) {
        this.ctx.log.warn({ subscription: body?.subscription }, 'push from an unexpected subscription refused');
        return reply.code(403).send({ error: 'unexpected subscription' });
      }
      await this.onPush(body?.message);
      // 204 acknowledges the Pub/Sub message.
      return reply.code(204).send();
    });
  }

  /** (Re)subscribes every bridged space and catches up on it, in the background. */
  async start(ctx: BridgeContext): Promise<void> {
    this.ctx = ctx;
    this.stopped = false;
    const active = ctx.state.entries<SpaceRecord>('space:').filter(([, s]) => s.active).map(([k]) => k.slice('space:'.length));
    for (const space of new Set([...this.settings.spaces, ...active])) void this.activate(space);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    for (const timer of this.renewals.values()) clearTimeout(timer);
    this.renewals.clear();
  }

  portalMembers(): string[] {
    return this.settings.portal_members;
  }

  // ---- Google -> hub ----

  /**
   * Hands events to the kit with the room names of their spaces, in one durable write with the
   * newest message time per space (the catch-up mark).
   */
  private async receive(events: RemoteEvent[]): Promise<void> {
    const latest = new Map<string, number>();
    for (const ev of events) {
      ev.portal.name = this.ctx.state.get<SpaceRecord>(`space:${ev.portal.id}`)?.displayName ?? ev.portal.name;
      if (ev.type === 'message') latest.set(ev.portal.id, Math.max(latest.get(ev.portal.id) ?? 0, ev.ts));
    }
    const marks: Op[] = [];
    for (const [space, ts] of latest) {
      const seen = this.ctx.state.get<string>(`lastseen:${space}`);
      if (!seen || Date.parse(seen) < ts) marks.push({ put: `lastseen:${space}`, value: new Date(ts).toISOString() });
    }
    await this.ctx.receive(events, marks);
  }

  private async onInteraction(body: unknown): Promise<void> {
    const { action, space, events } = fromInteraction(body);
    if (!space) return;
    if (action === 'removed') {
      await this.ctx.state.batch([{ put: `space:${space.name}`, value: { displayName: space.displayName, active: false } satisfies SpaceRecord }]);
      clearTimeout(this.renewals.get(space.name));
      const sub = this.ctx.state.get<{ name: string }>(`sub:${space.name}`);
      if (sub) void this.google.unsubscribe(sub.name).catch((err) => this.ctx.log.warn({ err: err.message }, 'subscription not deleted'));
    }
    const fresh = (action === 'added' || action === 'message') && !this.ctx.state.get<SpaceRecord>(`space:${space.name}`)?.active;
    if (fresh) await this.register(space);
    await this.receive(events);
    if (fresh) void this.activate(space.name);
  }

  private async onPush(message: { data?: string; attributes?: Record<string, string> } | undefined): Promise<void> {
    let data: unknown;
    try {
      data = JSON.parse(Buffer.from(message?.data ?? '', 'base64').toString('utf8'));
    } catch {
      this.ctx.log.warn({ attributes: message?.attributes }, 'undecodable push acknowledged and dropped');
      return;
    }
    // Acknowledged and dropped too (a 4xx would only make Pub/Sub redeliver it): data that is not
    // the shape read, or not within the input bounds (src/lib/input-bounds.ts).
    const problem = inputProblem(data, undefined, false);
    if (problem || !pushData.Check(data)) {
      this.ctx.log.warn({ attributes: message?.attributes, problem: problem ?? [...pushData.Errors(data)][0]?.message }, 'push data of an unexpected shape acknowledged and dropped');
      return;
    }
    const { events, lifecycle } = fromPush(message?.attributes ?? {}, data);
    if (lifecycle) this.onLifecycle(lifecycle);
    await this.receive(events.filter((ev) => this.ctx.state.get<SpaceRecord>(`space:${ev.portal.id}`)?.active));
  }

  /** Subscription lifecycle: renew on a reminder, re-create (and catch up) once expired or suspended. */
  private onLifecycle(ev: Lifecycle): void {
    const space =
      ev.subscription.targetResource?.replace('//chat.googleapis.com/', '') ??
      this.ctx.state.entries<{ name: string }>('sub:').find(([, s]) => s.name === ev.subscription.name)?.[0].slice('sub:'.length);
    this.ctx.log.info({ type: ev.type, subscription: ev.subscription.name, space }, 'subscription lifecycle event');
    if (space && this.ctx.state.get<SpaceRecord>(`space:${space}`)?.active) void this.activate(space);
  }

  /** Marks a space bridged; its catch-up starts now (no history import). */
  private async register(space: SpaceInfo): Promise<void> {
    const ops: Op[] = [{ put: `space:${space.name}`, value: { displayName: space.displayName, active: true } satisfies SpaceRecord }];
    if (!this.ctx.state.get(`lastseen:${space.name}`)) ops.push({ put: `lastseen:${space.name}`, value: new Date().toISOString() });
    await this.ctx.state.batch(ops);
  }

  /**
   * Brings a space up to date, retrying transient failures with backoff: registers a configured space
   * (its portal announced by a notice), renews or re-creates its Workspace Events subscription
   * (scheduling the next renewal `subscription_renew_before_s` before expiry), then lists what was
   * said since the last message seen and queues it (duplicates of what arrives by push are dropped).
   * Subscribing first means nothing said between the list and the subscription is missed.
   */
  private async activate(space: string): Promise<void> {
    if (this.activating.has(space)) return;
    this.activating.add(space);
    try {
      for (let attempt = 1; !this.stopped; attempt++) {
        try {
          if (!this.ctx.state.get(`space:${space}`)) {
            const info = spaceInfo(await this.google.getSpace(space))!;
            await this.register(info);
            await this.receive([{ type: 'notice', id: `configured:${space}`, portal: { id: space, name: info.displayName }, ts: Date.now(), text: `✅ This room mirrors the Google Chat space "${info.displayName}".` }]);
          }
          if (this.settings.pubsub_topic) await this.subscribe(space);
          await this.catchUp(space);
          return;
        } catch (err) {
          if (this.stopped) return;
          if (err instanceof RemoteError && !err.transient) {
            this.ctx.log.error({ space, err: err.message }, 'space not activated');
            return;
          }
          const delay = backoffDelay(attempt, { maxMs: this.retryMaxMs });
          this.ctx.log.warn({ space, err: (err as Error).message, delay_ms: delay }, 'space activation retried');
          await new Promise((resolve) => setTimeout(resolve, delay));
        }
      }
    } finally {
      this.activating.delete(space);
    }
  }

  /** Renews the space's subscription, or creates one when there is none (anymore), and schedules the next renewal. */
  private async subscribe(space: string): Promise<void> {
    const known = this.ctx.state.get<{ name: string }>(`sub:${space}`);
    const ttl = this.settings.subscription_ttl_s;
    const sub = (known && (await this.google.renew(known.name, ttl))) || (await this.google.subscribe(space, this.settings.pubsub_topic, ttl));
    await this.ctx.state.batch([{ put: `sub:${space}`, value: { name: sub.name, expireTime: sub.expireTime } }]);
    clearTimeout(this.renewals.get(space));
    if (this.stopped) return;
    const delay = Math.max(0, Date.parse(sub.expireTime) - Date.now() - this.settings.subscription_renew_before_s * 1000);
    this.renewals.set(space, setTimeout(() => void this.activate(space), delay));
    this.ctx.log.info({ space, subscription: sub.name, expires: sub.expireTime }, 'subscribed');
  }

  /** Queues the messages created since the space's last seen message (none on the first activation). */
  private async catchUp(space: string): Promise<void> {
    const since = this.ctx.state.get<string>(`lastseen:${space}`);
    if (!since) return;
    const events = (await this.google.listSince(space, since)).map((m) => messageEvent(m, false)).filter((ev): ev is RemoteEvent => ev !== null);
    await this.receive(events);
    this.ctx.log.info({ space, since, listed: events.length }, 'caught up');
  }

  async downloadMedia(media: RemoteMedia): Promise<MediaFile> {
    return { data: await this.google.download(media.id), mimeType: media.mimeType, fileName: media.fileName ?? 'file' };
  }

  // ---- hub -> Google ----

  /**
   * Posts a hub message as the app, relay-formatted, in the thread of the message it answers; over
   * 32,000 bytes in numbered parts in one thread. Files are uploaded and the first part is posted by
   * the delegated user (Chat takes uploads from users only). Ids `client-sb-<hub id>-<part>` make a
   * retry return the first message, and mark echoes.
   */
  async sendMessage(space: string, msg: OutboundMessage): Promise<SentMessage> {
    this.requireActive(space);
    const refs = [];
    for (const file of msg.media) refs.push(await this.google.upload(space, file));
    const ids: string[] = [];
    let thread = msg.thread;
    for (const [i, text] of outboundTexts(this.settings.relay_format, msg.senderName, msg.text).entries()) {
      const created = await this.google.createMessage(space, { id: clientId(msg.hubId, i), text, thread, attachments: i === 0 ? refs : undefined });
      if (i === 0 && refs.length) await this.ctx.state.batch([{ put: `asuser:${created.name}`, value: true }]);
      ids.push(created.name!);
      thread ??= created.thread?.name ?? undefined;
    }
    return { ids, thread };
  }

  /** Rewrites the parts' texts, adding or deleting parts as the new length needs. */
  async sendEdit(space: string, msg: BridgedMessage, text: string): Promise<string[]> {
    this.requireActive(space);
    const texts = outboundTexts(this.settings.relay_format, msg.senderName, text);
    const parts = [...msg.parts];
    for (const [i, t] of texts.entries()) {
      if (parts[i]) await this.google.updateText(parts[i], t, this.asUser(parts[i]));
      else parts.push((await this.google.createMessage(space, { id: clientId(msg.hubId, i), text: t, thread: msg.thread })).name!);
    }
    for (const p of parts.slice(texts.length)) await this.google.deleteMessage(p, this.asUser(p));
    return parts.slice(0, texts.length);
  }

  async sendRedaction(_space: string, msg: BridgedMessage): Promise<void> {
    for (const p of msg.parts) await this.google.deleteMessage(p, this.asUser(p));
  }

  /** The delegated user's reaction (Chat reactions need user authentication); unicode emoji only. */
  async sendReaction(space: string, targetId: string, emoji: string): Promise<string | undefined> {
    if (!/\p{Extended_Pictographic}/u.test(emoji)) {
      this.ctx.log.info({ key: emoji }, 'reaction is not an emoji; Google Chat takes emoji only');
      return undefined;
    }
    this.requireActive(space);
    return (await this.google.addReaction(targetId, emoji))?.name;
  }

  async sendReactionRemove(_space: string, _targetId: string, _emoji: string, reactionId: string | undefined): Promise<void> {
    if (reactionId) await this.google.removeReaction(reactionId);
  }

  private asUser(message: string): boolean {
    return this.ctx.state.get(`asuser:${message}`) === true;
  }

  /** @throws RemoteError (permanent) when the app was removed from the space. */
  private requireActive(space: string): void {
    if (this.ctx.state.get<SpaceRecord>(`space:${space}`)?.active === false) throw new RemoteError('the app was removed from the Google Chat space', false);
  }
}
