/**
 * E2EE (docs/E2EE.md): the hub as a key distribution service and a mailbox of opaque ciphertext, as
 * Signal-Server is. A login session becomes an E2EE device by registering an identity key and gets a
 * per-user Signal device id (1–127, freed when the session is revoked). Devices upload signed prekeys,
 * Kyber last-resort keys and one-time keys (signatures checked with libsignal); claims hand each
 * one-time key out exactly once (a row-locking DELETE … RETURNING, safe across nodes). To-device
 * messages wait in `e2ee_to_device` until the device acknowledges them.
 *
 * It also answers the message writer's question for sends in encrypted rooms: do the envelopes match
 * the members' current E2EE devices (`matchEnvelopes`).
 */
import { KEMPublicKey, PublicKey } from '@signalapp/libsignal-client';
import type { Database, Queryable } from '../../db/database.js';
import { AppError, type DeviceRef } from '../../errors.js';
import type { EnvelopeWire } from '../../events/catalog.js';
import type { PubSub } from '../../events/pubsub.js';
import { sendToDeviceSockets } from '../../events/socket-control.js';
import type { AuthContext } from '../auth/auth.service.js';
import { actsAsGhost } from '../bridges/bridges.service.js';
import { e2eeRepository as repo, type E2eeDeviceRow, type IdSpace, type KeyRow, type OneTimeKind, type RoomDeviceRow } from './e2ee.repository.js';

/** A claim leaving fewer one-time keys than this sends `e2ee.keys_low` to the device. */
export const KEYS_LOW = 10;
/** Pending to-device messages per device; more are refused with 429 MAILBOX_FULL. */
export const MAX_PENDING_TO_DEVICE = 1000;
/** Claims per (claimer, target device) per minute on one node. */
export const CLAIMS_PER_MIN = 20;
/** Pending to-device messages sent to a socket when it connects (the rest follow acknowledgements). */
const TO_DEVICE_PAGE = 100;

const b64 = (b: Buffer | Uint8Array) => Buffer.from(b).toString('base64');

interface SignedKeyIn {
  key_id: number;
  public_key: string;
  signature: string;
}

/** A send's envelope as clients submit it. */
export interface EnvelopeIn {
  user_id: string;
  device_id: number;
  registration_id: number;
  type: number;
  body: string;
}

/** The member devices of one encrypted room, as the message writer checks envelopes against them. */
export type RoomDevices = RoomDeviceRow[];

export class E2eeService {
  private readonly claims = new Map<string, { windowStart: number; count: number }>();

  constructor(
    private readonly db: Database,
    private readonly pubsub: PubSub,
  ) {}

  /**
   * Makes the calling session an E2EE device. Again with the same values: the same answer, `created`
   * false. A different identity key (or registration id) replaces the old one and drops its keys.
   * @returns `{created, device: {device_id, registration_id, identity_key}}`.
   * @throws AppError VALIDATION_FAILED (400, not an EC public key), E2EE_DEVICE_REQUIRED (403, an agent
   *   or a bridge without `e2ee`, which have no session, or a bridge acting as a ghost), CONFLICT (409, all 127 Signal device ids of the user are taken).
   */
  async registerDevice(auth: AuthContext, body: { registration_id: number; identity_key: string }) {
    refuseGhost(auth);
    const identityKey = parseEcKey(body.identity_key, 'identity_key');
    const { row, outcome } = await this.db.transaction(async (tx) => {
      await repo.lockUser(tx, auth.userId);
      const found = await repo.findDevice(tx, auth.deviceId);
      if (found && found.registration_id === body.registration_id && found.identity_key.equals(identityKey)) return { row: found, outcome: 'same' as const };
      if (found) return { row: await repo.replaceIdentity(tx, auth.deviceId, body.registration_id, identityKey), outcome: 'replaced' as const };
      const inserted = await repo.insertDevice(tx, { deviceId: auth.deviceId, userId: auth.userId, registrationId: body.registration_id, identityKey }).catch((err) => {
        if ((err as { code?: string }).code === '23503') throw new AppError('E2EE_DEVICE_REQUIRED', 'Only a login session can become an E2EE device');
        throw err;
      });
      if (!inserted) throw new AppError('CONFLICT', 'All 127 Signal device ids of this user are in use');
      return { row: inserted, outcome: 'created' as const };
    });
    if (outcome !== 'same') await this.devicesChanged(auth.userId);
    return { created: outcome === 'created', device: deviceView(row) };
  }

