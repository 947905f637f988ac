/** SQL for attachments and their links to messages (`message_attachments`); the only module that writes them. */
import type { Queryable } from '../../db/database.js';

/** What a message needs to list an attachment. */
export interface AttachmentRef {
  id: string;
  filename: string;
  /** Bytes. */
  size: number;
  mime_type: string;
  thumbnail_key: string | null;
}

export interface AttachmentRow extends AttachmentRef {
  uploader_id: string;
  sha256: string;
  storage_key: string;
  thumbnail_size: number | null;
  created_at: Date;
  /** Federation: the server_name of the hub the file was uploaded to; null when uploaded here. */
  origin: string | null;
  /** Federation: storage keys (the file, its thumbnail) not fetched from `origin` yet. */
  missing: string[];
}

/**
 * A correlated subquery over `messages m`: the message's attachments in order, as a JSON array of
 * `AttachmentRef` (empty when none). For message SELECTs that feed `messageView`.
 */
export const MESSAGE_ATTACHMENTS_SQL = `COALESCE((SELECT json_agg(json_build_object('id', a.id, 'filename', a.filename, 'size', a.size,
      'mime_type', a.mime_type, 'thumbnail_key', a.thumbnail_key) ORDER BY ma.position)
    FROM message_attachments ma JOIN attachments a ON a.id = ma.attachment_id WHERE ma.message_id = m.id), '[]'::json)`;

export const attachmentsRepository = {
  async insert(q: Queryable, a: Omit<AttachmentRow, 'created_at' | 'origin' | 'missing'>): Promise<AttachmentRow> {
    const { rows } = await q.query<AttachmentRow>(
      `INSERT INTO attachments (id, uploader_id, filename, mime_type, size, sha256, storage_key, thumbnail_key, thumbnail_size)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING *`,
      [a.id, a.uploader_id, a.filename, a.mime_type, a.size, a.sha256, a.storage_key, a.thumbnail_key, a.thumbnail_size],
    );
    return rows[0];
  },

  /** Lists files of another hub, their bytes not fetched yet; an id already listed is left as it is. */
  async insertRemote(q: Queryable, rows: Omit<AttachmentRow, 'created_at'>[]): Promise<void> {
    await q.query(
      `INSERT INTO attachments (id, uploader_id, filename, mime_type, size, sha256, storage_key, thumbnail_key, thumbnail_size, origin, missing)
       SELECT id, uploader_id, filename, mime_type, size, sha256, storage_key, thumbnail_key, thumbnail_size, origin, missing
         FROM jsonb_to_recordset($1::jsonb) AS t(id uuid, uploader_id uuid, filename text, mime_type text, size bigint, sha256 text,
              storage_key text, thumbnail_key text, thumbnail_size bigint, origin text, missing text[])
       ON CONFLICT (id) DO NOTHING`,
      [JSON.stringify(rows)],
    );
  },

  /** The bytes of `key` are stored now. */
  async markStored(q: Queryable, id: string, key: string): Promise<void> {
    await q.query('UPDATE attachments SET missing = array_remove(missing, $2) WHERE id = $1', [id, key]);
  },

  async find(q: Queryable, id: string): Promise<AttachmentRow | null> {
    const { rows } = await q.query<AttachmentRow>('SELECT * FROM attachments WHERE id = $1', [id]);
    return rows[0] ?? null;
  },

  /** Ids of the rooms where a message carries the attachment. */
  async roomIdsCarrying(q: Queryable, id: string): Promise<string[]> {
    const { rows } = await q.query<{ room_id: string }>(
      'SELECT DISTINCT m.room_id FROM message_attachments ma JOIN messages m ON m.id = ma.message_id WHERE ma.attachment_id = $1',
      [id],
    );
    return rows.map((r) => r.room_id);
  },

  /** Those of `ids` that exist. */
  async findByIds(q: Queryable, ids: string[]): Promise<AttachmentRow[]> {
    const { rows } = await q.query<AttachmentRow>('SELECT * FROM attachments WHERE id = ANY($1::uuid[])', [ids]);
    return rows;
  },

  /** Links attachments to messages, each message's in the given order, in one statement. */
  async link(q: Queryable, links: { message_id: string; attachment_ids: string[] }[]): Promise<void> {
    const rows = links.flatMap((l) => l.attachment_ids.map((id, position) => ({ message_id: l.message_id, attachment_id: id, position })));
    await q.query(
      `INSERT INTO message_attachments (message_id, attachment_id, position)
       SELECT message_id, attachment_id, position FROM jsonb_to_recordset($1::jsonb) AS t(message_id uuid, attachment_id uuid, position int)`,
      [JSON.stringify(rows)],
    );
  },

  /** Removes a message's links (a redaction). */
  async unlink(q: Queryable, messageId: string): Promise<void> {
    await q.query('DELETE FROM message_attachments WHERE message_id = $1', [messageId]);
  },
};
