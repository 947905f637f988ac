/**
 * Deterministic interleavings of concurrent writes, for race tests against a real PostgreSQL: every
 * room-event write ends by taking the stream's advisory lock, so holding that lock from a separate
 * session parks each writer there (or on a row lock before it) until `release()`.
 */
import pg from 'pg';
import { STREAM_LOCK_KEY } from '../../src/events/events.repository.js';
import type { TestHub } from './hub.js';

export interface HeldStreamLock {
  /** Resolves once `n` other sessions of the hub's database are waiting on a lock (of any kind). */
  waiting(n: number, timeoutMs?: number): Promise<void>;
  /** Lets the parked writers go, one at a time in the order the lock manager grants. */
  release(): Promise<void>;
}

export async function holdStreamLock(t: TestHub): Promise<HeldStreamLock> {
  const client = new pg.Client({ connectionString: t.config.database.url });
  await client.connect();
  await client.query('BEGIN');
  await client.query('SELECT pg_advisory_xact_lock($1)', [STREAM_LOCK_KEY]);
  return {
    async waiting(n, timeoutMs = 5000) {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const { rows } = await client.query<{ n: number }>(
          `SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock' AND pid <> pg_backend_pid()`,
        );
        if (rows[0].n >= n) return;
        if (Date.now() > deadline) throw new Error(`only ${rows[0].n} of ${n} sessions are waiting on a lock`);
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
    },
    async release() {
      await client.query('COMMIT');
      await client.end();
    },
  };
}
