-- Up Migration
-- Operator's side: invite codes for `auth.registration = "invite"`.

CREATE TABLE invite_codes (
  code       text PRIMARY KEY,               -- random, URL-safe; given to the invitee
  created_by uuid REFERENCES users(id) ON DELETE SET NULL,
  max_uses   integer NOT NULL DEFAULT 1 CHECK (max_uses >= 1),
  uses       integer NOT NULL DEFAULT 0 CHECK (uses >= 0),
  expires_at timestamptz,                    -- NULL: never expires
  created_at timestamptz NOT NULL DEFAULT now()
);

-- Down Migration
DROP TABLE invite_codes;
