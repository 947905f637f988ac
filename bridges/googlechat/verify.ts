/**
 * Checks the bearer tokens Google sends the bridge, with `google-auth-library`'s `OAuth2Client`: it
 * fetches the signing certificates (a `{kid: x509 PEM}` map) from its `oauth2FederatedSignonPemCertsUrl`
 * endpoint, caches them for the response's `Cache-Control: max-age`, and verifies the signature
 * (RS256), `iat`/`exp` (5 minutes of clock skew allowed), the issuer and the audience:
 *
 * - Chat app interaction events, audience "project number": a JWT from
 *   `chat@system.gserviceaccount.com` (issuer) for the project number (audience), signed with a key
 *   from that account's published x509 certificates (`chat_certs_url`).
 * - Chat app interaction events, audience "HTTP endpoint URL": a Google OIDC ID token (issuer
 *   `https://accounts.google.com`, Google's certificates `oidc_certs_url`) for the endpoint URL, whose
 *   `email` is `chat@system.gserviceaccount.com`.
 *   https://developers.google.com/workspace/chat/verify-requests-from-chat
 * - Pub/Sub push: a Google OIDC ID token for the push subscription's audience, whose `email` is the
 *   push service account (verified). https://cloud.google.com/pubsub/docs/authenticate-push-subscriptions
 */
import { OAuth2Client, type TokenPayload } from 'google-auth-library';

export const CHAT_ISSUER = 'chat@system.gserviceaccount.com';
const OIDC_ISSUERS = ['https://accounts.google.com', 'accounts.google.com'];

export interface VerifierOptions {
  audienceMode: 'project-number' | 'endpoint-url';
  projectNumber: string;
  endpointUrl: string;
  pubsubAudience: string;
  pubsubServiceAccount: string;
  /** The Chat token signer's x509 certificates, `{kid: PEM}`. */
  chatCertsUrl: string;
  /** Google's OIDC signing certificates, `{kid: PEM}` (https://www.googleapis.com/oauth2/v1/certs). */
  oidcCertsUrl: string;
}

/** A token that does not verify; the caller answers 401. */
export class TokenError extends Error {}

export class TokenVerifier {
  /** Verifies Chat tokens (issuer chat@system.gserviceaccount.com) against `chatCertsUrl`. */
  private readonly chat: OAuth2Client;
  /** Verifies Google OIDC ID tokens against `oidcCertsUrl`. */
  private readonly oidc: OAuth2Client;

  constructor(private readonly opts: VerifierOptions) {
    this.chat = new OAuth2Client({ endpoints: { oauth2FederatedSignonPemCertsUrl: opts.chatCertsUrl }, issuers: [CHAT_ISSUER] });
    this.oidc = new OAuth2Client({ endpoints: { oauth2FederatedSignonPemCertsUrl: opts.oidcCertsUrl }, issuers: OIDC_ISSUERS });
  }

  /**
   * Verifies an interaction event's `Authorization` header.
   * @throws TokenError for a missing or bad token; the certificates' fetch errors (GaxiosError) as they are.
   */
  async verifyChat(authorization: string | undefined): Promise<void> {
    const token = bearer(authorization);
    if (this.opts.audienceMode === 'endpoint-url') {
      await this.verifyOidc(token, this.opts.endpointUrl, CHAT_ISSUER);
      return;
    }
    if (!this.opts.projectNumber) throw new TokenError('googlechat.project_number is not set');
    await verify(this.chat, token, this.opts.projectNumber, 'Chat token');
  }

  /**
   * Verifies a Pub/Sub push's `Authorization` header.
   * @throws TokenError for a missing or bad token; the certificates' fetch errors as they are.
   */
  async verifyPubsub(authorization: string | undefined): Promise<void> {
    if (!this.opts.pubsubAudience || !this.opts.pubsubServiceAccount) throw new TokenError('googlechat.pubsub_audience and pubsub_service_account must be set');
    await this.verifyOidc(bearer(authorization), this.opts.pubsubAudience, this.opts.pubsubServiceAccount);
  }

  private async verifyOidc(token: string, audience: string, email: string): Promise<void> {
    if (!audience) throw new TokenError('No audience configured');
    const claims = await verify(this.oidc, token, audience, 'OIDC token');
    if (claims.email !== email || claims.email_verified !== true) throw new TokenError(`OIDC token is for ${String(claims.email)}, not ${email}`);
  }
}

/**
 * What `OAuth2Client.verifyIdToken` does, in its two steps, so that a failure to fetch the
 * certificates (not the token's fault) is not taken for a bad token. @returns the token's claims.
 */
async function verify(client: OAuth2Client, token: string, audience: string, what: string): Promise<TokenPayload> {
  const { certs } = await client.getFederatedSignonCertsAsync();
  try {
    const ticket = await client.verifySignedJwtWithCertsAsync(token, certs, audience, client.issuers);
    return ticket.getPayload()!;
  } catch (err) {
    throw new TokenError(`${what} refused: ${(err as Error).message}`);
  }
}

function bearer(authorization: string | undefined): string {
  const m = /^Bearer (\S+)$/.exec(authorization ?? '');
  if (!m) throw new TokenError('Missing bearer token');
  return m[1];
}
