-- Up Migration
-- A resume (and an agent's wait) looks up the rooms its user was removed from, left or saw deleted
-- after a position: the events naming the user in notify_user_ids. Only such events have a
-- non-empty list, so the index holds only them and plain sends do not touch it.

CREATE INDEX room_events_notify ON room_events USING gin (notify_user_ids) WHERE cardinality(notify_user_ids) > 0;

-- Down Migration
DROP INDEX room_events_notify;
