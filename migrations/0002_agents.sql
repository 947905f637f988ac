-- Up Migration
-- Agent tokens: long-lived bearer tokens with scopes, accepted only on the agent API (/api/mcp/*, /mcp).
-- An agent acts as the token's user (a person, or a bot user an admin created).

CREATE TABLE agent_tokens (
  id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  user_id      uuid NOT NULL REFERENCES users(id) ON DELETE CASCADE,   -- the agent acts as this user
  created_by   uuid REFERENCES users(id) ON DELETE SET NULL,           -- who made it: the user, or the admin who made the bot
  name         text NOT NULL,
  token_hash   text NOT NULL UNIQUE,                                   -- sha256 hex of the token; the token itself is never stored
  scopes       text[] NOT NULL,
  created_at   timestamptz NOT NULL DEFAULT now(),
  expires_at   timestamptz,                                            -- NULL: never expires
  last_used_at timestamptz
);
CREATE INDEX agent_tokens_user ON agent_tokens(user_id);
CREATE INDEX agent_tokens_created_by ON agent_tokens(created_by);

-- Down Migration
DROP TABLE agent_tokens;
