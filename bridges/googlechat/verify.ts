/**
 * Checks the bearer tokens Google sends the bridge, with `jose`:
 *
 * - Chat app interaction events, audience "project number": a JWT from
 *   `chat@system.gserviceaccount.com` (issuer) for the project number (audience), signed with a key
 *   from Google's published x509 certificates of that account.
 * - Chat app interaction events, audience "HTTP endpoint URL": a Google OIDC ID token (issuer
 *   `https://accounts.google.com`, keys from Google's JWKS) for the endpoint URL, whose `email` is
 *   `chat@system.gserviceaccount.com`.
 *   https://developers.google.com/workspace/chat/verify-requests-from-chat
 * - Pub/Sub push: a Google OIDC ID token for the push subscription's audience, whose `email` is the
 *   push service account (verified). https://cloud.google.com/pubsub/docs/authenticate-push-subscriptions
 */
import { createRemoteJWKSet, importX509, jwtVerify, type JWTPayload, type JWTVerifyGetKey } from 'jose';

export const CHAT_ISSUER = 'chat@system.gserviceaccount.com';
const OIDC_ISSUERS = ['https://accounts.google.com', 'accounts.google.com'];
/** Unknown key ids refetch the certificates at most this often, ms. */
const REFETCH_MIN_MS = 30_000;
const TIMEOUT_MS = 10_000;

export interface VerifierOptions {
  audienceMode: 'project-number' | 'endpoint-url';
  projectNumber: string;
  endpointUrl: string;
  pubsubAudience: string;
  pubsubServiceAccount: string;
  chatCertsUrl: string;
  oidcJwksUrl: string;
}

/** A token that does not verify; the caller answers 401. */
export class TokenError extends Error {}

export class TokenVerifier {
  private readonly oidcKeys: JWTVerifyGetKey;
  private certs = new Map<string, CryptoKey>();
  private certsFetchedAt = 0;
  private certsMaxAgeMs = 0;

  constructor(private readonly opts: VerifierOptions) {
    this.oidcKeys = createRemoteJWKSet(new URL(opts.oidcJwksUrl), { timeoutDuration: TIMEOUT_MS });
  }

  /** Verifies an interaction event's `Authorization` header. @throws TokenError. */
  async verifyChat(authorization: string | undefined): Promise<void> {
    const token = bearer(authorization);
    if (this.opts.audienceMode === 'endpoint-url') {
      await this.verifyOidc(token, this.opts.endpointUrl, CHAT_ISSUER);
      return;
    }
    if (!this.opts.projectNumber) throw new TokenError('googlechat.project_number is not set');
    try {
      await jwtVerify(token, (header) => this.chatKey(header.kid), { issuer: CHAT_ISSUER, audience: this.opts.projectNumber, algorithms: ['RS256'] });
    } catch (err) {
      throw new TokenError(`Chat token refused: ${(err as Error).message}`);
    }
  }

  /** Verifies a Pub/Sub push's `Authorization` header. @throws TokenError. */
  async verifyPubsub(authorization: string | undefined): Promise<void> {
    if (!this.opts.pubsubAudience || !this.opts.pubsubServiceAccount) throw new TokenError('googlechat.pubsub_audience and pubsub_service_account must be set');
    await this.verifyOidc(bearer(authorization), this.opts.pubsubAudience, this.opts.pubsubServiceAccount);
  }

  private async verifyOidc(token: string, audience: string, email: string): Promise<void> {
    if (!audience) throw new TokenError('No audience configured');
    let claims: JWTPayload;
    try {
      ({ payload: claims } = await jwtVerify(token, this.oidcKeys, { issuer: OIDC_ISSUERS, audience, algorithms: ['RS256'] }));
    } catch (err) {
      throw new TokenError(`OIDC token refused: ${(err as Error).message}`);
    }
    if (claims.email !== email || claims.email_verified !== true) throw new TokenError(`OIDC token is for ${String(claims.email)}, not ${email}`);
  }

  /** The Chat signing key `kid`, from the x509 certificates (refetched when stale or unknown). */
  private async chatKey(kid: string | undefined): Promise<CryptoKey> {
    if (!kid) throw new TokenError('Token without kid');
    const age = Date.now() - this.certsFetchedAt;
    if (age > this.certsMaxAgeMs || (!this.certs.has(kid) && age > REFETCH_MIN_MS)) await this.fetchCerts();
    const key = this.certs.get(kid);
    if (!key) throw new TokenError(`Unknown key id ${kid}`);
    return key;
  }

  private async fetchCerts(): Promise<void> {
    const res = await fetch(this.opts.chatCertsUrl, { signal: AbortSignal.timeout(TIMEOUT_MS) });
    if (!res.ok) throw new TokenError(`Certificates unavailable: HTTP ${res.status}`);
    const pems = (await res.json()) as Record<string, string>;
    const certs = new Map<string, CryptoKey>();
    for (const [kid, pem] of Object.entries(pems)) certs.set(kid, await importX509(pem, 'RS256'));
    this.certs = certs;
    this.certsFetchedAt = Date.now();
    this.certsMaxAgeMs = Number(/max-age=(\d+)/.exec(res.headers.get('cache-control') ?? '')?.[1] ?? 3600) * 1000;
  }
}

function bearer(authorization: string | undefined): string {
  const m = /^Bearer (\S+)$/.exec(authorization ?? '');
  if (!m) throw new TokenError('Missing bearer token');
  return m[1];
}
