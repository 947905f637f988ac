/**
 * HTTP details of serving attachments: byte ranges (RFC 9110 §14) and a safe Content-Disposition
 * (RFC 6266 with the RFC 8187 `filename*` encoding).
 */
import type { ByteRange } from '../../storage/blob-storage.js';

/**
 * Parses a `Range` header against a representation of `size` bytes. One range is served; a header
 * that is absent, malformed, not in bytes or asks for several ranges is ignored (the whole
 * representation is sent), as RFC 9110 §14.2 allows.
 * https://www.rfc-editor.org/rfc/rfc9110#section-14.1.2
 * @returns the inclusive range, null to send everything, or 'unsatisfiable' (answer 416).
 */
export function parseRange(header: string | undefined, size: number): ByteRange | null | 'unsatisfiable' {
  const match = header?.trim().match(/^bytes=(\d*)-(\d*)$/i);
  if (!match || (match[1] === '' && match[2] === '')) return null;
  if (match[1] === '') {
    const suffix = Number(match[2]);
    if (suffix === 0 || size === 0) return 'unsatisfiable';
    return { start: Math.max(0, size - suffix), end: size - 1 };
  }
  const start = Number(match[1]);
  const last = match[2] === '' ? Infinity : Number(match[2]);
  if (last < start) return null;
  if (start >= size) return 'unsatisfiable';
  return { start, end: Math.min(last, size - 1) };
}

/**
 * `inline` or `attachment` with the filename twice: an ASCII fallback in `filename` and the exact
 * UTF-8 name in `filename*`. https://www.rfc-editor.org/rfc/rfc6266#section-4.3
 */
export function contentDisposition(disposition: 'inline' | 'attachment', filename: string): string {
  const fallback = filename.replace(/[^\x20-\x7e]|["\\%]/g, '_');
  const encoded = encodeURIComponent(filename).replace(/['()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
  return `${disposition}; filename="${fallback}"; filename*=UTF-8''${encoded}`;
}
