/**
 * A Google Chat simulator for the bridge's tests, written from Google's REST references. One HTTP
 * server plays every Google endpoint the bridge uses (its base URLs are configurable in the bridge):
 *
 * - OAuth 2.0 token endpoint for service accounts (`POST /token`, `grant_type=
 *   urn:ietf:params:oauth:grant-type:jwt-bearer`, `assertion` = RS256 JWT signed with the service
 *   account key; `sub` asks for domain-wide delegation). The assertion signature is checked with the
 *   service account's public key. https://developers.google.com/identity/protocols/oauth2/service-account#httprest
 * - Chat API (https://developers.google.com/workspace/chat/api/reference/rest):
 *   `spaces.get`, `spaces.messages.create` (`requestId`, `messageId` = `client-…`, `thread.name` +
 *   `messageReplyOption`), `.patch` (`updateMask=text`), `.delete`, `.list` (`filter=createTime > "…"`,
 *   `orderBy`, `pageSize`, `pageToken`, `showDeleted`), `spaces.messages.reactions.create/delete`
 *   (user authentication only), `media.upload` (`POST /upload/v1/{parent}/attachments:upload`,
 *   multipart/related; user authentication only) and `media.download` (`GET /v1/media/{resourceName}?alt=media`).
 *   Errors as `{"error":{"code","message","status"}}`; 32,000-byte text limit.
 * - Workspace Events API subscriptions (`POST/GET/PATCH/DELETE /v1/subscriptions…`, long-running
 *   operations answered done) delivered by Pub/Sub push: `POST {push endpoint}` with an OIDC token of
 *   the push service account and `{"message":{"data":base64(event data),"attributes":{"ce-type",…},
 *   "messageId","publishTime"},"subscription"}`. https://developers.google.com/workspace/events/guides/events-chat
 * - Keys: the Chat app's token certificates (`GET /x509/chat`) and Google's OIDC certificates
 *   (`GET /oauth2/v1/certs`), with which it signs interaction events and pushes. Both are served as
 *   Google serves them: a JSON map from key id to an x509 certificate in PEM, with
 *   `Cache-Control: public, max-age=…`.
 *   https://www.googleapis.com/service_accounts/v1/metadata/x509/chat@system.gserviceaccount.com,
 *   https://developers.google.com/identity/openid-connect/openid-connect#validatinganidtoken
 */
import crypto from 'node:crypto';
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import { SignJWT, jwtVerify } from 'jose';
import { selfSignedCert } from './x509.js';

const GOOGLE_TOKEN_URL = 'https://oauth2.googleapis.com/token';
const CHAT_ISSUER = 'chat@system.gserviceaccount.com';
const MAX_TEXT_BYTES = 32_000;
const STATUS: Record<number, string> = { 400: 'INVALID_ARGUMENT', 401: 'UNAUTHENTICATED', 403: 'PERMISSION_DENIED', 404: 'NOT_FOUND', 409: 'ALREADY_EXISTS', 429: 'RESOURCE_EXHAUSTED', 500: 'INTERNAL', 503: 'UNAVAILABLE' };
const MAX_TTL_S = 4 * 3600;

export interface SimUser {
  name: string;
  displayName: string;
  avatarUrl?: string;
  email?: string;
  type: 'HUMAN' | 'BOT';
}

export interface SimMessage {
  name: string;
  sender: SimUser;
  createTime: string;
  lastUpdateTime?: string;
  deleteTime?: string;
  text: string;
  thread: { name: string };
  threadReply: boolean;
  space: { name: string };
  clientAssignedMessageId?: string;
  attachment?: any[];
  /** Who may change it: "app" or the user's resource name. */
  owner: string;
}

interface Subscription {
  name: string;
  uid: string;
  targetResource: string;
  eventTypes: string[];
  notificationEndpoint: { pubsubTopic: string };
  payloadOptions: { includeResource: boolean };
  state: 'ACTIVE';
  expireTime: string;
  createTime: string;
}

interface Token {
  scopes: string[];
  subject?: string;
}

export interface Push {
  body: { message: { data: string; attributes: Record<string, string>; messageId: string; publishTime: string }; subscription: string };
  status: number;
}

class ApiError extends Error {
  constructor(
    readonly code: number,
    message: string,
  ) {
    super(message);
  }
}

/** `sign` a JWT with `key`, header `kid`, issued `agoS` seconds ago and valid for `ttlS` seconds. */
async function sign(payload: Record<string, unknown>, key: crypto.KeyObject, kid: string, ttlS = 3600, agoS = 0): Promise<string> {
  const iat = Math.floor(Date.now() / 1000) - agoS;
  return new SignJWT(payload).setProtectedHeader({ alg: 'RS256', kid, typ: 'JWT' }).setIssuedAt(iat).setExpirationTime(iat + ttlS).sign(key);
}

