/**
 * Signatures between hubs (docs/FEDERATION.md):
 * - requests: HTTP Message Signatures (RFC 9421, https://www.rfc-editor.org/rfc/rfc9421) with
 *   Ed25519 over `@method`, `@path`, `@authority` (the destination's server_name) and
 *   `content-digest` (RFC 9530, https://www.rfc-editor.org/rfc/rfc9530: sha-256 of the body), with
 *   `created`, `keyid` (the origin's server_name) and `alg="ed25519"`; the signature base by
 *   `http-message-signatures`, the Content-Digest dictionary by `structured-headers`;
 * - events: Ed25519 over the RFC 8785 canonical JSON (https://www.rfc-editor.org/rfc/rfc8785) of the
 *   event without its `signatures`, by `canonicalize`.
 */
import crypto from 'node:crypto';
import canonicalizeModule from 'canonicalize';
import { httpbis } from 'http-message-signatures';
import { parseDictionary, serializeDictionary } from 'structured-headers';
import type { FederationKey } from './federation.keys.js';

/** How far `created` may be from now, either way, seconds. */
export const MAX_SKEW_S = 300;

// The package is CommonJS whose typings declare an ES default export.
const canonicalize = canonicalizeModule as unknown as (input: unknown) => string | undefined;

const FIELDS = ['@method', '@path', '@authority', 'content-digest'];

/** `sha-256=:<base64>:` of `body` (RFC 9530). */
export function contentDigest(body: string | Buffer): string {
  return serializeDictionary({ 'sha-256': crypto.createHash('sha256').update(body).digest().buffer as ArrayBuffer });
}

/** True when `header` is a Content-Digest whose sha-256 matches `body`. */
export function digestMatches(header: string | undefined, body: string | Buffer): boolean {
  if (!header) return false;
  try {
    const item = parseDictionary(header).get('sha-256');
    if (!item || !(item[0] instanceof ArrayBuffer)) return false;
    const want = crypto.createHash('sha256').update(body).digest();
    const got = Buffer.from(item[0]);
    return got.length === want.length && crypto.timingSafeEqual(got, want);
  } catch {
    return false;
  }
}

/**
 * The headers of a signed request from this hub (`origin`) to `destination`: `content-digest`,
 * `signature-input` and `signature` (label `sig`), plus `content-type` when there is a body.
 */
export async function signRequest(
  key: FederationKey,
  origin: string,
  req: { method: string; destination: string; path: string; body: string },
): Promise<Record<string, string>> {
  const headers: Record<string, string> = { 'content-digest': contentDigest(req.body) };
  if (req.body) headers['content-type'] = 'application/json';
  const signed = await httpbis.signMessage(
    {
      key: { id: origin, alg: 'ed25519', sign: async (data) => crypto.sign(null, data, key.privateKey) },
      fields: FIELDS,
      params: ['created', 'keyid', 'alg'],
      paramValues: { created: new Date() },
    },
    { method: req.method, url: `https://${req.destination}${req.path}`, headers },
  );
  return Object.fromEntries(Object.entries(signed.headers).map(([k, v]) => [k.toLowerCase(), String(v)]));
}

/**
 * Checks a request's signature. `destination` is this hub's server_name (the signed `@authority`
 * must be it); `keyFor(origin)` returns the origin's pinned public key or null.
 * @returns the origin's server_name.
 * @throws Error with a reason when the signature is missing, malformed, by an unknown key, does not
 *   verify, is more than MAX_SKEW_S off, or the body does not match its Content-Digest.
 */
export async function verifyRequest(
  req: { method: string; path: string; headers: Record<string, string | string[] | undefined>; body: string },
  destination: string,
  keyFor: (origin: string) => Promise<crypto.KeyObject | null>,
): Promise<string> {
  const headers: Record<string, string> = {};
  for (const name of ['signature', 'signature-input', 'content-digest']) {
    const v = req.headers[name];
    if (typeof v === 'string') headers[name] = v;
  }
  if (!digestMatches(headers['content-digest'], req.body)) throw new Error('content-digest missing or not matching the body');
  let origin: string | undefined;
  const nowS = Math.floor(Date.now() / 1000);
  const ok = await httpbis.verifyMessage(
    {
      keyLookup: async (params) => {
        if (typeof params.keyid !== 'string') return null;
        const key = await keyFor(params.keyid);
        if (!key) return null;
        origin = params.keyid;
        return { id: params.keyid, algs: ['ed25519'], verify: async (data, signature) => crypto.verify(null, data, key, signature) };
      },
      requiredParams: ['created', 'keyid'],
      requiredFields: FIELDS,
      maxAge: MAX_SKEW_S,
      notAfter: nowS + MAX_SKEW_S,
    },
    { method: req.method, url: `https://${destination}${req.path}`, headers },
  );
  if (!ok || !origin) throw new Error(ok === null ? 'unknown signing key' : 'bad signature');
  return origin;
}

/** RFC 8785 canonical JSON of `value`. */
export function canonicalJson(value: unknown): string {
  const text = canonicalize(value);
  if (text === undefined) throw new Error('value cannot be canonicalized');
  return text;
}

/** An Ed25519 signature (base64url) over the canonical JSON of `value`. */
export function signJson(key: FederationKey, value: unknown): string {
  return crypto.sign(null, Buffer.from(canonicalJson(value)), key.privateKey).toString('base64url');
}

/** True when `signature` (base64url) is `publicKey`'s over the canonical JSON of `value`. */
export function verifyJson(publicKey: crypto.KeyObject, value: unknown, signature: string): boolean {
  try {
    return crypto.verify(null, Buffer.from(canonicalJson(value)), publicKey, Buffer.from(signature, 'base64url'));
  } catch {
    return false;
  }
}

/** sha-256 (base64url) of the canonical JSON of `value`: the `prev_hash` chain. */
export function hashJson(value: unknown): string {
  return crypto.createHash('sha256').update(canonicalJson(value)).digest('base64url');
}
