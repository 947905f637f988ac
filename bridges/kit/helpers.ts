/** Small helpers the kit and the connectors share. */
import crypto from 'node:crypto';

/** Relay formatting of a hub user's message: `format` with `{name}` and `{body}` replaced; '' sends the body alone. */
export function relay(format: string, name: string, body: string): string {
  if (!format) return body;
  return format.replace(/\{name\}|\{body\}/g, (t) => (t === '{name}' ? name : body));
}

/** Constant-time string comparison (hashes first, so lengths do not leak). */
export function safeEqual(a: string, b: string): boolean {
  const ha = crypto.createHash('sha256').update(a).digest();
  const hb = crypto.createHash('sha256').update(b).digest();
  return crypto.timingSafeEqual(ha, hb);
}
