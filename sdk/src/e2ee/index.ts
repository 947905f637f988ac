/**
 * `@switchboard/sdk/e2ee` (Node.js only): Signal-protocol end-to-end encryption on
 * `@signalapp/libsignal-client`, over the hub's E2EE contract (docs/E2EE.md).
 *
 * `E2eeClient.start(client, store)` makes the client's session an E2EE device: it creates (or loads)
 * the identity key and registration id, registers them, uploads a signed prekey, a Kyber last-resort
 * key and 100 one-time keys of each kind, refills below 10 (`ready`, `e2ee.keys_low`) and rotates the
 * signed and last-resort keys every `rotateEveryMs`. `send()` encrypts for every E2EE device of the
 * room's members (claiming bundles for devices without a session) and, on 409/410, fetches the
 * devices again and retries; `sendWithSenderKey()` distributes a sender key over to-device messages
 * and stores one `groupEncrypt` ciphertext. Incoming messages are decrypted through the client's
 * `transform` hook before its store and listeners see them; to-device messages are decrypted,
 * applied (sender-key distributions) and acknowledged. Identities are trusted on first use; a new
 * identity key for a known device raises `identity-changed`.
 *
 * Plaintext of messages this device decrypted is kept in its store (a ratchet decrypts a message only
 * once; history shows it again from there).
 */
import { EventEmitter } from 'node:events';
import crypto from 'node:crypto';
import {
  CiphertextMessageType, ProtocolAddress, PublicKey, SenderKeyDistributionMessage, groupDecrypt, groupEncrypt, processSenderKeyDistributionMessage,
} from '@signalapp/libsignal-client';
import type { SwitchboardClient } from '../client.js';
import { SwitchboardError } from '../errors.js';
import type { EventMessage } from '../events.js';
import { LocalDevice } from './device.js';
import { SignalStores, type KeyValueStore } from './store.js';

export { BATCH, REFILL_BELOW } from './device.js';
export { FileStore, MemoryStore, SignalStores, type IdentityChangedListener, type KeyValueStore } from './store.js';

const enc = (b: Uint8Array) => Buffer.from(b).toString('base64');
const dec = (s: string) => new Uint8Array(Buffer.from(s, 'base64'));
const utf8 = new TextEncoder();
const fromUtf8 = new TextDecoder();

export interface E2eeOptions {
  /** Rotate the signed prekey and the Kyber last-resort key this often, ms (default 7 days; 0: never). */
  rotateEveryMs?: number;
  /** Attempts of a send whose device list was out of date (409/410), default 3. */
  maxAttempts?: number;
}

interface RemoteDevice {
  user_id: string;
  device_id: number;
  registration_id: number;
  identity_key: string;
}

/** What a to-device plaintext carries. */
type ToDevicePayload = { kind: 'sender_key'; room_id: string; body: string } | { kind: 'app'; body: string };

export interface E2eeEvents {
  'identity-changed': [{ user_id: string; device_id: number; previous: string; current: string }];
  'to-device': [{ sender_user_id: string; sender_device_id: number; body: string }];
  'message-edited': [{ room_id: string; message_id: string; content: string }];
  'decrypt-failed': [{ message_id?: string; sender_user_id: string; error: Error }];
  error: [Error];
}

export class E2eeClient extends EventEmitter<E2eeEvents> {
  readonly stores: SignalStores;
  private readonly device: LocalDevice;
  private readonly devicesByUser = new Map<string, RemoteDevice[]>();
  /** One E2EE step at a time, in arrival order (ratchets and sender keys are stateful). */
  private chain: Promise<unknown> = Promise.resolve();
  private rotateTimer?: NodeJS.Timeout;
  private stopListening: (() => void)[] = [];
  /** The highest to-device id handled, and the highest acknowledged to the hub. */
  private ackUpTo = 0;
  private acked = 0;