function rsa() {
  return crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
}

export class GoogleChatSimulator {
  readonly projectNumber = '123456789012';
  /** The bridge's service account: the test writes its credentials file (`credentialsJson`). */
  readonly serviceAccount = { email: 'switchboard-bridge@sim-project.iam.gserviceaccount.com', keyId: crypto.randomBytes(20).toString('hex'), ...rsa() };
  /** The Workspace user the service account may impersonate (domain-wide delegation). */
  readonly delegatedUser: SimUser = { name: 'users/900000000001', displayName: 'Switchboard Relay', email: 'relay@example.test', type: 'HUMAN' };
  readonly appUser: SimUser = { name: 'users/app-112233', displayName: 'Switchboard', type: 'BOT' };
  readonly pushServiceAccount = 'chat-push@sim-project.iam.gserviceaccount.com';
  readonly topic = 'projects/sim-project/topics/chat-events';
  readonly pubsubSubscription = 'projects/sim-project/subscriptions/chat-events-push';
  private readonly chatKey = { kid: crypto.randomBytes(20).toString('hex'), ...rsa() };
  private readonly oidcKey = { kid: crypto.randomBytes(20).toString('hex'), ...rsa() };
  private readonly chatCert = selfSignedCert(this.chatKey.privateKey, this.chatKey.publicKey, CHAT_ISSUER);
  private readonly oidcCert = selfSignedCert(this.oidcKey.privateKey, this.oidcKey.publicKey, 'accounts.google.com');

  url = '';
  /** The bridge's interaction endpoint (what the Chat app configuration points at). */
  interactionUrl = '';
  /** The bridge's Pub/Sub push endpoint and the audience its push subscription sets. */
  pushEndpoint = '';
  pushAudience = '';

  readonly spaces = new Map<string, { name: string; displayName: string; spaceType: 'SPACE' | 'DIRECT_MESSAGE'; singleUserBotDm?: boolean }>();
  readonly messages: SimMessage[] = [];
  readonly reactions = new Map<string, { name: string; message: string; user: SimUser; emoji: { unicode: string } }>();
  readonly uploads = new Map<string, { data: Buffer; mimeType: string; filename: string; space: string; owner: string }>();
  readonly subscriptions = new Map<string, Subscription>();
  readonly pushes: Push[] = [];
  /** Every API request: method, path (no query), status. */
  readonly requests: { method: string; path: string; status: number; query: Record<string, string> }[] = [];
  /** Token requests refused, with the reason. */
  readonly tokenRefusals: string[] = [];
  private readonly tokens = new Map<string, Token>();
  private readonly requestIds = new Map<string, string>();
  private readonly failures: { count: number; status: number; match: (method: string, path: string) => boolean }[] = [];
  private app!: FastifyInstance;
  private waiters: (() => void)[] = [];
  private seq = 0;

  /** The service account key file the bridge reads (Google's JSON key format). */
  credentialsJson(): string {
    return JSON.stringify({
      type: 'service_account',
      project_id: 'sim-project',
      private_key_id: this.serviceAccount.keyId,
      private_key: this.serviceAccount.privateKey.export({ type: 'pkcs8', format: 'pem' }),
      client_email: this.serviceAccount.email,
      client_id: '100000000000000000001',
      token_uri: GOOGLE_TOKEN_URL,
    });
  }

