-- Up Migration
-- Federation (docs/FEDERATION.md): usernames and shadow users, federated rooms with the host's
-- sequenced log, received transactions, pinned peer keys, and one durable outbound queue per peer.

-- A username is unique per hub ([a-z0-9._-], 1..32). `server` is NULL for users of this hub and the
-- peer's server_name on shadow users (remote users: no email, no password), whose username is their
-- remote username; the address is @username:server_name.
ALTER TABLE users ADD COLUMN username text, ADD COLUMN server text;

-- The base a username is derived from: the email's local part (else a ghost's localpart, else the
-- name), lower-cased, reduced to [a-z0-9._-] and 32 characters; 'user' when nothing is left.
CREATE FUNCTION switchboard_username_base(src text) RETURNS text LANGUAGE sql IMMUTABLE AS $$
  SELECT COALESCE(NULLIF(left(regexp_replace(lower(COALESCE(src, '')), '[^a-z0-9._-]', '', 'g'), 28), ''), 'user')
$$;

-- The first free username of this hub among base, base2, base3, ...
CREATE FUNCTION switchboard_free_username(base text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
  candidate text := base;
  n int := 1;
BEGIN
  WHILE EXISTS (SELECT 1 FROM users WHERE server IS NULL AND username = candidate) LOOP
    n := n + 1;
    candidate := base || n::text;
  END LOOP;
  RETURN candidate;
END
$$;

DO $$
DECLARE
  u record;
BEGIN
  FOR u IN SELECT id, email, ghost_localpart, name FROM users ORDER BY created_at, id LOOP
    UPDATE users
       SET username = switchboard_free_username(switchboard_username_base(COALESCE(split_part(u.email, '@', 1), u.ghost_localpart, u.name)))
     WHERE id = u.id;
  END LOOP;
END
$$;

ALTER TABLE users ALTER COLUMN username SET NOT NULL,
  ADD CONSTRAINT users_username_chars CHECK (username ~ '^[a-z0-9._-]{1,32}$');
CREATE UNIQUE INDEX users_username ON users (COALESCE(server, ''), username);

-- A room shared with other hubs. `host` is the server_name of the hub that sequences it (this hub's
-- own name when it is the host); `seq` and `last_hash` are the last event of its log (the host
-- assigns them, a participant has applied up to them); `deny` lists hubs the room refuses.
CREATE TABLE federation_rooms (
  room_id   uuid PRIMARY KEY REFERENCES rooms(id) ON DELETE CASCADE,
  host      text NOT NULL,
  seq       bigint NOT NULL DEFAULT 0,
  last_hash text NOT NULL DEFAULT '',
  deny      text[] NOT NULL DEFAULT '{}',
  servers   text[] NOT NULL DEFAULT '{}'   -- on the host: the other hubs with members, sent every event
);

-- The room's sequenced log as the host signed it (a full copy on every participant).
CREATE TABLE federation_events (
  room_id  uuid NOT NULL REFERENCES rooms(id) ON DELETE CASCADE,
  room_seq bigint NOT NULL,
  event_id text NOT NULL UNIQUE,
  pdu      jsonb NOT NULL,
  PRIMARY KEY (room_id, room_seq)
);

-- Transactions received, for idempotence per (origin, txn_id).
CREATE TABLE federation_txns (
  origin      text NOT NULL,
  txn_id      text NOT NULL,
  received_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (origin, txn_id)
);

-- Peers' keys pinned on first use (a key in the config wins), and when they last called in.
CREATE TABLE federation_peer_keys (
  server_name text PRIMARY KEY,
  public_key  text NOT NULL,
  pinned_at   timestamptz NOT NULL DEFAULT now()
);

-- The durable outbound queue: what this hub owes each peer, in order. The sender of a peer
-- (events/transaction-sender.ts) keeps its cursor and pending transaction in federation_out_state.
CREATE TABLE federation_outbox (
  id         bigserial PRIMARY KEY,
  peer       text NOT NULL,
  kind       text NOT NULL CHECK (kind IN ('event', 'snapshot', 'ephemeral')),
  item       jsonb NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX federation_outbox_peer ON federation_outbox (peer, id);

CREATE TABLE federation_out_state (
  peer            text PRIMARY KEY,
  last_position   bigint NOT NULL DEFAULT 0,
  txn_seq         bigint NOT NULL DEFAULT 0,
  pending_txn_id  text,
  pending_upto    bigint,
  pending_body    jsonb,
  last_success_at timestamptz
);

-- The relay's cursor on room_events: which local events it has sequenced (host) or forwarded (participant).
CREATE TABLE federation_cursor (
  id            boolean PRIMARY KEY DEFAULT true CHECK (id),
  last_position bigint NOT NULL
);

-- Down Migration
DROP TABLE federation_cursor, federation_out_state, federation_outbox, federation_peer_keys, federation_txns, federation_events, federation_rooms;
DROP INDEX users_username;
ALTER TABLE users DROP CONSTRAINT users_username_chars, DROP COLUMN server, DROP COLUMN username;
DROP FUNCTION switchboard_free_username(text);
DROP FUNCTION switchboard_username_base(text);