  private constructor(
    readonly client: SwitchboardClient,
    readonly kv: KeyValueStore,
    private readonly opts: E2eeOptions,
  ) {
    super();
    this.stores = new SignalStores(kv);
    this.stores.onIdentityChanged = (a, previous, current) =>
      this.emit('identity-changed', { user_id: a.user_id, device_id: a.device_id, previous: enc(previous.serialize()), current: enc(current.serialize()) });
    this.device = new LocalDevice(this.stores, {
      registerDevice: (body) => client.call(client.api.POST('/api/e2ee/devices', { body })),
      keyCounts: () => client.call(client.api.GET('/api/e2ee/keys')),
      uploadKeys: (body) => client.call(client.api.PUT('/api/e2ee/keys', { body })),
      claim: async (user_id, device_id) => (await client.call(client.api.POST('/api/e2ee/keys/claim', { body: { user_id, device_id } }))).devices[0],
    }, client.user.id);
  }

  /** This device's Signal device id (set by `start`). */
  get deviceId(): number {
    return this.device.deviceId;
  }

  /**
   * Makes `client`'s session an E2EE device with the keys in `kv` (created on first use), uploads its
   * keys and installs the decrypting `transform`. Call before `client.connect()`.
   * @throws SwitchboardError from the hub (e.g. E2EE_DEVICE_REQUIRED for a bridge's as_token).
   */
  static async start(client: SwitchboardClient, kv: KeyValueStore, opts: E2eeOptions = {}): Promise<E2eeClient> {
    const e2ee = new E2eeClient(client, kv, opts);
    await e2ee.device.register();
    await e2ee.refill(true);
    client.useTransform({ incoming: (message, roomId) => e2ee.serial(() => e2ee.decryptMessage(message, roomId)) });
    e2ee.stopListening.push(client.on('*', (event) => void e2ee.onEvent(event as unknown as { type: string } & Record<string, unknown>)));
    e2ee.stopListening.push(client.on('state', (state) => state === 'live' && e2ee.flushAck()));
    const every = opts.rotateEveryMs ?? 7 * 86_400_000;
    if (every > 0) {
      e2ee.rotateTimer = setInterval(() => void e2ee.rotate().catch((err) => e2ee.emit('error', err)), every);
      e2ee.rotateTimer.unref();
    }
    return e2ee;
  }

  /** Stops the rotation timer and event handling. */
  stop(): void {
    clearInterval(this.rotateTimer);
    for (const off of this.stopListening) off();
  }

  /** This device's identity public key, base64. */
  async identityKey(): Promise<string> {
    return enc((await this.stores.identity.getIdentityKeyPair()).publicKey.serialize());
  }

  /**
   * Replaces this device's identity key (a reinstall, say): a new key pair and registration id, keys
   * uploaded again. Peers see `identity-changed` when they next talk to this device.
   */
  async resetIdentity(): Promise<void> {
    await this.kv.delete('identity:private');
    await this.kv.delete('registration_id');
    await this.device.register();
    await this.rotate();
    await this.refill(true);
  }

  /** A new signed prekey and Kyber last-resort key, uploaded (the previous ones stay for messages in flight). */
  rotate(): Promise<void> {
    return this.device.rotate();
  }

  /**
   * Uploads 100 one-time keys of each kind that has fewer than 10 left (and, the first time, a signed
   * prekey and a last-resort key).
   */
  async refill(first = false): Promise<void> {
    if (first && !(await this.kv.get('kyber:last_resort'))) await this.device.rotate();
    await this.device.refill();
  }

  /** A user's E2EE devices (cached until `e2ee.devices_changed` or a 409/410); a changed identity key raises `identity-changed`. */
  async devicesOf(userId: string, fresh = false): Promise<RemoteDevice[]> {
    const cached = this.devicesByUser.get(userId);
    if (cached && !fresh) return cached;
    const { devices } = await this.client.call(this.client.api.GET('/api/e2ee/users/{user_id}/devices', { params: { path: { user_id: userId } } }));
    const list = devices.map((d) => ({ ...d, user_id: userId }));
    for (const d of list) {
      const address = ProtocolAddress.new(userId, d.device_id);
      const known = await this.stores.identity.getIdentity(address);
      const current = PublicKey.deserialize(dec(d.identity_key));
      if (known && !known.equals(current)) {
        // Trust on first use: the change is reported, the old session dropped, the new key trusted.
        await this.kv.delete(`session:${userId}.${d.device_id}`);
        await this.stores.identity.saveIdentity(address, current);
      }
    }
    this.devicesByUser.set(userId, list);
    return list;
  }

