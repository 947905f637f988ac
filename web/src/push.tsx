/**
 * Notifications: "Enable notifications" registers the service worker (/sw.js), subscribes with the
 * hub's VAPID key and hands the subscription to the hub (POST /api/push/subscriptions); the hub
 * then pushes direct messages and mentions while this user has no socket open (docs/PUSH.md).
 * "Mute" switches a room's notifications off for the caller (PUT /api/rooms/:id/notifications).
 */
import { useEffect, useState } from 'preact/hooks';
import type { SwitchboardClient } from '@switchboard/sdk';

const supported = 'serviceWorker' in navigator && 'PushManager' in window && 'Notification' in window;

function base64UrlToBytes(s: string): Uint8Array<ArrayBuffer> {
  const bin = atob(s.replace(/-/g, '+').replace(/_/g, '/'));
  return Uint8Array.from(bin, (c) => c.charCodeAt(0));
}

export function NotificationsButton({ client }: { client: SwitchboardClient }) {
  const [state, setState] = useState<'off' | 'on' | 'denied' | 'busy'>(supported && Notification.permission === 'denied' ? 'denied' : 'off');
  useEffect(() => {
    if (!supported) return;
    navigator.serviceWorker.getRegistration('/').then(async (reg) => {
      if (await reg?.pushManager.getSubscription()) setState('on');
    });
  }, []);
  if (!supported) return null;

  async function enable() {
    setState('busy');
    try {
      if ((await Notification.requestPermission()) !== 'granted') return setState('denied');
      const { vapid_public_key } = await client.call(client.api.GET('/api/push/config'));
      const reg = await navigator.serviceWorker.register('/sw.js', { scope: '/' });
      await navigator.serviceWorker.ready;
      const sub = await reg.pushManager.subscribe({ userVisibleOnly: true, applicationServerKey: base64UrlToBytes(vapid_public_key) });
      const json = sub.toJSON() as { endpoint: string; keys: { p256dh: string; auth: string } };
      await client.call(client.api.POST('/api/push/subscriptions', { body: { kind: 'webpush', endpoint: json.endpoint, keys: json.keys } }));
      setState('on');
    } catch {
      setState('off');
    }
  }

  if (state === 'denied') return <span class="hint">Notifications blocked</span>;
  if (state === 'on') return <span class="hint">Notifications on</span>;
  return (
    <button onClick={enable} disabled={state === 'busy'}>
      Enable notifications
    </button>
  );
}

export function MuteButton({ client, roomId }: { client: SwitchboardClient; roomId: string }) {
  const [muted, setMuted] = useState<boolean | null>(null);
  const params = { params: { path: { id: roomId } } };
  useEffect(() => {
    client.call(client.api.GET('/api/rooms/{id}/notifications', params)).then((s) => setMuted(s.muted), () => setMuted(null));
  }, [roomId]);
  if (muted === null) return null;
  return (
    <button
      aria-pressed={muted}
      onClick={async () => setMuted((await client.call(client.api.PUT('/api/rooms/{id}/notifications', { ...params, body: { muted: !muted } }))).muted)}
    >
      {muted ? 'Unmute' : 'Mute'}
    </button>
  );
}
