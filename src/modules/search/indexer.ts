/**
 * Keeps the Meilisearch index in step with the database, using the room event stream as a
 * transactional outbox: every message create, edit and redaction appends its `message.new`,
 * `message.edited` or `message.deleted` event in the same transaction as the change (see
 * `events/stream.ts`), and positions become visible in order.
 *
 * The indexer reads events past its cursor (`search_index_cursor`, per index) in batches, rebuilds
 * the touched messages' documents from the `messages` table as it is now (a redacted or missing
 * message is deleted from the index), waits until Meilisearch reports the tasks succeeded, and only
 * then advances the persisted cursor. A crash or an outage therefore replays a batch instead of losing
 * it, and replaying is harmless (documents are replaced whole, deletions are idempotent).
 *
 * It is woken by the stream reader (`EventStream.onEvents`), not by polling; on start it catches up
 * from its cursor. On failure it retries with exponential backoff (0.25 s doubling up to 30 s).
 *
 * With several nodes, one indexer per index works at a time: each batch first claims or renews a lease
 * in the cursor row (`leader`, `lease_until`, 60 s). The others stand by and check again when the lease
 * could lapse, so a crashed leader is replaced; `stop()` releases the lease; reindex takes it over.
 *
 * Events: 'indexed' (position: number) after each confirmed batch; 'failed' (err, retryInMs).
 */
import crypto from 'node:crypto';
import { EventEmitter } from 'node:events';
import type { Logger } from 'pino';
import type { Config } from '../../config/schema.js';
import type { Queryable } from '../../db/database.js';
import { CoalescingRunner } from '../../events/coalescing-runner.js';
import type { EventStream } from '../../events/stream.js';
import { MeilisearchIndex, type MessageDocument } from './meilisearch-index.js';

const BATCH = 500;
const MESSAGE_EVENTS = ['message.new', 'message.edited', 'message.deleted'];
const BACKOFF_BASE_MS = 250;
const BACKOFF_MAX_MS = 30_000;
const LEASE_S = 60;

/**
 * `switchboard search reindex`: clears the index, resets its cursor and replays the whole stream.
 * @returns the stream position reached.
 * @throws when Meilisearch fails (the cursor keeps the last confirmed batch; run it again).
 */
export async function reindex(config: Config, db: Queryable, log: Logger): Promise<number> {
  const indexer = new SearchIndexer(db, new MeilisearchIndex(config.search, db), log);
  try {
    await indexer.reindex();
    return indexer.position;
  } finally {
    await indexer.stop(); // releases the lease: the hub's indexers carry on from here
  }
}

export class SearchIndexer extends EventEmitter {
  private readonly nodeId = crypto.randomUUID();
  private cursor = 0;
  private standbyTimer?: NodeJS.Timeout;
  private failures = 0;
  private readonly runner = new CoalescingRunner(() => this.run());
  private stopped = false;
  private retryTimer?: NodeJS.Timeout;
  private unsubscribe?: () => void;
  private settingsApplied = false;

  constructor(
    private readonly db: Queryable,
    private readonly index: MeilisearchIndex,
    private readonly log: Logger,
  ) {
    super();
  }

  /** The last stream position applied and confirmed. */
  get position(): number {
    return this.cursor;
  }

  /** Loads the persisted cursor, follows the stream and starts catching up (in the background). */
  async start(stream: EventStream): Promise<void> {
    this.cursor = await this.loadCursor();
    this.unsubscribe = stream.onEvents((events) => {
      if (events.some((e) => MESSAGE_EVENTS.includes(e.type))) this.wake();
    });
    this.wake();
  }

  /** Stops following the stream and waits for the batch in flight. */
  async stop(): Promise<void> {
    this.stopped = true;
    this.unsubscribe?.();
    clearTimeout(this.retryTimer);
    clearTimeout(this.standbyTimer);
    await this.runner.idle();
    await this.db
      .query('UPDATE search_index_cursor SET leader = NULL, lease_until = NULL WHERE index_name = $1 AND leader = $2', [this.index.indexName, this.nodeId])
      .catch((err) => this.log.warn({ err }, 'could not release the search indexing lease'));
  }

  /** Resolves once every event up to `position` is applied (it wakes the indexer if idle). */
  waitFor(position: number): Promise<void> {
    if (this.cursor >= position) return Promise.resolve();
    return new Promise((resolve) => {
      const check = (at: number) => {
        if (at < position) return;
        this.off('indexed', check);
        resolve();
      };
      this.on('indexed', check);
      this.wake();
    });
  }

  /**
   * Applies the settings, then every event past the cursor, batch by batch, until none is left.
   * @throws the first failure (the cursor stays at the last confirmed batch).
   */
  async catchUp(): Promise<void> {
    if (!this.settingsApplied) {
      await this.index.applySettings();
      this.settingsApplied = true;
    }
    while ((await this.step()) === BATCH && !this.stopped);
  }