  /** Every E2EE device of the room's members but this one. */
  private async roomDevices(roomId: string, fresh: Set<string>): Promise<RemoteDevice[]> {
    const room = await this.client.call(this.client.api.GET('/api/rooms/{id}', { params: { path: { id: roomId } } }));
    const out: RemoteDevice[] = [];
    for (const m of room.members) {
      for (const d of await this.devicesOf(m.user_id, fresh.has(m.user_id))) {
        if (m.user_id === this.client.user.id && d.device_id === this.deviceId) continue;
        out.push(d);
      }
    }
    return out;
  }

  /**
   * Sends `text` to an encrypted room: one envelope per member device (REST). A 409/410 (the device
   * list changed) fetches the named users' devices again, drops stale sessions and retries.
   * @returns the stored message's id and stream position.
   * @throws SwitchboardError after `maxAttempts`, or any other refusal.
   */
  async send(roomId: string, text: string): Promise<{ id: string; stream_position: number }> {
    return this.withDeviceRetries(async (fresh) => {
      const envelopes = await this.serial(async () => {
        const out = [];
        for (const d of await this.roomDevices(roomId, fresh)) out.push(await this.device.encryptFor(d, utf8.encode(text)));
        return out;
      });
      return this.client.call(this.client.api.POST('/api/rooms/{room_id}/messages', { params: { path: { room_id: roomId } }, body: { envelopes } }));
    }, roomId);
  }

  /**
   * Sends `text` with this device's sender key for the room (one ciphertext stored once): the key's
   * distribution message goes first, over to-device messages, to every member device that does not
   * have it yet. The distribution id rotates when a member leaves or a device is revoked.
   */
  async sendWithSenderKey(roomId: string, text: string): Promise<{ id: string; stream_position: number }> {
    return this.withDeviceRetries(async (fresh) => {
      const body = await this.serial(async () => {
        const distribution = await this.distributionId(roomId);
        const sentTo = new Set<string>(JSON.parse((await this.kv.get(`dist:${roomId}:sent`)) ?? '[]'));
        const skdm = await SenderKeyDistributionMessage.create(this.device.address, distribution, this.stores.senderKey);
        const payload = utf8.encode(JSON.stringify({ kind: 'sender_key', room_id: roomId, body: enc(skdm.serialize()) } satisfies ToDevicePayload));
        const messages = [];
        for (const d of await this.roomDevices(roomId, fresh)) {
          const key = `${d.user_id}.${d.device_id}.${d.registration_id}`;
          if (sentTo.has(key)) continue;
          const e = await this.device.encryptFor(d, payload);
          messages.push({ user_id: e.user_id, device_id: e.device_id, type: e.type, body: e.body });
          sentTo.add(key);
        }
        if (messages.length) await this.client.call(this.client.api.POST('/api/e2ee/to_device', { body: { messages } }));
        await this.kv.set(`dist:${roomId}:sent`, JSON.stringify([...sentTo]));
        const message = await groupEncrypt(this.device.address, distribution, this.stores.senderKey, utf8.encode(text));
        return enc(message.serialize());
      });
      return this.client.call(this.client.api.POST('/api/rooms/{room_id}/messages', { params: { path: { room_id: roomId } }, body: { sender_key: { body } } }));
    }, roomId);
  }

  /**
   * Edits a message of this user in an encrypted room: the new text, encrypted for every member device
   * (retried on 409/410 like `send`). Recipients get `message-edited` with the plaintext.
   */
  async edit(roomId: string, messageId: string, text: string): Promise<void> {
    await this.withDeviceRetries(async (fresh) => {
      const envelopes = await this.serial(async () => {
        const out = [];
        for (const d of await this.roomDevices(roomId, fresh)) out.push(await this.device.encryptFor(d, utf8.encode(text)));
        return out;
      });
      return this.client.call(this.client.api.PATCH('/api/messages/{id}', { params: { path: { id: messageId } }, body: { envelopes } }));
    }, roomId);
    await this.kv.set(`plain:${messageId}`, text);
  }

  /** Starts a new sender key for the room: the next `sendWithSenderKey` distributes it to the devices there now. */
  async rotateSenderKey(roomId: string): Promise<void> {
    await this.kv.delete(`dist:${roomId}`);
    await this.kv.delete(`dist:${roomId}:sent`);
  }

