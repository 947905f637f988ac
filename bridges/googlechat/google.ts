/**
 * The bridge's Google side: the Chat API through `@googleapis/chat` and the Workspace Events API
 * through the same authorized client (`google-auth-library`), with three service-account identities:
 *
 * - the Chat app (`chat.bot`, app authentication): create/update/delete its messages, read spaces,
 *   download attachments. https://developers.google.com/workspace/chat/authenticate-authorize-chat-app
 * - the Chat app with administrator-approved `chat.app.*` scopes: Workspace Events subscriptions and
 *   `spaces.messages.list` (catch-up). https://developers.google.com/workspace/chat/authenticate-authorize-chat-app#admin-approval
 * - a Workspace user impersonated by domain-wide delegation (`delegated_user`): reactions and file
 *   uploads, which Google allows with user authentication only.
 *
 * Tokens come from the OAuth 2.0 JWT bearer flow (RS256 assertion signed with the key file); the
 * token URL, the Chat API root and the Events API root are configurable. Every failure becomes a
 * `RemoteError`: transient for 429, 5xx and network errors (the kit's queue retries those with
 * backoff), permanent otherwise (a notice in the room). The libraries' own retries are off.
 */
import fs from 'node:fs';
import { Readable } from 'node:stream';
import { chat, type chat_v1 } from '@googleapis/chat';
import { JWT } from 'google-auth-library';
import { RemoteError } from '../kit/types.js';

/** The token URL google-auth-library signs its assertions for; requests to it go to `tokenUrl`. */
export const GOOGLE_TOKEN_URL = 'https://oauth2.googleapis.com/token';
const SCOPE = 'https://www.googleapis.com/auth/';
const BOT_SCOPES = [`${SCOPE}chat.bot`];
const APP_SCOPES = [`${SCOPE}chat.app.messages.readonly`, `${SCOPE}chat.app.memberships`];
const USER_SCOPES = [`${SCOPE}chat.messages.create`, `${SCOPE}chat.messages.reactions`];
const TIMEOUT_MS = 60_000;

/** Workspace Events delivered for a bridged space. https://developers.google.com/workspace/events/guides/events-chat */
export const EVENT_TYPES = [
  'google.workspace.chat.message.v1.created',
  'google.workspace.chat.message.v1.updated',
  'google.workspace.chat.message.v1.deleted',
  'google.workspace.chat.reaction.v1.created',
  'google.workspace.chat.reaction.v1.deleted',
  'google.workspace.chat.membership.v1.created',
  'google.workspace.chat.membership.v1.deleted',
];

export interface GoogleOptions {
  /** Path of the service account's JSON key file. */
  credentialsFile: string;
  /** Email of the Workspace user impersonated for reactions and uploads; '' disables them. */
  delegatedUser: string;
  apiBaseUrl: string;
  tokenUrl: string;
  eventsBaseUrl: string;
}

export interface Subscription {
  name: string;
  expireTime: string;
}

export type Message = chat_v1.Schema$Message;
export type Space = chat_v1.Schema$Space;

/** Maps a googleapis/gaxios failure to a RemoteError (`code`: the HTTP status or Google's status name). */
export function remoteError(what: string, err: unknown): RemoteError {
  if (err instanceof RemoteError) return err;
  const e = err as { status?: number; response?: { status?: number; data?: any }; message?: string };
  const status = e.status ?? e.response?.status ?? 0;
  const body = e.response?.data?.error;
  const detail = typeof body === 'object' ? `${body.status ?? status}: ${body.message ?? ''}` : `${status || 'network'}: ${e.message ?? String(err)}`;
  return new RemoteError(`Google Chat ${what} failed (${detail})`, status === 0 || status === 408 || status === 429 || status >= 500, typeof body === 'object' && body.status ? body.status : status || undefined);
}

function statusOf(err: unknown): number {
  const e = err as { status?: number; response?: { status?: number } };
  return e.status ?? e.response?.status ?? 0;
}

export class GoogleChat {
  private readonly bot: chat_v1.Chat;
  private readonly app: JWT;
  private readonly appChat: chat_v1.Chat;
  private readonly user?: chat_v1.Chat;
  private readonly rootUrl: string;

