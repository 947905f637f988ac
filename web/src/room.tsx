/**
 * One room: its header (with search in the room), the history (older pages load when scrolled to
 * the top), pending messages from the outbox, "X is typing", and the composer (replies, edits,
 * attachments with upload progress). Messages of others are marked read while the room is shown.
 */
import { useEffect, useLayoutEffect, useRef, useState } from 'preact/hooks';
import type { OutboxItem, RoomState, StoredMessage, SwitchboardClient } from '@switchboard/sdk';
import { SwitchboardError } from '@switchboard/sdk';
import { MessageItem } from './message.tsx';
import { networkName, roomBridge, splitHighlight } from './format.ts';
import { MuteButton } from './push.tsx';

const TYPING_REFRESH_MS = 3000;

export function RoomView({ client, room, onBack }: { client: SwitchboardClient; room: RoomState; onBack: () => void }) {
  const { store } = client;
  const listRef = useRef<HTMLOListElement>(null);
  const [replyTo, setReplyTo] = useState<StoredMessage | null>(null);
  const [editing, setEditing] = useState<StoredMessage | null>(null);
  const [searching, setSearching] = useState(false);
  const [loadingOlder, setLoadingOlder] = useState(false);
  const stick = useRef(true);
  const heightBefore = useRef<number | null>(null);

  useEffect(() => {
    if (!room.history_loaded) client.loadHistory(room.id).catch(() => undefined);
  }, [room.id, client.connectionState]);

  // Read receipts: the newest message of someone else, while the room is on screen.
  const newestOther = [...room.messages].reverse().find((m) => m.user_id !== store.userId);
  useEffect(() => {
    if (!newestOther || document.visibilityState !== 'visible') return;
    if ((room.read_positions.get(store.userId) ?? 0) >= newestOther.stream_position && room.unread_count === 0) return;
    client.markRead(room.id, newestOther.id).catch(() => undefined);
  }, [newestOther?.id, client.connectionState]);

  // Keep the view at the bottom for new messages, and in place when older ones are put above.
  useLayoutEffect(() => {
    const el = listRef.current;
    if (!el) return;
    if (heightBefore.current !== null) {
      el.scrollTop += el.scrollHeight - heightBefore.current;
      heightBefore.current = null;
    } else if (stick.current) el.scrollTop = el.scrollHeight;
  });

  async function onScroll() {
    const el = listRef.current!;
    stick.current = el.scrollHeight - el.scrollTop - el.clientHeight < 40;
    if (el.scrollTop > 40 || loadingOlder || !room.has_more_before || !room.history_loaded) return;
    setLoadingOlder(true);
    heightBefore.current = el.scrollHeight;
    try {
      await client.loadHistory(room.id, { older: true });
    } finally {
      setLoadingOlder(false);
    }
  }

  const bridge = roomBridge(store, room);
  const typing = [...room.typing.values()];
  const pending = client.outbox.forRoom(room.id);
  const byId = new Map(room.messages.map((m) => [m.id, m]));

  return (
    <section class="room" aria-label={store.displayName(room)}>
      <header class="room-header">
        <button class="back" onClick={onBack} aria-label="Back to rooms">←</button>
        <div class="title">
          <h2>{store.displayName(room)}</h2>
          {bridge && <span class="badge network">{networkName(bridge)}</span>}
          {room.topic && <p class="topic">{room.topic}</p>}
        </div>
        <MuteButton client={client} roomId={room.id} />
        <button onClick={() => setSearching(!searching)} aria-expanded={searching}>Search in room</button>
      </header>
      {searching && <RoomSearch client={client} room={room} />}
      {room.encrypted && (
        <p class="notice" role="note">
          This room is end-to-end encrypted. Its messages can be read only on a device app with E2EE: the web client cannot decrypt them.
        </p>
      )}
      <ol
        class="messages"
        ref={listRef}
        onScroll={onScroll}
        onLoadCapture={() => stick.current && listRef.current && (listRef.current.scrollTop = listRef.current.scrollHeight)}
        aria-label="Messages"
        tabIndex={0}
      >
        {loadingOlder && <li class="loading" role="status">Loading older messages…</li>}
        {room.history_loaded && !room.has_more_before && <li class="start">This is the start of the room.</li>}
        {room.messages.map((m) => (
          <MessageItem
            key={m.id}
            client={client}
            room={room}
            message={m}
            replied={m.reply_to ? byId.get(m.reply_to) : undefined}
            onReply={() => (setEditing(null), setReplyTo(m))}
            onEdit={() => (setReplyTo(null), setEditing(m))}
          />
        ))}
        {pending.map((item) => (
          <PendingItem key={item.txn_id} client={client} item={item} />
        ))}
      </ol>
      <p class="typing" role="status" aria-live="polite">
        {typing.length === 1 ? `${typing[0]} is typing…` : typing.length > 1 ? `${typing.join(', ')} are typing…` : ''}
      </p>
      {!room.encrypted && (
        <Composer
          client={client}
          room={room}
          replyTo={replyTo}
          editing={editing}
          onDone={() => (setReplyTo(null), setEditing(null), (stick.current = true))}
        />
      )}
    </section>
  );
}

