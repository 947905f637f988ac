/**
 * Meilisearch search backend, through the official client. One index (`search.index_name`) holds one
 * document per live message (see `MessageDocument`); `indexer.ts` keeps it in step with the database.
 * Queries are always filtered to the caller's rooms, and hits are re-read from PostgreSQL, so a hit
 * shows the message as it is now and a message redacted after indexing never shows.
 *
 * Endpoints used (https://www.meilisearch.com/docs/reference/api/overview): PATCH
 * /indexes/{uid}/settings, POST /indexes/{uid}/documents, POST /indexes/{uid}/documents/delete-batch,
 * DELETE /indexes/{uid}/documents, GET /tasks/{uid}, POST /indexes/{uid}/search. Web clients holding a
 * tenant token (`tenantToken`) call POST /indexes/{uid}/search or POST /multi-search themselves.
 */
import { Meilisearch, MeilisearchApiError, type Settings, type Task } from 'meilisearch';
import { generateTenantToken } from 'meilisearch/token';
import type { Config } from '../../config/schema.js';
import type { Queryable } from '../../db/database.js';
import { AppError } from '../../errors.js';
import { messagesRepository } from '../messages/messages.repository.js';
import { messageView } from '../messages/messages.view.js';
import type { SearchHit, SearchIndex, SearchQuery } from './search-index.js';

/** One indexed message. `created_at` is unix time in seconds (fractional, millisecond precision). */
export interface MessageDocument {
  id: string;
  room_id: string;
  user_id: string;
  user_name: string;
  content: string;
  created_at: number;
  has_attachment: boolean;
}

/**
 * Settings applied at start-up. `sort` comes first among the ranking rules so `order=newest` is
 * strictly newest-first; without a `sort` parameter the rule does nothing and relevance decides.
 * https://www.meilisearch.com/docs/reference/api/settings
 */
export const INDEX_SETTINGS: Settings = {
  searchableAttributes: ['content'],
  filterableAttributes: ['room_id', 'user_id', 'created_at', 'has_attachment'],
  sortableAttributes: ['created_at'],
  rankingRules: ['sort', 'words', 'typo', 'proximity', 'attribute', 'exactness'],
};

/** How long to wait for one Meilisearch task to finish before treating the batch as failed, ms. */
const TASK_TIMEOUT_MS = 60_000;
/** Words kept around the matches in a highlight (like ts_headline's default MaxWords). */
const CROP_WORDS = 35;

/** A Meilisearch string literal (double-quoted, `"` and `\` escaped). */
function literal(value: string): string {
  return `"${value.replace(/[\\"]/g, (c) => `\\${c}`)}"`;
}

/** The filter expression limiting a search to rooms. https://www.meilisearch.com/docs/learn/filtering_and_sorting/filter_expression_reference */
export function roomsFilter(roomIds: string[]): string {
  return `room_id IN [${roomIds.map(literal).join(', ')}]`;
}

/** Every condition of a query, as an array of filter strings (Meilisearch ANDs them). */
export function queryFilter(query: SearchQuery): string[] {
  const filter = [roomsFilter(query.roomIds)];
  if (query.senderId) filter.push(`user_id = ${literal(query.senderId)}`);
  if (query.from) filter.push(`created_at >= ${query.from.getTime() / 1000}`);
  if (query.to) filter.push(`created_at <= ${query.to.getTime() / 1000}`);
  if (query.hasAttachment !== undefined) filter.push(`has_attachment = ${query.hasAttachment}`);
  return filter;
}

export class MeilisearchIndex implements SearchIndex {
  readonly client: Meilisearch;
  readonly indexName: string;

  constructor(
    private readonly config: Config['search'],
    private readonly db: Queryable,
  ) {
    this.client = new Meilisearch({ host: config.url, apiKey: config.api_key || undefined, timeout: 30_000 });
    this.indexName = config.index_name;
  }

  private get index() {
    return this.client.index<MessageDocument>(this.indexName);
  }

