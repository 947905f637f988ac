/**
 * PostgreSQL full-text search: a generated `tsvector` column (`simple` configuration: no stemming, so
 * any language works the same) under a GIN index; `websearch_to_tsquery` parses the query and
 * `ts_headline` builds highlights. Redacted messages are excluded. Nothing to index: the column
 * follows every insert, edit and redaction in the same transaction.
 * https://www.postgresql.org/docs/current/textsearch-controls.html
 */
import type { Queryable } from '../../db/database.js';
import { MESSAGE_COLUMNS } from '../messages/messages.repository.js';
import { messageView } from '../messages/messages.view.js';
import type { SearchHit, SearchIndex, SearchQuery } from './search-index.js';

export class PostgresSearchIndex implements SearchIndex {
  constructor(private readonly db: Queryable) {}

  async search(query: SearchQuery): Promise<SearchHit[]> {
    const order = query.order === 'newest' ? 'm.created_at DESC, m.stream_position DESC' : 'rank DESC, m.stream_position DESC';
    const { rows } = await this.db.query(
      `WITH q AS (SELECT websearch_to_tsquery('simple', $1) AS tsq)
       SELECT ${MESSAGE_COLUMNS},
              ts_rank(m.search_vector, q.tsq) AS rank,
              ts_headline('simple', m.content, q.tsq, 'StartSel=<mark>, StopSel=</mark>, HighlightAll=false, MaxFragments=2') AS highlight
       FROM messages m CROSS JOIN q JOIN users u ON u.id = m.user_id
       WHERE m.room_id = ANY($2::uuid[]) AND m.deleted_at IS NULL AND m.search_vector @@ q.tsq
         AND ($5::uuid IS NULL OR m.user_id = $5)
         AND ($6::timestamptz IS NULL OR m.created_at >= $6)
         AND ($7::timestamptz IS NULL OR m.created_at <= $7)
         AND ($8::boolean IS NULL OR EXISTS (SELECT 1 FROM message_attachments a WHERE a.message_id = m.id) = $8)
       ORDER BY ${order}
       LIMIT $3 OFFSET $4`,
      [query.q, query.roomIds, query.limit, query.offset, query.senderId ?? null, query.from ?? null, query.to ?? null, query.hasAttachment ?? null],
    );
    return rows.map((r: any) => ({ message: messageView(r), highlight: r.highlight, rank: Number(r.rank) }));
  }
}