  /**
   * Stores keys of the calling device. Signatures (signed prekey, Kyber keys) must verify with the
   * device's identity key. Key ids must grow per id space (EC one-time, Kyber, signed EC): an id at or
   * below the highest ever stored is skipped when it is the very key still stored (a retried upload)
   * and refused otherwise, so a key handed out never comes back.
   * @returns the one-time key counts now.
   * @throws AppError E2EE_DEVICE_REQUIRED (403, not registered), VALIDATION_FAILED (400, a malformed key
   *   or ids not increasing within a list), INVALID_SIGNATURE (422), KEY_ID_REUSED (409).
   */
  async uploadKeys(
    auth: AuthContext,
    body: { signed_pre_key?: SignedKeyIn; kyber_last_resort_key?: SignedKeyIn; pre_keys?: { key_id: number; public_key: string }[]; kyber_pre_keys?: SignedKeyIn[] },
  ) {
    refuseGhost(auth);
    return this.db.transaction(async (tx) => {
      const device = await this.requireDevice(tx, auth.deviceId);
      const identity = PublicKey.deserialize(new Uint8Array(device.identity_key));
      const marks = await repo.keyIdMarks(tx, device.device_id);
      const verify = (k: SignedKeyIn, field: string, kem: boolean) => {
        const publicKey = kem ? parseKemKey(k.public_key, field) : parseEcKey(k.public_key, field);
        const signature = Buffer.from(k.signature, 'base64');
        if (!identity.verify(new Uint8Array(publicKey), new Uint8Array(signature))) throw new AppError('INVALID_SIGNATURE', `${field} ${k.key_id}: the signature does not verify with the identity key`);
        return { keyId: k.key_id, publicKey, signature };
      };
      const signed = body.signed_pre_key && verify(body.signed_pre_key, 'signed_pre_key', false);
      const lastResort = body.kyber_last_resort_key && verify(body.kyber_last_resort_key, 'kyber_last_resort_key', true);
      const ec = (body.pre_keys ?? []).map((k) => ({ keyId: k.key_id, publicKey: parseEcKey(k.public_key, 'pre_keys'), signature: null }));
      const kyber = (body.kyber_pre_keys ?? []).map((k) => verify(k, 'kyber_pre_keys', true));

      // One-time keys: new ids above the mark; ids at or below it only as a retry of a stored key.
      const fresh = async (kind: OneTimeKind, keys: { keyId: number; publicKey: Buffer; signature: Buffer | null }[]) => {
        keys.forEach((k, i) => {
          if (i > 0 && k.keyId <= keys[i - 1].keyId) throw new AppError('VALIDATION_FAILED', `${kind} key ids must increase within an upload`);
        });
        const mark = marks.get(kind) ?? -1;
        const old = keys.filter((k) => k.keyId <= mark);
        if (old.length) {
          const stored = await repo.oneTimeKeys(tx, device.device_id, kind, old.map((k) => k.keyId));
          for (const k of old) {
            if (!stored.some((s) => s.key_id === k.keyId && s.public_key.equals(k.publicKey))) throw new AppError('KEY_ID_REUSED', `${kind} key id ${k.keyId} was used before; key ids must grow`);
          }
        }
        return keys.filter((k) => k.keyId > mark);
      };
      const newEc = await fresh('ec', ec);
      const newKyber = await fresh('kyber', kyber);
      await repo.insertOneTimeKeys(tx, device.device_id, 'ec', newEc);
      await repo.insertOneTimeKeys(tx, device.device_id, 'kyber', newKyber);

      // Signed keys replace the current one; the same key again is a no-op.
      const replace = async (kind: 'signed' | 'kyber_last_resort', space: IdSpace, k: { keyId: number; publicKey: Buffer; signature: Buffer }, also: number) => {
        const current = await repo.signedKey(tx, device.device_id, kind);
        if (current && current.key_id === k.keyId && current.public_key.equals(k.publicKey)) return also;
        if (k.keyId <= Math.max(marks.get(space) ?? -1, also)) throw new AppError('KEY_ID_REUSED', `${kind} key id ${k.keyId} was used before; key ids must grow`);
        await repo.putSignedKey(tx, device.device_id, kind, k);
        return Math.max(also, k.keyId);
      };
      let kyberMark = Math.max(-1, ...newKyber.map((k) => k.keyId));
      if (lastResort) kyberMark = await replace('kyber_last_resort', 'kyber', lastResort, kyberMark);
      if (signed) await repo.setKeyIdMark(tx, device.device_id, 'signed', await replace('signed', 'signed', signed, -1));
      if (newEc.length) await repo.setKeyIdMark(tx, device.device_id, 'ec', newEc[newEc.length - 1].keyId);
      if (kyberMark >= 0) await repo.setKeyIdMark(tx, device.device_id, 'kyber', kyberMark);
      return repo.counts(tx, device.device_id);
    });
  }

