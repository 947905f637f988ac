/**
 * Full-text search behind one interface, so the backend can change (PostgreSQL here; Meilisearch is
 * planned). The caller always passes the room ids the searcher belongs to: a backend must never
 * return a hit outside them.
 */
import type { MessageView } from '../messages/messages.service.js';

export interface SearchQuery {
  /** The user's query text (web-search syntax: words, "phrases", -excluded, or). */
  q: string;
  /** Rooms to search: the caller's rooms, or one of them. Never empty. */
  roomIds: string[];
  limit: number;
  offset: number;
}

export interface SearchHit {
  message: MessageView;
  /** The content with matches wrapped in `<mark>` … `</mark>` (other text is not HTML-escaped). */
  highlight: string;
  rank: number;
}

export interface SearchIndex {
  search(query: SearchQuery): Promise<SearchHit[]>;
}
