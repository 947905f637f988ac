-- Up Migration
-- The full-text index of messages is updated at each INSERT instead of through GIN's pending list.
-- With the pending list (fastupdate, PostgreSQL's default) inserts are cheap until the list passes
-- gin_pending_list_limit (4 MB), and then the one INSERT that finds it full merges it into the index
-- in the foreground, with the stream lock held: under steady sending that stalled a group commit for
-- over 100 ms (docs/PERFORMANCE.md, 2026-12-04). PostgreSQL's advice when steady response time matters
-- more than update speed is to turn the pending list off:
-- https://www.postgresql.org/docs/current/gin.html#GIN-FAST-UPDATE
-- Turning it off does not empty the list, so what it holds is merged now.
ALTER INDEX messages_search SET (fastupdate = off);
SELECT gin_clean_pending_list('messages_search'::regclass);

-- Down Migration
ALTER INDEX messages_search RESET (fastupdate);
