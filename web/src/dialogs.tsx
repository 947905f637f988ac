/** The modal dialogs: a new direct room (by user search), a new group, the channel directory, search across rooms. */
import type { ComponentChildren } from 'preact';
import { useEffect, useRef, useState } from 'preact/hooks';
import { SwitchboardError, type PublicRoom, type PublicUser, type SwitchboardClient } from '@switchboard/sdk';
import { networkName, splitHighlight } from './format.ts';
import { SearchResults } from './room.tsx';

interface DialogProps {
  client: SwitchboardClient;
  onClose: () => void;
  onOpen: (roomId: string) => void;
}

/** A native modal <dialog>: focus moves into it, Escape closes it, focus returns after. */
function Modal({ title, onClose, children }: { title: string; onClose: () => void; children: ComponentChildren }) {
  const ref = useRef<HTMLDialogElement>(null);
  useEffect(() => {
    const dialog = ref.current!;
    const opener = document.activeElement as HTMLElement | null;
    dialog.showModal();
    return () => opener?.focus();
  }, []);
  return (
    <dialog ref={ref} aria-label={title} onClose={onClose} onCancel={onClose}>
      <header>
        <h2>{title}</h2>
        <button onClick={onClose} aria-label="Close">×</button>
      </header>
      {children}
    </dialog>
  );
}

function useUserSearch(client: SwitchboardClient) {
  const [users, setUsers] = useState<PublicUser[]>([]);
  const seq = useRef(0);
  async function search(q: string) {
    const mine = ++seq.current;
    if (q.trim().length < 1) return setUsers([]);
    const found = await client.call(client.api.GET('/api/users/search', { params: { query: { q } } })).catch(() => []);
    if (mine === seq.current) setUsers(found.filter((u) => u.id !== client.user.id));
  }
  return { users, search };
}

function UserLabel({ user }: { user: PublicUser }) {
  return (
    <>
      {user.name}
      {user.bridge_id && <span class="badge network">{networkName(user.bridge_id)}</span>}
    </>
  );
}

export function NewDirectDialog({ client, onClose, onOpen }: DialogProps) {
  const { users, search } = useUserSearch(client);
  const [error, setError] = useState('');
  async function start(user: PublicUser) {
    try {
      const room = await client.call(client.api.POST('/api/rooms', { body: { type: 'direct', members: [user.id] } }));
      client.store.setRoom(room);
      onOpen(room.id);
    } catch (err) {
      setError(err instanceof SwitchboardError ? err.message : 'Could not create the room');
    }
  }
  return (
    <Modal title="New direct message" onClose={onClose}>
      <label>
        Find a person <input type="search" autofocus onInput={(e) => search((e.currentTarget as HTMLInputElement).value)} />
      </label>
      {error && <p class="error" role="alert">{error}</p>}
      <ul class="pick" aria-label="People">
        {users.map((u) => (
          <li key={u.id}>
            <button onClick={() => start(u)}>
              <UserLabel user={u} />
            </button>
          </li>
        ))}
      </ul>
    </Modal>
  );
}

export function NewGroupDialog({ client, onClose, onOpen }: DialogProps) {
  const { users, search } = useUserSearch(client);
  const [chosen, setChosen] = useState<PublicUser[]>([]);
  const [error, setError] = useState('');
  async function create(e: Event) {
    e.preventDefault();
    const name = String(new FormData(e.currentTarget as HTMLFormElement).get('name') ?? '').trim();
    try {
      const room = await client.call(client.api.POST('/api/rooms', { body: { type: 'group', name, members: chosen.map((u) => u.id) } }));
      client.store.setRoom(room);
      onOpen(room.id);
    } catch (err) {
      setError(err instanceof SwitchboardError ? err.message : 'Could not create the group');
    }
  }
  return (
    <Modal title="New group" onClose={onClose}>
      <form onSubmit={create}>
        <label>
          Group name <input name="name" required maxLength={200} autofocus />
        </label>
        <label>
          Add people <input type="search" onInput={(e) => search((e.currentTarget as HTMLInputElement).value)} />
        </label>
        <ul class="pick" aria-label="People found">
          {users.filter((u) => !chosen.some((c) => c.id === u.id)).map((u) => (
            <li key={u.id}>
              <button type="button" onClick={() => setChosen([...chosen, u])}>
                Add <UserLabel user={u} />
              </button>
            </li>
          ))}
        </ul>
        {chosen.length > 0 && (
          <ul class="chosen" aria-label="Members">
            {chosen.map((u) => (
              <li key={u.id}>
                <UserLabel user={u} />{' '}
                <button type="button" aria-label={`Remove ${u.name}`} onClick={() => setChosen(chosen.filter((c) => c.id !== u.id))}>×</button>
              </li>
            ))}
          </ul>
        )}
        {error && <p class="error" role="alert">{error}</p>}
        <button type="submit">Create group</button>
      </form>
    </Modal>
  );
}

