-- Up Migration
-- Federation, continued (docs/FEDERATION.md): files of other hubs, the pruning of received
-- transaction ids, and dead-lettered outbound transactions.

-- A file sent in a federated room by a user of another hub is listed at once (uploader: the shadow
-- user) and its bytes are fetched from that hub on first download. `origin`: the server_name of the
-- hub it was uploaded to (NULL: uploaded here); `missing`: the storage keys (the file, its
-- thumbnail) not fetched yet.
ALTER TABLE attachments
  ADD COLUMN origin  text,
  ADD COLUMN missing text[] NOT NULL DEFAULT '{}';

-- Received transaction ids are kept for federation.txn_retention_s, then pruned by age.
CREATE INDEX federation_txns_received ON federation_txns (received_at);

-- Transactions a peer refused for good (403 or another permanent 4xx): kept for operators, no
-- longer retried, so the peer's queue goes on.
CREATE TABLE federation_dead_letters (
  id         bigserial PRIMARY KEY,
  peer       text NOT NULL,
  txn_id     text NOT NULL,
  status     int NOT NULL,                 -- the peer's HTTP status
  error      text NOT NULL,                -- the peer's answer (truncated)
  body       jsonb NOT NULL,               -- the transaction as sent
  created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX federation_dead_letters_peer ON federation_dead_letters (peer, id);

-- Down Migration
DROP TABLE federation_dead_letters;
DROP INDEX federation_txns_received;
ALTER TABLE attachments DROP COLUMN missing, DROP COLUMN origin;
