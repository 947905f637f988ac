-- Up Migration
-- Usernames derived at the same moment from the same base (two registrations of bob@…, two bots
-- named alike) took the same free name, and the second INSERT failed on users' unique username
-- (a 500 the fuzzer found). The derivation now holds a transaction-scoped advisory lock on its base,
-- so the second waits for the first to commit and then finds the next free name.
CREATE OR REPLACE FUNCTION switchboard_free_username(base text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
  candidate text := base;
  n int := 1;
BEGIN
  PERFORM pg_advisory_xact_lock(hashtextextended('switchboard_username:' || base, 0));
  WHILE EXISTS (SELECT 1 FROM users WHERE server IS NULL AND username = candidate) LOOP
    n := n + 1;
    candidate := base || n::text;
  END LOOP;
  RETURN candidate;
END
$$;

-- Down Migration
CREATE OR REPLACE FUNCTION switchboard_free_username(base text) RETURNS text LANGUAGE plpgsql AS $$
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
