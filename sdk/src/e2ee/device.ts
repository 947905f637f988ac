/**
 * This device's side of the hub's E2EE contract (docs/E2EE.md), shared by `E2eeClient` (./index.ts)
 * and the bridge kit's bot device (bridges/kit/e2ee.ts): registering the identity key, uploading and
 * refilling keys, rotating the signed prekey and the Kyber last-resort key, encrypting for one remote
 * device (claiming its bundle when there is no session) and decrypting per-device envelopes. The Signal
 * state lives in `SignalStores` (./store.ts); the hub is reached through an `E2eeTransport`, so each
 * side keeps its own HTTP client and error type.
 */
import crypto from 'node:crypto';
import {
  CiphertextMessageType, IdentityKeyPair, KEMKeyPair, KEMPublicKey, KyberPreKeyRecord, PreKeyBundle, PreKeyRecord, PreKeySignalMessage,
  PrivateKey, ProtocolAddress, PublicKey, SignalMessage, SignedPreKeyRecord, processPreKeyBundle, signalDecrypt, signalDecryptPreKey, signalEncrypt,
} from '@signalapp/libsignal-client';
import type { DeviceRef } from '../errors.js';
import type { KeyValueStore, SignalStores } from './store.js';

/** Refill one-time keys below this many. */
export const REFILL_BELOW = 10;
/** One-time keys uploaded per refill. */
export const BATCH = 100;

const enc = (b: Uint8Array) => Buffer.from(b).toString('base64');
const dec = (s: string) => new Uint8Array(Buffer.from(s, 'base64'));
const utf8 = new TextEncoder();

/** A signed key as uploaded (`PUT /api/e2ee/keys`): ids per id space, keys and signatures base64. */
interface SignedKey {
  key_id: number;
  public_key: string;
  signature: string;
}

/** The body of `PUT /api/e2ee/keys`: any of the signed prekey, the Kyber last-resort key and one-time keys. */
export interface KeyUpload {
  signed_pre_key?: SignedKey;
  kyber_last_resort_key?: SignedKey;
  pre_keys?: { key_id: number; public_key: string }[];
  kyber_pre_keys?: SignedKey[];
}

/** One device's prekey bundle as `POST /api/e2ee/keys/claim` hands it out (`pre_key` null when none was left). */
export interface ClaimedBundle {
  device_id: number;
  registration_id: number;
  identity_key: string;
  signed_pre_key: SignedKey;
  pre_key: { key_id: number; public_key: string } | null;
  kyber_pre_key: SignedKey;
}

/** The hub calls this device's keys need. Errors are the caller's own (they pass through). */
export interface E2eeTransport {
  /** `POST /api/e2ee/devices`: registers (or finds again) the session's E2EE device. */
  registerDevice(body: { registration_id: number; identity_key: string }): Promise<{ device_id: number }>;
  /** `GET /api/e2ee/keys`: how many one-time keys of each kind the hub still holds for this device. */
  keyCounts(): Promise<{ pre_keys: number; kyber_pre_keys: number }>;
  /** `PUT /api/e2ee/keys`. */
  uploadKeys(body: KeyUpload): Promise<unknown>;
  /** `POST /api/e2ee/keys/claim` for one device (`{user_id, device_id}`): its bundle. */
  claim(userId: string, deviceId: number): Promise<ClaimedBundle>;
}

/** A remote device to encrypt for. */
export interface RecipientDevice {
  user_id: string;
  device_id: number;
  registration_id: number;
}

/** An envelope as a send or an edit carries it (`envelopes[]`): `type` 3 (PreKey) or 2 (Whisper), `body` base64. */
export interface OutEnvelope {
  user_id: string;
  device_id: number;
  registration_id: number;
  type: number;
  body: string;
}

/** What a 409 MISMATCHED_DEVICES (`missing`, `extra`) or 410 STALE_DEVICES (`stale`) names. */
export interface DeviceMismatch {
  missing?: DeviceRef[];
  extra?: DeviceRef[];
  stale?: DeviceRef[];
}

/**
 * The local E2EE device of user `userId`: its keys in `stores`, uploaded through `transport`. The
 * key-value store's keys: `identity:private`, `registration_id`, `next:<ec|kyber|signed>` (the next key
 * id of each id space), `kyber:last_resort` (the id of the current last-resort key), and those of
 * `SignalStores`. Not serialised: callers run one step at a time.
 */
export class LocalDevice {
  /** The Signal device id (set by `register`). */
  deviceId = 0;
  private readonly kv: KeyValueStore;

  constructor(
    readonly stores: SignalStores,
    private readonly transport: E2eeTransport,
    private readonly userId: string,
  ) {
    this.kv = stores.kv;
  }

  /** This device's Signal address. */
  get address(): ProtocolAddress {
    return ProtocolAddress.new(this.userId, this.deviceId);
  }

  /** Registers the identity key and registration id (1–16380, both created on first use) and sets `deviceId`. */
  async register(): Promise<void> {
    if (!(await this.kv.get('identity:private'))) {
      const pair = IdentityKeyPair.generate();
      await this.kv.set('identity:private', enc(pair.privateKey.serialize()));
      await this.kv.set('registration_id', enc(utf8.encode(String(1 + crypto.randomInt(16380)))));
    }
    const pair = await this.stores.identity.getIdentityKeyPair();
    const registrationId = await this.stores.identity.getLocalRegistrationId();
    const device = await this.transport.registerDevice({ registration_id: registrationId, identity_key: enc(pair.publicKey.serialize()) });
    this.deviceId = device.device_id;
  }

