/**
 * Where a device's E2EE state lives: its identity key pair, registration id, prekeys, sessions, the
 * identities it trusts and sender keys. Everything is kept in a `KeyValueStore` (strings to strings,
 * values base64 or JSON), so an app provides one small interface: `MemoryStore` (tests, ephemeral
 * bots) and `FileStore` (one JSON file, written atomically) come with the SDK. `SignalStores` adapts
 * it to libsignal's store classes.
 */
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import path from 'node:path';
import {
  Direction, IdentityChange, IdentityKeyStore, KyberPreKeyRecord, KyberPreKeyStore, PreKeyRecord, PreKeyStore, PrivateKey,
  ProtocolAddress, PublicKey, SenderKeyRecord, SenderKeyStore, SessionRecord, SessionStore, SignedPreKeyRecord, SignedPreKeyStore,
  type Uuid,
} from '@signalapp/libsignal-client';

/** A persistent map of strings. `set` and `delete` resolve once the change is durable. */
export interface KeyValueStore {
  get(key: string): Promise<string | undefined>;
  set(key: string, value: string): Promise<void>;
  delete(key: string): Promise<void>;
}

/** In memory only: gone with the process. */
export class MemoryStore implements KeyValueStore {
  private readonly map = new Map<string, string>();
  async get(key: string) {
    return this.map.get(key);
  }
  async set(key: string, value: string) {
    this.map.set(key, value);
  }
  async delete(key: string) {
    this.map.delete(key);
  }
}

/**
 * One JSON file (e.g. in a bridge's data dir), rewritten through a temporary file and a rename on
 * every change, so a crash leaves the old or the new state, never half of one. Changes are written
 * one at a time.
 */
export class FileStore implements KeyValueStore {
  private data?: Record<string, string>;
  private writing: Promise<void> = Promise.resolve();

  constructor(private readonly file: string) {}

  async get(key: string) {
    return (await this.load())[key];
  }
  async set(key: string, value: string) {
    (await this.load())[key] = value;
    await this.save();
  }
  async delete(key: string) {
    delete (await this.load())[key];
    await this.save();
  }

  private async load(): Promise<Record<string, string>> {
    if (this.data) return this.data;
    try {
      this.data = JSON.parse(await readFile(this.file, 'utf8')) as Record<string, string>;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      this.data = {};
    }
    return this.data;
  }

  private save(): Promise<void> {
    const snapshot = JSON.stringify(this.data);
    this.writing = this.writing.then(async () => {
      await mkdir(path.dirname(this.file), { recursive: true });
      const tmp = `${this.file}.tmp`;
      await writeFile(tmp, snapshot, { mode: 0o600 });
      await rename(tmp, this.file);
    });
    return this.writing;
  }
}

const enc = (b: Uint8Array) => Buffer.from(b).toString('base64');
const dec = (s: string) => new Uint8Array(Buffer.from(s, 'base64'));
const addr = (a: ProtocolAddress) => `${a.name()}.${a.deviceId()}`;

/** Told when a known address presents a different identity key (trust on first use). */
export type IdentityChangedListener = (address: { user_id: string; device_id: number }, previous: PublicKey, current: PublicKey) => void;

/**
 * libsignal's stores over one `KeyValueStore`. Identities are trusted on first use; a different key
 * for a known address is accepted and reported to `onIdentityChanged` (the app shows the safety-number
 * change, as Signal does).
 */
export class SignalStores {
  readonly session: SessionStore;
  readonly identity: IdentityKeyStore;
  readonly preKey: PreKeyStore;
  readonly signedPreKey: SignedPreKeyStore;
  readonly kyberPreKey: KyberPreKeyStore;
  readonly senderKey: SenderKeyStore;
  onIdentityChanged?: IdentityChangedListener;