function PendingItem({ client, item }: { client: SwitchboardClient; item: OutboxItem }) {
  return (
    <li class="message mine pending">
      <div class="body">{item.content || 'Attachment'}</div>
      {item.state === 'failed' ? (
        <p class="status failed" role="alert">
          Not sent: {item.error?.message}{' '}
          <button onClick={() => client.retry(item.txn_id)}>Retry</button>
          <button onClick={() => client.outbox.discard(item.txn_id)}>Discard</button>
        </p>
      ) : (
        <span class="status" aria-label="Sending">Sending…</span>
      )}
    </li>
  );
}

function Composer({ client, room, replyTo, editing, onDone }: { client: SwitchboardClient; room: RoomState; replyTo: StoredMessage | null; editing: StoredMessage | null; onDone: () => void }) {
  const [text, setText] = useState('');
  const [uploads, setUploads] = useState<{ name: string; progress: number; id?: string; error?: string }[]>([]);
  const [error, setError] = useState('');
  const typingSent = useRef(0);
  const inputRef = useRef<HTMLTextAreaElement>(null);

  // A layout effect: it runs right after the render that opened the edit, before any input is
  // handled, so text typed at once is not overwritten by the message's old content (a plain effect
  // runs after paint, and a quick typist, or a test, could type first).
  useLayoutEffect(() => {
    setText(editing ? editing.content : '');
    if (editing || replyTo) inputRef.current?.focus();
  }, [editing?.id, replyTo?.id]);

  function onInput(value: string) {
    setText(value);
    if (editing) return;
    const now = Date.now();
    if (value && now - typingSent.current > TYPING_REFRESH_MS) {
      typingSent.current = now;
      client.setTyping(room.id, true);
    } else if (!value && typingSent.current) {
      typingSent.current = 0;
      client.setTyping(room.id, false);
    }
  }

  async function attach(files: FileList | null) {
    for (const file of Array.from(files ?? [])) {
      const entry: { name: string; progress: number; id?: string; error?: string } = { name: file.name, progress: 0 };
      setUploads((u) => [...u, entry]);
      try {
        const attachment = await client.upload(file, file.name, (p) => {
          entry.progress = p;
          setUploads((u) => [...u]);
        });
        entry.id = attachment.id;
      } catch (err) {
        entry.error = err instanceof SwitchboardError ? err.message : 'Upload failed';
      }
      setUploads((u) => [...u]);
    }
  }

  async function submit(e: Event) {
    e.preventDefault();
    setError('');
    const ready = uploads.filter((u) => u.id).map((u) => u.id!);
    if (uploads.some((u) => !u.id && !u.error)) return setError('Wait for the uploads to finish');
    if (!text.trim() && ready.length === 0) return;
    try {
      if (editing) {
        if (text.trim() && text !== editing.content) {
          await client.call(client.api.PATCH('/api/messages/{id}', { params: { path: { id: editing.id } }, body: { content: text } }));
        }
      } else {
        await client.send(room.id, text, { replyTo: replyTo?.id, attachments: ready });
        typingSent.current = 0;
      }
      setText('');
      setUploads([]);
      onDone();
    } catch (err) {
      setError(err instanceof SwitchboardError ? err.message : 'Could not do that');
    }
  }

  return (
    <form class="composer" onSubmit={submit} aria-label="Write a message">
      {replyTo && (
        <p class="replying">
          Replying to {replyTo.user_name}: <q>{replyTo.content.slice(0, 80)}</q> <button type="button" onClick={onDone} aria-label="Cancel reply">×</button>
        </p>
      )}
      {editing && (
        <p class="replying">
          Editing your message <button type="button" onClick={onDone} aria-label="Cancel edit">×</button>
        </p>
      )}
      {uploads.map((u) => (
        <p class="upload" key={u.name}>
          <label>
            {u.name} {u.error ? <span role="alert">{u.error}</span> : u.id ? '✓ uploaded' : ''}
            <progress value={u.progress} max={1} aria-label={`Uploading ${u.name}`} />
          </label>
        </p>
      ))}
      {error && <p class="error" role="alert">{error}</p>}
      <div class="composer-row">
        <label class="attach">
          <span class="visually-hidden">Attach files</span>
          <svg aria-hidden="true" viewBox="0 0 24 24" width="22" height="22">
            <path d="M16.5 6.5 8.4 14.6a2 2 0 0 0 2.8 2.8l8.1-8.1a4 4 0 0 0-5.6-5.6L5.5 11.8a6 6 0 0 0 8.5 8.5l6.2-6.2" fill="none" stroke="currentColor" stroke-width="2" stroke-linecap="round" />
          </svg>
          <input type="file" multiple onChange={(e) => attach((e.currentTarget as HTMLInputElement).files)} />
        </label>
        <label class="visually-hidden" for={`composer-${room.id}`}>Message</label>
        <textarea
          id={`composer-${room.id}`}
          ref={inputRef}
          rows={1}
          value={text}
          placeholder={editing ? 'Edit your message' : 'Write a message'}
          onInput={(e) => onInput((e.currentTarget as HTMLTextAreaElement).value)}
          onKeyDown={(e) => {
            if (e.key === 'Enter' && !e.shiftKey) submit(e);
            if (e.key === 'Escape' && (editing || replyTo)) onDone();
          }}
        />
        <button type="submit">{editing ? 'Save' : 'Send'}</button>
      </div>
    </form>
  );
}

