-- Up Migration
-- One Meilisearch indexer at a time per index across the cluster: the indexer holding an unexpired
-- lease (leader = its node id) indexes; the others stand by and take over when the lease lapses.

ALTER TABLE search_index_cursor ADD COLUMN leader text, ADD COLUMN lease_until timestamptz;

-- Down Migration
ALTER TABLE search_index_cursor DROP COLUMN leader, DROP COLUMN lease_until;