export function ChannelsDialog({ client, onClose, onOpen }: DialogProps) {
  const [channels, setChannels] = useState<PublicRoom[] | null>(null);
  const [error, setError] = useState('');
  useEffect(() => {
    client.call(client.api.GET('/api/rooms/public', { params: { query: { limit: 100 } } })).then(setChannels, () => setChannels([]));
  }, []);
  async function act(fn: () => Promise<{ id: string }>) {
    try {
      const room = await fn();
      client.store.setRoom(await client.call(client.api.GET('/api/rooms/{id}', { params: { path: { id: room.id } } })));
      onOpen(room.id);
    } catch (err) {
      setError(err instanceof SwitchboardError ? err.message : 'Could not do that');
    }
  }
  return (
    <Modal title="Channels" onClose={onClose}>
      {error && <p class="error" role="alert">{error}</p>}
      {channels === null ? (
        <p role="status">Loading…</p>
      ) : channels.length === 0 ? (
        <p>No public channels yet.</p>
      ) : (
        <ul class="pick" aria-label="Public channels">
          {channels.map((c) => (
            <li key={c.id}>
              <span>
                # {c.name} <small>{c.member_count} members{c.topic ? ` · ${c.topic}` : ''}</small>
              </span>
              {client.store.room(c.id) ? (
                <button onClick={() => onOpen(c.id)}>Open</button>
              ) : (
                <button onClick={() => act(() => client.call(client.api.POST('/api/rooms/{id}/join', { params: { path: { id: c.id } } })))}>Join</button>
              )}
            </li>
          ))}
        </ul>
      )}
      <form
        onSubmit={(e) => {
          e.preventDefault();
          const name = String(new FormData(e.currentTarget as HTMLFormElement).get('name') ?? '').trim();
          act(() => client.call(client.api.POST('/api/rooms', { body: { type: 'channel', name, visibility: 'public' } })));
        }}
      >
        <label>
          New public channel <input name="name" required maxLength={200} />
        </label>
        <button type="submit">Create channel</button>
      </form>
    </Modal>
  );
}

export function SearchDialog({ client, onClose, onOpen }: DialogProps) {
  const [results, setResults] = useState<Parameters<typeof SearchResults>[0]['results'] | null>(null);
  async function search(e: Event) {
    e.preventDefault();
    const q = String(new FormData(e.currentTarget as HTMLFormElement).get('q') ?? '').trim();
    if (!q) return;
    const page = await client.call(client.api.GET('/api/search/messages', { params: { query: { q, order: 'relevance', limit: 30 } } }));
    setResults(
      page.results.map((r) => {
        const room = client.store.room(r.message.room_id);
        return { id: r.message.id, who: r.message.user_name, where: room ? client.store.displayName(room) : 'a room', roomId: r.message.room_id, parts: splitHighlight(r.highlight) };
      }),
    );
  }
  return (
    <Modal title="Search all rooms" onClose={onClose}>
      <form role="search" onSubmit={search}>
        <label>
          Search messages <input name="q" type="search" autofocus />
        </label>
        <button type="submit">Search</button>
      </form>
      {results && <SearchResults results={results} onOpen={onOpen} />}
    </Modal>
  );
}
