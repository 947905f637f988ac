// The service worker of the Switchboard web client: shows the hub's Web Push notifications
// (docs/PUSH.md gives the payload) and opens the room when one is clicked.
self.addEventListener('push', (event) => {
  let data = {};
  try {
    data = event.data ? event.data.json() : {};
  } catch {
    data = {};
  }
  const title = data.room_name ? `${data.sender_name} in ${data.room_name}` : data.sender_name || 'Switchboard';
  const body = data.encrypted ? 'New encrypted message' : data.body || 'New message';
  event.waitUntil(self.registration.showNotification(title, { body, tag: data.room_id, data, icon: '/icon.svg' }));
});

self.addEventListener('notificationclick', (event) => {
  event.notification.close();
  const url = event.notification.data && event.notification.data.room_id ? `/#/room/${event.notification.data.room_id}` : '/';
  event.waitUntil(
    self.clients.matchAll({ type: 'window', includeUncontrolled: true }).then((windows) => {
      for (const w of windows) if ('focus' in w) return w.navigate(url).then((c) => c && c.focus());
      return self.clients.openWindow(url);
    }),
  );
});