  /** A new signed prekey and Kyber last-resort key, uploaded (the previous ones stay for messages in flight). */
  async rotate(): Promise<void> {
    const identity = await this.stores.identity.getIdentityKey();
    const signed = await this.newSignedPreKey(identity);
    const lastResort = await this.newKyberKey(identity);
    await this.kv.set('kyber:last_resort', String(lastResort.key_id));
    await this.transport.uploadKeys({ signed_pre_key: signed, kyber_last_resort_key: lastResort });
  }

  /** Uploads `BATCH` (100) one-time keys of each kind that has fewer than `REFILL_BELOW` (10) left on the hub. */
  async refill(): Promise<void> {
    const counts = await this.transport.keyCounts();
    const identity = await this.stores.identity.getIdentityKey();
    const body: KeyUpload = {};
    if (counts.pre_keys < REFILL_BELOW) {
      body.pre_keys = [];
      for (let i = 0; i < BATCH; i++) {
        const id = await this.nextId('ec');
        const key = PrivateKey.generate();
        await this.stores.preKey.savePreKey(id, PreKeyRecord.new(id, key.getPublicKey(), key));
        body.pre_keys.push({ key_id: id, public_key: enc(key.getPublicKey().serialize()) });
      }
    }
    if (counts.kyber_pre_keys < REFILL_BELOW) {
      body.kyber_pre_keys = [];
      for (let i = 0; i < BATCH; i++) body.kyber_pre_keys.push(await this.newKyberKey(identity));
    }
    if (body.pre_keys || body.kyber_pre_keys) await this.transport.uploadKeys(body);
  }

  /** Encrypts `plaintext` for one device, starting a session from a claimed bundle when there is none. */
  async encryptFor(d: RecipientDevice, plaintext: Uint8Array): Promise<OutEnvelope> {
    const address = ProtocolAddress.new(d.user_id, d.device_id);
    const session = await this.stores.session.getSession(address);
    if (!session?.hasCurrentState()) {
      const b = await this.transport.claim(d.user_id, d.device_id);
      const bundle = PreKeyBundle.new(
        b.registration_id, b.device_id, b.pre_key?.key_id ?? null, b.pre_key ? PublicKey.deserialize(dec(b.pre_key.public_key)) : null,
        b.signed_pre_key.key_id, PublicKey.deserialize(dec(b.signed_pre_key.public_key)), dec(b.signed_pre_key.signature),
        PublicKey.deserialize(dec(b.identity_key)), b.kyber_pre_key.key_id, KEMPublicKey.deserialize(dec(b.kyber_pre_key.public_key)), dec(b.kyber_pre_key.signature),
      );
      await processPreKeyBundle(bundle, address, this.address, this.stores.session, this.stores.identity);
    }
    const message = await signalEncrypt(new Uint8Array(plaintext), address, this.address, this.stores.session, this.stores.identity);
    return { user_id: d.user_id, device_id: d.device_id, registration_id: d.registration_id, type: message.type(), body: enc(message.serialize()) };
  }

  /**
   * Opens a per-device envelope (`type` 3 PreKey or 2 Whisper, `body` base64) from `sender`.
   * @throws Error for another type, or when libsignal cannot open it.
   */
  async decrypt(sender: ProtocolAddress, e: { type: number; body: string }): Promise<Uint8Array> {
    const s = this.stores;
    switch (e.type) {
      case CiphertextMessageType.PreKey:
        return signalDecryptPreKey(PreKeySignalMessage.deserialize(dec(e.body)), sender, this.address, s.session, s.identity, s.preKey, s.signedPreKey, s.kyberPreKey);
      case CiphertextMessageType.Whisper:
        return signalDecrypt(SignalMessage.deserialize(dec(e.body)), sender, this.address, s.session, s.identity);
      default:
        throw new Error(`Unknown envelope type ${e.type}`);
    }
  }

  /**
   * After a 409/410 (the device list a send assumed was out of date): drops the sessions of the stale
   * devices and adds every named user to `fresh` (their devices are to be fetched again).
   */
  async forgetMismatched(m: DeviceMismatch, fresh: Set<string>): Promise<void> {
    for (const d of m.stale ?? []) await this.kv.delete(`session:${d.user_id}.${d.device_id}`);
    for (const d of [...(m.missing ?? []), ...(m.extra ?? []), ...(m.stale ?? [])]) fresh.add(d.user_id);
  }

  private async newSignedPreKey(identity: PrivateKey): Promise<SignedKey> {
    const id = await this.nextId('signed');
    const key = PrivateKey.generate();
    const signature = identity.sign(key.getPublicKey().serialize());
    await this.stores.signedPreKey.saveSignedPreKey(id, SignedPreKeyRecord.new(id, Date.now(), key.getPublicKey(), key, signature));
    return { key_id: id, public_key: enc(key.getPublicKey().serialize()), signature: enc(signature) };
  }

  private async newKyberKey(identity: PrivateKey): Promise<SignedKey> {
    const id = await this.nextId('kyber');
    const pair = KEMKeyPair.generate();
    const signature = identity.sign(pair.getPublicKey().serialize());
    await this.stores.kyberPreKey.saveKyberPreKey(id, KyberPreKeyRecord.new(id, Date.now(), pair, signature));
    return { key_id: id, public_key: enc(pair.getPublicKey().serialize()), signature: enc(signature) };
  }

  /** The next key id of an id space, persisted before use. */
  private async nextId(space: 'ec' | 'kyber' | 'signed'): Promise<number> {
    const id = Number((await this.kv.get(`next:${space}`)) ?? '1');
    await this.kv.set(`next:${space}`, String(id + 1));
    return id;
  }
}
