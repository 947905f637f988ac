/**
 * The connector contract (after mautrix bridgev2's split: a small required interface plus one optional
 * interface per capability, as bridgev2's `ReactionHandlingNetworkAPI` pairs adding and removing a
 * reaction, with network ids and conversion kept inside the connector), the remote events a
 * connector produces, and what the kit hands it to send.
 */
import type { FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import type { Op } from './store.js';

/** A remote chat (becomes a portal room). `id` is the network's chat id, e.g. a WhatsApp wa_id. */
export interface RemotePortal {
  id: string;
  /** The room name when the portal is created. */
  name: string;
}

/** A remote person (becomes a ghost user). `id` is the network's user id. */
export interface RemoteUser {
  id: string;
  /** Display name; '' when the network did not say (the ghost keeps the name it has). */
  name: string;
  avatarUrl?: string;
}

/** A file on the remote network, fetched with `MediaDownloadingConnector.downloadMedia` when the event is handled. */
export interface RemoteMedia {
  /** The network's media id. */
  id: string;
  mimeType: string;
  fileName?: string;
}

/** A file as the kit and a connector pass it around. */
export interface MediaFile {
  data: Buffer;
  mimeType: string;
  fileName: string;
}

interface RemoteBase {
  /** Unique per network and event: what inbound dedupe is keyed on. For a `message`, its message id. */
  id: string;
  portal: RemotePortal;
  /** Original time on the remote network, ms since the epoch. */
  ts: number;
}

/**
 * What a connector produces from the network. Persisted before it is handled, so JSON only. Every
 * type is handled by the kit (an exhaustive switch); ids of remote messages are the `id` of their
 * `message` event.
 */
export type RemoteEvent =
  /**
   * A new message. `replyTo`: the remote message it answers. `thread`: the remote thread it is in,
   * `threadReply` when it answers in an existing thread (the kit makes it a reply to the first
   * message it saw in that thread).
   */
  | (RemoteBase & { type: 'message'; sender: RemoteUser; text: string; replyTo?: string; thread?: string; threadReply?: boolean; media?: RemoteMedia[] })
  /** Message `targetId` now reads `text`. */
  | (RemoteBase & { type: 'edit'; sender: RemoteUser; targetId: string; text: string })
  /** Message `targetId` was deleted (one not seen yet is never posted). */
  | (RemoteBase & { type: 'delete'; targetId: string })
  /**
   * Reaction `reactionId` (one person's reaction on one message) is `emoji`. An add for a known
   * reaction id with another emoji replaces it: a network with one reaction per person and message
   * (WhatsApp) uses sender + message as the id.
   */
  | (RemoteBase & { type: 'reaction'; sender: RemoteUser; targetId: string; reactionId: string; emoji: string })
  /** Reaction `reactionId` was taken back. */
  | (RemoteBase & { type: 'unreaction'; reactionId: string })
  /** The remote side got (`delivered`) or read (`read`) a message the hub sent there. */
  | (RemoteBase & { type: 'receipt'; sender: RemoteUser; targetId: string; receipt: 'delivered' | 'read' })
  /** A remote person joined the chat: their ghost joins the portal. */
  | (RemoteBase & { type: 'join'; sender: RemoteUser })
  /** Something to tell the room (unsupported content, a delivery failure, a person left), posted by the bridge bot. */
  | (RemoteBase & { type: 'notice'; text: string; targetId?: string });

/** A hub message as the connector sends it to the network. */
export interface OutboundMessage {
  hubId: string;
  text: string;
  /** The hub sender's display name (relay formatting). */
  senderName: string;
  /** Remote id of the message replied to, when it is bridged. */
  replyTo?: string;
  /** Remote thread of the message replied to, when the network has threads. */
  thread?: string;
  /** Files to send (downloaded from the hub). */
  media: MediaFile[];
}

/** What sending a hub message produced on the network. */
export interface SentMessage {
  /** Remote ids of the parts sent (a long text or several files can take several), main one first. */
  ids: string[];
  /** The remote thread the parts are in, when the network has threads. */
  thread?: string;
}

/** A hub message already on the network, as `sendEdit` and `sendRedaction` get it. */
export interface BridgedMessage {
  hubId: string;
  /** Remote ids of its parts, main one first. */
  parts: string[];
  thread?: string;
  /** The hub sender's display name (relay formatting of edits). */
  senderName: string;
}

/** A failure of the remote network; `transient` ones are retried with backoff, the others dead-lettered. */
export class RemoteError extends Error {
  constructor(
    message: string,
    readonly transient: boolean,
    /** The network's error code, shown in the room notice (e.g. 131047). */
    readonly code?: string | number,
  ) {
    super(message);
    this.name = 'RemoteError';
  }
}

/** A connector's own durable state, kept in the bridge's store under the prefix `c:` (keys here are without it). */
export interface ConnectorState {
  get<T = unknown>(key: string): T | undefined;
  /** Entries whose key starts with `prefix`, keys without the `c:` prefix, in first-insertion order. */
  entries<T = unknown>(prefix: string): [string, T][];
  /** Applies `ops` atomically; resolves once they are durable. */
  batch(ops: Op[]): Promise<void>;
}

/** What the kit gives a connector. */
export interface BridgeContext {
  log: Logger;
  state: ConnectorState;
  /**
   * Persists remote events (deduped by id) together with `ops` on the connector's state, in one
   * atomic write, and resolves once that is durable; handling follows. Answer the network only then.
   */
  receive(events: RemoteEvent[], ops?: Op[]): Promise<void>;
}

/**
 * A network connector. Required: its names, start/stop and sending messages. What else the network
 * can carry is an optional capability: one interface each (below), implemented by the connector
 * class and found once at start (`capabilitiesOf`); the kit leaves out what a connector does not
 * have. Sends throw `RemoteError`.
 */
export interface Connector {
  /** Network id, e.g. "whatsapp" (dedupe keys, logs). */
  readonly network: string;
  /** The network's name as people know it, e.g. "WhatsApp" (notices, ghost names). */
  readonly displayName: string;
  /** Registers the connector's HTTP routes (e.g. a webhook) on the bridge's server; called before `start`. */
  routes?(app: FastifyInstance, ctx: BridgeContext): void;
  /** Called once the kit is ready (store open, hub reachable), before the server listens. */
  start(ctx: BridgeContext): Promise<void>;
  stop(): Promise<void>;
  /** Hub users added to every portal (besides the ghosts). */
  portalMembers?(): string[];
  sendMessage(portal: string, msg: OutboundMessage): Promise<SentMessage>;
}

/** Capability: hub edits reach the network. */
export interface EditHandlingConnector {
  /** A hub message that went to the network was edited to `text`. @returns its remote part ids afterwards. */
  sendEdit(portal: string, msg: BridgedMessage, text: string): Promise<string[]>;
}

/** Capability: hub deletions reach the network. */
export interface RedactionHandlingConnector {
  /** A hub message that went to the network was deleted. */
  sendRedaction(portal: string, msg: BridgedMessage): Promise<void>;
}

/** Capability: hub reactions reach the network, added and removed (one needs the other). */
export interface ReactionHandlingConnector {
  /**
   * The first hub user reacted with `emoji` to remote message `targetId` (the bridge reacts once per
   * emoji and message for all hub users). @returns the remote reaction id, when the network has them
   * and may echo the reaction back (the kit then drops the echo).
   */
  sendReaction(portal: string, targetId: string, emoji: string): Promise<string | undefined>;
  /** The last hub user took `emoji` back; `reactionId`: what `sendReaction` returned. */
  sendReactionRemove(portal: string, targetId: string, emoji: string, reactionId: string | undefined): Promise<void>;
}

/** Capability: hub read receipts reach the network. */
export interface ReadReceiptHandlingConnector {
  /** A hub user read up to remote message `targetId` (one that came from the network). */
  sendReadReceipt(portal: string, targetId: string): Promise<void>;
}

/** Capability: hub typing reaches the network. */
export interface TypingHandlingConnector {
  /** A hub user is typing; `lastRemoteId`: the latest message that came from the network there. */
  sendTyping(portal: string, lastRemoteId: string): Promise<void>;
}

/** Capability: files of remote messages can be fetched (without it they are named in the text). */
export interface MediaDownloadingConnector {
  /** Fetches a remote file. */
  downloadMedia(media: RemoteMedia): Promise<MediaFile>;
}

/** The capabilities a connector has: each is the connector itself, seen through that interface. */
export interface Capabilities {
  edits?: EditHandlingConnector;
  redactions?: RedactionHandlingConnector;
  reactions?: ReactionHandlingConnector;
  readReceipts?: ReadReceiptHandlingConnector;
  typing?: TypingHandlingConnector;
  media?: MediaDownloadingConnector;
}

/** The methods of each capability. */
const CAPABILITY_METHODS: { [K in keyof Capabilities]-?: (keyof NonNullable<Capabilities[K]>)[] } = {
  edits: ['sendEdit'],
  redactions: ['sendRedaction'],
  reactions: ['sendReaction', 'sendReactionRemove'],
  readReceipts: ['sendReadReceipt'],
  typing: ['sendTyping'],
  media: ['downloadMedia'],
};

/**
 * The capabilities `connector` implements (all methods of the interface present).
 * @throws Error when it has only some of one capability's methods (e.g. `sendReaction` without
 *   `sendReactionRemove`): a connector error, found at start.
 */
export function capabilitiesOf(connector: Connector): Capabilities {
  const methods = connector as unknown as Record<string, unknown>;
  const found: Record<string, Connector> = {};
  for (const [name, needed] of Object.entries(CAPABILITY_METHODS) as [string, string[]][]) {
    const missing = needed.filter((m) => typeof methods[m] !== 'function');
    if (missing.length === 0) found[name] = connector;
    else if (missing.length < needed.length) throw new Error(`The ${connector.network} connector has part of the ${name} capability: ${missing.join(', ')} missing`);
  }
  return found as Capabilities;
}
