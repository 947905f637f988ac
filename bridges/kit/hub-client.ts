/**
 * The bridge's side of the hub's REST API: every call carries the bridge's `as_token` and, to act as
 * a ghost, `?user_id=`. Uses Node's global `fetch` (undici inside Node 20).
 */
import type { Logger } from 'pino';

/** A hub answer that is not 2xx, or no answer. `transient`: worth retrying (5xx, 429, unreachable). */
export class HubError extends Error {
  constructor(
    message: string,
    readonly status: number,
    readonly code: string,
    /** The hub's `error` object as answered (e.g. `missing`, `extra`, `stale` of a 409/410). */
    readonly details: Record<string, unknown> = {},
  ) {
    super(message);
    this.name = 'HubError';
  }
  get transient(): boolean {
    return this.status === 0 || this.status === 429 || this.status >= 500;
  }
}

export class HubClient {
  constructor(
    private readonly baseUrl: string,
    private readonly asToken: string,
    private readonly log: Logger,
  ) {}

  /**
   * One JSON call. @returns the parsed body (null for 204).
   * @throws HubError (status 0 when the hub could not be reached).
   */
  async call<T = any>(method: string, path: string, opts: { as?: string; body?: unknown } = {}): Promise<T> {
    const url = new URL(this.baseUrl.replace(/\/$/, '') + path);
    if (opts.as) url.searchParams.set('user_id', opts.as);
    let res: Response;
    try {
      res = await fetch(url, {
        method,
        headers: { authorization: `Bearer ${this.asToken}`, ...(opts.body !== undefined ? { 'content-type': 'application/json' } : {}) },
        body: opts.body !== undefined ? JSON.stringify(opts.body) : undefined,
        signal: AbortSignal.timeout(30_000),
      });
    } catch (err) {
      throw new HubError(`hub unreachable: ${(err as Error).message}`, 0, 'UNREACHABLE');
    }
    const text = await res.text();
    const body = text ? JSON.parse(text) : null;
    if (!res.ok) throw new HubError(`${method} ${path}: ${res.status} ${body?.error?.message ?? text}`, res.status, body?.error?.code ?? 'UNKNOWN', body?.error ?? {});
    return body as T;
  }

  /** Uploads a file as `as` (POST /api/attachments, multipart). @returns the attachment id. */
  async upload(as: string, file: { data: Buffer; mimeType: string; fileName: string }): Promise<string> {
    const url = new URL(this.baseUrl.replace(/\/$/, '') + '/api/attachments');
    url.searchParams.set('user_id', as);
    const form = new FormData();
    form.append('file', new Blob([new Uint8Array(file.data)], { type: file.mimeType }), file.fileName);
    let res: Response;
    try {
      res = await fetch(url, { method: 'POST', headers: { authorization: `Bearer ${this.asToken}` }, body: form, signal: AbortSignal.timeout(120_000) });
    } catch (err) {
      throw new HubError(`hub unreachable: ${(err as Error).message}`, 0, 'UNREACHABLE');
    }
    const body = await res.json().catch(() => null);
    if (!res.ok) throw new HubError(`upload: ${res.status} ${body?.error?.message ?? ''}`, res.status, body?.error?.code ?? 'UNKNOWN');
    return body.id;
  }

  /** Downloads an attachment's bytes as the bridge bot. */
  async download(attachmentId: string): Promise<Buffer> {
    let res: Response;
    try {
      res = await fetch(`${this.baseUrl.replace(/\/$/, '')}/api/attachments/${attachmentId}`, { headers: { authorization: `Bearer ${this.asToken}` }, signal: AbortSignal.timeout(120_000) });
    } catch (err) {
      throw new HubError(`hub unreachable: ${(err as Error).message}`, 0, 'UNREACHABLE');
    }
    if (!res.ok) throw new HubError(`download ${attachmentId}: ${res.status}`, res.status, 'DOWNLOAD_FAILED');
    this.log.debug({ attachmentId }, 'attachment downloaded');
    return Buffer.from(await res.arrayBuffer());
  }
}