  constructor(private readonly opts: GoogleOptions) {
    const key = JSON.parse(fs.readFileSync(opts.credentialsFile, 'utf8')) as { client_email: string; private_key: string; private_key_id?: string };
    const client = (scopes: string[], subject?: string) => {
      const jwt = new JWT({ email: key.client_email, key: key.private_key, keyId: key.private_key_id, scopes, subject });
      // google-auth-library posts the assertion to Google's fixed token URL; send it where configured.
      if (opts.tokenUrl !== GOOGLE_TOKEN_URL) {
        jwt.transporter.interceptors.request.add({
          resolved: async (config) => {
            if (config.url.href === GOOGLE_TOKEN_URL) config.url = new URL(opts.tokenUrl);
            return config;
          },
        });
      }
      return jwt;
    };
    this.rootUrl = opts.apiBaseUrl;
    // @googleapis/chat types its auth against its own copy of google-auth-library; any client with
    // `request()` works at run time.
    const api = (auth: JWT) => chat({ version: 'v1', auth: auth as unknown as chat_v1.Options['auth'], rootUrl: opts.apiBaseUrl, retry: false, timeout: TIMEOUT_MS });
    this.bot = api(client(BOT_SCOPES));
    this.app = client(APP_SCOPES);
    this.appChat = api(this.app);
    if (opts.delegatedUser) this.user = api(client(USER_SCOPES, opts.delegatedUser));
  }

  /** True when reactions and uploads are possible (a delegated user is configured). */
  get canActAsUser(): boolean {
    return this.user !== undefined;
  }

  async getSpace(name: string): Promise<Space> {
    return this.call('spaces.get', () => this.bot.spaces.get({ name }));
  }

  /**
   * Creates a message (`spaces.messages.create`) as the app, or as the delegated user when it carries
   * uploaded files. `id` is both `requestId` and the client-assigned `messageId` (`client-…`), so a
   * retry after a crash returns the first message. `thread`: reply in that thread (a new thread if it
   * is gone: REPLY_MESSAGE_FALLBACK_TO_NEW_THREAD).
   * https://developers.google.com/workspace/chat/api/reference/rest/v1/spaces.messages/create
   */
  async createMessage(space: string, msg: { id: string; text: string; thread?: string; attachments?: chat_v1.Schema$AttachmentDataRef[] }): Promise<Message> {
    const asUser = !!msg.attachments?.length;
    return this.call('message create', () =>
      this.client(asUser).spaces.messages.create({
        parent: space,
        requestId: msg.id,
        messageId: msg.id,
        ...(msg.thread ? { messageReplyOption: 'REPLY_MESSAGE_FALLBACK_TO_NEW_THREAD' } : {}),
        requestBody: {
          text: msg.text,
          ...(msg.thread ? { thread: { name: msg.thread } } : {}),
          ...(asUser ? { attachment: msg.attachments!.map((ref) => ({ attachmentDataRef: ref })) } : {}),
        },
      }),
    );
  }

  /** Replaces a message's text (`updateMask=text`); `asUser` for one the delegated user created. */
  async updateText(name: string, text: string, asUser: boolean): Promise<void> {
    await this.call('message update', () => this.client(asUser).spaces.messages.patch({ name, updateMask: 'text', requestBody: { text } }));
  }

  /** Deletes a message; one already gone counts as deleted. */
  async deleteMessage(name: string, asUser: boolean): Promise<void> {
    await this.call('message delete', () => this.client(asUser).spaces.messages.delete({ name }), [404]);
  }

  /**
   * Messages of `space` created after `afterIso` (RFC 3339), oldest first, all pages (1000 a page).
   * https://developers.google.com/workspace/chat/api/reference/rest/v1/spaces.messages/list
   */
  async listSince(space: string, afterIso: string): Promise<Message[]> {
    const out: Message[] = [];
    let pageToken: string | undefined;
    do {
      const page = await this.call('message list', () =>
        this.appChat.spaces.messages.list({ parent: space, filter: `createTime > "${afterIso}"`, orderBy: 'createTime ASC', pageSize: 1000, ...(pageToken ? { pageToken } : {}) }),
      );
      out.push(...(page.messages ?? []));
      pageToken = page.nextPageToken ?? undefined;
    } while (pageToken);
    return out;
  }

  /** Uploads a file into `space` as the delegated user (`media.upload`). @returns its attachmentDataRef. */
  async upload(space: string, file: { data: Buffer; mimeType: string; fileName: string }): Promise<chat_v1.Schema$AttachmentDataRef> {
    const res = await this.call('upload', () =>
      this.client(true).media.upload(
        { parent: space, requestBody: { filename: file.fileName }, media: { mimeType: file.mimeType, body: Readable.from([file.data]) } },
        // The upload URL is built from the per-call rootUrl, not the client's.
        { rootUrl: this.rootUrl },
      ),
    );
    if (!res.attachmentDataRef) throw new RemoteError('Google Chat upload answered without attachmentDataRef', true);
    return res.attachmentDataRef;
  }