  /** Creates the index if needed and applies `INDEX_SETTINGS`. @throws when Meilisearch fails. */
  async applySettings(): Promise<void> {
    checkTask(await this.index.updateSettings(INDEX_SETTINGS).waitTask({ timeout: TASK_TIMEOUT_MS }));
  }

  /** Adds or replaces documents (by `id`); resolves once Meilisearch has applied them. */
  async upsert(docs: MessageDocument[]): Promise<void> {
    checkTask(await this.index.addDocuments(docs, { primaryKey: 'id' }).waitTask({ timeout: TASK_TIMEOUT_MS }));
  }

  /** Deletes documents by id (absent ones are ignored); resolves once applied. */
  async remove(ids: string[]): Promise<void> {
    checkTask(await this.index.deleteDocuments(ids).waitTask({ timeout: TASK_TIMEOUT_MS }));
  }

  /** Deletes every document; resolves once applied. */
  async clear(): Promise<void> {
    checkTask(await this.index.deleteAllDocuments().waitTask({ timeout: TASK_TIMEOUT_MS }));
  }

  /**
   * Searches the caller's rooms with the query's filters; hits are re-read from PostgreSQL.
   * @throws AppError SEARCH_UNAVAILABLE (503) when Meilisearch cannot answer.
   */
  async search(query: SearchQuery): Promise<SearchHit[]> {
    let hits;
    try {
      ({ hits } = await this.index.search(query.q, {
        filter: queryFilter(query),
        sort: query.order === 'newest' ? ['created_at:desc'] : undefined,
        limit: query.limit,
        offset: query.offset,
        matchingStrategy: 'all',
        attributesToRetrieve: ['id'],
        attributesToHighlight: ['content'],
        attributesToCrop: ['content'],
        cropLength: CROP_WORDS,
        highlightPreTag: '<mark>',
        highlightPostTag: '</mark>',
        showRankingScore: true,
      }));
    } catch (err) {
      if (err instanceof MeilisearchApiError && err.cause?.code === 'index_not_found') return [];
      throw new AppError('SEARCH_UNAVAILABLE', `Search backend failed: ${(err as Error).message}`);
    }
    const rows = hits.length ? await messagesRepository.findLiveByIds(this.db, hits.map((h) => h.id)) : [];
    const byId = new Map(rows.map((r) => [r.id, r]));
    return hits.flatMap((h) => {
      const row = byId.get(h.id);
      return row ? [{ message: messageView(row), highlight: h._formatted?.content ?? row.content, rank: h._rankingScore ?? 0 }] : [];
    });
  }

  /**
   * A tenant token for searching `roomIds` directly on Meilisearch until `expiresAt`: its search
   * rules add `room_id IN [...]` to every query and allow this index only.
   * https://www.meilisearch.com/docs/learn/security/tenant_token_reference
   * @returns `{token, host, index_uid, expires_at}` (expires_at ISO 8601).
   * @throws AppError NOT_FOUND when `search.token_api_key` / `token_api_key_uid` are not configured.
   */
  async tenantToken(roomIds: string[], expiresAt: Date) {
    if (!this.config.token_api_key || !this.config.token_api_key_uid) {
      throw new AppError('NOT_FOUND', 'Search tokens are not enabled (set search.token_api_key and search.token_api_key_uid)');
    }
    const token = await generateTenantToken({
      apiKey: this.config.token_api_key,
      apiKeyUid: this.config.token_api_key_uid,
      searchRules: { [this.indexName]: { filter: roomsFilter(roomIds) } },
      expiresAt,
    });
    return { token, host: this.config.public_url || this.config.url, index_uid: this.indexName, expires_at: expiresAt.toISOString() };
  }
}

/** @throws Error unless the task succeeded. */
function checkTask(task: Task): void {
  if (task.status !== 'succeeded') {
    throw new Error(`Meilisearch task ${task.uid} (${task.type}) ${task.status}: ${task.error?.code ?? ''} ${task.error?.message ?? ''}`.trim());
  }
}
