/** Row -> wire shape of a message, and the rule for mentions. */
import { envelopeFor, type MessageWire } from '../../events/catalog.js';
import { attachmentView } from '../attachments/attachments.view.js';
import type { EnvelopeIn } from '../e2ee/e2ee.service.js';
import type { MessageRow } from './messages.repository.js';

/**
 * The wire shape of a message (`message.new`, history, search hits). An encrypted message carries the
 * envelope of `deviceId` (the reading session), else none.
 */
export function messageView(m: MessageRow, deviceId?: string): MessageWire {
  return {
    id: m.id,
    room_id: m.room_id,
    user_id: m.user_id,
    user_name: m.user_name,
    content: m.content,
    created_at: m.created_at.toISOString(),
    edited_at: m.edited_at?.toISOString() ?? null,
    reply_to: m.reply_to,
    attachments: (m.attachments ?? []).map(attachmentView),
    mentions: m.mentions,
    reactions: m.reactions,
    stream_position: m.stream_position,
    delivered_at: m.delivered_at?.toISOString() ?? null,
    deleted: m.deleted_at !== null,
    encrypted: m.envelopes !== null && m.envelopes !== undefined,
    envelope: envelopeFor(m.envelopes, deviceId),
  };
}

export type MessageView = MessageWire;

/**
 * Mentions are written `<@user_id>` in content; only members of the room count (`members`: the
 * room's member ids, as a set or the keys of a map).
 * @returns the member ids mentioned, lower-case, in order of first mention, once each.
 */
export function parseMentions(content: string, members: { has(userId: string): boolean }): string[] {
  const found = new Set<string>();
  for (const match of content.matchAll(/<@([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})>/gi)) {
    const id = match[1].toLowerCase();
    if (members.has(id)) found.add(id);
  }
  return [...found];
}

/** What a send carries (`MessagesService.send`). */
export interface SendInput {
  /** May be empty when the message carries attachments. */
  content: string;
  reply_to?: string;
  txn_id?: string;
  /** Attachment ids the sender uploaded, in display order. */
  attachments?: string[];
  /** Bridges only: the original time on the remote network, ms since the epoch (becomes `created_at`). */
  ts?: number;
  /** Bridges only: the remote network's message id; repeating a send with it returns the first message. */
  remote_id?: string;
  /** The sending session (E2EE: the envelopes' sender device). */
  device_id?: string;
  /** Encrypted rooms: one envelope per member E2EE device, the sending device excluded (docs/E2EE.md). */
  envelopes?: EnvelopeIn[];
  /** Encrypted rooms: one sender-key ciphertext for every device, instead of `envelopes`. */
  sender_key?: { body: string };
  /** Federation only: the message id its origin hub assigned (the same on every hub, docs/FEDERATION.md). */
  id?: string;
}
