/**
 * A WhatsApp Cloud API simulator, written from Meta's documentation, for the bridge's tests:
 * - `POST /{version}/{phone-number-id}/messages`: send (text, reaction, image/video/audio/document by
 *   uploaded id, with `context` for replies) -> `{"messaging_product","contacts":[{input,wa_id}],
 *   "messages":[{"id":"wamid..."}]}`; mark-as-read and typing (`status:"read"`, `typing_indicator`)
 *   -> `{"success":true}`. https://developers.facebook.com/docs/whatsapp/cloud-api/reference/messages
 * - `POST /{version}/{phone-number-id}/media` (multipart: file, type, messaging_product) -> `{"id"}`;
 *   `GET /{version}/{media-id}` -> `{"url","mime_type","sha256","file_size","id"}`; the URL needs the
 *   bearer token. https://developers.facebook.com/docs/whatsapp/cloud-api/reference/media
 * - Errors in Graph API form `{"error":{"message":"(#code) title","type","code","error_data":{...},"fbtrace_id"}}`:
 *   190 bad token (401), 100 invalid parameter (400), 131047 outside the 24-hour window (400),
 *   130429 rate limit (400), 131000 something went wrong (500), plus any injected with `failNext`.
 *   https://developers.facebook.com/docs/whatsapp/cloud-api/support/error-codes
 * - Webhooks: payload builders for messages and statuses, delivered signed with
 *   `X-Hub-Signature-256: sha256=HMAC-SHA256(app secret, raw body)`; a delivery can be repeated as is.
 *   https://developers.facebook.com/docs/whatsapp/cloud-api/webhooks/payload-examples
 */
import crypto from 'node:crypto';
import Fastify, { type FastifyInstance } from 'fastify';
import fastifyMultipart from '@fastify/multipart';

export interface SentMessage {
  wamid: string;
  to: string;
  type: string;
  payload: any;
  at: number;
}

const TITLES: Record<number, string> = {
  100: 'Invalid parameter',
  190: 'Access token has expired',
  130429: 'Rate limit hit',
  131000: 'Something went wrong',
  131047: 'Re-engagement message',
  131016: 'Service unavailable',
  131056: '(Business Account, Consumer Account) pair rate limit hit',
};

export class WhatsAppSimulator {
  readonly version = 'v23.0';
  readonly phoneNumberId = '109876543210';
  readonly accessToken = crypto.randomBytes(16).toString('hex');
  readonly appSecret = crypto.randomBytes(16).toString('hex');
  url = '';
  /** Where signed webhooks go (the bridge's webhook URL). */
  webhookUrl = '';
  readonly sent: SentMessage[] = [];
  readonly reads: { message_id: string; typing: boolean; at: number }[] = [];
  /** Send attempts refused (injected or by rule), for retry checks. */
  readonly refused: { to: string; code: number }[] = [];
  /** Every send request, accepted or not. */
  attempts = 0;
  /**
   * Called with each send before it is accepted; returning false drops it unaccepted (answered 503,
   * never recorded as sent): a request whose sender died before WhatsApp took it.
   */
  beforeSend?: (body: any) => boolean;
  /** wa_ids whose 24-hour customer service window is closed: sends to them fail with 131047. */
  readonly windowClosed = new Set<string>();
  private readonly failures: { status: number; code: number; count: number }[] = [];
  private readonly files = new Map<string, { data: Buffer; mimeType: string; fileName: string }>();
  private app!: FastifyInstance;
  private waiters: (() => void)[] = [];
  private counter = 0;

  get apiBaseUrl(): string {
    return `${this.url}/${this.version}`;
  }

  /** Refuse the next `count` sends with this HTTP status and error code. */
  failNext(count: number, status: number, code: number): void {
    this.failures.push({ status, code, count });
  }

  /** Files the business uploaded, by media id. */
  uploaded(id: string) {
    return this.files.get(id);
  }

