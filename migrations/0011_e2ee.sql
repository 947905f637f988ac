-- Up Migration
-- Signal-protocol end-to-end encryption (src/modules/e2ee/, docs/E2EE.md): E2EE devices (a login
-- session with a Signal device id and an identity key), their signed prekeys, Kyber last-resort keys
-- and one-time keys, the key-id high-water marks, and the to-device mailbox. Keys are libsignal's own
-- serialized bytes. Encrypted rooms: `rooms.encrypted`; a message's per-device envelopes (or its one
-- sender-key ciphertext) are on `messages.envelopes`, owned by the messages module.

CREATE TABLE e2ee_devices (
  device_id        uuid PRIMARY KEY REFERENCES devices(id) ON DELETE CASCADE,
  user_id          uuid NOT NULL REFERENCES users(id) ON DELETE CASCADE,
  signal_device_id smallint NOT NULL CHECK (signal_device_id BETWEEN 1 AND 127),
  registration_id  integer NOT NULL CHECK (registration_id BETWEEN 1 AND 16380),
  identity_key     bytea NOT NULL,
  created_at       timestamptz NOT NULL DEFAULT now(),
  UNIQUE (user_id, signal_device_id)
);

-- The current signed EC prekey ('signed') and Kyber last-resort key ('kyber_last_resort') of a device.
CREATE TABLE e2ee_signed_keys (
  device_id  uuid NOT NULL REFERENCES e2ee_devices(device_id) ON DELETE CASCADE,
  kind       text NOT NULL CHECK (kind IN ('signed', 'kyber_last_resort')),
  key_id     integer NOT NULL,
  public_key bytea NOT NULL,
  signature  bytea NOT NULL,
  PRIMARY KEY (device_id, kind)
);

-- One-time keys: EC prekeys ('ec', unsigned) and Kyber prekeys ('kyber', signed). Each row is handed
-- out once: a claim deletes it.
CREATE TABLE e2ee_one_time_keys (
  device_id  uuid NOT NULL REFERENCES e2ee_devices(device_id) ON DELETE CASCADE,
  kind       text NOT NULL CHECK (kind IN ('ec', 'kyber')),
  key_id     integer NOT NULL,
  public_key bytea NOT NULL,
  signature  bytea,
  PRIMARY KEY (device_id, kind, key_id)
);

-- The highest key id a device ever stored per id space ('ec', 'kyber' (one-time and last resort share
-- libsignal's Kyber store), 'signed'): uploads must go above it, so a used key never comes back.
CREATE TABLE e2ee_key_ids (
  device_id  uuid NOT NULL REFERENCES e2ee_devices(device_id) ON DELETE CASCADE,
  kind       text NOT NULL CHECK (kind IN ('ec', 'kyber', 'signed')),
  max_key_id integer NOT NULL,
  PRIMARY KEY (device_id, kind)
);

-- To-device messages waiting for their recipient device's acknowledgement (`e2ee.to_device.ack`).
CREATE TABLE e2ee_to_device (
  id               bigserial PRIMARY KEY,
  device_id        uuid NOT NULL REFERENCES e2ee_devices(device_id) ON DELETE CASCADE,
  sender_user_id   uuid NOT NULL REFERENCES users(id) ON DELETE CASCADE,
  sender_device_id smallint NOT NULL,
  type             integer NOT NULL,
  body             bytea NOT NULL,
  created_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX e2ee_to_device_device ON e2ee_to_device(device_id, id);

ALTER TABLE rooms ADD COLUMN encrypted boolean NOT NULL DEFAULT false;
-- Encrypted rooms: {"<session device id>": {sender_device_id, type, body}} or {"*": …} for a sender-key message.
ALTER TABLE messages ADD COLUMN envelopes jsonb;

-- Down Migration
ALTER TABLE messages DROP COLUMN envelopes;
ALTER TABLE rooms DROP COLUMN encrypted;
DROP TABLE e2ee_to_device;
DROP TABLE e2ee_key_ids;
DROP TABLE e2ee_one_time_keys;
DROP TABLE e2ee_signed_keys;
DROP TABLE e2ee_devices;