  /**
   * Claims or renews the lease. @returns the shared cursor when this indexer leads, null when another
   * indexer holds an unexpired lease (`force` takes it regardless: reindex).
   */
  private async lease(force = false): Promise<number | null> {
    const { rows } = await this.db.query<{ position: number }>(
      `INSERT INTO search_index_cursor (index_name, position, leader, lease_until) VALUES ($1, 0, $2, now() + make_interval(secs => $3))
       ON CONFLICT (index_name) DO UPDATE SET leader = $2, lease_until = now() + make_interval(secs => $3)
         WHERE $4 OR search_index_cursor.leader IS NULL OR search_index_cursor.leader = $2 OR search_index_cursor.lease_until < now()
       RETURNING position`,
      [this.index.indexName, this.nodeId, LEASE_S, force],
    );
    return rows[0]?.position ?? null;
  }

  /** Clears the index, resets the cursor to 0 and rebuilds everything (`switchboard search reindex`). */
  async reindex(): Promise<void> {
    await this.index.applySettings();
    this.settingsApplied = true;
    await this.lease(true);
    await this.index.clear();
    await this.db.query('UPDATE search_index_cursor SET position = 0, updated_at = now() WHERE index_name = $1', [this.index.indexName]);
    this.cursor = 0;
    await this.catchUp();
  }

  /** Resolves once no batch is in progress. */
  idle(): Promise<void> {
    return this.runner.idle();
  }

  private wake(): void {
    if (this.stopped || this.retryTimer) return;
    this.runner.wake();
  }

  private async run(): Promise<void> {
    if (this.stopped || this.retryTimer) return; // a wake during a failed run waits for the backoff
    try {
      await this.catchUp();
      this.failures = 0;
    } catch (err) {
      if (this.stopped) return;
      const delay = Math.min(BACKOFF_MAX_MS, BACKOFF_BASE_MS * 2 ** this.failures++);
      this.log.warn({ err, position: this.cursor, retry_in_ms: delay }, 'search indexing failed; retrying');
      this.retryTimer = setTimeout(() => {
        this.retryTimer = undefined;
        this.wake();
      }, delay);
      this.retryTimer.unref();
      this.emit('failed', err, delay);
    }
  }

  /** Applies one batch of events, when this indexer holds the lease. @returns how many events it read. */
  private async step(): Promise<number> {
    const shared = await this.lease();
    if (shared === null) {
      this.standBy();
      return 0;
    }
    this.cursor = shared; // the row is the truth: a reindex or another leader may have moved it
    const { rows } = await this.db.query<{ stream_position: number; message_id: string | null }>(
      `SELECT stream_position,
              CASE WHEN type = ANY($3::text[]) THEN COALESCE(payload->'message'->>'id', payload->>'message_id') END AS message_id
       FROM room_events WHERE stream_position > $1 ORDER BY stream_position LIMIT $2`,
      [this.cursor, BATCH, MESSAGE_EVENTS],
    );
    if (rows.length === 0) return 0;
    const ids = [...new Set(rows.flatMap((r) => (r.message_id ? [r.message_id] : [])))];
    if (ids.length) {
      const docs = await this.loadDocuments(ids);
      const live = new Set(docs.map((d) => d.id));
      const gone = ids.filter((id) => !live.has(id));
      if (docs.length) await this.index.upsert(docs);
      if (gone.length) await this.index.remove(gone);
    }
    const last = rows[rows.length - 1].stream_position;
    // Only while still leading: a reindex that took the lease meanwhile has reset the cursor, and
    // moving it forward again would make the reindex skip what it must replay.
    const { rowCount } = await this.db.query(
      `UPDATE search_index_cursor SET position = GREATEST(position, $2), updated_at = now() WHERE index_name = $1 AND leader = $3`,
      [this.index.indexName, last, this.nodeId],
    );
    if (rowCount === 0) {
      this.standBy();
      return 0;
    }
    this.cursor = last;
    this.emit('indexed', last);
    return rows.length;
  }

  /** Another indexer leads: look again once its lease could have lapsed (it may have crashed). */
  private standBy(): void {
    if (this.standbyTimer || this.stopped) return;
    this.standbyTimer = setTimeout(() => {
      this.standbyTimer = undefined;
      this.wake();
    }, LEASE_S * 1000).unref();
  }

  private async loadCursor(): Promise<number> {
    const { rows } = await this.db.query<{ position: number }>('SELECT position FROM search_index_cursor WHERE index_name = $1', [this.index.indexName]);
    return rows[0]?.position ?? 0;
  }

  /** Documents for the given message ids that exist and are not redacted. */
  private async loadDocuments(ids: string[]): Promise<MessageDocument[]> {
    const { rows } = await this.db.query<MessageDocument>(
      `SELECT m.id, m.room_id, m.user_id, u.name AS user_name, m.content,
              floor(extract(epoch FROM m.created_at) * 1000) / 1000 AS created_at,
              EXISTS (SELECT 1 FROM message_attachments a WHERE a.message_id = m.id) AS has_attachment
       FROM messages m JOIN users u ON u.id = m.user_id
       WHERE m.id = ANY($1::uuid[]) AND m.deleted_at IS NULL`,
      [ids],
    );
    return rows.map((r) => ({ ...r, created_at: Number(r.created_at) }));
  }
}