  async start(): Promise<void> {
    const app = Fastify({ bodyLimit: 64 * 1048576 });
    this.app = app;
    app.addContentTypeParser('application/x-www-form-urlencoded', { parseAs: 'string' }, (_req, body, done) => done(null, Object.fromEntries(new URLSearchParams(body as string))));
    app.addContentTypeParser(/^multipart\/related/, { parseAs: 'buffer' }, (_req, body, done) => done(null, body));
    app.addHook('onResponse', async (req, reply) => {
      const u = new URL(req.url, 'http://x');
      this.requests.push({ method: req.method, path: decodeURIComponent(u.pathname), status: reply.statusCode, query: Object.fromEntries(u.searchParams) });
      this.wake();
    });
    app.setErrorHandler((err, _req, reply) => {
      const code = err instanceof ApiError ? err.code : 500;
      reply.code(code).send({ error: { code, message: (err as Error).message, status: STATUS[code] ?? 'UNKNOWN' } });
    });

    app.post('/token', async (req, reply) => this.token(req.body as Record<string, string>, reply));
    const certs = (key: { kid: string }, pem: string) => async (_req: FastifyRequest, reply: FastifyReply) =>
      reply.header('cache-control', 'public, max-age=3600, must-revalidate, no-transform').send({ [key.kid]: pem });
    app.get('/x509/chat', certs(this.chatKey, this.chatCert));
    app.get('/oauth2/v1/certs', certs(this.oidcKey, this.oidcCert));

    const api = (method: 'GET' | 'POST' | 'PATCH' | 'DELETE', path: string, handler: (req: FastifyRequest, t: Token, reply: FastifyReply) => Promise<unknown>) =>
      app.route({
        method,
        url: path,
        handler: async (req, reply) => {
          const t = this.auth(req);
          const p = new URL(req.url, 'http://x').pathname;
          const fail = this.failures.find((f) => f.count > 0 && f.match(method, decodeURIComponent(p)));
          if (fail) {
            fail.count--;
            throw new ApiError(fail.status, 'Injected failure');
          }
          return handler(req, t, reply);
        },
      });

    api('GET', '/v1/spaces/:space', async (req, t) => {
      this.need(t, 'app-bot');
      return this.space(`spaces/${(req.params as any).space}`);
    });
    api('POST', '/v1/spaces/:space/messages', async (req, t) => this.create(req, t));
    api('GET', '/v1/spaces/:space/messages', async (req, t) => this.list(req, t));
    api('PATCH', '/v1/spaces/:space/messages/:message', async (req, t) => {
      const m = this.message(req);
      if (m.owner !== this.identity(t, 'write')) throw new ApiError(403, 'Only the creator can update a message');
      const mask = String((req.query as any).updateMask ?? '');
      if (!mask.split(',').includes('text')) throw new ApiError(400, 'updateMask must name text');
      const text = String((req.body as any)?.text ?? '');
      this.checkText(text, !!m.attachment?.length);
      m.text = text;
      m.lastUpdateTime = this.now();
      await this.emit(m.space.name, 'google.workspace.chat.message.v1.updated', m.name, { message: this.view(m) });
      return this.view(m);
    });
    api('DELETE', '/v1/spaces/:space/messages/:message', async (req, t) => {
      const m = this.message(req);
      if (m.owner !== this.identity(t, 'write')) throw new ApiError(403, 'Chat apps can delete only their own messages');
      m.deleteTime = this.now();
      await this.emit(m.space.name, 'google.workspace.chat.message.v1.deleted', m.name, { message: { name: m.name, deleteTime: m.deleteTime } });
      return {};
    });
    api('POST', '/v1/spaces/:space/messages/:message/reactions', async (req, t) => {
      const user = this.need(t, 'user-reactions');
      const m = this.message(req);
      const unicode = (req.body as any)?.emoji?.unicode;
      if (typeof unicode !== 'string' || !/\p{Extended_Pictographic}/u.test(unicode)) throw new ApiError(400, 'Only unicode emoji are supported');
      if ([...this.reactions.values()].some((r) => r.message === m.name && r.user.name === user.name && r.emoji.unicode === unicode)) throw new ApiError(409, 'Reaction already exists');
      return this.react(m, user, unicode);
    });
    api('DELETE', '/v1/spaces/:space/messages/:message/reactions/:reaction', async (req, t) => {
      const user = this.need(t, 'user-reactions');
      const p = req.params as any;
      const name = `spaces/${p.space}/messages/${p.message}/reactions/${p.reaction}`;
      const r = this.reactions.get(name);
      if (!r) throw new ApiError(404, 'Reaction not found');
      if (r.user.name !== user.name) throw new ApiError(403, 'Only your own reactions');
      await this.unreact(name);
      return {};
    });
    api('POST', '/upload/v1/spaces/:space/attachments::upload', async (req, t) => {
      const user = this.need(t, 'user-create');
      const space = this.space(`spaces/${(req.params as any).space}`).name;
      const parts = parseMultipartRelated(req.headers['content-type'] ?? '', req.body as Buffer);
      const meta = JSON.parse(parts[0].body.toString('utf8'));
      const resourceName = `upload-${++this.seq}-${crypto.randomBytes(6).toString('hex')}`;
      this.uploads.set(resourceName, { data: parts[1].body, mimeType: parts[1].contentType, filename: meta.filename, space, owner: user.name });
      return { attachmentDataRef: { resourceName, attachmentUploadToken: crypto.randomBytes(12).toString('hex') } };
    });
    api('GET', '/v1/media/*', async (req, t, reply) => {
      this.need(t, 'app-bot');
      const name = decodeURIComponent((req.params as any)['*']);
      if ((req.query as any).alt !== 'media') throw new ApiError(400, 'alt=media is required');
      const file = this.uploads.get(name);
      if (!file) throw new ApiError(404, 'Media not found');
      return reply.type(file.mimeType).send(file.data);
    });

    api('POST', '/v1/subscriptions', async (req, t) => {
      this.need(t, 'app-events');
      const body = req.body as any;
      const target = String(body?.targetResource ?? '');
      const space = target.replace('//chat.googleapis.com/', '');
      if (!target.startsWith('//chat.googleapis.com/spaces/') || !this.spaces.has(space)) throw new ApiError(404, `Unknown target resource ${target}`);
      if (!Array.isArray(body.eventTypes) || body.eventTypes.length === 0) throw new ApiError(400, 'eventTypes is required');
      if (!body.notificationEndpoint?.pubsubTopic) throw new ApiError(400, 'notificationEndpoint.pubsubTopic is required');
      this.prune();
      if ([...this.subscriptions.values()].some((s) => s.targetResource === target && s.eventTypes.some((e) => body.eventTypes.includes(e)))) throw new ApiError(409, 'A subscription for these event types already exists');
      const ttl = this.ttl(body.ttl);
      const sub: Subscription = {
        name: `subscriptions/chat-${crypto.randomBytes(8).toString('hex')}`,
        uid: crypto.randomUUID(),
        targetResource: target,
        eventTypes: body.eventTypes,
        notificationEndpoint: body.notificationEndpoint,
        payloadOptions: { includeResource: body.payloadOptions?.includeResource === true },
        state: 'ACTIVE',
        createTime: this.now(),
        expireTime: new Date(Date.now() + ttl * 1000).toISOString(),
      };
      this.subscriptions.set(sub.name, sub);
      return this.operation(sub);
    });
    api('GET', '/v1/subscriptions/:id', async (req, t) => {
      this.need(t, 'app-events');
      return this.subscription(req);
    });
    api('GET', '/v1/subscriptions', async (req, t) => {
      this.need(t, 'app-events');
      this.prune();
      const target = /target_resource="([^"]+)"/.exec(String((req.query as any).filter ?? ''))?.[1];
      const subs = [...this.subscriptions.values()].filter((s) => !target || s.targetResource === target);
      return subs.length ? { subscriptions: subs } : {};
    });
    api('PATCH', '/v1/subscriptions/:id', async (req, t) => {
      this.need(t, 'app-events');
      const sub = this.subscription(req);
      if (String((req.query as any).updateMask ?? '') !== 'ttl') throw new ApiError(400, 'Only ttl can be updated here');
      sub.expireTime = new Date(Date.now() + this.ttl((req.body as any)?.ttl) * 1000).toISOString();
      return this.operation(sub);
    });
    api('DELETE', '/v1/subscriptions/:id', async (req, t) => {
      this.need(t, 'app-events');
      const sub = this.subscription(req);
      this.subscriptions.delete(sub.name);
      return { name: `operations/${crypto.randomBytes(6).toString('hex')}`, done: true, response: {} };
    });

    await app.listen({ host: '127.0.0.1', port: 0 });
    this.url = `http://127.0.0.1:${(app.server.address() as { port: number }).port}`;
  }

  async close(): Promise<void> {
    await this.app?.close();
  }

  // ---- driving the simulated Google side ----

  addSpace(displayName: string, spaceType: 'SPACE' | 'DIRECT_MESSAGE' = 'SPACE'): string {
    const name = `spaces/AAAA${crypto.randomBytes(5).toString('hex').toUpperCase()}`;
    this.spaces.set(name, { name, displayName, spaceType, ...(spaceType === 'DIRECT_MESSAGE' ? { singleUserBotDm: true } : {}) });
    return name;
  }

  user(displayName: string): SimUser {
    const id = String(100_000_000_000 + ++this.seq);
    return { name: `users/${id}`, displayName, avatarUrl: `https://lh3.example.test/a/${id}`, email: `${displayName.toLowerCase()}@example.test`, type: 'HUMAN' };
  }

  /**
   * A Google user posts (through the Chat UI): the message is stored and its `created` event pushed.
   * `thread`: the thread name to reply in. `file`: an uploaded attachment.
   */
  async post(space: string, sender: SimUser, text: string, opts: { thread?: string; file?: { data: Buffer; mimeType: string; filename: string } } = {}): Promise<SimMessage> {
    const m = this.store(space, sender, text, sender.name, opts.thread);
    if (opts.file) {
      const resourceName = `upload-${++this.seq}-${crypto.randomBytes(6).toString('hex')}`;
      this.uploads.set(resourceName, { ...opts.file, space, owner: sender.name });
      m.attachment = [this.attachmentView(m, resourceName)];
    }
    await this.emit(space, 'google.workspace.chat.message.v1.created', m.name, { message: this.view(m) });
    return m;
  }

  async edit(m: SimMessage, text: string): Promise<void> {
    m.text = text;
    m.lastUpdateTime = this.now();
    await this.emit(m.space.name, 'google.workspace.chat.message.v1.updated', m.name, { message: this.view(m) });
  }

  async remove(m: SimMessage): Promise<void> {
    m.deleteTime = this.now();
    await this.emit(m.space.name, 'google.workspace.chat.message.v1.deleted', m.name, { message: { name: m.name, deleteTime: m.deleteTime } });
  }

  async reactAs(user: SimUser, messageName: string, unicode: string): Promise<string> {
    const m = this.messages.find((x) => x.name === messageName)!;
    return (await this.react(m, user, unicode)).name;
  }

  async unreact(name: string): Promise<void> {
    const r = this.reactions.get(name)!;
    this.reactions.delete(name);
    await this.emit(r.message.split('/messages/')[0], 'google.workspace.chat.reaction.v1.deleted', name, { reaction: { name } });
  }

  async join(space: string, user: SimUser): Promise<void> {
    const name = `${space}/members/${user.name.slice('users/'.length)}`;
    await this.emit(space, 'google.workspace.chat.membership.v1.created', name, { membership: { name, state: 'JOINED', role: 'ROLE_MEMBER', member: user, createTime: this.now() } });
  }

  /**
   * An interaction event (`MESSAGE`, `ADDED_TO_SPACE`, `REMOVED_FROM_SPACE`) POSTed to the bridge
   * with the Chat bearer token. `forge`: sign with a foreign key, the wrong audience or issuer, no
   * token, or one that expired an hour ago (past the clock skew verifiers allow: 5 minutes in
   * google-auth-library).
   * https://developers.google.com/workspace/chat/api/reference/rest/v1/Event
   * @returns the HTTP status.
   */
  async interact(event: Record<string, unknown>, opts: { forge?: 'key' | 'audience' | 'issuer' | 'none' | 'expired'; audience?: string } = {}): Promise<number> {
    const key = opts.forge === 'key' ? rsa().privateKey : this.chatKey.privateKey;
    const claims = { iss: opts.forge === 'issuer' ? 'someone@example.test' : CHAT_ISSUER, aud: opts.forge === 'audience' ? '999999999999' : (opts.audience ?? this.projectNumber) };
    const token = opts.forge === 'expired' ? await sign(claims, key, this.chatKey.kid, 3600, 7200) : await sign(claims, key, this.chatKey.kid);
    const res = await fetch(this.interactionUrl, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...(opts.forge === 'none' ? {} : { authorization: `Bearer ${token}` }) },
      body: JSON.stringify({ eventTime: this.now(), ...event }),
    });
    await res.arrayBuffer();
    return res.status;
  }

  /** An OIDC ID token from Google's key (what an endpoint-URL Chat app or a push subscription gets). */
  oidcToken(claims: Record<string, unknown>, opts: { foreignKey?: boolean } = {}): Promise<string> {
    return sign({ iss: 'https://accounts.google.com', email_verified: true, sub: '1044', ...claims }, opts.foreignKey ? rsa().privateKey : this.oidcKey.privateKey, this.oidcKey.kid);
  }

  /** The interaction event of a message (as Chat sends it when the app is mentioned or in a DM). */
  messageEvent(m: SimMessage): Record<string, unknown> {
    const space = this.spaces.get(m.space.name)!;
    return { type: 'MESSAGE', space: { ...space, type: space.spaceType === 'SPACE' ? 'ROOM' : 'DM' }, user: m.sender, message: this.view(m) };
  }

  /** Delivers `push` (a recorded one) again, as Pub/Sub does before an ack. @returns the status. */
  async redeliver(push: Push): Promise<number> {
    return this.deliver(push.body);
  }

  /** Lets every subscription lapse (as after a long outage): Google deletes expired subscriptions. */
  expireSubscriptions(): void {
    this.subscriptions.clear();
  }

  /** The next `count` requests matching are answered with `status` (a Google error body). */
  failNext(count: number, status: number, match: (method: string, path: string) => boolean = () => true): void {
    this.failures.push({ count, status, match });
  }

  /** Resolves with `fn()` once it is truthy (re-checked on every request and push). */
  async until<T>(fn: () => T | undefined | false | null, timeoutMs = 10_000): Promise<T> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const v = fn();
      if (v) return v;
      if (Date.now() > deadline) throw new Error(`simulator: condition not met in ${timeoutMs} ms; pushes answered ${JSON.stringify(this.pushes.map((p) => p.status))}`);
      await new Promise<void>((resolve) => {
        this.waiters.push(resolve);
        setTimeout(resolve, 50);
      });
    }
  }

  /** Messages of a space (not deleted), oldest first. */
  in(space: string): SimMessage[] {
    return this.messages.filter((m) => m.space.name === space && !m.deleteTime);
  }

  // ---- internals ----

  private wake(): void {
    for (const w of this.waiters.splice(0)) w();
  }

  private now(): string {
    return new Date().toISOString();
  }

  private async token(body: Record<string, string>, reply: FastifyReply) {
    const refuse = (why: string) => {
      this.tokenRefusals.push(why);
      return reply.code(400).send({ error: 'invalid_grant', error_description: why });
    };
    if (body.grant_type !== 'urn:ietf:params:oauth:grant-type:jwt-bearer') return refuse('Unsupported grant type');
    let claims: Record<string, any>;
    try {
      ({ payload: claims } = await jwtVerify(body.assertion ?? '', this.serviceAccount.publicKey, { algorithms: ['RS256'], issuer: this.serviceAccount.email, audience: GOOGLE_TOKEN_URL, maxTokenAge: '1h' }));
    } catch (err) {
      return refuse(`Invalid JWT: ${(err as Error).message}`);
    }
    if (typeof claims.scope !== 'string' || !claims.scope) return refuse('No scope');
    if (claims.sub && claims.sub !== this.delegatedUser.email) return refuse('Client is unauthorized to retrieve access tokens using this method, or client not authorized for any of the scopes requested.');
    const access = `ya29.${crypto.randomBytes(24).toString('base64url')}`;
    this.tokens.set(access, { scopes: claims.scope.split(' '), subject: claims.sub });
    return { access_token: access, expires_in: 3599, token_type: 'Bearer' };
  }

  private auth(req: FastifyRequest): Token {
    const t = this.tokens.get(String(req.headers.authorization ?? '').replace(/^Bearer /, ''));
    if (!t) throw new ApiError(401, 'Request had invalid authentication credentials.');
    return t;
  }

  /**
   * Checks the token for what a method requires. `app-bot`: app auth with chat.bot; `app-events`:
   * app auth with a chat.app.* scope (admin-approved); `user-*`: user auth (delegation) with that scope.
   * @returns the acting user.
   */
  private need(t: Token, what: 'app-bot' | 'app-events' | 'user-create' | 'user-reactions'): SimUser {
    const has = (s: string) => t.scopes.includes(`https://www.googleapis.com/auth/${s}`);
    const ok =
      what === 'app-bot' ? !t.subject && has('chat.bot')
      : what === 'app-events' ? !t.subject && (has('chat.app.messages.readonly') || has('chat.app.memberships'))
      : what === 'user-create' ? !!t.subject && (has('chat.messages.create') || has('chat.messages'))
      : !!t.subject && (has('chat.messages.reactions') || has('chat.messages.reactions.create') || has('chat.messages'));
    if (!ok) throw new ApiError(403, 'Request had insufficient authentication scopes.');
    return t.subject ? this.delegatedUser : this.appUser;
  }

  /** "app" or the delegated user's name, for a token allowed to write messages. */
  private identity(t: Token, _for: 'write'): string {
    return this.need(t, t.subject ? 'user-create' : 'app-bot') === this.appUser ? 'app' : this.delegatedUser.name;
  }

  private space(name: string) {
    const s = this.spaces.get(name);
    if (!s) throw new ApiError(404, `Space ${name} not found`);
    return s;
  }

  private message(req: FastifyRequest): SimMessage {
    const p = req.params as any;
    const ref = `spaces/${p.space}/messages/${p.message}`;
    const m = this.messages.find((x) => (x.name === ref || `${x.space.name}/messages/${x.clientAssignedMessageId}` === ref) && !x.deleteTime);
    if (!m) throw new ApiError(404, `Message ${ref} not found`);
    return m;
  }

  private checkText(text: string, hasAttachment: boolean): void {
    if (Buffer.byteLength(text, 'utf8') > MAX_TEXT_BYTES) throw new ApiError(400, `Message text exceeds ${MAX_TEXT_BYTES} bytes`);
    if (!text && !hasAttachment) throw new ApiError(400, 'Message is empty');
  }

  private store(space: string, sender: SimUser, text: string, owner: string, thread?: string, clientId?: string): SimMessage {
    this.space(space);
    const id = `${crypto.randomBytes(6).toString('hex')}.${crypto.randomBytes(6).toString('hex')}`;
    const inThread = thread && this.messages.some((x) => x.thread.name === thread);
    const m: SimMessage = {
      name: `${space}/messages/${id}`,
      sender,
      createTime: this.now(),
      text,
      thread: { name: inThread ? thread : `${space}/threads/${crypto.randomBytes(6).toString('hex')}` },
      threadReply: !!inThread,
      space: { name: space },
      owner,
      ...(clientId ? { clientAssignedMessageId: clientId } : {}),
    };
    // createTime strictly increases, as the list filter relies on it.
    const last = this.messages.at(-1);
    if (last && m.createTime <= last.createTime) m.createTime = new Date(Date.parse(last.createTime) + 1).toISOString();
    this.messages.push(m);
    return m;
  }

  private async create(req: FastifyRequest, t: Token) {
    const owner = this.identity(t, 'write');
    const sender = owner === 'app' ? this.appUser : this.delegatedUser;
    const space = this.space(`spaces/${(req.params as any).space}`).name;
    const q = req.query as Record<string, string>;
    const body = (req.body ?? {}) as any;
    const requestKey = q.requestId ? `${owner}:${space}:${q.requestId}` : '';
    const earlier = requestKey && this.messages.find((m) => m.name === this.requestIds.get(requestKey));
    if (earlier) return this.view(earlier);
    if (q.messageId !== undefined) {
      if (!/^client-[a-z0-9-]+$/.test(q.messageId) || q.messageId.length > 63) throw new ApiError(400, 'messageId must start with client- and hold lowercase letters, digits and hyphens (63 at most)');
      if (this.messages.some((m) => m.space.name === space && m.clientAssignedMessageId === q.messageId)) throw new ApiError(409, 'A message with this messageId already exists');
    }
    const attachments: string[] = (body.attachment ?? []).map((a: any) => a?.attachmentDataRef?.resourceName);
    if (attachments.length && owner === 'app') throw new ApiError(403, 'Uploaded attachments need user authentication');
    for (const a of attachments) {
      const up = this.uploads.get(a);
      if (!up || up.space !== space || up.owner !== owner) throw new ApiError(400, `Unknown attachment ${a}`);
    }
    const text = String(body.text ?? '');
    this.checkText(text, attachments.length > 0);
    const thread = body.thread?.name && q.messageReplyOption === 'REPLY_MESSAGE_FALLBACK_TO_NEW_THREAD' ? body.thread.name : undefined;
    if (body.thread?.name && !q.messageReplyOption) throw new ApiError(400, 'thread.name needs messageReplyOption');
    const m = this.store(space, sender, text, owner, thread, q.messageId);
    if (attachments.length) m.attachment = attachments.map((a) => this.attachmentView(m, a));
    if (requestKey) this.requestIds.set(requestKey, m.name);
    await this.emit(space, 'google.workspace.chat.message.v1.created', m.name, { message: this.view(m) });
    return this.view(m);
  }

  private async list(req: FastifyRequest, t: Token) {
    if (t.subject) this.need(t, 'user-create');
    else this.need(t, 'app-events');
    const space = this.space(`spaces/${(req.params as any).space}`).name;
    const q = req.query as Record<string, string>;
    const filter = q.filter ?? '';
    const after = /createTime\s*>\s*"([^"]+)"/.exec(filter)?.[1];
    const before = /createTime\s*<\s*"([^"]+)"/.exec(filter)?.[1];
    if (filter && !after && !before) throw new ApiError(400, `Invalid filter: ${filter}`);
    let list = this.messages.filter((m) => m.space.name === space && (q.showDeleted === 'true' || !m.deleteTime));
    if (after) list = list.filter((m) => Date.parse(m.createTime) > Date.parse(after));
    if (before) list = list.filter((m) => Date.parse(m.createTime) < Date.parse(before));
    if (/desc/i.test(q.orderBy ?? '')) list.reverse();
    const size = Math.min(Number(q.pageSize ?? 25) || 25, 1000);
    const offset = q.pageToken ? Number(Buffer.from(q.pageToken, 'base64url').toString()) : 0;
    const page = list.slice(offset, offset + size);
    if (page.length === 0) return {};
    return { messages: page.map((m) => this.view(m)), ...(offset + size < list.length ? { nextPageToken: Buffer.from(String(offset + size)).toString('base64url') } : {}) };
  }

  private async react(m: SimMessage, user: SimUser, unicode: string) {
    const name = `${m.name}/reactions/${crypto.randomBytes(6).toString('hex')}`;
    const r = { name, message: m.name, user, emoji: { unicode } };
    this.reactions.set(name, r);
    const view = { name, user: { name: user.name, type: user.type }, emoji: { unicode } };
    await this.emit(m.space.name, 'google.workspace.chat.reaction.v1.created', name, { reaction: view });
    return view;
  }

  private attachmentView(m: SimMessage, resourceName: string) {
    const up = this.uploads.get(resourceName)!;
    return { name: `${m.name}/attachments/${crypto.randomBytes(4).toString('hex')}`, contentName: up.filename, contentType: up.mimeType, attachmentDataRef: { resourceName }, source: 'UPLOADED_CONTENT' };
  }

  /**
   * A message as the API returns it to the app: the sender with name, display name and type (app
   * authentication always gets the display name; the avatar and email only user authentication).
   */
  private view(m: SimMessage) {
    const { owner: _owner, sender, ...rest } = m;
    return { ...rest, sender: { name: sender.name, displayName: sender.displayName, type: sender.type }, argumentText: m.text, formattedText: m.text };
  }

  private subscription(req: FastifyRequest): Subscription {
    this.prune();
    const sub = this.subscriptions.get(`subscriptions/${(req.params as any).id}`);
    if (!sub) throw new ApiError(404, 'Subscription not found');
    return sub;
  }

  /** Expired subscriptions are deleted. */
  private prune(): void {
    for (const [name, s] of this.subscriptions) if (Date.parse(s.expireTime) <= Date.now()) this.subscriptions.delete(name);
  }

  private ttl(value: unknown): number {
    const s = typeof value === 'string' ? Number(value.replace(/s$/, '')) : 0;
    return s > 0 ? Math.min(s, MAX_TTL_S) : MAX_TTL_S;
  }

  private operation(sub: Subscription) {
    return { name: `operations/${crypto.randomBytes(6).toString('hex')}`, done: true, response: { '@type': 'type.googleapis.com/google.apps.events.subscriptions.v1.Subscription', ...sub } };
  }

  /** Publishes a Chat event to every live subscription of `space` that wants it, then pushes it. */
  private async emit(space: string, type: string, subject: string, data: Record<string, unknown>): Promise<void> {
    this.prune();
    for (const sub of this.subscriptions.values()) {
      if (sub.targetResource !== `//chat.googleapis.com/${space}` || !sub.eventTypes.includes(type) || !this.pushEndpoint) continue;
      const payload = sub.payloadOptions.includeResource ? data : stripResource(data);
      const messageId = String(10_000_000_000_000 + ++this.seq);
      await this.deliver({
        message: {
          data: Buffer.from(JSON.stringify(payload)).toString('base64'),
          attributes: {
            'ce-id': crypto.randomUUID(),
            'ce-specversion': '1.0',
            'ce-type': type,
            'ce-source': `//workspaceevents.googleapis.com/${sub.name}`,
            'ce-subject': `//chat.googleapis.com/${subject}`,
            'ce-time': this.now(),
            'ce-datacontenttype': 'application/json',
          },
          messageId,
          publishTime: this.now(),
        },
        subscription: this.pubsubSubscription,
      });
    }
  }

  /** One Pub/Sub push with a fresh OIDC token. @returns the status (0 when unreachable). */
  private async deliver(body: Push['body']): Promise<number> {
    const token = await this.oidcToken({ aud: this.pushAudience, email: this.pushServiceAccount });
    let status = 0;
    try {
      const res = await fetch(this.pushEndpoint, { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` }, body: JSON.stringify(body) });
      await res.arrayBuffer();
      status = res.status;
    } catch {
      status = 0;
    }
    this.pushes.push({ body, status });
    this.wake();
    return status;
  }
}

/** Event data without the resource: only resource names (payloadOptions.includeResource false). */
function stripResource(data: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(data)) out[k] = { name: (v as { name: string }).name };
  return out;
}

/** The parts of a multipart/related body (RFC 2387): content type and bytes each. */
function parseMultipartRelated(contentType: string, body: Buffer): { contentType: string; body: Buffer }[] {
  const boundary = /boundary=("?)([^";]+)\1/.exec(contentType)?.[2];
  if (!boundary) throw new ApiError(400, 'multipart/related without boundary');
  const delimiter = Buffer.from(`--${boundary}`);
  const parts: { contentType: string; body: Buffer }[] = [];
  let at = body.indexOf(delimiter);
  while (at !== -1) {
    const start = at + delimiter.length;
    if (body.subarray(start, start + 2).toString() === '--') break;
    const next = body.indexOf(delimiter, start);
    if (next === -1) break;
    const part = body.subarray(start + 2, next - 2);
    const split = part.indexOf('\r\n\r\n');
    const headers = part.subarray(0, split).toString('utf8');
    parts.push({ contentType: /content-type:\s*([^\r\n]+)/i.exec(headers)?.[1].trim() ?? 'application/octet-stream', body: Buffer.from(part.subarray(split + 4)) });
    at = next;
  }
  if (parts.length !== 2) throw new ApiError(400, `Expected metadata and media parts, got ${parts.length}`);
  return parts;
}
