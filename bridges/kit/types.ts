/**
 * The connector contract (after mautrix bridgev2's split: a small required interface plus optional
 * capabilities, with network ids and conversion kept inside the connector), the remote events a
 * connector produces, and the hub events it handles.
 */
import type { FastifyInstance } from 'fastify';
import type { Logger } from 'pino';

/** A remote chat (becomes a portal room). `id` is the network's chat id, e.g. a WhatsApp wa_id. */
export interface RemotePortal {
  id: string;
  name: string;
}

/** A remote person (becomes a ghost user). `id` is the network's user id. */
export interface RemoteUser {
  id: string;
  name: string;
  avatarUrl?: string;
}

/** A file on the remote network, fetched with `Connector.downloadMedia` when the event is handled. */
export interface RemoteMedia {
  /** The network's media id. */
  id: string;
  mimeType: string;
  fileName?: string;
}

interface RemoteBase {
  /** Unique per network: what inbound dedupe is keyed on (e.g. a wamid, or "status:<wamid>:read"). */
  id: string;
  portal: RemotePortal;
  /** Original time on the remote network, ms since the epoch. */
  ts: number;
}

/** What a connector produces from the network. Persisted before it is handled, so JSON only. */
export type RemoteEvent =
  | (RemoteBase & { type: 'message'; sender: RemoteUser; text: string; replyTo?: string; media?: RemoteMedia })
  /** `emoji` '' removes the sender's reaction (one reaction per person and message, as on WhatsApp). */
  | (RemoteBase & { type: 'reaction'; sender: RemoteUser; targetId: string; emoji: string })
  /** The remote side got (`delivered`) or read (`read`) a message the hub sent there. */
  | (RemoteBase & { type: 'receipt'; sender: RemoteUser; targetId: string; receipt: 'delivered' | 'read' })
  /** Something to tell the room (unsupported content, a delivery failure), posted by the bridge bot. */
  | (RemoteBase & { type: 'notice'; text: string; targetId?: string });

/** A message as the connector sends it to the network. */
export interface OutboundMessage {
  hubId: string;
  text: string;
  senderName: string;
  /** Remote id of the message replied to, when it is bridged. */
  replyTo?: string;
  /** Files to send (downloaded from the hub). */
  media: { data: Buffer; mimeType: string; fileName: string }[];
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

/** What the kit gives a connector. */
export interface BridgeContext {
  log: Logger;
  /** Persists remote events (deduped by id) and answers once they are durable; handling follows. */
  receive(events: RemoteEvent[]): Promise<void>;
}

/**
 * A network connector. Required: start/stop and sending messages. The optional methods are
 * capabilities; the kit skips what a connector does not have.
 */
export interface Connector {
  readonly network: string;
  /** Registers the connector's HTTP routes (e.g. a webhook) on the bridge's server. */
  routes?(app: FastifyInstance, ctx: BridgeContext): void;
  start(ctx: BridgeContext): Promise<void>;
  stop(): Promise<void>;
  /** Hub users added to every new portal (besides the ghost). */
  portalMembers?(): string[];
  /** Sends a message. @returns its remote id. @throws RemoteError. */
  sendMessage(portal: string, msg: OutboundMessage): Promise<string>;
  /** Sets ('' removes) the bridge's reaction on a remote message. */
  sendReaction?(portal: string, targetId: string, emoji: string): Promise<void>;
  /** A hub message that went to the network was edited. */
  sendEdit?(portal: string, targetId: string, text: string): Promise<void>;
  /** A hub message that went to the network was deleted. */
  sendRedaction?(portal: string, targetId: string): Promise<void>;
  /** A hub user read up to remote message `targetId` (one that came from the network). */
  sendReadReceipt?(portal: string, targetId: string): Promise<void>;
  /** A hub user is typing; `lastRemoteId`: the latest message that came from the network there. */
  sendTyping?(portal: string, lastRemoteId: string): Promise<void>;
  /** Fetches a remote file. */
  downloadMedia?(media: RemoteMedia): Promise<{ data: Buffer; mimeType: string; fileName: string }>;
}
