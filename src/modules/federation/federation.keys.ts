/**
 * The hub's Ed25519 federation signing key (docs/FEDERATION.md), generated into
 * `<data_dir>/federation-key` (PKCS#8 PEM, mode 0600) on first run, as the access-token key is.
 * All nodes of a cluster must share the file.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import type { Logger } from 'pino';

export interface FederationKey {
  /** `ed25519:<first 8 base64url characters of the public key>`. */
  keyId: string;
  privateKey: crypto.KeyObject;
  /** The raw 32-byte public key, base64url. */
  publicKey: string;
}

/** Loads the key from the data dir, generating it on first run. */
export function loadFederationKey(dataDir: string, log?: Logger): FederationKey {
  const file = path.resolve(dataDir, 'federation-key');
  let privateKey: crypto.KeyObject;
  if (fs.existsSync(file)) {
    privateKey = crypto.createPrivateKey(fs.readFileSync(file, 'utf8'));
  } else {
    fs.mkdirSync(path.dirname(file), { recursive: true });
    privateKey = crypto.generateKeyPairSync('ed25519').privateKey;
    fs.writeFileSync(file, privateKey.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600 });
    log?.warn({ file }, 'generated a new federation signing key');
  }
  const publicKey = rawPublicKey(crypto.createPublicKey(privateKey));
  return { keyId: `ed25519:${publicKey.slice(0, 8)}`, privateKey, publicKey };
}

/** The raw 32-byte Ed25519 public key as base64url (the JWK `x`). */
export function rawPublicKey(key: crypto.KeyObject): string {
  return key.export({ format: 'jwk' }).x!;
}

/** A public key object from its raw base64url form. @throws on a malformed key. */
export function publicKeyFromRaw(raw: string): crypto.KeyObject {
  return crypto.createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x: raw }, format: 'jwk' });
}
