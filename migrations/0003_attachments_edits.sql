-- Up Migration
-- Attachments (the media repository) and message edits with their history.

-- An uploaded file. The bytes live in blob storage under `storage_key` (and the thumbnail, for
-- images, under `thumbnail_key`); `mime_type` is sniffed from the bytes, never taken from the client.
CREATE TABLE attachments (
  id             uuid PRIMARY KEY,
  uploader_id    uuid NOT NULL REFERENCES users(id) ON DELETE CASCADE,
  filename       text NOT NULL,              -- sanitised
  mime_type      text NOT NULL,
  size           bigint NOT NULL,            -- bytes
  sha256         text NOT NULL,              -- hex
  storage_key    text NOT NULL,
  thumbnail_key  text,                       -- NULL: no thumbnail
  thumbnail_size bigint,                     -- bytes
  created_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX attachments_uploader ON attachments(uploader_id);

-- Which messages carry which attachments; a member of a message's room may fetch its attachments.
CREATE TABLE message_attachments (
  message_id    uuid NOT NULL REFERENCES messages(id) ON DELETE CASCADE,
  attachment_id uuid NOT NULL REFERENCES attachments(id) ON DELETE CASCADE,
  position      smallint NOT NULL,           -- order within the message
  PRIMARY KEY (message_id, attachment_id)
);
CREATE INDEX message_attachments_attachment ON message_attachments(attachment_id);

-- Edit history: each row is a version a later edit replaced.
CREATE TABLE message_edits (
  id         bigserial PRIMARY KEY,
  message_id uuid NOT NULL REFERENCES messages(id) ON DELETE CASCADE,
  content    text NOT NULL,                  -- the content before this edit
  edited_at  timestamptz NOT NULL,           -- when it was replaced
  editor_id  uuid NOT NULL REFERENCES users(id)
);
CREATE INDEX message_edits_message ON message_edits(message_id, id);

ALTER TABLE messages ADD COLUMN edited_at timestamptz;     -- last edit; NULL: never edited
ALTER TABLE rooms ADD COLUMN allow_edits boolean NOT NULL DEFAULT true;

-- Down Migration
ALTER TABLE rooms DROP COLUMN allow_edits;
ALTER TABLE messages DROP COLUMN edited_at;
DROP TABLE message_edits, message_attachments, attachments;
