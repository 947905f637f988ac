-- Up Migration
-- Delivery receipts move off the messages row into a narrow table of their own. Setting
-- messages.delivered_at rewrote the widest row of the schema once per message (its content, its
-- stored tsvector, recomputed by PostgreSQL on every UPDATE, and an entry in each index the new
-- version could not share): after a resume of 100,000 events that was the database's largest cost,
-- and a tenth of it under steady sending. An INSERT of (message_id, delivered_at) costs a third to a half.
-- No foreign key: messages are never deleted (a redaction blanks the row), a delivery is written
-- only for the id of a stored message.new event, and the check would read every message again.
CREATE TABLE message_deliveries (
  message_id   uuid PRIMARY KEY,
  delivered_at timestamptz NOT NULL
);
INSERT INTO message_deliveries (message_id, delivered_at) SELECT id, delivered_at FROM messages WHERE delivered_at IS NOT NULL;
ALTER TABLE messages DROP COLUMN delivered_at;

-- Down Migration
ALTER TABLE messages ADD COLUMN delivered_at timestamptz;
UPDATE messages m SET delivered_at = d.delivered_at FROM message_deliveries d WHERE d.message_id = m.id;
DROP TABLE message_deliveries;
