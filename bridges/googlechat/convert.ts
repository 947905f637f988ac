/**
 * Google Chat resources <-> bridge events (the network's ids and conversion stay here).
 *
 * Ids are Google's resource names: a space `spaces/{space}` (one portal room each, DMs included), a
 * message `spaces/{space}/messages/{message}`, its thread `spaces/{space}/threads/{thread}`, a
 * reaction `…/messages/{message}/reactions/{reaction}`; a user `users/{user}` is remote user
 * `{user}` (one ghost each). Messages the bridge created carry a client-assigned id starting with
 * `client-sb-`: seeing one come back is an echo and is dropped. Event ids (the dedupe keys) are the
 * resource names (a message's) or derived from them, so the same message arriving as an interaction
 * event, as a Pub/Sub push, again on redelivery and in the catch-up list is one message.
 * References: Message https://developers.google.com/workspace/chat/api/reference/rest/v1/spaces.messages,
 * interaction events https://developers.google.com/workspace/chat/api/reference/rest/v1/Event,
 * Workspace event data https://developers.google.com/workspace/events/guides/events-chat.
 */
import { Type } from 'typebox';
import { relay } from '../kit/helpers.js';
import type { RemoteEvent, RemoteMedia, RemotePortal, RemoteUser } from '../kit/types.js';
import type { Message } from './google.js';

const Str = Type.Optional(Type.Union([Type.Null(), Type.String()]));
const Obj = (props: Parameters<typeof Type.Object>[0]) => Type.Optional(Type.Union([Type.Null(), Type.Object(props)]));
const List = (props: Parameters<typeof Type.Object>[0]) => Type.Optional(Type.Union([Type.Null(), Type.Array(Type.Object(props))]));
const User = Obj({ name: Str, displayName: Str, avatarUrl: Str, type: Str });
const MessageShape = {
  name: Str,
  clientAssignedMessageId: Str,
  deleteTime: Str,
  createTime: Str,
  lastUpdateTime: Str,
  text: Str,
  sender: User,
  thread: Obj({ name: Str }),
  threadReply: Type.Optional(Type.Union([Type.Null(), Type.Boolean()])),
  attachment: List({ source: Str, contentType: Str, contentName: Str, attachmentDataRef: Obj({ resourceName: Str }), driveDataRef: Obj({ driveFileId: Str }) }),
};

/**
 * What `fromInteraction` reads of an interaction event, as a schema the route validates the body
 * against (after the bearer token): fields are optional (null allowed, as Google's API types say),
 * but when present have the type it uses; other fields are allowed. Otherwise 400, never a crash.
 */
export const InteractionEvent = Type.Object({
  type: Str,
  eventTime: Str,
  user: User,
  space: Obj({ name: Str, displayName: Str, spaceType: Str, type: Str }),
  message: Obj(MessageShape),
});

/** The Pub/Sub push body: the Workspace event is `message.data` (base64 JSON), its type in `message.attributes`. */
export const PushBody = Type.Object({
  subscription: Type.Optional(Type.String()),
  message: Type.Optional(Type.Object({ data: Type.Optional(Type.String()), attributes: Type.Optional(Type.Record(Type.String(), Type.String())) })),
});

const Reaction = { name: Str, user: User, emoji: Obj({ unicode: Str, customEmoji: Obj({ emojiName: Str }) }) };
const Membership = { name: Str, member: User };
/** What `fromPush` reads of a Workspace event's data (single and batch variants, lifecycle events). */
export const PushData = Type.Object({
  message: Obj(MessageShape),
  messages: List({ message: Obj(MessageShape) }),
  reaction: Obj(Reaction),
  reactions: List({ reaction: Obj(Reaction) }),
  membership: Obj(Membership),
  memberships: List({ membership: Obj(Membership) }),
  subscription: Obj({ name: Type.String(), targetResource: Type.Optional(Type.String()), expireTime: Type.Optional(Type.String()) }),
});

/** Prefix of the client-assigned message ids the bridge creates (`client-` is Google's rule). */
export const CLIENT_ID_PREFIX = 'client-sb-';
/** Google Chat's message size limit, bytes. */
export const MAX_MESSAGE_BYTES = 32_000;

/** A Workspace Events subscription lifecycle event (expiration reminder, expired, suspended). */
export interface Lifecycle {
  type: string;
  subscription: { name: string; targetResource?: string; expireTime?: string };
}

/** `spaces/X` of any resource name under a space. */
export function spaceOf(resourceName: string): string {
  return resourceName.split('/').slice(0, 2).join('/');
}

/** A space as a portal; its room name is filled in by the connector from what it knows of the space. */
function portalOf(space: string, name = space): RemotePortal {
  return { id: space, name };
}

function time(iso: string | null | undefined, fallback = Date.now()): number {
  const t = iso ? Date.parse(iso) : NaN;
  return Number.isFinite(t) ? t : fallback;
}