  /**
   * One-time key counts of the calling device.
   * @throws AppError E2EE_DEVICE_REQUIRED (403).
   */
  async keyCounts(auth: AuthContext) {
    refuseGhost(auth);
    await this.requireDevice(this.db, auth.deviceId);
    return repo.counts(this.db, auth.deviceId);
  }

  /** A user's E2EE devices: `[{device_id, registration_id, identity_key}]` (empty when none). */
  async listDevices(userId: string) {
    return (await repo.listDevices(this.db, userId)).map(deviceView);
  }

  /**
   * Prekey bundles of a user's devices (one, or all when `signalDeviceId` is absent). Each one-time key
   * is handed out to one claim only, across concurrent claims and nodes; with none left, `pre_key` is
   * null and `kyber_pre_key` is the last-resort key. Devices without a signed prekey and a last-resort
   * key (not yet uploaded) are left out. Sends `e2ee.keys_low` to a device left with fewer than 10.
   * @throws AppError NOT_FOUND (404, no such E2EE device / none with keys), RATE_LIMITED (429, more than
   *   20 claims a minute by one user for one device).
   */
  async claim(claimer: AuthContext, body: { user_id: string; device_id?: number }) {
    const devices = (await repo.listDevices(this.db, body.user_id)).filter((d) => body.device_id === undefined || d.signal_device_id === body.device_id);
    if (!devices.length) throw new AppError('NOT_FOUND', 'The user has no such E2EE device');
    for (const d of devices) this.countClaim(claimer.userId, d.device_id);
    const bundles = await this.db.transaction(async (tx) => {
      const out = [];
      for (const d of devices) {
        const signed = await repo.signedKey(tx, d.device_id, 'signed');
        const lastResort = await repo.signedKey(tx, d.device_id, 'kyber_last_resort');
        if (!signed || !lastResort) continue;
        const preKey = await repo.takeOneTimeKey(tx, d.device_id, 'ec');
        const kyber = (await repo.takeOneTimeKey(tx, d.device_id, 'kyber')) ?? lastResort;
        out.push({ device: d, signed, preKey, kyber });
      }
      return out;
    });
    if (!bundles.length) throw new AppError('NOT_FOUND', 'The user\'s E2EE devices have no keys yet');
    for (const b of bundles) void this.warnIfLow(b.device).catch(() => undefined);
    return {
      devices: bundles.map((b) => ({
        ...deviceView(b.device),
        signed_pre_key: signedKeyView(b.signed),
        pre_key: b.preKey ? { key_id: b.preKey.key_id, public_key: b64(b.preKey.public_key) } : null,
        kyber_pre_key: signedKeyView(b.kyber),
      })),
    };
  }

  /**
   * Queues to-device messages from the calling E2EE device and pushes each to its recipient device's
   * sockets (`e2ee.to_device {id, sender_user_id, sender_device_id, type, body}`); they are kept until
   * acknowledged (`e2ee.to_device.ack`), at most 1000 per recipient device.
   * @throws AppError E2EE_DEVICE_REQUIRED (403), NOT_FOUND (404, an unknown recipient device; nothing
   *   queued), MAILBOX_FULL (429, nothing queued).
   */
  async sendToDevice(auth: AuthContext, messages: { user_id: string; device_id: number; type: number; body: string }[]) {
    refuseGhost(auth);
    const sent = await this.db.transaction(async (tx) => {
      const sender = await this.requireDevice(tx, auth.deviceId);
      const out = [];
      for (const m of messages) {
        const target = await repo.findBySignalId(tx, m.user_id, m.device_id);
        if (!target) throw new AppError('NOT_FOUND', `No E2EE device ${m.device_id} of user ${m.user_id}`);
        if ((await repo.pendingCount(tx, target.device_id)) >= MAX_PENDING_TO_DEVICE) throw new AppError('MAILBOX_FULL', `Device ${m.device_id} of user ${m.user_id} has too many unacknowledged messages`);
        const body = Buffer.from(m.body, 'base64');
        const id = await repo.insertToDevice(tx, { deviceId: target.device_id, senderUserId: auth.userId, senderDeviceId: sender.signal_device_id, type: m.type, body });
        out.push({ target, event: toDeviceEvent({ id, sender_user_id: auth.userId, sender_device_id: sender.signal_device_id, type: m.type, body }) });
      }
      return out;
    });
    await Promise.all(sent.map((s) => sendToDeviceSockets(this.pubsub, s.target.user_id, s.target.device_id, s.event)));
  }

