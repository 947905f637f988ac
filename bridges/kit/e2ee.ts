/**
 * End-to-bridge encryption (`[[bridges]] e2ee = true`, docs/BRIDGES.md): the bridge bot is an E2EE
 * device of the hub (docs/E2EE.md) with its Signal state in `<data dir>/e2ee.json` (the SDK's
 * `FileStore` and `SignalStores`, sdk/src/e2ee/store.ts), its keys and per-device ciphers being the
 * SDK's `LocalDevice` (sdk/src/e2ee/device.ts, as `E2eeClient` uses). It registers the bot's device session,
 * uploads a signed prekey, a Kyber last-resort key and 100 one-time keys of each kind, refills
 * them when fewer than 10 are left (checked at start and after each PreKey message, which used one:
 * a bridge has no socket for `e2ee.keys_low`) and replaces the signed and last-resort keys weekly.
 *
 * - Hub -> network: `decrypt` opens the envelope the hub addressed to the bot's device (per-device
 *   envelopes, types 3 and 2). The plaintext is kept by message id until `forget` (once the network
 *   took it, or it was given up), since a ratchet opens a message once and a failed send is retried.
 * - Network -> hub: `envelopesFor` encrypts for every E2EE device of the room's members but the bot's
 *   own (claiming a bundle for a device without a session), and `send` retries after 409/410 with the
 *   devices fetched again. A ghost's message is encrypted by the bot's device: its plaintext is the
 *   JSON `{"kind": "bridged", "sender_id": <ghost id>, "body": <text>}`, which recipients check
 *   against the message's sender (the SDK does), so the hub cannot pass the bot's words off as
 *   another ghost's.
 *
 * Not covered: sender-key messages (type 7; their distribution arrives as to-device messages, which
 * reach sockets only) and files in encrypted rooms.
 */
import path from 'node:path';
import type { Logger } from 'pino';
import { CiphertextMessageType, ProtocolAddress } from '@signalapp/libsignal-client';
import { LocalDevice, type ClaimedBundle, type DeviceMismatch, type OutEnvelope, type RecipientDevice } from '../../sdk/src/e2ee/device.js';
import { FileStore as KeyFile, SignalStores } from '../../sdk/src/e2ee/store.js';
import { HubError, type HubClient } from './hub-client.js';

export type { OutEnvelope };

/** The signed prekey and the Kyber last-resort key are replaced this often (checked daily), ms. */
const ROTATE_EVERY_MS = 7 * 86_400_000;
const DAY_MS = 86_400_000;
/** Sends whose device list was out of date (409/410) are tried this often. */
const MAX_ATTEMPTS = 3;

const utf8 = new TextEncoder();
const fromUtf8 = new TextDecoder();

/** An envelope as the hub delivers it (`message.envelope`, `message.edited.envelope`). */
export interface Envelope {
  sender_user_id?: string;
  sender_device_id: number;
  type: number;
  body: string;
}

export class BridgeE2ee {
  private readonly kv: KeyFile;
  private readonly device: LocalDevice;
  private readonly devicesByUser = new Map<string, RecipientDevice[]>();
  /** One libsignal step at a time (ratchets are stateful; lanes run concurrently). */
  private chain: Promise<unknown> = Promise.resolve();
  private rotateTimer?: NodeJS.Timeout;

  constructor(
    private readonly hub: HubClient,
    dataDir: string,
    private readonly botId: string,
    private readonly log: Logger,
  ) {
    this.kv = new KeyFile(path.join(dataDir, 'e2ee.json'));
    const stores = new SignalStores(this.kv);
    stores.onIdentityChanged = (a) => this.log.warn({ user_id: a.user_id, device_id: a.device_id }, 'a device presented a new identity key (trusted on first use)');
    this.device = new LocalDevice(stores, {
      registerDevice: (body) => hub.call('POST', '/api/e2ee/devices', { body }),
      keyCounts: () => hub.call('GET', '/api/e2ee/keys'),
      uploadKeys: (body) => hub.call('PUT', '/api/e2ee/keys', { body }),
      claim: async (user_id, device_id) => (await hub.call<{ devices: ClaimedBundle[] }>('POST', '/api/e2ee/keys/claim', { body: { user_id, device_id } })).devices[0],
    }, botId);
  }

  /** The bot's Signal device id (set by `start`). */
  get deviceId(): number {
    return this.device.deviceId;
  }

  /**
   * Registers the bot's device (identity key and registration id created on first start) and uploads
   * its keys. @throws HubError (E2EE_DEVICE_REQUIRED when the hub's bridge config lacks `e2ee = true`).
   */
  async start(): Promise<void> {
    const started = Date.now();
    await this.serial(async () => {
      await this.device.register();
      await this.rotateIfDue();
      await this.device.refill();
    });
    this.log.info({ device_id: this.deviceId, ms: Date.now() - started }, 'bridge E2EE device ready');
    this.rotateTimer = setInterval(() => void this.serial(() => this.rotateIfDue()).catch((err) => this.log.warn({ err: (err as Error).message }, 'key rotation failed')), DAY_MS);
    this.rotateTimer.unref();
  }

