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
 * It is a follower of the log (events/follower.ts): woken by the stream reader (`EventStream.onEvents`),
 * not by polling; on start it catches up from its cursor; on failure it retries with the shared
 * backoff (0.25 s doubling up to 30 s).
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
import { messageIdOf } from '../../events/catalog.js';
import { Follower } from '../../events/follower.js';
import { readAfter, type EventStream } from '../../events/stream.js';
import { messagesRepository } from '../messages/messages.repository.js';
import { MeilisearchIndex, type MessageDocument } from './meilisearch-index.js';
import { searchRepository as repo } from './search.repository.js';

const BATCH = 500;
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
  private readonly follower: Follower;
  private unsubscribe?: () => void;
  private settingsApplied = false;

  constructor(
    private readonly db: Queryable,
    private readonly index: MeilisearchIndex,
    private readonly log: Logger,
  ) {
    super();
    this.follower = new Follower({
      name: 'search indexer',
      log,
      step: async () => {
        await this.applySettingsOnce();
        return (await this.step()) === BATCH;
      },
      retry: { baseMs: 250, maxMs: 30_000 },
      onFailure: (err, retryInMs) => this.emit('failed', err, retryInMs),
    });
  }

  /** The last stream position applied and confirmed. */
  get position(): number {
    return this.cursor;
  }

  /** Loads the persisted cursor, follows the stream and starts catching up (in the background). */
  async start(stream: EventStream): Promise<void> {
    this.cursor = await repo.position(this.db, this.index.indexName);
    this.unsubscribe = stream.onEvents((events) => {
      if (events.some((e) => messageIdOf(e.payload) !== null)) this.follower.wake();
    });
    this.follower.wake();
  }

  /** Stops following the stream and waits for the batch in flight. */
  async stop(): Promise<void> {
    this.unsubscribe?.();
    clearTimeout(this.standbyTimer);
    await this.follower.stop();
    await repo
      .release(this.db, this.index.indexName, this.nodeId)
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
      this.follower.wake();
    });
  }

  /**
   * Applies the settings, then every event past the cursor, batch by batch, until none is left.
   * @throws the first failure (the cursor stays at the last confirmed batch).
   */
  async catchUp(): Promise<void> {
    await this.applySettingsOnce();
    while ((await this.step()) === BATCH && !this.follower.isStopped);
  }

  private async applySettingsOnce(): Promise<void> {
    if (this.settingsApplied) return;
    await this.index.applySettings();
    this.settingsApplied = true;
  }

  /**
   * Claims or renews the lease. @returns the shared cursor when this indexer leads, null when another
   * indexer holds an unexpired lease (`force` takes it regardless: reindex).
   */
  private lease(force = false): Promise<number | null> {
    return repo.lease(this.db, this.index.indexName, this.nodeId, LEASE_S, force);
  }

  /** Clears the index, resets the cursor to 0 and rebuilds everything (`switchboard search reindex`). */
  async reindex(): Promise<void> {
    await this.index.applySettings();
    this.settingsApplied = true;
    await this.lease(true);
    await this.index.clear();
    await repo.reset(this.db, this.index.indexName);
    this.cursor = 0;
    await this.catchUp();
  }

  /** Resolves once no batch is in progress. */
  idle(): Promise<void> {
    return this.follower.idle();
  }

  /** Applies one batch of events, when this indexer holds the lease. @returns how many events it read. */
  private async step(): Promise<number> {
    const shared = await this.lease();
    if (shared === null) {
      this.standBy();
      return 0;
    }
    this.cursor = shared; // the row is the truth: a reindex or another leader may have moved it
    const rows = await readAfter(this.db, this.cursor, BATCH);
    if (rows.length === 0) return 0;
    const ids = [...new Set(rows.flatMap((r) => messageIdOf(r.payload) ?? []))];
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
    if (!(await repo.advance(this.db, this.index.indexName, last, this.nodeId))) {
      this.standBy();
      return 0;
    }
    this.cursor = last;
    this.emit('indexed', last);
    return rows.length;
  }

  /** Another indexer leads: look again once its lease could have lapsed (it may have crashed). */
  private standBy(): void {
    if (this.standbyTimer || this.follower.isStopped) return;
    this.standbyTimer = setTimeout(() => {
      this.standbyTimer = undefined;
      this.follower.wake();
    }, LEASE_S * 1000).unref();
  }


  /** Documents for the given message ids that exist and are not redacted. */
  private async loadDocuments(ids: string[]): Promise<MessageDocument[]> {
    // Encrypted messages are never indexed (they have no content; an index of their ids is metadata too).
    const rows = (await messagesRepository.findLiveByIds(this.db, ids)).filter((m) => !m.envelopes);
    return rows.map((m) => ({
      id: m.id,
      room_id: m.room_id,
      user_id: m.user_id,
      user_name: m.user_name,
      content: m.content,
      created_at: m.created_at.getTime() / 1000,
      has_attachment: (m.attachments ?? []).length > 0,
    }));
  }
}