  async start(): Promise<void> {
    const app = Fastify();
    await app.register(fastifyMultipart);
    const error = (status: number, code: number, details = '') => ({
      status,
      body: { error: { message: `(#${code}) ${TITLES[code] ?? 'Error'}`, type: 'OAuthException', code, error_data: { messaging_product: 'whatsapp', details: details || TITLES[code] || '' }, fbtrace_id: crypto.randomBytes(8).toString('hex') } },
    });
    const authorised = (header: string | undefined) => header === `Bearer ${this.accessToken}`;

    app.post('/:version/:phone/messages', async (req, reply) => {
      const fail = (e: { status: number; body: unknown }) => reply.code(e.status).send(e.body);
      if (!authorised(req.headers.authorization)) return fail(error(401, 190));
      const { phone } = req.params as { phone: string };
      const body = req.body as any;
      if (phone !== this.phoneNumberId || body?.messaging_product !== 'whatsapp') return fail(error(400, 100, 'Unknown phone number or messaging_product'));
      if (body.status === 'read') {
        if (typeof body.message_id !== 'string') return fail(error(400, 100, 'message_id is required'));
        this.reads.push({ message_id: body.message_id, typing: body.typing_indicator?.type === 'text', at: Date.now() });
        this.wake();
        return { success: true };
      }
      this.attempts++;
      if (this.beforeSend && !this.beforeSend(body)) return reply.code(503).send(error(503, 131016).body);
      const injected = this.failures[0];
      if (injected) {
        if (--injected.count <= 0) this.failures.shift();
        this.refused.push({ to: body.to, code: injected.code });
        this.wake();
        return fail(error(injected.status, injected.code));
      }
      if (this.windowClosed.has(body.to)) {
        this.refused.push({ to: body.to, code: 131047 });
        this.wake();
        return fail(error(400, 131047, 'Message failed to send because more than 24 hours have passed since the customer last replied to this number.'));
      }
      const problem = this.validate(body);
      if (problem) return fail(error(400, 100, problem));
      const wamid = `wamid.${crypto.randomBytes(12).toString('base64url')}`;
      this.sent.push({ wamid, to: body.to, type: body.type, payload: body, at: Date.now() });
      this.wake();
      return { messaging_product: 'whatsapp', contacts: [{ input: body.to, wa_id: body.to }], messages: [{ id: wamid }] };
    });

    app.post('/:version/:phone/media', async (req, reply) => {
      if (!authorised(req.headers.authorization)) return reply.code(401).send(error(401, 190).body);
      let file: { data: Buffer; mimeType: string; fileName: string } | undefined;
      const fields: Record<string, string> = {};
      for await (const part of req.parts()) {
        if (part.type === 'file') file = { data: await part.toBuffer(), mimeType: part.mimetype, fileName: part.filename };
        else fields[part.fieldname] = String(part.value);
      }
      if (!file || fields.messaging_product !== 'whatsapp' || !fields.type) return reply.code(400).send(error(400, 100, 'file, type and messaging_product are required').body);
      const id = this.host({ ...file, mimeType: fields.type });
      return { id };
    });

    app.get('/:version/:mediaId', async (req, reply) => {
      if (!authorised(req.headers.authorization)) return reply.code(401).send(error(401, 190).body);
      const { mediaId } = req.params as { mediaId: string };
      const file = this.files.get(mediaId);
      if (!file) return reply.code(404).send(error(404, 100, 'Unknown media id').body);
      return {
        messaging_product: 'whatsapp',
        url: `${this.url}/download/${mediaId}?ext=${Date.now()}`,
        mime_type: file.mimeType,
        sha256: crypto.createHash('sha256').update(file.data).digest('hex'),
        file_size: String(file.data.length),
        id: mediaId,
      };
    });

    app.get('/download/:mediaId', async (req, reply) => {
      if (!authorised(req.headers.authorization)) return reply.code(401).send(error(401, 190).body);
      const file = this.files.get((req.params as { mediaId: string }).mediaId);
      if (!file) return reply.code(404).send();
      return reply.type(file.mimeType).send(file.data);
    });

    await app.listen({ host: '127.0.0.1', port: 0 });
    this.app = app;
    this.url = `http://127.0.0.1:${(app.server.address() as { port: number }).port}`;
  }