function RoomSearch({ client, room }: { client: SwitchboardClient; room: RoomState }) {
  const [results, setResults] = useState<{ id: string; who: string; parts: { text: string; match: boolean }[] }[] | null>(null);
  async function search(e: Event) {
    e.preventDefault();
    const q = String(new FormData(e.currentTarget as HTMLFormElement).get('q') ?? '').trim();
    if (!q) return;
    const page = await client.call(client.api.GET('/api/search/messages', { params: { query: { q, room_id: room.id, order: 'newest', limit: 20 } } }));
    setResults(page.results.map((r) => ({ id: r.message.id, who: r.message.user_name, parts: splitHighlight(r.highlight) })));
  }
  return (
    <div class="search">
      <form role="search" onSubmit={search}>
        <label>
          Search this room <input name="q" type="search" />
        </label>
        <button type="submit">Search</button>
      </form>
      {results && <SearchResults results={results} />}
    </div>
  );
}

export function SearchResults({ results, onOpen }: { results: { id: string; who: string; where?: string; parts: { text: string; match: boolean }[]; roomId?: string }[]; onOpen?: (roomId: string) => void }) {
  if (results.length === 0) return <p role="status">No messages found.</p>;
  return (
    <ul class="results" aria-label="Search results">
      {results.map((r) => (
        <li key={r.id}>
          <strong>{r.who}</strong>
          {r.where && <> in {onOpen && r.roomId ? <button class="link" onClick={() => onOpen(r.roomId!)}>{r.where}</button> : r.where}</>}:{' '}
          {r.parts.map((p, i) => (p.match ? <mark key={i}>{p.text}</mark> : <span key={i}>{p.text}</span>))}
        </li>
      ))}
    </ul>
  );
}
