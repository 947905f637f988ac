/**
 * A Web Push service on loopback, written from the RFCs, for the hub's Web Push sender:
 *
 * - RFC 8030 (the protocol): `POST /push/<id>` delivers a message; `TTL` is required, `Urgency`
 *   and `Topic` optional; the answer is 201 with a `Location`. A test can queue other answers (429
 *   with Retry-After, 5xx, 404, 410) per subscription.
 * - RFC 8292 (VAPID): `Authorization: vapid t=<JWT>, k=<public key>`; the JWT is ES256, signed
 *   with `k`, its `aud` the push service's origin, `exp` at most 24 h ahead, `sub` a contact.
 * - RFC 8291 / RFC 8188 (message encryption, `Content-Encoding: aes128gcm`): the browser side of a
 *   subscription (`newSubscription()`: a P-256 key pair and an auth secret) decrypts each payload.
 *
 * It serves HTTPS (web-push only speaks https) with a self-signed certificate for 127.0.0.1; the
 * hub trusts it through `push.ca_file`.
 */
import crypto from 'node:crypto';
import https from 'node:https';
import { importJWK, jwtVerify } from 'jose';
import { selfSignedCert } from '../googlechat/x509.js';

export interface ReceivedPush {
  subscription: string;
  headers: Record<string, string | undefined>;
  /** The decrypted payload, parsed as JSON. */
  payload: any;
  /** The VAPID JWT's claims and key, as verified. */
  vapid: { aud: string; exp: number; sub: string; k: string };
}

/** One answer the service gives instead of 201: a status and, for 429, a Retry-After in seconds. */
export type QueuedAnswer = { status: number; retryAfterS?: number };

interface BrowserKeys {
  ecdh: crypto.ECDH;
  publicKey: Buffer;
  auth: Buffer;
}

export class PushServiceSim {
  private readonly key = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
  /** The certificate (PEM) to trust: write it to a file for `push.ca_file`. */
  readonly certificate = selfSignedCert(this.key.privateKey, this.key.publicKey, 'push.test', { ipAddress: '127.0.0.1' });
  private readonly server = https.createServer({ key: this.key.privateKey.export({ type: 'pkcs8', format: 'pem' }), cert: this.certificate }, (req, res) => this.handle(req, res));
  private readonly browsers = new Map<string, BrowserKeys>();
  private readonly answers = new Map<string, QueuedAnswer[]>();
  /** Every delivered (201) push, in arrival order. */
  readonly received: ReceivedPush[] = [];
  /** Every request, with the status it got. */
  readonly requests: { subscription: string; status: number }[] = [];
  /** Problems found in requests (bad VAPID, undecryptable body, …): a test expects none. */
  readonly problems: string[] = [];
  private waiters: (() => void)[] = [];
  origin = '';

  async listen(): Promise<void> {
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    this.origin = `https://127.0.0.1:${(this.server.address() as { port: number }).port}`;
  }

