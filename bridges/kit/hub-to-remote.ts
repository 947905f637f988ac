/**
 * Hub -> remote: the handlers of the hub's room events (from `PUT /transactions/{txn_id}`), one at a
 * time per portal room (the queue's lanes), handed to the connector. Events written by the bridge's
 * own users (its bot and its ghosts) never go out; edits and deletions go out only for messages the
 * bridge sent there, and what each send produced on the network is recorded so replies, edits,
 * reactions and echoes find it. Typing is best effort and not queued.
 */
import type { Logger } from 'pino';
import type { BridgeTransaction } from '../../src/events/catalog.js';
import type { BridgeE2ee } from './e2ee.js';
import type { HubClient } from './hub-client.js';
import type { Op } from './store.js';
import type { BridgeState, HubMessageRecord } from './state.js';
import type { BridgedMessage, Capabilities, Connector, EditHandlingConnector, ReactionHandlingConnector, ReadReceiptHandlingConnector, RedactionHandlingConnector, TypingHandlingConnector } from './types.js';

/** Typing older than this when it arrives is dropped (it was held up by an outage), ms. */
const TYPING_STALE_MS = 10_000;

/** What the hub puts in a transaction (src/events/catalog.ts): room events and typing. */
export type HubEvent = BridgeTransaction['ephemeral'][number];
type Of<K extends HubEvent['type']> = Extract<HubEvent, { type: K }>;

export class HubToRemote {
  constructor(
    private readonly hub: HubClient,
    private readonly state: BridgeState,
    private readonly connector: Connector,
    /** What the connector can carry, checked once at start; events it cannot carry are dropped. */
    private readonly capabilities: Capabilities,
    /** True for the bridge's own hub users. */
    private readonly isOurs: (userId: string | undefined) => boolean,
    /** The bot's E2EE device (`e2ee = true`): encrypted messages are decrypted and go out; without it they are skipped. */
    private readonly e2ee: BridgeE2ee | undefined,
    private readonly log: Logger,
  ) {}

  /** Hands one hub event of portal room `portal` (the remote chat id) to the connector. @throws RemoteError, HubError. */
  async handle(ev: HubEvent, portal: string): Promise<void> {
    const { edits, redactions, reactions, readReceipts, typing } = this.capabilities;
    switch (ev.type) {
      case 'message.new':
        return this.message(ev, portal);
      case 'message.edited':
        return edits && this.edit(edits, ev, portal);
      case 'message.deleted':
        return redactions && this.redaction(redactions, ev, portal);
      case 'reaction.added':
      case 'reaction.removed':
        return reactions && this.reaction(reactions, ev, portal);
      case 'message.read':
        return readReceipts && this.readReceipt(readReceipts, ev, portal);
      case 'typing':
        return typing && this.typing(typing, ev, portal);
    }
  }

  /** Drops the plaintext the bridge keeps of an encrypted message or edit (it went out, or was given up). */
  async forget(ev: HubEvent): Promise<void> {
    if (ev.type === 'message.new' && ev.message.encrypted) await this.e2ee?.forget(ev.message.id);
    if (ev.type === 'message.edited' && ev.envelope) await this.e2ee?.forget(editKey(ev));
  }

  /** Typing (`{room_id, user_id, typing, ts}`) is best effort: not queued, failures only logged. */
  async onTyping(ev: Of<'typing'>): Promise<void> {
    const portal = this.state.portalOfRoom.get(ev.room_id);
    if (portal) await this.handle(ev, portal).catch((err) => this.log.warn({ err: err.message }, 'typing not sent'));
  }

  /** Sends a hub message with its files, and maps every remote part it took back to it. */
  private async message(ev: Of<'message.new'>, portal: string): Promise<void> {
    const s = this.state;
    const m = ev.message;
    if (this.isOurs(m.user_id) || s.hubMessages.has(m.id) || m.deleted) return;
    let text = m.content;
    const media = [];
    if (m.encrypted) {
      // Ciphertext for E2EE devices: a bridge without e2ee is none (docs/BRIDGES.md). An E2EE bridge
      // opens the envelope addressed to its bot's device; files of encrypted rooms are not bridged.
      if (!this.e2ee) return this.log.debug({ message_id: m.id }, 'encrypted message not bridged (the bridge has no e2ee)');
      if (!m.envelope) return this.log.warn({ message_id: m.id }, 'encrypted message without an envelope for the bridge device; not bridged');
      text = await this.e2ee.decrypt(m.id, m.user_id, m.envelope);
    } else {
      for (const a of m.attachments ?? []) media.push({ data: await this.hub.download(a.id), mimeType: a.mime_type, fileName: a.filename });
    }
    const replied = m.reply_to ? s.hubMessages.get(m.reply_to) : undefined;
    const sent = await this.connector.sendMessage(portal, { hubId: m.id, text, senderName: m.user_name, replyTo: replied?.remoteId, thread: replied?.thread, media });
    const thread = sent.thread ?? replied?.thread;
    await s.write([
      s.hubMessages.put(m.id, { remoteId: sent.ids[0], parts: sent.ids, portal, dir: 'out', thread, name: m.user_name }),
      ...sent.ids.map((id) => s.remoteMessages.put(id, { hubId: m.id, roomId: ev.room_id, dir: 'out', thread })),
      // It started a thread: replies there answer it.
      ...(thread && !s.threads.has(thread) ? [s.threads.put(thread, sent.ids[0])] : []),
    ]);
    await this.forget(ev);
  }