  private async distributionId(roomId: string): Promise<string> {
    let id = await this.kv.get(`dist:${roomId}`);
    if (!id) {
      id = crypto.randomUUID();
      await this.kv.set(`dist:${roomId}`, id);
      const rooms = new Set<string>(JSON.parse((await this.kv.get('dist:rooms')) ?? '[]'));
      rooms.add(roomId);
      await this.kv.set('dist:rooms', JSON.stringify([...rooms]));
    }
    return id;
  }

  private async withDeviceRetries<T>(attempt: (fresh: Set<string>) => Promise<T>, roomId: string): Promise<T> {
    const fresh = new Set<string>();
    for (let i = 1; ; i++) {
      try {
        return await attempt(fresh);
      } catch (err) {
        if (!(err instanceof SwitchboardError) || !['MISMATCHED_DEVICES', 'STALE_DEVICES'].includes(err.code) || i >= (this.opts.maxAttempts ?? 3)) throw err;
        await this.device.forgetMismatched(err.devices, fresh);
        if (err.devices.stale?.length || err.devices.extra?.length) await this.rotateSenderKey(roomId);
      }
    }
  }

  /**
   * The plaintext of an encrypted message for this device (`content` set), from the store when it was
   * decrypted before. Messages that are not encrypted are returned as they are; one this device
   * cannot decrypt keeps empty content and raises `decrypt-failed`.
   */
  async decryptMessage(message: EventMessage, _roomId?: string): Promise<EventMessage> {
    if (!message.encrypted) return message;
    const cached = await this.kv.get(`plain:${message.id}`);
    if (cached !== undefined) return { ...message, content: cached };
    if (!message.envelope) return message;
    try {
      const text = this.unwrap(message.user_id, message.envelope, await this.decrypt(message.envelope.sender_user_id ?? message.user_id, message.envelope));
      await this.kv.set(`plain:${message.id}`, text);
      return { ...message, content: text };
    } catch (error) {
      this.emit('decrypt-failed', { message_id: message.id, sender_user_id: message.user_id, error: error as Error });
      return message;
    }
  }

  /**
   * The text of a decrypted envelope. One encrypted by another user's device (`sender_user_id`: a
   * bridge bot sending for its ghost, docs/BRIDGES.md) must be the JSON `{"kind": "bridged",
   * "sender_id", "body"}` naming the message's sender, so the hub cannot attribute it to anyone else.
   * @throws Error when it does not.
   */
  private unwrap(senderUserId: string, e: { sender_user_id?: string }, bytes: Uint8Array): string {
    const text = fromUtf8.decode(bytes);
    if (e.sender_user_id === undefined || e.sender_user_id === senderUserId) return text;
    let wrapped: { kind?: unknown; sender_id?: unknown; body?: unknown } | null = null;
    try {
      wrapped = JSON.parse(text);
    } catch {
      // not the bridged form: refused below
    }
    if (wrapped?.kind !== 'bridged' || wrapped.sender_id !== senderUserId || typeof wrapped.body !== 'string') {
      throw new Error(`encrypted by ${e.sender_user_id}, which did not send it on behalf of ${senderUserId}`);
    }
    return wrapped.body;
  }

  private async decrypt(senderUserId: string, e: { sender_device_id: number; type: number; body: string }): Promise<Uint8Array> {
    const address = ProtocolAddress.new(senderUserId, e.sender_device_id);
    if (e.type === CiphertextMessageType.SenderKey) return groupDecrypt(address, this.stores.senderKey, dec(e.body));
    return this.device.decrypt(address, e);
  }

  /**
   * Sends an application payload to one device over to-device messages (the recipient gets `to-device`).
   */
  async sendToDevice(userId: string, deviceId: number, text: string): Promise<void> {
    await this.serial(async () => {
      const device = (await this.devicesOf(userId)).find((d) => d.device_id === deviceId) ?? (await this.devicesOf(userId, true)).find((d) => d.device_id === deviceId);
      if (!device) throw new SwitchboardError('NOT_FOUND', `No E2EE device ${deviceId} of ${userId}`, 404);
      const e = await this.device.encryptFor(device, utf8.encode(JSON.stringify({ kind: 'app', body: text } satisfies ToDevicePayload)));
      await this.client.call(this.client.api.POST('/api/e2ee/to_device', { body: { messages: [{ user_id: userId, device_id: deviceId, type: e.type, body: e.body }] } }));
    });
  }

