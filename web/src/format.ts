/** Small display helpers shared by the views. */
import type { RoomState, RoomStore } from '@switchboard/sdk';

/** The network a bridge id stands for (bridge ids are chosen in the hub's config; these are the usual ones). */
export function networkName(bridgeId: string): string {
  if (/whatsapp|^wa(_|$)/i.test(bridgeId)) return 'WhatsApp';
  if (/google.?chat|gchat/i.test(bridgeId)) return 'Google Chat';
  return bridgeId;
}

/** The bridge of a room: the one its ghosts come from, if any (a portal or a direct room with a ghost). */
export function roomBridge(store: RoomStore, room: RoomState): string | null {
  for (const m of room.members) {
    const bridge = store.user(m.user_id)?.bridge_id;
    if (bridge && m.user_id !== store.userId) return bridge;
  }
  return null;
}

export function timeOf(iso: string): string {
  return new Date(iso).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
}

/** Text with `<@user_id>` mentions: the pieces, a mention as `{ mention: user_id }`. */
export function splitMentions(content: string): (string | { mention: string })[] {
  const parts: (string | { mention: string })[] = [];
  const re = /<@([0-9a-f-]{36})>/gi;
  let last = 0;
  for (let m = re.exec(content); m; m = re.exec(content)) {
    if (m.index > last) parts.push(content.slice(last, m.index));
    parts.push({ mention: m[1].toLowerCase() });
    last = m.index + m[0].length;
  }
  if (last < content.length) parts.push(content.slice(last));
  return parts;
}

/** A search highlight (`<mark>` around matches, the rest not escaped): the pieces, matches marked. */
export function splitHighlight(highlight: string): { text: string; match: boolean }[] {
  return highlight.split(/(<mark>[\s\S]*?<\/mark>)/).filter(Boolean).map((piece) =>
    piece.startsWith('<mark>') ? { text: piece.slice(6, -7), match: true } : { text: piece, match: false },
  );
}
