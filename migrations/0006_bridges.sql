-- Up Migration
-- Bridges (docs/BRIDGES.md): ghost users, remote ids on bridged messages, portal rooms, and the
-- per-bridge transaction cursor that makes the hub -> bridge push durable and ordered.

-- A ghost is a user a bridge puppets for a remote person (no email, no password). `ghost_localpart`
-- starts with the bridge's exclusive namespace, so it is unique across bridges. The bridge bot is a
-- ghost too (localpart "<namespace>bot").
ALTER TABLE users ADD COLUMN bridge_id text, ADD COLUMN ghost_localpart text;
CREATE UNIQUE INDEX users_ghost_localpart ON users(ghost_localpart) WHERE ghost_localpart IS NOT NULL;
CREATE INDEX users_bridge ON users(bridge_id) WHERE bridge_id IS NOT NULL;

-- The remote network's id of a message a bridge posted (e.g. a WhatsApp wamid): a repeated post with
-- the same remote id returns the first message, and the bridge can look messages up by it.
ALTER TABLE messages ADD COLUMN remote_id text;
CREATE UNIQUE INDEX messages_remote_id ON messages(user_id, remote_id) WHERE remote_id IS NOT NULL;

-- A portal: the hub room mirroring one remote chat. Created once per (bridge, remote chat).
CREATE TABLE bridge_portals (
  bridge_id  text NOT NULL,
  remote_id  text NOT NULL,
  room_id    uuid NOT NULL REFERENCES rooms(id) ON DELETE CASCADE,
  created_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (bridge_id, remote_id)
);

-- The push cursor: every room event up to `last_position` was delivered (or was not for this bridge).
-- A transaction being delivered is kept whole in `pending_*` and retried as it is until the bridge
-- answers 2xx, so a retried transaction never gains or loses events, across hub restarts too.
CREATE TABLE bridge_state (
  bridge_id      text PRIMARY KEY,
  last_position  bigint NOT NULL,
  txn_seq        bigint NOT NULL DEFAULT 0,
  pending_txn_id text,
  pending_upto   bigint,
  pending_body   jsonb,
  updated_at     timestamptz NOT NULL DEFAULT now()
);

-- Down Migration
DROP TABLE bridge_state, bridge_portals;
DROP INDEX messages_remote_id;
ALTER TABLE messages DROP COLUMN remote_id;
DROP INDEX users_bridge, users_ghost_localpart;
ALTER TABLE users DROP COLUMN ghost_localpart, DROP COLUMN bridge_id;
