/**
 * One message: sender and time, the reply it answers, text with `<@mention>`s, "edited", a
 * tombstone once deleted, attachments (image thumbnails fetched with the token), reactions, and on
 * the caller's own messages the delivered / read marks and the edit and delete actions.
 */
import { useEffect, useState } from 'preact/hooks';
import type { Attachment, RoomState, StoredMessage, SwitchboardClient } from '@switchboard/sdk';
import { networkName, splitMentions, timeOf } from './format.ts';

const QUICK_REACTIONS = ['👍', '❤️', '😂', '🎉'];

export function MessageItem(props: { client: SwitchboardClient; room: RoomState; message: StoredMessage; replied?: StoredMessage; onReply: () => void; onEdit: () => void }) {
  const { client, room, message: m, replied } = props;
  const { store } = client;
  const mine = m.user_id === store.userId;
  const bridge = store.user(m.user_id)?.bridge_id;
  const [reacting, setReacting] = useState(false);
  const status = mine ? (store.isRead(room, m) ? 'Read' : m.delivered_at ? 'Delivered' : 'Sent') : null;

  return (
    <li class={`message ${mine ? 'mine' : ''} ${m.deleted ? 'deleted' : ''}`} aria-label={`${m.user_name} at ${timeOf(m.created_at)}`}>
      <div class="meta">
        <span class="sender">{m.user_name}</span>
        {bridge && <span class="badge network">{networkName(bridge)}</span>}
        <time dateTime={m.created_at}>{timeOf(m.created_at)}</time>
      </div>
      {replied && (
        <blockquote class="reply-quote">
          <span class="sender">{replied.user_name}</span> {replied.deleted ? 'Message deleted' : replied.content.slice(0, 120)}
        </blockquote>
      )}
      {m.deleted ? (
        <p class="body tombstone">Message deleted</p>
      ) : room.encrypted && !m.content ? (
        <p class="body tombstone">Encrypted message</p>
      ) : (
        <p class="body">
          <MentionText client={client} room={room} content={m.content} />
          {m.edited_at && <span class="edited" title={`Edited ${new Date(m.edited_at).toLocaleString()}`}> (edited)</span>}
        </p>
      )}
      {!m.deleted && m.attachments.length > 0 && (
        <div class="attachments">
          {m.attachments.map((a) => (
            <AttachmentView key={a.id} client={client} attachment={a} />
          ))}
        </div>
      )}
      {m.reactions.length > 0 && (
        <div class="reactions" aria-label="Reactions">
          {m.reactions.map((r) => {
            const pressed = r.user_ids.includes(store.userId);
            return (
              <button key={r.key} class="reaction" aria-pressed={pressed} aria-label={`${r.key} ${r.count}`} onClick={() => client.react(m.id, r.key, !pressed).catch(() => undefined)}>
                {r.key} {r.count}
              </button>
            );
          })}
        </div>
      )}
      {!m.deleted && (
        <div class="message-actions">
          <button onClick={props.onReply}>Reply</button>
          <button aria-expanded={reacting} onClick={() => setReacting(!reacting)}>React</button>
          {reacting &&
            QUICK_REACTIONS.map((key) => (
              <button key={key} aria-label={`React with ${key}`} onClick={() => (setReacting(false), client.react(m.id, key, true).catch(() => undefined))}>
                {key}
              </button>
            ))}
          {mine && room.allow_edits && <button onClick={props.onEdit}>Edit</button>}
          {(mine || room.role !== 'member') && (
            <button
              onClick={() => confirm('Delete this message for everyone?') && client.call(client.api.DELETE('/api/messages/{id}', { params: { path: { id: m.id } } })).catch(() => undefined)}
            >
              Delete
            </button>
          )}
        </div>
      )}
      {status && (
        <span class={`status ${status.toLowerCase()}`} aria-label={status} title={status}>
          {status === 'Sent' ? '✓' : '✓✓'} {status}
        </span>
      )}
    </li>
  );
}

function MentionText({ client, room, content }: { client: SwitchboardClient; room: RoomState; content: string }) {
  return (
    <>
      {splitMentions(content).map((part, i) => {
        if (typeof part === 'string') return part;
        const name = room.members.find((mem) => mem.user_id === part.mention)?.name ?? client.store.user(part.mention)?.name ?? 'someone';
        return (
          <span key={i} class={`mention ${part.mention === client.store.userId ? 'me' : ''}`}>
            @{name}
          </span>
        );
      })}
    </>
  );
}

/** An attachment: a thumbnail for images (fetched with the bearer token into a blob: URL), else a download link. */
function AttachmentView({ client, attachment: a }: { client: SwitchboardClient; attachment: Attachment }) {
  const [thumb, setThumb] = useState<string | null>(null);
  useEffect(() => {
    if (!a.thumbnail_url) return;
    let url: string | null = null;
    client.fetchAttachment(a.thumbnail_url).then((blob) => setThumb((url = URL.createObjectURL(blob))), () => undefined);
    return () => url && URL.revokeObjectURL(url);
  }, [a.id]);

  async function download() {
    const blob = await client.fetchAttachment(a.url);
    const url = URL.createObjectURL(blob);
    const link = document.createElement('a');
    link.href = url;
    link.download = a.filename;
    link.click();
    setTimeout(() => URL.revokeObjectURL(url), 10_000);
  }

  return (
    <button class="attachment" onClick={download} title={`Download ${a.filename}`}>
      {thumb ? <img src={thumb} alt={a.filename} /> : <span>📄</span>}
      <span class="filename">
        {a.filename} ({Math.max(1, Math.round(a.size / 1024))} KB)
      </span>
    </button>
  );
}
