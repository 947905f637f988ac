-- Up Migration
-- Push notifications (src/modules/push/, docs/PUSH.md): the subscriptions users register (Web Push or
-- a Matrix-style HTTP pusher), per-member room mutes, the notifier's cursor on the event log, and the
-- queue of notifications waiting to be sent (with their retries).

CREATE TABLE push_subscriptions (
  id         uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  user_id    uuid NOT NULL REFERENCES users(id) ON DELETE CASCADE,
  device_id  uuid REFERENCES devices(id) ON DELETE CASCADE, -- the session that registered it; none once revoked
  kind       text NOT NULL CHECK (kind IN ('webpush', 'http')),
  -- what identifies it across users: the push service endpoint (webpush), app_id + ' ' + pushkey (http)
  key        text NOT NULL UNIQUE,
  url        text NOT NULL,      -- webpush: the push service endpoint; http: the push gateway's notify URL
  p256dh     text,               -- webpush: the user agent's P-256 public key (base64url)
  auth       text,               -- webpush: the authentication secret (base64url)
  app_id     text,               -- http: the app's id at the gateway
  pushkey    text,               -- http: the device's push key at the gateway (an FCM or APNs token)
  data       jsonb NOT NULL DEFAULT '{}', -- http: passed back to the gateway in `devices[].data`
  created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX push_subscriptions_user ON push_subscriptions(user_id);

CREATE TABLE push_room_settings (
  room_id    uuid NOT NULL REFERENCES rooms(id) ON DELETE CASCADE,
  user_id    uuid NOT NULL REFERENCES users(id) ON DELETE CASCADE,
  muted      boolean NOT NULL DEFAULT false,
  updated_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (room_id, user_id)
);

-- One row: the position in room_events up to which notifications were queued.
CREATE TABLE push_cursor (
  id            text PRIMARY KEY DEFAULT 'notifier',
  last_position bigint NOT NULL
);

CREATE TABLE push_deliveries (
  id              bigserial PRIMARY KEY,
  subscription_id uuid NOT NULL REFERENCES push_subscriptions(id) ON DELETE CASCADE,
  stream_position bigint NOT NULL,   -- the message.new it is about
  payload         jsonb NOT NULL,    -- what is sent (docs/PUSH.md)
  attempts        integer NOT NULL DEFAULT 0,
  next_attempt_at timestamptz NOT NULL DEFAULT now(),
  lease_until     timestamptz        -- a node is sending it until then
);
CREATE INDEX push_deliveries_due ON push_deliveries(next_attempt_at);

-- Down Migration
DROP TABLE push_deliveries;
DROP TABLE push_cursor;
DROP TABLE push_room_settings;
DROP TABLE push_subscriptions;
