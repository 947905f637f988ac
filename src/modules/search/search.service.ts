/**
 * Message search rules shared by every backend: the caller searches only rooms they are a member of;
 * filters by room, sender, date range and attachments; offset pagination with `has_more`. Also
 * chooses the backend from `[search]` and issues Meilisearch tenant tokens.
 */
import type { Logger } from 'pino';
import type { Config } from '../../config/schema.js';
import type { Database } from '../../db/database.js';
import { AppError } from '../../errors.js';
import type { EventStream } from '../../events/stream.js';
import type { RoomsService } from '../rooms/rooms.service.js';
import { SearchIndexer } from './indexer.js';
import { MeilisearchIndex } from './meilisearch-index.js';
import { PostgresSearchIndex } from './postgres-search.js';
import type { SearchHit, SearchIndex } from './search-index.js';

export interface SearchParams {
  q: string;
  room_id?: string;
  /** Only messages sent by this user. */
  user_id?: string;
  /** ISO 8601 date-time, inclusive. */
  from?: string;
  /** ISO 8601 date-time, inclusive. */
  to?: string;
  has_attachment?: boolean;
  order: 'relevance' | 'newest';
  limit: number;
  offset: number;
}

/**
 * The configured backend. For Meilisearch also a started indexer (it catches up in the background,
 * so the hub starts even while Meilisearch is down).
 * @throws Error when `backend = "meilisearch"` and `search.url` is empty.
 */
export async function createSearch(config: Config, db: Database, stream: EventStream, log: Logger): Promise<{ index: SearchIndex; indexer?: SearchIndexer }> {
  if (config.search.backend === 'postgres') return { index: new PostgresSearchIndex(db) };
  if (!config.search.url) throw new Error('search.url is required when search.backend = "meilisearch"');
  const index = new MeilisearchIndex(config.search, db);
  const indexer = new SearchIndexer(db, index, log.child({ component: 'search-indexer' }));
  await indexer.start(stream);
  return { index, indexer };
}

/** `value` (an RFC 3339 date-time) as a Date. @throws AppError VALIDATION_FAILED when JavaScript cannot represent it. */
function instant(name: string, value: string): Date {
  const date = new Date(value);
  if (Number.isNaN(date.getTime())) throw new AppError('VALIDATION_FAILED', `\`${name}\` is not a representable date-time: ${value}`);
  return date;
}

export class SearchService {
  constructor(
    private readonly db: Database,
    private readonly rooms: RoomsService,
    private readonly index: SearchIndex,
    private readonly tokenTtlS: number,
  ) {}

  /**
   * Searches the caller's rooms (or `room_id`, one of them), best first or newest first.
   * @returns `{results: [{message, highlight, rank}], has_more}`.
   * @throws AppError INVALID_ROOM (404) / NOT_A_MEMBER (403) for `room_id`; VALIDATION_FAILED (400)
   *   when `from` or `to` is no representable instant (e.g. a leap second) or `from` is after `to`;
   *   SEARCH_UNAVAILABLE (503) when the backend cannot answer.
   */
  async search(userId: string, p: SearchParams): Promise<{ results: SearchHit[]; has_more: boolean }> {
    const from = p.from ? instant('from', p.from) : undefined;
    const to = p.to ? instant('to', p.to) : undefined;
    if (from && to && from > to) throw new AppError('VALIDATION_FAILED', '`from` is after `to`');
    // Encrypted rooms are never searched (their history before encryption included): docs/E2EE.md.
    const room = p.room_id ? (await this.rooms.requireMember(this.db, p.room_id, userId)).room : null;
    const roomIds = room ? (room.encrypted ? [] : [room.id]) : await this.rooms.roomIdsFor(userId, { unencrypted: true });
    if (roomIds.length === 0) return { results: [], has_more: false };
    const hits = await this.index.search({
      q: p.q,
      roomIds,
      senderId: p.user_id,
      from,
      to,
      hasAttachment: p.has_attachment,
      order: p.order,
      limit: p.limit + 1,
      offset: p.offset,
    });
    return { results: hits.slice(0, p.limit), has_more: hits.length > p.limit };
  }

  /**
   * A Meilisearch tenant token limited to the caller's current rooms, expiring after
   * `search.tenant_token_ttl_s`. Rooms joined later need a new token; rooms left stay searchable with
   * this token until it expires.
   * @returns `{token, host, index_uid, expires_at}`.
   * @throws AppError NOT_FOUND (404) when the backend is not Meilisearch or tokens are not configured.
   */
  async token(userId: string) {
    if (!(this.index instanceof MeilisearchIndex)) throw new AppError('NOT_FOUND', 'Search tokens need search.backend = "meilisearch"');
    return this.index.tenantToken(await this.rooms.roomIdsFor(userId, { unencrypted: true }), new Date((Math.floor(Date.now() / 1000) + this.tokenTtlS) * 1000));
  }
}
