/**
 * PostgreSQL full-text search: a generated `tsvector` column (`simple` configuration: no stemming, so
 * any language works the same) under a GIN index; `websearch_to_tsquery` parses the query and
 * `ts_headline` builds highlights. Redacted messages have empty content and so never match.
 * https://www.postgresql.org/docs/current/textsearch-controls.html
 */
import type { Queryable } from '../../db/database.js';
import { messageView } from '../messages/messages.service.js';
import type { SearchHit, SearchIndex, SearchQuery } from './search-index.js';

export class PostgresSearchIndex implements SearchIndex {
  constructor(private readonly db: Queryable) {}

  async search(query: SearchQuery): Promise<SearchHit[]> {
    const { rows } = await this.db.query(
      `WITH q AS (SELECT websearch_to_tsquery('simple', $1) AS tsq)
       SELECT m.id, m.room_id, m.user_id, u.name AS user_name, m.content, m.reply_to, m.mentions, m.txn_id, m.stream_position,
              m.created_at, m.delivered_at, m.deleted_at, m.deleted_by, '[]'::json AS reactions,
              ts_rank(m.search_vector, q.tsq) AS rank,
              ts_headline('simple', m.content, q.tsq, 'StartSel=<mark>, StopSel=</mark>, HighlightAll=false, MaxFragments=2') AS highlight
       FROM messages m CROSS JOIN q JOIN users u ON u.id = m.user_id
       WHERE m.room_id = ANY($2::uuid[]) AND m.deleted_at IS NULL AND m.search_vector @@ q.tsq
       ORDER BY rank DESC, m.stream_position DESC
       LIMIT $3 OFFSET $4`,
      [query.q, query.roomIds, query.limit, query.offset],
    );
    return rows.map((r: any) => ({ message: messageView(r), highlight: r.highlight, rank: Number(r.rank) }));
  }
}
