-- Up Migration
-- Switchboard core schema: users and device sessions, rooms and members, the room event stream,
-- messages with reactions and receipts, presence.

CREATE TABLE users (
  id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  email         text UNIQUE,                 -- stored lower-case; NULL for bots and bridge ghosts
  name          text NOT NULL,
  password_hash text,                        -- argon2id; NULL when the user cannot log in with a password
  avatar_url    text,
  is_admin      boolean NOT NULL DEFAULT false,
  deactivated_at timestamptz,
  created_at    timestamptz NOT NULL DEFAULT now()
);

-- A device session: one login. Its refresh tokens form one rotation family.
CREATE TABLE devices (
  id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  user_id      uuid NOT NULL REFERENCES users(id) ON DELETE CASCADE,
  name         text NOT NULL DEFAULT '',
  user_agent   text NOT NULL DEFAULT '',
  ip           text NOT NULL DEFAULT '',
  created_at   timestamptz NOT NULL DEFAULT now(),
  last_seen_at timestamptz NOT NULL DEFAULT now(),
  revoked_at   timestamptz
);
CREATE INDEX devices_user ON devices(user_id);

CREATE TABLE refresh_tokens (
  token_hash text PRIMARY KEY,              -- sha256 hex of the opaque token; the token itself is never stored
  device_id  uuid NOT NULL REFERENCES devices(id) ON DELETE CASCADE,
  created_at timestamptz NOT NULL DEFAULT now(),
  expires_at timestamptz NOT NULL,
  used_at    timestamptz                    -- set when rotated; presenting it again is reuse
);
CREATE INDEX refresh_tokens_device ON refresh_tokens(device_id);

CREATE TABLE rooms (
  id         uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  type       text NOT NULL CHECK (type IN ('direct', 'group', 'channel')),
  name       text NOT NULL DEFAULT '',
  topic      text NOT NULL DEFAULT '',
  visibility text NOT NULL DEFAULT 'private' CHECK (visibility IN ('public', 'private')),
  direct_key text UNIQUE,                   -- '<smaller user id>:<larger user id>' for direct rooms: one per pair
  created_by uuid REFERENCES users(id) ON DELETE SET NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  deleted_at timestamptz
);

CREATE TABLE room_members (
  room_id         uuid NOT NULL REFERENCES rooms(id) ON DELETE CASCADE,
  user_id         uuid NOT NULL REFERENCES users(id) ON DELETE CASCADE,
  role            text NOT NULL DEFAULT 'member' CHECK (role IN ('owner', 'admin', 'member')),
  joined_at       timestamptz NOT NULL DEFAULT now(),
  -- the read receipt: cumulative, only moves forward
  read_position   bigint NOT NULL DEFAULT 0, -- stream position of the last message read
  read_message_id uuid,
  read_at         timestamptz,
  PRIMARY KEY (room_id, user_id)
);
CREATE INDEX room_members_user ON room_members(user_id);

-- The room event stream. Positions are handed out under a transaction-scoped advisory lock, so they
-- become visible in increasing order: a reader that saw position N has seen every position below N.
CREATE TABLE room_events (
  stream_position bigserial PRIMARY KEY,
  room_id         uuid NOT NULL,
  type            text NOT NULL,
  payload         jsonb NOT NULL,            -- the event as clients receive it, without stream_position
  notify_user_ids uuid[] NOT NULL DEFAULT '{}', -- users who must get it though no longer members (removed, left)
  created_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX room_events_room ON room_events(room_id, stream_position);

CREATE TABLE messages (
  id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  room_id         uuid NOT NULL REFERENCES rooms(id) ON DELETE CASCADE,
  user_id         uuid NOT NULL REFERENCES users(id),
  content         text NOT NULL,
  reply_to        uuid REFERENCES messages(id) ON DELETE SET NULL,
  mentions        uuid[] NOT NULL DEFAULT '{}',
  txn_id          text,
  stream_position bigint NOT NULL,           -- position of its message.new event
  created_at      timestamptz NOT NULL DEFAULT now(),
  delivered_at    timestamptz,               -- first written to a recipient's socket
  deleted_at      timestamptz,
  deleted_by      uuid REFERENCES users(id),
  search_vector   tsvector GENERATED ALWAYS AS (to_tsvector('simple', content)) STORED,
  UNIQUE (user_id, txn_id)
);
CREATE INDEX messages_room_position ON messages(room_id, stream_position);
CREATE INDEX messages_search ON messages USING gin(search_vector);

CREATE TABLE reactions (
  message_id uuid NOT NULL REFERENCES messages(id) ON DELETE CASCADE,
  user_id    uuid NOT NULL REFERENCES users(id) ON DELETE CASCADE,
  key        text NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (message_id, user_id, key)
);

CREATE TABLE presence (
  user_id     uuid PRIMARY KEY REFERENCES users(id) ON DELETE CASCADE,
  status      text NOT NULL DEFAULT 'offline' CHECK (status IN ('online', 'away', 'busy', 'offline')),
  status_text text NOT NULL DEFAULT '',
  last_seen   timestamptz
);

-- Down Migration
DROP TABLE presence, reactions, messages, room_events, room_members, rooms, refresh_tokens, devices, users;