  /** An edit of a message the bridge sent; the parts it has afterwards replace the old ones. */
  private async edit(c: EditHandlingConnector, ev: Of<'message.edited'>, portal: string): Promise<void> {
    const s = this.state;
    const rec = s.hubMessages.get(ev.message_id);
    if (this.isOurs(ev.editor_id) || rec?.dir !== 'out') return;
    let text = ev.content;
    if (ev.envelope !== undefined) {
      if (!this.e2ee || !ev.envelope) return this.log.debug({ message_id: ev.message_id }, 'encrypted edit not bridged');
      text = await this.e2ee.decrypt(editKey(ev), ev.editor_id, ev.envelope);
    }
    const parts = await c.sendEdit(portal, bridged(ev.message_id, rec), text);
    await s.write([
      s.hubMessages.put(ev.message_id, { ...rec, remoteId: parts[0], parts }),
      ...parts.filter((p) => !rec.parts.includes(p)).map((p) => s.remoteMessages.put(p, { hubId: ev.message_id, roomId: ev.room_id, dir: 'out', thread: rec.thread })),
      ...rec.parts.filter((p) => !parts.includes(p)).map((p) => s.remoteMessages.del(p)),
    ]);
    await this.forget(ev);
  }

  private async redaction(c: RedactionHandlingConnector, ev: Of<'message.deleted'>, portal: string): Promise<void> {
    const rec = this.state.hubMessages.get(ev.message_id);
    if (this.isOurs(ev.deleted_by) || rec?.dir !== 'out') return;
    await c.sendRedaction(portal, bridged(ev.message_id, rec));
  }

  /**
   * Hub users' reactions become the bridge's reaction on the network: one per emoji and message,
   * made when the first hub user adds it and taken back when the last one removes it.
   */
  private async reaction(c: ReactionHandlingConnector, ev: Of<'reaction.added' | 'reaction.removed'>, portal: string): Promise<void> {
    const s = this.state;
    const target = s.hubMessages.get(ev.message_id);
    if (this.isOurs(ev.user_id) || !target) return;
    const which = { message: ev.message_id, emoji: ev.key };
    const held = s.hubReactions.get(which) ?? { users: [] };
    const add = ev.type === 'reaction.added';
    if (add === held.users.includes(ev.user_id)) return;
    const users = add ? [...held.users, ev.user_id] : held.users.filter((u) => u !== ev.user_id);
    const ops: Op[] = [];
    let id = held.id;
    if (add && held.users.length === 0) {
      id = await c.sendReaction(portal, target.remoteId, ev.key);
      if (id) ops.push(s.ownReactions.put(id, Date.now()));
    }
    if (users.length === 0) await c.sendReactionRemove(portal, target.remoteId, ev.key, id);
    ops.push(users.length ? s.hubReactions.put(which, { users, id }) : s.hubReactions.del(which));
    await s.write(ops);
  }

  /** A hub user read up to a message: the receipt goes out for it (one from the network) or the latest one that came in. */
  private async readReceipt(c: ReadReceiptHandlingConnector, ev: Of<'message.read'>, portal: string): Promise<void> {
    const s = this.state;
    if (this.isOurs(ev.user_id)) return;
    const target = s.hubMessages.get(ev.message_id);
    const remoteId = target?.dir === 'in' ? target.remoteId : s.lastInbound.get(portal);
    if (!remoteId || s.readUpTo.get(portal) === remoteId) return;
    await c.sendReadReceipt(portal, remoteId);
    await s.write([s.readUpTo.put(portal, remoteId)]);
  }

  /** Typing goes out after the latest message that came in, and not when older than 10 s (a retried transaction). */
  private async typing(c: TypingHandlingConnector, ev: Of<'typing'>, portal: string): Promise<void> {
    const last = this.state.lastInbound.get(portal);
    if (!ev.typing || this.isOurs(ev.user_id) || !last) return;
    if (ev.ts !== undefined && Date.now() - ev.ts > TYPING_STALE_MS) return;
    await c.sendTyping(portal, last);
  }
}

/** Which edit's plaintext: a message is edited more than once. */
function editKey(ev: Of<'message.edited'>): string {
  return `${ev.message_id}@${ev.edited_at}`;
}

function bridged(hubId: string, rec: HubMessageRecord): BridgedMessage {
  return { hubId, parts: rec.parts, thread: rec.thread, senderName: rec.name ?? '' };
}