  private serial<T>(fn: () => Promise<T>): Promise<T> {
    const next = this.chain.then(fn);
    this.chain = next.catch(() => undefined);
    return next;
  }

  private async onEvent(event: { type: string } & Record<string, unknown>): Promise<void> {
    try {
      switch (event.type) {
        case 'ready':
        case 'e2ee.keys_low':
          await this.serial(() => this.refill());
          return;
        case 'e2ee.devices_changed': {
          const userId = event.user_id as string;
          const before = this.devicesByUser.get(userId);
          this.devicesByUser.delete(userId);
          const after = await this.devicesOf(userId);
          // A device gone: sender keys it had must not cover what follows.
          if (before?.some((b) => !after.some((a) => a.device_id === b.device_id && a.registration_id === b.registration_id))) await this.rotateAllSenderKeys();
          return;
        }
        case 'room.updated':
          return this.onRoomUpdated(event.room as { id: string; members: { user_id: string }[] });
        case 'message.edited': {
          const envelope = event.envelope as { sender_user_id?: string; sender_device_id: number; type: number; body: string } | null | undefined;
          if (!envelope) return;
          const messageId = event.message_id as string;
          await this.serial(async () => {
            try {
              const editor = event.editor_id as string;
              const text = this.unwrap(editor, envelope, await this.decrypt(envelope.sender_user_id ?? editor, envelope));
              await this.kv.set(`plain:${messageId}`, text);
              this.emit('message-edited', { room_id: event.room_id as string, message_id: messageId, content: text });
            } catch (error) {
              this.emit('decrypt-failed', { message_id: messageId, sender_user_id: event.editor_id as string, error: error as Error });
            }
          });
          return;
        }
        case 'e2ee.to_device':
          await this.serial(() => this.onToDevice(event as unknown as { id: number; sender_user_id: string; sender_device_id: number; message_type: number; body: string }));
          return;
        default:
          return;
      }
    } catch (err) {
      this.emit('error', err as Error);
    }
  }

  /** A member left: this device's sender key for the room rotates. */
  private async onRoomUpdated(room: { id: string; members: { user_id: string }[] }): Promise<void> {
    const key = `members:${room.id}`;
    const before: string[] = JSON.parse((await this.kv.get(key)) ?? '[]');
    const now = room.members.map((m) => m.user_id);
    await this.kv.set(key, JSON.stringify(now));
    if (before.some((id) => !now.includes(id))) await this.rotateSenderKey(room.id);
  }

  private async rotateAllSenderKeys(): Promise<void> {
    for (const roomId of JSON.parse((await this.kv.get('dist:rooms')) ?? '[]') as string[]) await this.rotateSenderKey(roomId);
  }

  private async onToDevice(m: { id: number; sender_user_id: string; sender_device_id: number; message_type: number; body: string }): Promise<void> {
    const last = Number((await this.kv.get('to_device:last')) ?? '0');
    if (m.id > last) {
      try {
        const payload = JSON.parse(fromUtf8.decode(await this.decrypt(m.sender_user_id, { sender_device_id: m.sender_device_id, type: m.message_type, body: m.body }))) as ToDevicePayload;
        if (payload.kind === 'sender_key') {
          await processSenderKeyDistributionMessage(ProtocolAddress.new(m.sender_user_id, m.sender_device_id), SenderKeyDistributionMessage.deserialize(dec(payload.body)), this.stores.senderKey);
        } else {
          this.emit('to-device', { sender_user_id: m.sender_user_id, sender_device_id: m.sender_device_id, body: payload.body });
        }
      } catch (error) {
        this.emit('decrypt-failed', { sender_user_id: m.sender_user_id, error: error as Error });
      }
      await this.kv.set('to_device:last', String(m.id));
    }
    this.ackUpTo = Math.max(this.ackUpTo, m.id);
    this.flushAck();
  }

  /** Acknowledges the to-device messages handled so far; they come before `ready`, so this waits for the socket to be live. */
  private flushAck(): void {
    if (this.ackUpTo > this.acked && this.client.sendFrame({ type: 'e2ee.to_device.ack', up_to: this.ackUpTo } as never)) this.acked = this.ackUpTo;
  }
}