  /** Downloads an uploaded attachment's bytes (`media.download`, `alt=media`) as the app. */
  async download(resourceName: string): Promise<Buffer> {
    const data = await this.call('download', () => this.bot.media.download({ resourceName, alt: 'media' }, { responseType: 'arraybuffer' }) as Promise<{ data: unknown }>);
    return Buffer.from(data as ArrayBuffer);
  }

  /**
   * Adds the delegated user's reaction. @returns its name and the user's resource name, or null when
   * it was there already (409).
   */
  async addReaction(message: string, unicode: string): Promise<{ name: string; user: string } | null> {
    const res = await this.call('reaction create', () => this.client(true).spaces.messages.reactions.create({ parent: message, requestBody: { emoji: { unicode } } }), [409]);
    return res?.name ? { name: res.name, user: res.user?.name ?? '' } : null;
  }

  async removeReaction(name: string): Promise<void> {
    await this.call('reaction delete', () => this.client(true).spaces.messages.reactions.delete({ name }), [404]);
  }

  /**
   * Subscribes to `space`'s events, delivered to the Pub/Sub `topic`, with the resources included.
   * An existing subscription for the space (409) is reused and renewed.
   * https://developers.google.com/workspace/events/reference/rest/v1/subscriptions/create
   */
  async subscribe(space: string, topic: string, ttlS: number): Promise<Subscription> {
    const target = `//chat.googleapis.com/${space}`;
    try {
      const op = await this.events<{ response?: Subscription; error?: { message: string } }>('POST', '/v1/subscriptions', {
        targetResource: target,
        eventTypes: EVENT_TYPES,
        notificationEndpoint: { pubsubTopic: topic },
        payloadOptions: { includeResource: true },
        ttl: `${ttlS}s`,
      });
      if (!op.response) throw new RemoteError(`Subscription not created: ${op.error?.message ?? 'operation not done'}`, true);
      return op.response;
    } catch (err) {
      if ((err as RemoteError).code !== 'ALREADY_EXISTS') throw err;
      const found = await this.events<{ subscriptions?: Subscription[] }>('GET', `/v1/subscriptions?filter=${encodeURIComponent(`event_types:"${EVENT_TYPES[0]}" AND target_resource="${target}"`)}`);
      const sub = found.subscriptions?.[0];
      if (!sub) throw new RemoteError(`Subscription for ${space} exists but was not found`, true);
      return (await this.renew(sub.name, ttlS)) ?? sub;
    }
  }

  /** Extends a subscription (`PATCH …?updateMask=ttl`). @returns it, or null when it is gone (404). */
  async renew(name: string, ttlS: number): Promise<Subscription | null> {
    try {
      const op = await this.events<{ response?: Subscription }>('PATCH', `/v1/${name}?updateMask=ttl`, { ttl: `${ttlS}s` });
      return op.response ?? null;
    } catch (err) {
      if ((err as RemoteError).code === 'NOT_FOUND') return null;
      throw err;
    }
  }

  async unsubscribe(name: string): Promise<void> {
    try {
      await this.events('DELETE', `/v1/${name}`);
    } catch (err) {
      if ((err as RemoteError).code !== 'NOT_FOUND') throw err;
    }
  }

  private client(asUser: boolean): chat_v1.Chat {
    if (!asUser) return this.bot;
    if (!this.user) throw new RemoteError('Reactions and files need a delegated user (googlechat.delegated_user, with domain-wide delegation)', false);
    return this.user;
  }

  /** A Workspace Events API call with the app's chat.app.* token. */
  private async events<T>(method: string, path: string, data?: unknown): Promise<T> {
    const url = this.opts.eventsBaseUrl.replace(/\/$/, '') + path;
    return this.call(`subscriptions ${method}`, () => this.app.request<T>({ url, method: method as 'GET', data, retry: false, timeout: TIMEOUT_MS }));
  }

  /** Runs one request. `okStatuses`: failures that mean "already done" (the result is then undefined). */
  private async call<T>(what: string, fn: () => Promise<{ data: T }>, okStatuses: number[] = []): Promise<T> {
    try {
      return (await fn()).data;
    } catch (err) {
      if (okStatuses.includes(statusOf(err))) return undefined as T;
      throw remoteError(what, err);
    }
  }
}
