/**
 * A self-signed X.509 certificate (RFC 5280) for a test RSA key, DER-encoded by hand with node:crypto
 * (Node can read certificates but not make them). Google publishes the Chat app's token signing keys
 * as such certificates: https://www.googleapis.com/service_accounts/v1/metadata/x509/chat@system.gserviceaccount.com
 */
import crypto from 'node:crypto';

function der(tag: number, content: Buffer): Buffer {
  const len = content.length;
  const head = len < 0x80 ? Buffer.from([len]) : len < 0x100 ? Buffer.from([0x81, len]) : Buffer.from([0x82, len >> 8, len & 0xff]);
  return Buffer.concat([Buffer.from([tag]), head, content]);
}
const seq = (...parts: Buffer[]) => der(0x30, Buffer.concat(parts));
/**
 * A DER INTEGER of the unsigned big-endian `b`, in the fewest octets (X.690 §8.3.2: no leading 0x00
 * unless the next octet's top bit is set; OpenSSL refuses a certificate with such padding).
 */
function integer(b: Buffer): Buffer {
  let start = 0;
  while (start < b.length - 1 && b[start] === 0) start++;
  const value = b.subarray(start);
  return der(0x02, value[0] & 0x80 ? Buffer.concat([Buffer.from([0]), value]) : value);
}
function oid(dotted: string): Buffer {
  const [a, b, ...rest] = dotted.split('.').map(Number);
  const bytes = [40 * a + b];
  for (const n of rest) {
    const chunk = [n & 0x7f];
    for (let v = n >> 7; v > 0; v >>= 7) chunk.unshift((v & 0x7f) | 0x80);
    bytes.push(...chunk);
  }
  return der(0x06, Buffer.from(bytes));
}
const NULL = Buffer.from([0x05, 0x00]);
const utcTime = (d: Date) => der(0x17, Buffer.from(d.toISOString().replace(/[-:T]/g, '').slice(2, 14) + 'Z'));
const name = (cn: string) => seq(der(0x31, seq(oid('2.5.4.3'), der(0x0c, Buffer.from(cn)))));

/**
 * A PEM certificate for `publicKey`, signed by `privateKey` (sha256WithRSAEncryption), valid a day
 * either side of now. `ipAddress` (IPv4) adds it as the subjectAltName (RFC 5280 §4.2.1.6), so a TLS
 * server on that address passes the client's host check. `serial`: 8 random bytes unless given.
 */
export function selfSignedCert(privateKey: crypto.KeyObject, publicKey: crypto.KeyObject, commonName: string, opts: { ipAddress?: string; serial?: Buffer } = {}): string {
  const sha256WithRsa = seq(oid('1.2.840.113549.1.1.11'), NULL);
  const now = Date.now();
  const tbs = seq(
    der(0xa0, integer(Buffer.from([2]))),
    integer(opts.serial ?? crypto.randomBytes(8)),
    sha256WithRsa,
    name(commonName),
    seq(utcTime(new Date(now - 86_400_000)), utcTime(new Date(now + 86_400_000))),
    name(commonName),
    publicKey.export({ type: 'spki', format: 'der' }) as Buffer,
    ...(opts.ipAddress ? [der(0xa3, seq(seq(oid('2.5.29.17'), der(0x04, seq(der(0x87, Buffer.from(opts.ipAddress.split('.').map(Number))))))))] : []),
  );
  const signature = crypto.sign('sha256', tbs, privateKey);
  const cert = seq(tbs, sha256WithRsa, der(0x03, Buffer.concat([Buffer.from([0]), signature])));
  return `-----BEGIN CERTIFICATE-----\n${cert.toString('base64').replace(/.{64}/g, '$&\n')}\n-----END CERTIFICATE-----\n`.replace('\n\n', '\n');
}