  async close(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  /** A browser's subscription on this service: `PushSubscription.toJSON()`'s shape. */
  newSubscription(): { endpoint: string; keys: { p256dh: string; auth: string } } {
    const id = crypto.randomBytes(8).toString('hex');
    const ecdh = crypto.createECDH('prime256v1');
    const publicKey = ecdh.generateKeys();
    const auth = crypto.randomBytes(16);
    this.browsers.set(id, { ecdh, publicKey, auth });
    return { endpoint: `${this.origin}/push/${id}`, keys: { p256dh: publicKey.toString('base64url'), auth: auth.toString('base64url') } };
  }

  /** The next requests for `endpoint` get these answers, in order, before 201 again. */
  answerNext(endpoint: string, ...answers: QueuedAnswer[]): void {
    const id = endpoint.split('/').pop()!;
    this.answers.set(id, [...(this.answers.get(id) ?? []), ...answers]);
  }

  /** Forgets the queued answers: every request gets 201 again. */
  clearAnswers(): void {
    this.answers.clear();
  }

  /** Resolves once `count` pushes were delivered in all (at most `ms`). */
  async waitFor(count: number, ms = 10_000): Promise<ReceivedPush[]> {
    const deadline = Date.now() + ms;
    while (this.received.length < count) {
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`expected ${count} pushes, got ${this.received.length}; problems: ${this.problems.join('; ')}`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.waiters.push(() => (clearTimeout(timer), resolve()));
      });
    }
    return this.received;
  }

  private handle(req: import('node:http').IncomingMessage, res: import('node:http').ServerResponse): void {
    const chunks: Buffer[] = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      this.receive(req, Buffer.concat(chunks)).then(
        ({ status, retryAfterS, subscription }) => {
          this.requests.push({ subscription, status });
          res.writeHead(status, { ...(status === 201 ? { location: `${this.origin}/message/${crypto.randomUUID()}` } : {}), ...(retryAfterS !== undefined ? { 'retry-after': String(retryAfterS) } : {}) });
          res.end();
          const w = this.waiters;
          this.waiters = [];
          for (const f of w) f();
        },
        (err) => {
          this.problems.push(String(err?.message ?? err));
          res.writeHead(400);
          res.end();
        },
      );
    });
  }

  private async receive(req: import('node:http').IncomingMessage, body: Buffer): Promise<QueuedAnswer & { subscription: string }> {
    const match = req.method === 'POST' && req.url?.match(/^\/push\/([0-9a-f]+)$/);
    if (!match) return { status: 404, subscription: '' };
    const subscription = match[1];
    const browser = this.browsers.get(subscription);
    if (!browser) return { status: 410, subscription };
    // RFC 8030 §5.2: TTL is required.
    if (!/^\d+$/.test(String(req.headers.ttl ?? ''))) throw new Error(`missing or bad TTL header: ${req.headers.ttl}`);
    if (req.headers['content-encoding'] !== 'aes128gcm') throw new Error(`content-encoding ${req.headers['content-encoding']}, not aes128gcm`);
    const vapid = await this.verifyVapid(String(req.headers.authorization ?? ''));
    const queued = this.answers.get(subscription)?.shift();
    if (queued) return { ...queued, subscription };
    const payload = JSON.parse(decrypt(body, browser).toString('utf8'));
    this.received.push({
      subscription,
      headers: { ttl: req.headers.ttl as string, urgency: req.headers.urgency as string | undefined, topic: req.headers.topic as string | undefined },
      payload,
      vapid,
    });
    return { status: 201, subscription };
  }

  /** RFC 8292 §3: `vapid t=<JWT>, k=<key>`; the JWT signed by k (ES256), aud = our origin, exp ≤ 24 h. */
  private async verifyVapid(header: string): Promise<ReceivedPush['vapid']> {
    const t = header.match(/(?:^vapid |, *)t=([^, ]+)/)?.[1];
    const k = header.match(/(?:^vapid |, *)k=([^, ]+)/)?.[1];
    if (!header.startsWith('vapid ') || !t || !k) throw new Error(`Authorization is not "vapid t=…, k=…": ${header.slice(0, 40)}`);
    const point = Buffer.from(k, 'base64url');
    if (point.length !== 65 || point[0] !== 4) throw new Error('k is not an uncompressed P-256 point');
    const jwk = { kty: 'EC', crv: 'P-256', x: point.subarray(1, 33).toString('base64url'), y: point.subarray(33).toString('base64url') };
    const { payload, protectedHeader } = await jwtVerify(t, await importJWK(jwk, 'ES256'), { algorithms: ['ES256'], audience: this.origin });
    if (protectedHeader.typ !== 'JWT') throw new Error(`JWT typ ${protectedHeader.typ}`);
    const exp = Number(payload.exp);
    if (!(exp > Date.now() / 1000 && exp <= Date.now() / 1000 + 86_400 + 60)) throw new Error(`exp ${exp} is not within the next 24 h`);
    if (typeof payload.sub !== 'string' || !/^(mailto:|https:)/.test(payload.sub)) throw new Error(`sub ${payload.sub} is not a mailto: or https: contact`);
    return { aud: String(payload.aud), exp, sub: payload.sub, k };
  }
}

/**
 * Decrypts an aes128gcm body (RFC 8188 §2) with the browser's keys (RFC 8291 §3.3-3.4): the header
 * is salt (16) | rs (4) | idlen (1) | keyid (the sender's ephemeral public key); one record.
 */
function decrypt(body: Buffer, browser: BrowserKeys): Buffer {
  const salt = body.subarray(0, 16);
  const rs = body.readUInt32BE(16);
  const idlen = body[20];
  const senderPublic = body.subarray(21, 21 + idlen);
  const record = body.subarray(21 + idlen);
  if (idlen !== 65) throw new Error(`keyid of ${idlen} bytes, not a P-256 public key`);
  if (record.length > rs) throw new Error('more than one record');
  const ecdhSecret = browser.ecdh.computeSecret(senderPublic);
  const keyInfo = Buffer.concat([Buffer.from('WebPush: info\0'), browser.publicKey, senderPublic]);
  const ikm = Buffer.from(crypto.hkdfSync('sha256', ecdhSecret, browser.auth, keyInfo, 32));
  const cek = Buffer.from(crypto.hkdfSync('sha256', ikm, salt, Buffer.from('Content-Encoding: aes128gcm\0'), 16));
  const nonce = Buffer.from(crypto.hkdfSync('sha256', ikm, salt, Buffer.from('Content-Encoding: nonce\0'), 12));
  const decipher = crypto.createDecipheriv('aes-128-gcm', cek, nonce);
  decipher.setAuthTag(record.subarray(record.length - 16));
  const plain = Buffer.concat([decipher.update(record.subarray(0, record.length - 16)), decipher.final()]);
  // Padding: the data, a delimiter (0x02 in the last record), then zeros.
  let end = plain.length - 1;
  while (end >= 0 && plain[end] === 0) end--;
  if (plain[end] !== 2) throw new Error('the last record does not end with the 0x02 delimiter');
  return plain.subarray(0, end);
}