  async close(): Promise<void> {
    await this.app?.close();
  }

  /** Stores a file (inbound media, or an upload). @returns its media id. */
  host(file: { data: Buffer; mimeType: string; fileName: string }): string {
    const id = String(1000000 + ++this.counter);
    this.files.set(id, file);
    return id;
  }

  // ---- webhooks ----

  /** The envelope of one `messages` webhook. */
  envelope(value: Record<string, unknown>) {
    return {
      object: 'whatsapp_business_account',
      entry: [{ id: '102290129340398', changes: [{ field: 'messages', value: { messaging_product: 'whatsapp', metadata: { display_phone_number: '15550783881', phone_number_id: this.phoneNumberId }, ...value } }] }],
    };
  }

  /** An inbound message webhook from `from` (profile `name`). @returns the payload and the message's wamid. */
  inbound(from: string, name: string, message: Record<string, unknown>, opts: { context?: string; timestamp?: number } = {}) {
    const wamid = `wamid.IN${crypto.randomBytes(10).toString('base64url')}`;
    const payload = this.envelope({
      contacts: [{ profile: { name }, wa_id: from }],
      messages: [{ from, id: wamid, timestamp: String(opts.timestamp ?? Math.floor(Date.now() / 1000)), ...(opts.context ? { context: { from: '15550783881', id: opts.context } } : {}), ...message }],
    });
    return { payload, wamid };
  }

  text(from: string, name: string, body: string, opts: { context?: string; timestamp?: number } = {}) {
    return this.inbound(from, name, { type: 'text', text: { body } }, opts);
  }

  /** A status webhook for a message the business sent. */
  status(wamid: string, recipient: string, status: 'sent' | 'delivered' | 'read' | 'failed', error?: { code: number; title: string }) {
    return this.envelope({
      statuses: [{
        id: wamid,
        status,
        timestamp: String(Math.floor(Date.now() / 1000)),
        recipient_id: recipient,
        ...(error ? { errors: [{ code: error.code, title: error.title, message: error.title, error_data: { details: error.title } }] } : {}),
      }],
    });
  }

  /** POSTs a webhook, signed with the app secret unless `signature` is given. @returns the HTTP status. */
  async deliver(payload: unknown, opts: { signature?: string } = {}): Promise<number> {
    const raw = JSON.stringify(payload);
    const signature = opts.signature ?? `sha256=${crypto.createHmac('sha256', this.appSecret).update(raw).digest('hex')}`;
    try {
      const res = await fetch(this.webhookUrl, { method: 'POST', headers: { 'content-type': 'application/json', 'x-hub-signature-256': signature }, body: raw });
      await res.arrayBuffer();
      return res.status;
    } catch {
      return 0;
    }
  }

  /** Waits until `check()` returns something truthy (re-checked on every request), up to `timeoutMs`. */
  async until<T>(check: () => T | undefined | false | null, timeoutMs = 10_000): Promise<T> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const v = check();
      if (v) return v;
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`simulator: condition not met in ${timeoutMs} ms; sent ${JSON.stringify(this.sent.map((s) => s.payload))}`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, Math.min(left, 100));
        this.waiters.push(() => (clearTimeout(t), resolve()));
      });
    }
  }

  private validate(body: any): string | null {
    switch (body.type) {
      case 'text':
        return typeof body.text?.body === 'string' && body.text.body.length > 0 && body.text.body.length <= 4096 ? null : 'text.body must be 1-4096 characters';
      case 'reaction':
        return typeof body.reaction?.message_id === 'string' && typeof body.reaction?.emoji === 'string' ? null : 'reaction needs message_id and emoji';
      case 'image':
      case 'video':
      case 'audio':
      case 'document':
      case 'sticker':
        return this.files.has(body[body.type]?.id) ? null : `${body.type}.id is not an uploaded media id`;
      default:
        return `Unsupported message type ${body.type}`;
    }
  }

  private wake(): void {
    for (const w of this.waiters.splice(0)) w();
  }
}
