/**
 * Access tokens: short-lived HS256 JWTs (`sub` = user id, `sid` = device id) signed and verified with
 * `jose`. Refresh tokens: opaque 256-bit random strings; only their sha256 is stored.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { SignJWT, jwtVerify, errors as joseErrors } from 'jose';
import type { Logger } from 'pino';
import type { Config } from '../../config/schema.js';
import { AppError } from '../../errors.js';

const ISSUER = 'switchboard';

/**
 * The access-token signing secret: `auth.jwt_secret` when set, otherwise `<data_dir>/signing-key`,
 * generated (32 random bytes, mode 0600) with a logged warning on first run.
 */
export function loadSigningSecret(config: Config, log?: Logger): Uint8Array {
  if (config.auth.jwt_secret) return new TextEncoder().encode(config.auth.jwt_secret);
  const file = path.resolve(config.data_dir, 'signing-key');
  if (fs.existsSync(file)) return Buffer.from(fs.readFileSync(file, 'utf8').trim(), 'base64url');
  fs.mkdirSync(path.dirname(file), { recursive: true });
  const secret = crypto.randomBytes(32);
  fs.writeFileSync(file, secret.toString('base64url') + '\n', { mode: 0o600 });
  log?.warn({ file }, 'generated a new access-token signing key; set auth.jwt_secret to share one across nodes');
  return secret;
}

export interface AccessClaims {
  userId: string;
  deviceId: string;
}

export class TokenIssuer {
  constructor(
    private readonly secret: Uint8Array,
    /** Access token lifetime, seconds. */
    readonly ttlS: number,
  ) {}

  /** @returns a signed access token valid for `ttlS` seconds. */
  async sign(claims: AccessClaims): Promise<string> {
    return new SignJWT({ sid: claims.deviceId })
      .setProtectedHeader({ alg: 'HS256' })
      .setSubject(claims.userId)
      .setIssuer(ISSUER)
      .setIssuedAt()
      .setExpirationTime(`${this.ttlS}s`)
      .sign(this.secret);
  }

  /**
   * Checks signature, issuer and expiry.
   * @throws AppError TOKEN_EXPIRED when expired, UNAUTHORIZED when otherwise invalid.
   */
  async verify(token: string): Promise<AccessClaims> {
    try {
      const { payload } = await jwtVerify(token, this.secret, { issuer: ISSUER, algorithms: ['HS256'] });
      if (typeof payload.sub !== 'string' || typeof payload.sid !== 'string') throw new AppError('UNAUTHORIZED', 'Malformed access token');
      return { userId: payload.sub, deviceId: payload.sid };
    } catch (err) {
      if (err instanceof AppError) throw err;
      if (err instanceof joseErrors.JWTExpired) throw new AppError('TOKEN_EXPIRED', 'Access token expired; refresh it');
      throw new AppError('UNAUTHORIZED', 'Invalid access token');
    }
  }
}

/** A new opaque refresh token and the sha256 hex under which it is stored. */
export function newRefreshToken(): { token: string; hash: string } {
  const token = crypto.randomBytes(32).toString('base64url');
  return { token, hash: hashToken(token) };
}

export function hashToken(token: string): string {
  return crypto.createHash('sha256').update(token).digest('hex');
}
