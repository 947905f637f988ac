/**
 * A small client of Meta's WhatsApp Cloud API (Graph API), over Node's global `fetch` (undici inside
 * Node 20; the `undici` package itself is not a dependency).
 * - Send: `POST /{phone-number-id}/messages` -> `{"messages":[{"id":"wamid..."}]}`
 *   https://developers.facebook.com/docs/whatsapp/cloud-api/reference/messages
 * - Mark read / typing: the same endpoint with `{"status":"read","message_id",...,"typing_indicator"?}`
 *   https://developers.facebook.com/docs/whatsapp/cloud-api/typing-indicators
 * - Media: `POST /{phone-number-id}/media` (multipart: file, type, messaging_product) -> `{"id"}`;
 *   `GET /{media-id}` -> `{"url","mime_type",...}`, then `GET url` with the same bearer token.
 *   https://developers.facebook.com/docs/whatsapp/cloud-api/reference/media
 * - Errors: `{"error":{"message","type","code","error_data":{"details"},"fbtrace_id"}}`
 *   https://developers.facebook.com/docs/whatsapp/cloud-api/support/error-codes
 */
import { RemoteError } from '../kit/types.js';

/**
 * Error codes worth retrying with backoff: 130429 throughput rate limit, 131056 pair rate limit,
 * 4 / 80007 app and account rate limits, 2 / 131016 service unavailable, 131000 something went wrong.
 * Everything else (131047 outside the 24-hour window, 131026 undeliverable, 100 invalid parameter,
 * 190 expired token, ...) is permanent and shown in the room.
 */
export const TRANSIENT_CODES = new Set([2, 4, 80007, 130429, 131000, 131016, 131056]);

export interface CloudApiOptions {
  baseUrl: string;
  phoneNumberId: string;
  accessToken: string;
  /** Messages per second from this number. */
  ratePerS: number;
}

export class CloudApi {
  private nextSendAt = 0;

  constructor(private readonly opts: CloudApiOptions) {}

  /** Sends one message object (without `messaging_product`/`to`). @returns its wamid. @throws RemoteError. */
  async send(to: string, message: Record<string, unknown>): Promise<string> {
    await this.throttle();
    const body = await this.request('POST', `/${this.opts.phoneNumberId}/messages`, { messaging_product: 'whatsapp', recipient_type: 'individual', to, ...message });
    const id = body?.messages?.[0]?.id;
    if (typeof id !== 'string') throw new RemoteError('Send answered without a message id', true);
    return id;
  }

  /** Marks an inbound message (and those before it) read; with `typing`, also shows the typing indicator. */
  async markRead(wamid: string, typing = false): Promise<void> {
    await this.request('POST', `/${this.opts.phoneNumberId}/messages`, {
      messaging_product: 'whatsapp',
      status: 'read',
      message_id: wamid,
      ...(typing ? { typing_indicator: { type: 'text' } } : {}),
    });
  }

  /** Uploads a file for sending. @returns the media id. */
  async upload(file: { data: Buffer; mimeType: string; fileName: string }): Promise<string> {
    const form = new FormData();
    form.append('messaging_product', 'whatsapp');
    form.append('type', file.mimeType);
    form.append('file', new Blob([new Uint8Array(file.data)], { type: file.mimeType }), file.fileName);
    const body = await this.request('POST', `/${this.opts.phoneNumberId}/media`, form);
    return body.id;
  }

  /** Downloads an inbound file: its short-lived URL first, then the bytes, both with the bearer token. */
  async download(mediaId: string): Promise<{ data: Buffer; mimeType: string }> {
    const meta = await this.request('GET', `/${encodeURIComponent(mediaId)}`);
    const res = await this.fetch(meta.url, { headers: { authorization: `Bearer ${this.opts.accessToken}` } });
    if (!res.ok) throw new RemoteError(`Media download failed: HTTP ${res.status}`, res.status === 429 || res.status >= 500);
    return { data: Buffer.from(await res.arrayBuffer()), mimeType: meta.mime_type };
  }

  private async request(method: string, path: string, body?: Record<string, unknown> | FormData): Promise<any> {
    const json = body !== undefined && !(body instanceof FormData);
    const res = await this.fetch(this.opts.baseUrl.replace(/\/$/, '') + path, {
      method,
      headers: { authorization: `Bearer ${this.opts.accessToken}`, ...(json ? { 'content-type': 'application/json' } : {}) },
      body: json ? JSON.stringify(body) : (body as FormData | undefined),
    });
    const text = await res.text();
    let parsed: any = null;
    try {
      parsed = text ? JSON.parse(text) : null;
    } catch {
      parsed = null;
    }
    if (res.ok) return parsed;
    const err = parsed?.error;
    const code: number | undefined = typeof err?.code === 'number' ? err.code : undefined;
    const transient = res.status === 429 || res.status >= 500 || (code !== undefined && TRANSIENT_CODES.has(code));
    const detail = err?.error_data?.details ? ` (${err.error_data.details})` : '';
    throw new RemoteError(`${err?.message ?? `HTTP ${res.status}`}${detail}`, transient, code ?? res.status);
  }

  private async fetch(url: string, init: RequestInit): Promise<Response> {
    try {
      return await fetch(url, { ...init, signal: AbortSignal.timeout(60_000) });
    } catch (err) {
      throw new RemoteError(`WhatsApp unreachable: ${(err as Error).message}`, true);
    }
  }

  /** Spaces sends `1/ratePerS` seconds apart (the per-number send rate limit). */
  private async throttle(): Promise<void> {
    const now = Date.now();
    const at = Math.max(now, this.nextSendAt);
    this.nextSendAt = at + 1000 / this.opts.ratePerS;
    if (at > now) await new Promise((resolve) => setTimeout(resolve, at - now));
  }
}