  /** Drops the device's to-device messages up to id `upTo` (the `e2ee.to_device.ack` frame). */
  async ackToDevice(deviceId: string, upTo: number): Promise<void> {
    await repo.ackToDevice(this.db, deviceId, upTo);
  }

  /** The first pending to-device messages of a device, as `e2ee.to_device` events (sent when a socket connects). */
  async pendingToDevice(deviceId: string) {
    return (await repo.listToDevice(this.db, deviceId, TO_DEVICE_PAGE)).map(toDeviceEvent);
  }

  /** What `ready` carries for an E2EE device: `{device_id, pre_keys, kyber_pre_keys}`; null for other sessions. */
  async readyInfo(deviceId: string) {
    const device = await repo.findDevice(this.db, deviceId);
    if (!device) return null;
    return { device_id: device.signal_device_id, ...(await repo.counts(this.db, deviceId)) };
  }

  /**
   * Deletes the E2EE device of a revoked session, or all of a user's (deactivation), with their keys
   * and pending to-device messages, inside the auth module's transaction.
   * @returns the users whose devices changed: pass them to `devicesChanged` after the commit.
   */
  revokeDevices(tx: Queryable, by: { deviceId: string } | { userId: string }): Promise<string[]> {
    return repo.deleteDevices(tx, by);
  }

  /** Sends `e2ee.devices_changed {user_id}` to everyone sharing an encrypted room with the user, and to the user. */
  async devicesChanged(userId: string): Promise<void> {
    const peers = new Set([userId, ...(await repo.encryptedPeers(this.db, userId))]);
    const event = { type: 'e2ee.devices_changed', user_id: userId };
    await Promise.all([...peers].map((id) => this.pubsub.publish(`user:${id}`, event)));
  }

  /** The member devices of the encrypted rooms among `roomIds` (rooms absent from the map are not encrypted). */
  async roomDevices(tx: Queryable, roomIds: string[]): Promise<Map<string, RoomDevices>> {
    const out = new Map<string, RoomDevices>();
    for (const row of await repo.roomDevices(tx, roomIds)) {
      const list = out.get(row.room_id) ?? [];
      if (row.device_id) list.push(row);
      out.set(row.room_id, list);
    }
    return out;
  }

  private async requireDevice(q: Queryable, deviceId: string): Promise<E2eeDeviceRow> {
    const device = await repo.findDevice(q, deviceId);
    if (!device) throw new AppError('E2EE_DEVICE_REQUIRED', 'This session is not an E2EE device; register it first (POST /api/e2ee/devices)');
    return device;
  }

  private countClaim(claimerId: string, deviceId: string): void {
    const key = `${claimerId}:${deviceId}`;
    const now = Date.now();
    let entry = this.claims.get(key);
    if (!entry || now - entry.windowStart >= 60_000) {
      if (this.claims.size >= 50_000) this.claims.clear();
      this.claims.set(key, (entry = { windowStart: now, count: 0 }));
    }
    if (++entry.count > CLAIMS_PER_MIN) throw new AppError('RATE_LIMITED', `At most ${CLAIMS_PER_MIN} claims a minute for one device`);
  }

  private async warnIfLow(device: E2eeDeviceRow): Promise<void> {
    const counts = await repo.counts(this.db, device.device_id);
    if (counts.pre_keys < KEYS_LOW || counts.kyber_pre_keys < KEYS_LOW) {
      await sendToDeviceSockets(this.pubsub, device.user_id, device.device_id, { type: 'e2ee.keys_low', ...counts });
    }
  }
}

/**
 * Checks a send's envelopes against the room's member devices: exactly one per E2EE device of every
 * member, the sending device excluded, each with the device's current registration id. Each stored
 * envelope names the sending device's user (`sender_user_id`): the sender, or the bridge bot whose
 * device sends for a ghost.
 * @returns the envelopes to store, keyed by the recipient's session id, and the sender's Signal device id.
 * @throws AppError E2EE_DEVICE_REQUIRED (403, the sending session is no E2EE device of the room's
 *   members), MISMATCHED_DEVICES (409 `{missing, extra}`), STALE_DEVICES (410 `{stale}`).
 */