  stop(): void {
    clearInterval(this.rotateTimer);
  }

  /**
   * The plaintext of hub message `key` (a message id, or an edit's id) from the envelope addressed to
   * the bot's device; the stored plaintext when it was opened before.
   * @throws Error when it cannot be opened (a sender-key message, a broken session): not retried.
   */
  async decrypt(key: string, senderUserId: string, e: Envelope): Promise<string> {
    return this.serial(async () => {
      const cached = await this.kv.get(`plain:${key}`);
      if (cached !== undefined) return cached;
      if (e.type !== CiphertextMessageType.PreKey && e.type !== CiphertextMessageType.Whisper) {
        throw new Error(`envelope type ${e.type} is not bridged (only per-device envelopes are)`);
      }
      const text = fromUtf8.decode(await this.device.decrypt(ProtocolAddress.new(e.sender_user_id ?? senderUserId, e.sender_device_id), e));
      await this.kv.set(`plain:${key}`, text);
      // A PreKey message used one of the bot's one-time keys.
      if (e.type === CiphertextMessageType.PreKey) await this.device.refill().catch((err) => this.log.warn({ err: (err as Error).message }, 'key refill failed'));
      return text;
    });
  }

  /** Drops the plaintext kept for `key` (the network has it). */
  async forget(key: string): Promise<void> {
    if ((await this.kv.get(`plain:${key}`)) !== undefined) await this.kv.delete(`plain:${key}`);
  }

  /**
   * Sends `text` into encrypted room `roomId` as `as` (a ghost, or the bot when undefined) through
   * `post(envelopes)` (a send or an edit): one envelope per member device, fetched again and retried
   * on 409 MISMATCHED_DEVICES / 410 STALE_DEVICES.
   * @returns what `post` returned. @throws HubError after 3 attempts, or any other refusal.
   */
  async send<T>(roomId: string, as: string | undefined, text: string, post: (envelopes: OutEnvelope[]) => Promise<T>): Promise<T> {
    const plaintext = as && as !== this.botId ? JSON.stringify({ kind: 'bridged', sender_id: as, body: text }) : text;
    const fresh = new Set<string>();
    for (let attempt = 1; ; attempt++) {
      const envelopes = await this.serial(() => this.envelopesFor(roomId, utf8.encode(plaintext), fresh));
      try {
        return await post(envelopes);
      } catch (err) {
        if (!(err instanceof HubError) || (err.status !== 409 && err.status !== 410) || attempt >= MAX_ATTEMPTS) throw err;
        await this.device.forgetMismatched(err.details as DeviceMismatch, fresh);
        this.log.info({ room_id: roomId, code: err.code }, 'device list changed; encrypting again');
      }
    }
  }

  /** One envelope of `plaintext` for every E2EE device of the room's members but the bot's. */
  private async envelopesFor(roomId: string, plaintext: Uint8Array, fresh: Set<string>): Promise<OutEnvelope[]> {
    const room = await this.hub.call<{ members: { user_id: string }[] }>('GET', `/api/rooms/${roomId}`);
    const out: OutEnvelope[] = [];
    for (const m of room.members) {
      for (const d of await this.devicesOf(m.user_id, fresh.has(m.user_id))) {
        if (d.user_id === this.botId && d.device_id === this.deviceId) continue;
        out.push(await this.device.encryptFor(d, plaintext));
      }
    }
    return out;
  }

  /** A user's E2EE devices, cached until a send finds them out of date (the bridge gets no `e2ee.devices_changed`). */
  private async devicesOf(userId: string, fresh: boolean): Promise<RecipientDevice[]> {
    const cached = this.devicesByUser.get(userId);
    if (cached && !fresh) return cached;
    const { devices } = await this.hub.call<{ devices: RecipientDevice[] }>('GET', `/api/e2ee/users/${userId}/devices`);
    const list = devices.map((d) => ({ user_id: userId, device_id: d.device_id, registration_id: d.registration_id }));
    this.devicesByUser.set(userId, list);
    return list;
  }

  /** A new signed prekey and Kyber last-resort key when there are none yet or they are 7 days old. */
  private async rotateIfDue(): Promise<void> {
    const at = Number((await this.kv.get('rotated_at')) ?? '0');
    if ((await this.kv.get('kyber:last_resort')) && Date.now() - at < ROTATE_EVERY_MS) return;
    await this.device.rotate();
    await this.kv.set('rotated_at', String(Date.now()));
  }

  private serial<T>(fn: () => Promise<T>): Promise<T> {
    const next = this.chain.then(fn);
    this.chain = next.catch(() => undefined);
    return next;
  }
}