/** A Google user `users/{id}` as remote user `{id}` (API answers often lack the display name: then ''). */
export function userOf(u: { name?: string | null; displayName?: string | null; avatarUrl?: string | null } | null | undefined): RemoteUser | null {
  if (!u?.name) return null;
  return { id: u.name.replace(/^users\//, ''), name: u.displayName ?? '', ...(u.avatarUrl ? { avatarUrl: u.avatarUrl } : {}) };
}

/** True for a message the bridge itself created (an echo). */
export function isOwn(m: Message): boolean {
  return (m.clientAssignedMessageId ?? '').startsWith(CLIENT_ID_PREFIX);
}

/** A message's text and uploaded files; Drive files are named in the text (with a link) instead. */
function content(m: Message): { text: string; media: RemoteMedia[] } {
  const media: RemoteMedia[] = [];
  const notes: string[] = [];
  for (const a of m.attachment ?? []) {
    const ref = a.attachmentDataRef?.resourceName;
    if (a.source !== 'DRIVE_FILE' && ref) media.push({ id: ref, mimeType: a.contentType ?? 'application/octet-stream', fileName: a.contentName ?? 'file' });
    else notes.push(`📎 ${a.contentName ?? 'file'} (Google Drive file${a.driveDataRef?.driveFileId ? `: https://drive.google.com/open?id=${a.driveDataRef.driveFileId}` : ''})`);
  }
  return { text: [m.text ?? '', ...notes].filter(Boolean).join('\n'), media };
}

/**
 * A created (`edit: false`) or updated (`edit: true`) message as an event; null for an echo, a
 * message without sender, or a deleted one. A message's id is its name; files are fetched by their
 * attachmentDataRef resource name. `sender`: a fuller user record (interaction events).
 */
export function messageEvent(m: Message | null | undefined, edit: boolean, sender?: RemoteUser | null): RemoteEvent | null {
  if (!m?.name || isOwn(m) || m.deleteTime) return null;
  const user = sender ?? userOf(m.sender);
  if (!user) return null;
  const { text, media } = content(m);
  const portal = portalOf(spaceOf(m.name));
  if (edit) return { type: 'edit', id: `edit:${m.name}:${m.lastUpdateTime ?? ''}`, portal, ts: time(m.lastUpdateTime), sender: user, targetId: m.name, text };
  return { type: 'message', id: m.name, portal, ts: time(m.createTime), sender: user, text, ...(m.thread?.name ? { thread: m.thread.name } : {}), threadReply: m.threadReply === true, media };
}

/** The space an interaction event is about, with a room name for it. */
export interface SpaceInfo {
  name: string;
  displayName: string;
}

/** A portal room name: the space's name, or for a direct message the person's. */
export function spaceInfo(space: { name?: string | null; displayName?: string | null; spaceType?: string | null; type?: string | null } | null | undefined, user?: RemoteUser | null): SpaceInfo | null {
  if (!space?.name) return null;
  const direct = space.spaceType === 'DIRECT_MESSAGE' || space.type === 'DM';
  return { name: space.name, displayName: space.displayName || (direct && user?.name ? user.name : space.name) };
}

/**
 * An interaction event (HTTP endpoint of the Chat app): `MESSAGE` -> a message;
 * `ADDED_TO_SPACE` -> the space is to be bridged (with the adder as a member and a notice, plus the
 * message when the app was added by mentioning it); `REMOVED_FROM_SPACE` -> no longer bridged.
 */
export function fromInteraction(body: any): { action: 'message' | 'added' | 'removed' | 'ignored'; space: SpaceInfo | null; events: RemoteEvent[] } {
  const user = userOf(body?.user);
  const space = spaceInfo(body?.space, user);
  const ts = time(body?.eventTime);
  if (!space) return { action: 'ignored', space, events: [] };
  const msg = messageEvent(body.message, false, userOf(body.message?.sender)?.name ? userOf(body.message.sender) : user);
  switch (body.type) {
    case 'MESSAGE':
      return { action: 'message', space, events: msg ? [msg] : [] };
    case 'ADDED_TO_SPACE': {
      const portal = portalOf(space.name, space.displayName);
      const events: RemoteEvent[] = [];
      if (user) events.push({ type: 'join', id: `added:${space.name}:${body.eventTime}:member`, portal, ts, sender: user });
      events.push({ type: 'notice', id: `added:${space.name}:${body.eventTime}`, portal, ts, text: `✅ ${user?.name || 'Someone'} added the Switchboard app: this room mirrors the Google Chat ${space.displayName === space.name ? 'conversation' : `space "${space.displayName}"`}.` });
      if (msg) events.push(msg);
      return { action: 'added', space, events };
    }
    case 'REMOVED_FROM_SPACE':
      return { action: 'removed', space, events: [{ type: 'notice', id: `removed:${space.name}:${body.eventTime}`, portal: portalOf(space.name, space.displayName), ts, text: '⚠️ The Switchboard app was removed from the Google Chat space: messages no longer cross.' }] };
    default:
      return { action: 'ignored', space, events: [] };
  }
}

/** One item of a Workspace event's data, or each item of its batch variant (`{messages:[{message}]}`…). */
function items<T>(data: any, key: string, batchKey: string): T[] {
  if (Array.isArray(data?.[batchKey])) return data[batchKey].map((d: any) => d?.[key]).filter(Boolean);
  return data?.[key] ? [data[key]] : [];
}

/**
 * A Workspace event delivered by Pub/Sub push (`ce-type` attribute, JSON data) as bridge events, or
 * a subscription lifecycle event.
 */
export function fromPush(attributes: Record<string, string>, data: any): { events: RemoteEvent[]; lifecycle?: Lifecycle } {
  const type = attributes['ce-type'] ?? '';
  const ts = time(attributes['ce-time']);
  if (type.startsWith('google.workspace.events.subscription.v1.')) return { events: [], lifecycle: { type: type.split('.').pop()!, subscription: data?.subscription ?? {} } };
  const [, , , resource, , action] = type.split('.');
  const batch = action?.startsWith('batch');
  const verb = batch ? action.slice(5).toLowerCase() : action;
  const events: (RemoteEvent | null)[] = [];
  if (resource === 'message') {
    for (const m of items<Message>(data, 'message', 'messages')) {
      if (verb === 'deleted') events.push(m.name ? { type: 'delete', id: `del:${m.name}`, portal: portalOf(spaceOf(m.name)), ts: time(m.deleteTime, ts), targetId: m.name } : null);
      else events.push(messageEvent(m, verb === 'updated'));
    }
  } else if (resource === 'reaction') {
    for (const r of items<any>(data, 'reaction', 'reactions')) {
      if (typeof r.name !== 'string') continue;
      const portal = portalOf(spaceOf(r.name));
      if (verb === 'deleted') {
        events.push({ type: 'unreaction', id: `unreact:${r.name}`, portal, ts, reactionId: r.name });
        continue;
      }
      const emoji = r.emoji?.unicode ?? (r.emoji?.customEmoji?.emojiName ? `:${r.emoji.customEmoji.emojiName}:` : undefined);
      const sender = userOf(r.user);
      if (emoji && sender) events.push({ type: 'reaction', id: `react:${r.name}`, portal, ts, sender, targetId: r.name.split('/reactions/')[0], reactionId: r.name, emoji });
    }
  } else if (resource === 'membership') {
    for (const ms of items<any>(data, 'membership', 'memberships')) {
      const sender = userOf(ms.member);
      if (!sender || ms.member?.type === 'BOT' || typeof ms.name !== 'string') continue;
      const base = { id: `${verb}:${ms.name}:${attributes['ce-time'] ?? ''}`, portal: portalOf(spaceOf(ms.name)), ts };
      events.push(verb === 'created' ? { ...base, type: 'join', sender } : { ...base, type: 'notice', text: `${sender.name || 'Someone'} left the Google Chat space.` });
    }
  }
  return { events: events.filter((e): e is RemoteEvent => e !== null) };
}

/**
 * Cuts `text` into pieces of at most `maxBytes` UTF-8 bytes, between code points, preferring a line
 * break, else a space, in the second half of a piece.
 */
export function splitBytes(text: string, maxBytes: number): string[] {
  const parts: string[] = [];
  let rest = text;
  while (Buffer.byteLength(rest, 'utf8') > maxBytes) {
    let bytes = 0;
    let end = 0;
    for (const ch of rest) {
      const b = Buffer.byteLength(ch, 'utf8');
      if (bytes + b > maxBytes) break;
      bytes += b;
      end += ch.length;
    }
    const head = rest.slice(0, end);
    const cut = Math.max(head.lastIndexOf('\n'), head.lastIndexOf(' '));
    const at = cut > end / 2 ? cut + 1 : end;
    parts.push(rest.slice(0, at));
    rest = rest.slice(at);
  }
  parts.push(rest);
  return parts;
}

/**
 * The Google Chat texts of a hub message from `name`: one relay-formatted text when it fits in
 * 32,000 bytes, else numbered parts that each fit.
 */
export function outboundTexts(format: string, name: string, body: string): string[] {
  const whole = relay(format, name, body);
  if (Buffer.byteLength(whole, 'utf8') <= MAX_MESSAGE_BYTES) return [whole];
  const budget = MAX_MESSAGE_BYTES - Buffer.byteLength(relay(format, name, ''), 'utf8') - ' (999/999)'.length;
  const parts = splitBytes(body, budget);
  return parts.map((p, i) => relay(format, name, `${p} (${i + 1}/${parts.length})`));
}
