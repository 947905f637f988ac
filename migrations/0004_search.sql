-- Up Migration
-- Search indexing cursor: how far into the room event stream (room_events.stream_position) the
-- Meilisearch indexer has applied, per index. The indexer advances it only after Meilisearch
-- confirmed the batch, so a crash or an outage replays events instead of losing them.

CREATE TABLE search_index_cursor (
  index_name text PRIMARY KEY,               -- Meilisearch index uid
  position   bigint NOT NULL DEFAULT 0,      -- last stream_position applied (and confirmed)
  updated_at timestamptz NOT NULL DEFAULT now()
);

-- Down Migration
DROP TABLE search_index_cursor;
