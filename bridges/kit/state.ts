/**
 * The bridge's store layout as typed accessors: one `Family` per kind of record, each keyed by a
 * network's or the hub's id under its own prefix in the `FileStore`. Reads come from memory; writes
 * are `Op`s handed to `write` together, so a record and the records it goes with are one atomic batch.
 *
 * Besides the families below, the queue keeps `q:<seq>` (queued), `dead:<seq>` (dead letters) and
 * `seen:<key>` (handled; time, ms) (queue.ts), and the connector its own state under `c:`.
 * Families whose value is a time (`txn:`, `gone:`, `ownreact:`, and the queue's `seen:`) are dropped
 * when the store is opened 7 days after they were written.
 */
import path from 'node:path';
import { FileStore, type Op } from './store.js';
import type { ConnectorState } from './types.js';

/** Time-valued keys are kept this long (Meta and Pub/Sub redeliver for up to 7 days), ms. */
const DEDUPE_TTL_MS = 7 * 24 * 3600 * 1000;
const TIMED_PREFIXES = ['txn:', 'gone:', 'ownreact:', 'seen:'];
/** Prefix of the connector's own state keys. */
const CONNECTOR_PREFIX = 'c:';

/** The ghost of a remote person. */
export interface GhostRecord {
  hubId: string;
  name: string;
  avatarUrl?: string;
}

/** The portal room of a remote chat, and the members the bridge put in it. */
export interface PortalRecord {
  roomId: string;
  members: string[];
}

/** A remote message (or part of one) and the hub message it is. `dir`: which way it crossed. */
export interface RemoteMessageRecord {
  hubId: string;
  roomId: string;
  dir: 'in' | 'out';
  thread?: string;
}

/** A hub message and the remote message(s) it is. */
export interface HubMessageRecord {
  /** The main part: what replies, reactions and receipts point at. */
  remoteId: string;
  parts: string[];
  /** The remote chat. */
  portal: string;
  dir: 'in' | 'out';
  thread?: string;
  /** The hub sender's name (relay formatting of edits). */
  name?: string;
}

/** A remote person's reaction, as the ghost's reaction on the hub. */
export interface RemoteReactionRecord {
  hubId: string;
  ghost: string;
  emoji: string;
}

/** The bridge's reaction on the network standing for hub users' reactions with one emoji on one message. */
export interface HubReactionRecord {
  /** Hub users who have this reaction. */
  users: string[];
  /** The remote reaction id, when the network gave one. */
  id?: string;
}

/** One kind of record: typed reads, and `Op`s for `BridgeState.write`. */
export class Family<T, Id = string> {
  constructor(
    private readonly store: FileStore,
    readonly prefix: string,
    private readonly keyOf: (id: Id) => string = String,
  ) {}

  get(id: Id): T | undefined {
    return this.store.get<T>(this.prefix + this.keyOf(id));
  }

  has(id: Id): boolean {
    return this.store.has(this.prefix + this.keyOf(id));
  }

  put(id: Id, value: T): Op {
    return { put: this.prefix + this.keyOf(id), value };
  }

  del(id: Id): Op {
    return { del: this.prefix + this.keyOf(id) };
  }

  /** Every record of the family, in first-insertion order. */
  values(): T[] {
    return this.store.entries<T>(this.prefix).map(([, v]) => v);
  }
}

export class BridgeState {
  /** `ghost:<remote user id>`. */
  readonly ghosts: Family<GhostRecord>;
  /** `portal:<remote chat id>`. */
  readonly portals: Family<PortalRecord>;
  /** `room:<hub room id>`: the remote chat id of a portal room. */
  readonly portalOfRoom: Family<string>;
  /** `remote:<remote message id>`. */
  readonly remoteMessages: Family<RemoteMessageRecord>;
  /** `hubmsg:<hub message id>`. */
  readonly hubMessages: Family<HubMessageRecord>;
  /** `thread:<remote thread id>`: the first remote message the bridge saw in the thread. */
  readonly threads: Family<string>;
  /** `gone:<remote message id>`: deleted before it arrived (never posted); time, ms. */
  readonly deletedBeforeArrival: Family<number>;
  /** `ireact:<remote reaction id>`. */
  readonly remoteReactions: Family<RemoteReactionRecord>;
  /** `oreact:<hub message id>:<emoji>`. */
  readonly hubReactions: Family<HubReactionRecord, { message: string; emoji: string }>;
  /** `ownreact:<remote reaction id>`: reactions the bridge made (their echo is dropped); time, ms. */
  readonly ownReactions: Family<number>;
  /** `lastin:<remote chat id>`: the last remote message that came in from the chat. */
  readonly lastInbound: Family<string>;
  /** `readup:<remote chat id>`: the remote message of the last read receipt sent to the chat. */
  readonly readUpTo: Family<string>;
  /** `encrypted:<hub room id>`: the portal room is end-to-end encrypted (for good); time seen, ms. */
  readonly encryptedRooms: Family<number>;
  /** `txn:<txn id>`: hub transactions taken; time, ms. */
  readonly transactions: Family<number>;
  /** The connector's own state, under `c:` (keys it sees are without the prefix). */
  readonly connector: ConnectorState;

  private constructor(readonly store: FileStore) {
    this.ghosts = new Family(store, 'ghost:');
    this.portals = new Family(store, 'portal:');
    this.portalOfRoom = new Family(store, 'room:');
    this.remoteMessages = new Family(store, 'remote:');
    this.hubMessages = new Family(store, 'hubmsg:');
    this.threads = new Family(store, 'thread:');
    this.deletedBeforeArrival = new Family(store, 'gone:');
    this.remoteReactions = new Family(store, 'ireact:');
    this.hubReactions = new Family(store, 'oreact:', (r) => `${r.message}:${r.emoji}`);
    this.ownReactions = new Family(store, 'ownreact:');
    this.lastInbound = new Family(store, 'lastin:');
    this.readUpTo = new Family(store, 'readup:');
    this.encryptedRooms = new Family(store, 'encrypted:');
    this.transactions = new Family(store, 'txn:');
    this.connector = {
      get: <T>(key: string) => store.get<T>(CONNECTOR_PREFIX + key),
      entries: <T>(prefix: string) => store.entries<T>(CONNECTOR_PREFIX + prefix).map(([k, v]): [string, T] => [k.slice(CONNECTOR_PREFIX.length), v]),
      batch: (ops) => store.batch(ops.map(connectorOp)),
    };
  }

  /** Opens (or creates) `state.jsonl` in `dataDir`, dropping time-valued keys older than 7 days. */
  static async open(dataDir: string): Promise<BridgeState> {
    const store = await FileStore.open(path.join(dataDir, 'state.jsonl'), (key, value) =>
      !TIMED_PREFIXES.some((p) => key.startsWith(p)) || Date.now() - (value as number) < DEDUPE_TTL_MS,
    );
    return new BridgeState(store);
  }

  /** Applies `ops` atomically; resolves once they are durable. */
  write(ops: Op[]): Promise<void> {
    return this.store.batch(ops);
  }

  close(): Promise<void> {
    return this.store.close();
  }
}

/** A connector's op on its own state, as an op on the store (under `c:`). */
export function connectorOp(op: Op): Op {
  return 'put' in op ? { put: CONNECTOR_PREFIX + op.put, value: op.value } : { del: CONNECTOR_PREFIX + op.del };
}