  constructor(readonly kv: KeyValueStore) {
    const need = async (key: string) => {
      const v = await kv.get(key);
      if (v === undefined) throw new Error(`E2EE store: ${key} is missing`);
      return dec(v);
    };
    const self = this;
    this.session = new (class extends SessionStore {
      async saveSession(name: ProtocolAddress, record: SessionRecord) {
        await kv.set(`session:${addr(name)}`, enc(record.serialize()));
      }
      async getSession(name: ProtocolAddress) {
        const v = await kv.get(`session:${addr(name)}`);
        return v ? SessionRecord.deserialize(dec(v)) : null;
      }
      async getExistingSessions(addresses: ProtocolAddress[]) {
        const out: SessionRecord[] = [];
        for (const a of addresses) {
          const s = await this.getSession(a);
          if (!s) throw new Error(`No session for ${addr(a)}`);
          out.push(s);
        }
        return out;
      }
    })();
    this.identity = new (class extends IdentityKeyStore {
      async getIdentityKey() {
        return PrivateKey.deserialize(await need('identity:private'));
      }
      async getLocalRegistrationId() {
        return Number(new TextDecoder().decode(await need('registration_id')));
      }
      async saveIdentity(name: ProtocolAddress, key: PublicKey) {
        const previous = await this.getIdentity(name);
        await kv.set(`identity:${addr(name)}`, enc(key.serialize()));
        if (previous && !previous.equals(key)) {
          self.onIdentityChanged?.({ user_id: name.name(), device_id: name.deviceId() }, previous, key);
          return IdentityChange.ReplacedExisting;
        }
        return IdentityChange.NewOrUnchanged;
      }
      async isTrustedIdentity(_name: ProtocolAddress, _key: PublicKey, _direction: Direction) {
        return true; // trust on first use; changes are reported by saveIdentity
      }
      async getIdentity(name: ProtocolAddress) {
        const v = await kv.get(`identity:${addr(name)}`);
        return v ? PublicKey.deserialize(dec(v)) : null;
      }
    })();
    this.preKey = new (class extends PreKeyStore {
      async savePreKey(id: number, record: PreKeyRecord) {
        await kv.set(`prekey:${id}`, enc(record.serialize()));
      }
      async getPreKey(id: number) {
        return PreKeyRecord.deserialize(await need(`prekey:${id}`));
      }
      async removePreKey(id: number) {
        await kv.delete(`prekey:${id}`);
      }
    })();
    this.signedPreKey = new (class extends SignedPreKeyStore {
      async saveSignedPreKey(id: number, record: SignedPreKeyRecord) {
        await kv.set(`signed:${id}`, enc(record.serialize()));
      }
      async getSignedPreKey(id: number) {
        return SignedPreKeyRecord.deserialize(await need(`signed:${id}`));
      }
    })();
    this.kyberPreKey = new (class extends KyberPreKeyStore {
      async saveKyberPreKey(id: number, record: KyberPreKeyRecord) {
        await kv.set(`kyber:${id}`, enc(record.serialize()));
      }
      async getKyberPreKey(id: number) {
        return KyberPreKeyRecord.deserialize(await need(`kyber:${id}`));
      }
      async markKyberPreKeyUsed(id: number) {
        // One-time Kyber keys go once used; the last-resort key stays until rotated out.
        if ((await kv.get('kyber:last_resort')) !== String(id)) await kv.delete(`kyber:${id}`);
      }
    })();
    this.senderKey = new (class extends SenderKeyStore {
      async saveSenderKey(sender: ProtocolAddress, distributionId: Uuid, record: SenderKeyRecord) {
        await kv.set(`senderkey:${addr(sender)}:${distributionId}`, enc(record.serialize()));
      }
      async getSenderKey(sender: ProtocolAddress, distributionId: Uuid) {
        const v = await kv.get(`senderkey:${addr(sender)}:${distributionId}`);
        return v ? SenderKeyRecord.deserialize(dec(v)) : null;
      }
    })();
  }
}
