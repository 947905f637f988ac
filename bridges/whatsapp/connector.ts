/**
 * The WhatsApp connector (Meta's WhatsApp Cloud API; one business number, so hub users' messages are
 * relayed with their name: `relay_format`). Webhook:
 * - `GET {webhook_path}`: verification (`hub.mode=subscribe`, `hub.verify_token`, answer `hub.challenge`).
 * - `POST {webhook_path}`: `X-Hub-Signature-256: sha256=<HMAC-SHA256 of the raw body with the app
 *   secret>` checked in constant time (401 otherwise); the events are persisted, then 200 is answered,
 *   then they are handled. Redeliveries of the same wamid are dropped by the kit.
 * https://developers.facebook.com/docs/graph-api/webhooks/getting-started
 */
import crypto from 'node:crypto';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { Type } from 'typebox';
import { relay, safeEqual } from '../kit/helpers.js';
import type { BridgeContext, Connector, MediaDownloadingConnector, MediaFile, OutboundMessage, ReactionHandlingConnector, ReadReceiptHandlingConnector, RemoteMedia, SentMessage, TypingHandlingConnector } from '../kit/types.js';
import { CloudApi } from './cloud-api.js';
import { WebhookPayload, parseWebhook } from './convert.js';
import type { WhatsAppSettings } from './settings.js';

/** `sha256=<hex>` of the body with the app secret, as Meta sends in X-Hub-Signature-256. */
export function signBody(raw: Buffer | string, appSecret: string): string {
  return `sha256=${crypto.createHmac('sha256', appSecret).update(raw).digest('hex')}`;
}

/** True when `header` is the body's signature (constant-time compare). */
export function verifySignature(raw: Buffer, header: string | undefined, appSecret: string): boolean {
  return typeof header === 'string' && appSecret !== '' && safeEqual(header, signBody(raw, appSecret));
}

/** Which Cloud API message type a file goes out as. */
function mediaType(mimeType: string): 'image' | 'video' | 'audio' | 'document' {
  if (mimeType === 'image/jpeg' || mimeType === 'image/png') return 'image';
  if (mimeType.startsWith('video/')) return 'video';
  if (mimeType.startsWith('audio/')) return 'audio';
  return 'document';
}

export class WhatsAppConnector implements Connector, ReactionHandlingConnector, ReadReceiptHandlingConnector, TypingHandlingConnector, MediaDownloadingConnector {
  readonly network = 'whatsapp';
  readonly displayName = 'WhatsApp';
  private readonly api: CloudApi;

  constructor(private readonly settings: WhatsAppSettings) {
    this.api = new CloudApi({
      baseUrl: settings.api_base_url,
      phoneNumberId: settings.phone_number_id,
      accessToken: settings.access_token,
      ratePerS: settings.send_rate_per_s,
    });
  }

  routes(app: FastifyInstance, ctx: BridgeContext): void {
    const path = this.settings.webhook_path;
    // A parameter given twice is an array: the schema refuses it (400) before it reaches safeEqual.
    const schema = { querystring: Type.Object({ 'hub.mode': Type.Optional(Type.String()), 'hub.verify_token': Type.Optional(Type.String()), 'hub.challenge': Type.Optional(Type.String()) }) };
    app.get(path, { schema }, async (req, reply) => {
      const q = req.query as Record<string, string | undefined>;
      if (q['hub.mode'] === 'subscribe' && this.settings.verify_token && safeEqual(q['hub.verify_token'] ?? '', this.settings.verify_token)) {
        return reply.type('text/plain').send(q['hub.challenge'] ?? '');
      }
      return reply.code(403).send({ error: 'verification failed' });
    });
    // The signature first (401), then the payload's shape (400), then the events.
    const signed = async (req: FastifyRequest, reply: FastifyReply) => {
      if (!req.rawBody || !verifySignature(req.rawBody, req.headers['x-hub-signature-256'] as string | undefined, this.settings.app_secret)) {
        ctx.log.warn({ ip: req.ip }, 'webhook with a bad signature refused');
        return reply.code(401).send({ error: 'bad signature' });
      }
    };
    app.post(path, { preValidation: signed, schema: { body: WebhookPayload } }, async (req, reply) => {
      await ctx.receive(parseWebhook(req.body, this.settings.phone_number_id));
      return reply.code(200).send({});
    });
  }

  async start(): Promise<void> {}

  async stop(): Promise<void> {}

  portalMembers(): string[] {
    return this.settings.portal_members;
  }

  /**
   * Sends the files (the first one captioned with the relay-formatted text) and the text when no file
   * carried it; only the first message quotes the one replied to. @returns the wamids sent.
   */
  async sendMessage(to: string, msg: OutboundMessage): Promise<SentMessage> {
    const text = relay(this.settings.relay_format, msg.senderName, msg.text);
    const context = msg.replyTo ? { context: { message_id: msg.replyTo } } : {};
    const ids: string[] = [];
    let captioned = false;
    for (const file of msg.media) {
      const id = await this.api.upload(file);
      const type = mediaType(file.mimeType);
      const caption = !captioned && type !== 'audio' && text ? { caption: text } : {};
      if ('caption' in caption) captioned = true;
      ids.push(await this.api.send(to, { type, [type]: { id, ...caption, ...(type === 'document' ? { filename: file.fileName } : {}) }, ...(ids.length ? {} : context) }));
    }
    if (!captioned && msg.text.trim() !== '') ids.push(await this.api.send(to, { type: 'text', text: { body: text, preview_url: false }, ...(ids.length ? {} : context) }));
    if (ids.length === 0) ids.push(await this.api.send(to, { type: 'text', text: { body: relay(this.settings.relay_format, msg.senderName, '(empty message)'), preview_url: false } }));
    return { ids };
  }

  /** The business's reaction (WhatsApp keeps one per message: a new one replaces it). */
  async sendReaction(to: string, targetId: string, emoji: string): Promise<undefined> {
    await this.api.send(to, { type: 'reaction', reaction: { message_id: targetId, emoji } });
    return undefined;
  }

  /** An empty emoji removes the business's reaction. */
  async sendReactionRemove(to: string, targetId: string): Promise<void> {
    await this.api.send(to, { type: 'reaction', reaction: { message_id: targetId, emoji: '' } });
  }

  async sendReadReceipt(_to: string, targetId: string): Promise<void> {
    await this.api.markRead(targetId);
  }

  async sendTyping(_to: string, lastRemoteId: string): Promise<void> {
    await this.api.markRead(lastRemoteId, true);
  }

  async downloadMedia(media: RemoteMedia): Promise<MediaFile> {
    const { data, mimeType } = await this.api.download(media.id);
    return { data, mimeType: mimeType || media.mimeType, fileName: media.fileName ?? 'file' };
  }
}
