-- Up Migration
-- The audit trail of admin and operator actions: who (a user, or the CLI, a bridge, the config),
-- what (an action on a target, with details), when, and from where (client address and user agent).
-- Rows are only ever added.

CREATE TABLE audit_log (
  id          bigserial PRIMARY KEY,
  at          timestamptz NOT NULL DEFAULT now(),
  actor_id    uuid REFERENCES users(id) ON DELETE SET NULL,   -- the acting user, when a user acted
  via         text NOT NULL,                                  -- 'api', 'cli', 'config' or 'bridge:<id>'
  action      text NOT NULL,                                  -- e.g. 'user.deactivate', 'invite.create'
  target_type text NOT NULL,                                  -- 'user', 'room', 'invite', 'agent_token', 'config', ...
  target_id   text,
  detail      jsonb NOT NULL DEFAULT '{}',
  ip          text,
  user_agent  text
);
CREATE INDEX audit_log_action ON audit_log(action, id);
CREATE INDEX audit_log_actor ON audit_log(actor_id, id);

-- Down Migration
DROP TABLE audit_log;
