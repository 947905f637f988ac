/** Push requests and shapes: subscriptions (Web Push, HTTP pushers), the VAPID key, room mutes. */
import { Type } from 'typebox';
import { DateTime, Uuid } from '../users/users.schemas.js';

const Base64Url = (description: string) => Type.String({ minLength: 16, maxLength: 200, pattern: '^[A-Za-z0-9_-]+={0,2}$', description });

/** A Web Push subscription as `PushSubscription.toJSON()` gives it (https://www.w3.org/TR/push-api/#dom-pushsubscription-tojson). */
export const WebPushSubscriptionBody = Type.Object(
  {
    kind: Type.Literal('webpush'),
    endpoint: Type.String({ format: 'uri', maxLength: 2048, description: 'The push service URL of this browser (RFC 8030 §5).' }),
    keys: Type.Object(
      {
        p256dh: Base64Url('The user agent\'s P-256 ECDH public key, base64url (RFC 8291).'),
        auth: Base64Url('The 16-byte authentication secret, base64url (RFC 8291).'),
      },
      { additionalProperties: false },
    ),
    expirationTime: Type.Optional(Type.Union([Type.Null(), Type.Number()], { description: 'Ignored (browsers send it).' })),
  },
  { additionalProperties: false },
);

/** An HTTP pusher (https://spec.matrix.org/latest/client-server-api/#post_matrixclientv3pushersset, kind "http"). */
export const HttpPusherBody = Type.Object(
  {
    kind: Type.Literal('http'),
    app_id: Type.String({ minLength: 1, maxLength: 64, description: 'The app at the gateway, e.g. "com.example.chat.android".' }),
    pushkey: Type.String({ minLength: 1, maxLength: 512, description: 'This device at the gateway (an FCM registration token, an APNs device token).' }),
    url: Type.String({ format: 'uri', maxLength: 2048, description: 'The gateway\'s notify URL, e.g. "https://push.example.com/_matrix/push/v1/notify" (Sygnal).' }),
    data: Type.Optional(Type.Record(Type.String(), Type.Unknown(), { description: 'Passed back to the gateway as `devices[].data`.' })),
  },
  { additionalProperties: false },
);

export const SubscriptionBody = Type.Union([WebPushSubscriptionBody, HttpPusherBody]);

export const Subscription = Type.Object({
  id: Uuid,
  kind: Type.Union([Type.Literal('webpush'), Type.Literal('http')]),
  url: Type.String({ description: 'The push service endpoint (webpush) or the gateway URL (http).' }),
  app_id: Type.Union([Type.String(), Type.Null()]),
  pushkey: Type.Union([Type.String(), Type.Null()]),
  device_id: Type.Union([Uuid, Type.Null()], { description: 'The device session that registered it; its notifications stop when that session ends.' }),
  created_at: DateTime,
});

export const SubscriptionParams = Type.Object({ id: Uuid });

export const PushConfig = Type.Object({
  vapid_public_key: Type.String({ description: 'The hub\'s VAPID public key (RFC 8292), base64url: `applicationServerKey` for `PushManager.subscribe()`.' }),
});

export const RoomNotificationsBody = Type.Object({ muted: Type.Boolean({ description: 'true: no push notifications from this room.' }) }, { additionalProperties: false });

export const RoomNotifications = Type.Object({ room_id: Uuid, muted: Type.Boolean() });
