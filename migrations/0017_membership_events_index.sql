-- Up Migration
-- The group commit reads, under the stream lock, the position of the latest membership event
-- (room.updated: members, names, settings; room.deleted) to know whether its node's membership
-- cache is exact (src/modules/rooms/membership-cache.ts). Only those events are in this index, so
-- plain sends do not touch it and max() is one step at its end.
CREATE INDEX room_events_membership ON room_events (stream_position) WHERE type IN ('room.updated', 'room.deleted');

-- Down Migration
DROP INDEX room_events_membership;
