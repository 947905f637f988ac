/**
 * The signed-in screen: the room list beside the open room (one at a time on a phone), the
 * connection banner, and the dialogs to start a direct room, a group, join a channel or search.
 * The open room is in the URL (#/room/<id>), so a reload comes back to it.
 */
import { useEffect, useState } from 'preact/hooks';
import type { RoomState, SwitchboardClient } from '@switchboard/sdk';
import { useClientUpdates } from './hooks.ts';
import { networkName, roomBridge } from './format.ts';
import { RoomView } from './room.tsx';
import { NewDirectDialog, NewGroupDialog, ChannelsDialog, SearchDialog } from './dialogs.tsx';
import { NotificationsButton } from './push.tsx';

function roomFromHash(): string | null {
  return location.hash.match(/^#\/room\/([0-9a-f-]{36})$/)?.[1] ?? null;
}

export function Chat({ client, onLogout }: { client: SwitchboardClient; onLogout: () => void }) {
  useClientUpdates(client);
  const [openId, setOpenId] = useState<string | null>(roomFromHash());
  const [dialog, setDialog] = useState<'direct' | 'group' | 'channels' | 'search' | null>(null);
  const [wasLive, setWasLive] = useState(false);
  const [loadError, setLoadError] = useState('');

  useEffect(() => {
    client.connect().catch((err) => setLoadError(String(err?.message ?? err)));
    const onHash = () => setOpenId(roomFromHash());
    addEventListener('hashchange', onHash);
    return () => {
      removeEventListener('hashchange', onHash);
      client.disconnect();
    };
  }, [client]);

  const state = client.connectionState;
  useEffect(() => {
    if (state === 'live') setWasLive(true);
  }, [state]);

  const open = (id: string | null) => {
    location.hash = id ? `#/room/${id}` : '';
    setOpenId(id);
    setDialog(null);
  };
  const rooms = client.store.rooms();
  const room = openId ? client.store.room(openId) : undefined;
  const pending = client.outbox.list().filter((i) => i.state !== 'failed').length;

  return (
    <div class={`chat ${room ? 'has-room' : ''}`}>
      <header class="top">
        <h1>Switchboard</h1>
        <span class="me">{client.user.name}</span>
        <NotificationsButton client={client} />
        <button onClick={onLogout}>Log out</button>
      </header>
      {wasLive && state !== 'live' && (
        <div class="banner" role="status">
          Reconnecting… {pending > 0 && `${pending} message${pending > 1 ? 's' : ''} waiting to be sent.`}
        </div>
      )}
      {loadError && <div class="banner error" role="alert">{loadError}</div>}
      <nav class="sidebar" aria-label="Rooms">
        <div class="actions">
          <button onClick={() => setDialog('direct')}>New direct message</button>
          <button onClick={() => setDialog('group')}>New group</button>
          <button onClick={() => setDialog('channels')}>Browse channels</button>
          <button onClick={() => setDialog('search')}>Search all rooms</button>
        </div>
        {rooms.length === 0 && state === 'live' && <p class="empty">No rooms yet. Start a direct message or join a channel.</p>}
        <ul class="room-list">
          {rooms.map((r) => (
            <li key={r.id}>
              <RoomListItem client={client} room={r} current={r.id === openId} onOpen={() => open(r.id)} />
            </li>
          ))}
        </ul>
      </nav>
      <main class="room-pane">
        {room ? <RoomView key={room.id} client={client} room={room} onBack={() => open(null)} /> : <p class="empty">Choose a room.</p>}
      </main>
      {dialog === 'direct' && <NewDirectDialog client={client} onClose={() => setDialog(null)} onOpen={open} />}
      {dialog === 'group' && <NewGroupDialog client={client} onClose={() => setDialog(null)} onOpen={open} />}
      {dialog === 'channels' && <ChannelsDialog client={client} onClose={() => setDialog(null)} onOpen={open} />}
      {dialog === 'search' && <SearchDialog client={client} onClose={() => setDialog(null)} onOpen={open} />}
    </div>
  );
}

function RoomListItem({ client, room, current, onOpen }: { client: SwitchboardClient; room: RoomState; current: boolean; onOpen: () => void }) {
  const { store } = client;
  const name = store.displayName(room);
  const peer = store.directPeer(room);
  const presence = peer ? store.presence(peer.user_id)?.status ?? 'offline' : null;
  const bridge = roomBridge(store, room);
  const last = room.last_message;
  const preview = room.encrypted ? 'Encrypted' : last ? (last.deleted ? 'Message deleted' : `${last.user_id === store.userId ? 'You' : last.user_name}: ${last.content || 'Attachment'}`) : '';
  return (
    <button class={`room-item ${current ? 'current' : ''}`} aria-current={current ? 'page' : undefined} onClick={onOpen}>
      <span class="room-line">
        {presence && <span class={`dot ${presence}`} role="img" aria-label={presence} title={presence} />}
        <span class="kind" aria-label={room.type}>{room.type === 'channel' ? '#' : room.type === 'group' ? '⁂' : ''}</span>
        <span class="room-name">{name}</span>
        {bridge && <span class="badge network">{networkName(bridge)}</span>}
        {room.unread_count > 0 && <span class="badge unread" aria-label={`${room.unread_count} unread`}>{room.unread_count}</span>}
      </span>
      <span class="preview">{preview}</span>
    </button>
  );
}