export function matchEnvelopes(devices: RoomDevices, senderSessionId: string | undefined, envelopes: EnvelopeIn[]) {
  const sender = devices.find((d) => d.device_id === senderSessionId);
  if (!sender) throw new AppError('E2EE_DEVICE_REQUIRED', 'Sending in an encrypted room needs a registered E2EE device');
  const ref = (d: { user_id: string | null; signal_device_id: number | null }): DeviceRef => ({ user_id: d.user_id!, device_id: d.signal_device_id! });
  const key = (userId: string, deviceId: number) => `${userId}/${deviceId}`;
  const wanted = new Map(devices.filter((d) => d !== sender).map((d) => [key(d.user_id!, d.signal_device_id!), d]));
  const given = new Map(envelopes.map((e) => [key(e.user_id, e.device_id), e]));
  const missing = [...wanted].filter(([k]) => !given.has(k)).map(([, d]) => ref(d));
  const extra = envelopes.filter((e, i) => !wanted.has(key(e.user_id, e.device_id)) || envelopes.findIndex((o) => key(o.user_id, o.device_id) === key(e.user_id, e.device_id)) !== i);
  if (missing.length || extra.length) {
    throw new AppError('MISMATCHED_DEVICES', 'The envelopes do not match the room members\' E2EE devices', { missing, extra: extra.map((e) => ({ user_id: e.user_id, device_id: e.device_id })) });
  }
  const stale = envelopes.filter((e) => wanted.get(key(e.user_id, e.device_id))!.registration_id !== e.registration_id);
  if (stale.length) throw new AppError('STALE_DEVICES', 'Some devices were registered again', { stale: stale.map((e) => ({ user_id: e.user_id, device_id: e.device_id })) });
  const stored: Record<string, EnvelopeWire> = {};
  for (const e of envelopes) stored[wanted.get(key(e.user_id, e.device_id))!.device_id!] = { sender_user_id: sender.user_id!, sender_device_id: sender.signal_device_id!, type: e.type, body: e.body };
  return { envelopes: stored, senderDeviceId: sender.signal_device_id! };
}

/** The sending device's Signal device id among a room's devices. @throws AppError E2EE_DEVICE_REQUIRED. */
export function senderDeviceOf(devices: RoomDevices, senderSessionId: string | undefined): number {
  const sender = devices.find((d) => d.device_id === senderSessionId);
  if (!sender) throw new AppError('E2EE_DEVICE_REQUIRED', 'Sending in an encrypted room needs a registered E2EE device');
  return sender.signal_device_id!;
}

/**
 * A ghost of an E2EE bridge sends with its bot's device, but only the bot (the as_token without
 * `?user_id=`) registers that device, uploads its keys and sends to-device messages from it.
 * @throws AppError E2EE_DEVICE_REQUIRED (403).
 */
function refuseGhost(auth: AuthContext): void {
  if (actsAsGhost(auth)) throw new AppError('E2EE_DEVICE_REQUIRED', 'A bridge ghost has no E2EE device of its own; manage the bot\'s device as the bot (no user_id)');
}

function deviceView(d: E2eeDeviceRow) {
  return { device_id: d.signal_device_id, registration_id: d.registration_id, identity_key: b64(d.identity_key) };
}

function signedKeyView(k: KeyRow) {
  return { key_id: k.key_id, public_key: b64(k.public_key), signature: b64(k.signature ?? Buffer.alloc(0)) };
}

/**
 * The `e2ee.to_device` event. The ciphertext's type is `message_type`: the event's own `type` field
 * names the event (docs/E2EE.md).
 */
function toDeviceEvent(m: { id: string; sender_user_id: string; sender_device_id: number; type: number; body: Buffer }) {
  return { type: 'e2ee.to_device', id: Number(m.id), sender_user_id: m.sender_user_id, sender_device_id: m.sender_device_id, message_type: m.type, body: b64(m.body) };
}

/** @throws AppError VALIDATION_FAILED when `value` is not a serialized EC public key. */
function parseEcKey(value: string, field: string): Buffer {
  const bytes = Buffer.from(value, 'base64');
  try {
    PublicKey.deserialize(new Uint8Array(bytes));
  } catch {
    throw new AppError('VALIDATION_FAILED', `${field}: not a serialized EC public key`);
  }
  return bytes;
}

/** @throws AppError VALIDATION_FAILED when `value` is not a serialized Kyber public key. */
function parseKemKey(value: string, field: string): Buffer {
  const bytes = Buffer.from(value, 'base64');
  try {
    KEMPublicKey.deserialize(new Uint8Array(bytes));
  } catch {
    throw new AppError('VALIDATION_FAILED', `${field}: not a serialized Kyber public key`);
  }
  return bytes;
}
