/**
 * Full-text search behind one interface, so the backend can change: PostgreSQL (`postgres-search.ts`)
 * or Meilisearch (`meilisearch-index.ts`, fed by `indexer.ts`). The caller always passes the room ids
 * the searcher belongs to: a backend must never return a hit outside them, nor a redacted message.
 * `test/search/conformance.test.ts` runs the same behaviours against every backend.
 */
import type { MessageView } from '../messages/messages.view.js';

export interface SearchQuery {
  /** The user's query text: words (all must match) and "quoted phrases". */
  q: string;
  /** Rooms to search: the caller's rooms, or one of them. Never empty. */
  roomIds: string[];
  /** Only messages sent by this user. */
  senderId?: string;
  /** Only messages created at or after this instant. */
  from?: Date;
  /** Only messages created at or before this instant. */
  to?: Date;
  /** true: only messages with attachments; false: only messages without. */
  hasAttachment?: boolean;
  /** `relevance` (best first, the default) or `newest` (created_at descending). */
  order?: 'relevance' | 'newest';
  limit: number;
  offset: number;
}

export interface SearchHit {
  message: MessageView;
  /** The content with matches wrapped in `<mark>` … `</mark>` (other text is not HTML-escaped). */
  highlight: string;
  /** Backend-specific relevance score, higher is better; compare only within one response. */
  rank: number;
}

export interface SearchIndex {
  search(query: SearchQuery): Promise<SearchHit[]>;
}
