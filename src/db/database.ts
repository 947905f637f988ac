/**
 * PostgreSQL access. One `pg` code path serves both an external PostgreSQL (`database.url`) and the
 * embedded default: PGlite under `<data_dir>/pgdata`, served over the Postgres wire protocol on a
 * loopback port by `@electric-sql/pglite-socket`.
 *
 * PGlite is a single-session database; its socket server multiplexes connections onto that one session,
 * so two transactions on two connections would interleave. The embedded pool therefore has exactly one
 * connection: statements and transactions queue in order. Code running inside `transaction()` must
 * use the client it was handed, never the pool, or it would wait for itself.
 *
 * Losing the database is survived here, in one place (docs/OPERATIONS.md, "During a database
 * outage"): every connection has an `'error'` listener from the moment it is made to its end (a backend
 * terminated at any moment must not kill the process), a client whose connection broke is dropped from the pool
 * (one whose statement merely failed is kept), transient failures (`transientFailure`) are retried
 * with backoff for up to `RETRY_BUDGET_MS` when retrying cannot apply anything twice, and what is
 * still failing after that is thrown as `AppError('DATABASE_UNAVAILABLE')` (503; WebSocket `error`).
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import lockfile from 'proper-lockfile';
import { runner } from 'node-pg-migrate';
import type { Logger } from 'pino';
import type { Config } from '../config/schema.js';
import { AppError } from '../errors.js';
import { backoffDelay } from '../lib/backoff.js';
import { PACKAGE_ROOT } from '../lib/package.js';

/** Anything that runs a query: the pool or a client inside a transaction. */
export interface Queryable {
  query<R extends pg.QueryResultRow = any>(text: string, values?: unknown[]): Promise<pg.QueryResult<R>>;
}

export interface Database extends Queryable {
  readonly pool: pg.Pool;
  /** True when served by the embedded PGlite. */
  readonly embedded: boolean;
  /**
   * Runs `fn` in one transaction (BEGIN … COMMIT; ROLLBACK and rethrow on any error). A transient
   * failure runs the whole transaction again (rules at the implementation in `wrap`), so `fn` may run
   * more than once and must change nothing but the database, through `tx`.
   * @param first SQL statements without parameters, run right after BEGIN in the same message (one
   *   round trip for both; READ COMMITTED gives each statement its own snapshot, so a statement sees
   *   what committed while an earlier one waited on a lock). `fn` gets the rows of the last of them.
   * @returns what `fn` returns.
   * @throws AppError DATABASE_UNAVAILABLE (503) when the database stayed unreachable for
   *   `RETRY_BUDGET_MS`, or the connection was lost during COMMIT and whether it committed cannot be
   *   found out; otherwise what `fn` or the database threw.
   */
  transaction<T>(fn: (tx: Queryable, first: pg.QueryResultRow[]) => Promise<T>, first?: string): Promise<T>;
  close(): Promise<void>;
}

/** The SQL migrations, in the package root (the same directory from src/ and from dist/). */
export const MIGRATIONS_DIR = path.join(PACKAGE_ROOT, 'migrations');

// 64-bit integers (bigserial stream positions, counts) come back as JS numbers: positions stay far below 2^53.
pg.types.setTypeParser(pg.types.builtins.INT8, (v) => Number(v));

/**
 * Opens the configured database: `database.url` when set, otherwise the embedded PGlite under
 * `<data_dir>/pgdata` (created on first run: 4–20 s measured here, depending on load; later starts reuse it).
 */
export async function openDatabase(config: Config, log?: Logger): Promise<Database> {
  if (config.database.url) {
    // A bounded wait for a connection (a black-holed server, an exhausted pool), and TCP keepalives so a
    // connection that died silently is noticed.
    const pool = new pg.Pool({ connectionString: config.database.url, max: config.database.pool_max, connectionTimeoutMillis: 5_000, keepAlive: true });
    watchConnections(pool, log);
    return wrap(pool, false, async () => pool.end(), log);
  }
  const { PGlite } = await import('@electric-sql/pglite');
  const { PGLiteSocketServer } = await import('@electric-sql/pglite-socket');
  const dir = path.resolve(config.data_dir, 'pgdata');
  fs.mkdirSync(dir, { recursive: true });
  const release = await lockDataDir(dir, log);
  const started = Date.now();
  const pglite = await PGlite.create(dir);
  // The pool uses one connection at a time; a few more are accepted so that a replacement for a dropped
  // connection is not refused while the server has not yet seen the old one close.
  const server = new PGLiteSocketServer({ db: pglite, host: '127.0.0.1', port: 0, maxConnections: 4 });
  await server.start();
  const url = `postgres://postgres@${server.getServerConn()}/postgres?sslmode=disable`;
  log?.info({ dir, ms: Date.now() - started }, 'embedded PostgreSQL (PGlite) started');
  const pool = new pg.Pool({ connectionString: url, max: 1 });
  watchConnections(pool, log);
  // The one session outlives the connections to it: a connection that replaces a dropped one starts by
  // dropping the prepared statements the old one left, or their names would be taken (queued before
  // anything the pool's user sends on it).
  pool.on('connect', (client) => void client.query('DEALLOCATE ALL').catch((err) => log?.warn({ err }, 'DEALLOCATE ALL failed')));
  return wrap(pool, true, async () => {
    await pool.end();
    await server.stop();
    await pglite.close();
    await release();
  }, log);
}

/** Another process (a running hub, a CLI command) holds the embedded database. */
export class DatabaseInUseError extends Error {
  override name = 'DatabaseInUseError';
}

/**
 * One process at a time may open the embedded database: a second PGlite on the same files would
 * corrupt them. The lock (`<dir>.lock`, a directory made by proper-lockfile) is refreshed every 2 s
 * and counts as stale after 10 s. Inside it, `owner.json` records the holder (pid, hostname, a
 * random token), so a holder that died without releasing it (`kill -9`, a power cut) is recognised
 * at once: on the same host with that pid gone (or that pid being ours: a container's pid 1 after a
 * restart), the lock is taken over without waiting for it to go stale. And a holder on this host
 * that is alive keeps it even when it is late refreshing it.
 * @returns the release function.
 * @throws DatabaseInUseError when another live process holds it.
 */
async function lockDataDir(dir: string, log?: Logger): Promise<() => Promise<void>> {
  const lockPath = `${fs.realpathSync(dir)}.lock`;
  let owner: LockOwner;
  const options = {
    stale: 10_000,
    update: 2_000,
    retries: 0,
    lockfilePath: lockPath,
    fs: {
      ...fs,
      // The lock directory is made with owner.json already inside (made aside, then renamed into place:
      // atomic, and the directory's mtime, which proper-lockfile watches, is not touched afterwards).
      mkdir: (p: string, cb: (err: NodeJS.ErrnoException | null) => void) => {
        const made = `${p}.new-${crypto.randomUUID()}`;
        try {
          if (fs.existsSync(p)) throw Object.assign(new Error(`EEXIST: ${p}`), { code: 'EEXIST' });
          fs.mkdirSync(made);
          fs.writeFileSync(path.join(made, LOCK_OWNER), JSON.stringify(owner));
          fs.renameSync(made, p);
          cb(null);
        } catch (err) {
          fs.rmSync(made, { recursive: true, force: true });
          const code = (err as NodeJS.ErrnoException).code;
          cb(code === 'ENOTEMPTY' ? Object.assign(err as Error, { code: 'EEXIST' }) : (err as NodeJS.ErrnoException));
        }
      },
      // A lock whose recorded holder is a live process on this host is never stale, however long that
      // process went without refreshing it (a start blocking its event loop, a paused VM): it looks fresh.
      stat: (p: string, cb: (err: NodeJS.ErrnoException | null, st?: fs.Stats) => void) =>
        fs.stat(p, (err, st) => {
          const holder = !err && p === lockPath && !heldLocks.has(lockPath) ? readLockOwner(p) : null;
          if (holder && holder.hostname === os.hostname() && holder.pid !== process.pid && processAlive(holder.pid)) st.mtime = new Date();
          cb(err, st);
        }),
      // …and removing it removes owner.json too.
      rmdir: (p: string, cb: (err: Error | null) => void) => fs.rm(p, { recursive: true, force: true }, cb),
      rmdirSync: (p: string) => fs.rmSync(p, { recursive: true, force: true }),
    },
    onCompromised: (err: Error) => log?.error({ err }, 'lost the lock on the embedded database'),
  };
  const acquire = async () => {
    owner = { pid: process.pid, hostname: os.hostname(), token: crypto.randomUUID() };
    const release = await lockfile.lock(dir, options);
    heldLocks.add(lockPath);
    return async () => {
      heldLocks.delete(lockPath);
      await release();
    };
  };
  try {
    try {
      return await acquire();
    } catch (err) {
      if ((err as { code?: string }).code !== 'ELOCKED' || !takeOverDeadLock(lockPath, log)) throw err;
      return await acquire();
    }
  } catch (err) {
    if ((err as { code?: string }).code !== 'ELOCKED') throw err;
    throw new DatabaseInUseError(
      `the embedded database in ${dir} is in use by another Switchboard process (a running hub?); stop it first, ` +
        'or point every process at one PostgreSQL server with DATABASE_URL',
    );
  }
}

/** Who holds the embedded database's lock: `<dir>.lock/owner.json`. */
interface LockOwner {
  pid: number;
  hostname: string;
  /** Tells this holding of the lock from a later one by a process with the same pid. */
  token: string;
}
const LOCK_OWNER = 'owner.json';
/** The locks this process holds (a pid of ours in a lock we do not hold is a previous incarnation's). */
const heldLocks = new Set<string>();

/**
 * Removes the lock at `lockPath` if its recorded holder is dead: same host, and its pid is not a live
 * process (or is this process, which does not hold it). The lock is first renamed aside (atomic:
 * of two processes taking it over, one wins), then its owner is checked again, so a lock taken over
 * and re-made by another process meanwhile is put back, not removed.
 * @returns true when the lock was removed (try to acquire it again).
 */
function takeOverDeadLock(lockPath: string, log?: Logger): boolean {
  const owner = readLockOwner(lockPath);
  const ours = owner?.pid === process.pid;
  if (!owner || owner.hostname !== os.hostname() || (ours ? heldLocks.has(lockPath) : processAlive(owner.pid))) return false;
  const aside = `${lockPath}.dead-${crypto.randomUUID()}`;
  try {
    fs.renameSync(lockPath, aside);
  } catch {
    return false; // another process took it over first
  }
  if (readLockOwner(aside)?.token !== owner.token) {
    try {
      fs.renameSync(aside, lockPath);
    } catch {
      // a third process made a new lock meanwhile: it holds it
    }
    return false;
  }
  fs.rmSync(aside, { recursive: true, force: true });
  log?.warn({ pid: owner.pid, hostname: owner.hostname }, 'took over the lock of the embedded database from a process that died');
  return true;
}

/** The recorded holder of the lock directory `p`, or null without a record (being made, or an older hub's lock: only staleness frees it). */
function readLockOwner(p: string): LockOwner | null {
  try {
    return JSON.parse(fs.readFileSync(path.join(p, LOCK_OWNER), 'utf8')) as LockOwner;
  } catch {
    return null;
  }
}

/** Whether a process with this pid runs on this host (signal 0 checks without sending anything). */
function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM'; // alive, another user's
  }
}

/**
 * A query with parameters as a named prepared statement: PostgreSQL parses and plans each distinct
 * text once per connection instead of at every call. The texts are the repositories' constants, so
 * the set of names stays small.
 */
function prepared(text: string, values: unknown[] | undefined): pg.QueryConfig {
  if (!values?.length) return { text };
  let name = statementNames.get(text);
  if (!name) statementNames.set(text, (name = `sb_${crypto.createHash('sha1').update(text).digest('hex').slice(0, 20)}`));
  return { name, text, values };
}
const statementNames = new Map<string, string>();

/** How long a statement or transaction that fails transiently is tried again, ms (then DATABASE_UNAVAILABLE). */
export const RETRY_BUDGET_MS = 2_000;
/** The delays between those tries (src/lib/backoff.ts): 100 ms, doubling, at most 1 s. */
const RETRY = { baseMs: 100, maxMs: 1_000 };

/** SQLSTATEs after which the server has rolled the transaction back and the same work may succeed. */
const ROLLED_BACK = new Set([
  '40001', // serialization_failure
  '40P01', // deadlock_detected
]);
/** SQLSTATEs of a server that is going away or does not take connections now. */
const UNREACHABLE = new Set([
  '53300', // too_many_connections
  '57P01', // admin_shutdown (pg_terminate_backend, a fast shutdown)
  '57P02', // crash_shutdown
  '57P03', // cannot_connect_now (starting up, shutting down)
]);
/** Socket errors of a connection that could not be made or broke. */
const SOCKET_ERRORS = new Set(['ECONNREFUSED', 'ECONNRESET', 'EPIPE', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH', 'EAI_AGAIN']);
/** What `pg` and `pg-pool` say (without a code) when a connection could not be made or broke; PostgreSQL's refusal under `ALLOW_CONNECTIONS false` (55000). */
const LOST_MESSAGES = /connection terminated|connection timeout|timeout exceeded when trying to connect|not queryable|is not currently accepting connections/i;

/**
 * The one classification of database failures that may pass by themselves.
 * @returns `rolled-back` (serialization failure, deadlock: the server rolled the transaction back),
 *   `lost` (no connection could be made, or it broke: refused, reset, timed out, terminated by an
 *   administrator, too many connections, not accepting connections, class 08), or null for any
 *   other error (a bug or a rule the statement broke: not retried).
 */
export function transientFailure(err: unknown): 'rolled-back' | 'lost' | null {
  const { code, message } = (err ?? {}) as { code?: unknown; message?: unknown };
  if (typeof code === 'string' && ROLLED_BACK.has(code)) return 'rolled-back';
  if (typeof code === 'string' && (UNREACHABLE.has(code) || SOCKET_ERRORS.has(code) || code.startsWith('08'))) return 'lost';
  if (typeof message === 'string' && LOST_MESSAGES.test(message)) return 'lost';
  return null;
}

/** True for `AppError('DATABASE_UNAVAILABLE')`, what this module throws once retrying is over. */
export function isDatabaseUnavailable(err: unknown): boolean {
  return err instanceof AppError && err.code === 'DATABASE_UNAVAILABLE';
}

function unavailable(cause: unknown): AppError {
  return Object.assign(new AppError('DATABASE_UNAVAILABLE', 'The database is not reachable; try again later'), { cause });
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** The error each broken connection reported, so the code that checked it out drops it from the pool. */
const connectionErrors = new WeakMap<pg.Client, Error>();

/**
 * Gives every connection of `pool` an `'error'` listener for its whole life, added when it is made
 * (pg-pool's `connect` event). pg-pool's own listener covers only idle clients: between a new
 * connection's ReadyForQuery and its first query, or while it is checked out, an error (a backend
 * terminated: FATAL 57P01, a reset socket) would otherwise be an unhandled `'error'` event and kill
 * the process. The error is recorded in `connectionErrors`; the pool's own `'error'` event (an idle
 * client broke; it is removed) needs a listener too, and is already logged here.
 */
function watchConnections(pool: pg.Pool, log?: Logger): void {
  pool.on('connect', (client) =>
    client.on('error', (err) => {
      connectionErrors.set(client, err);
      log?.warn({ err }, 'database connection lost');
    }),
  );
  pool.on('error', () => undefined);
}

/** A transaction attempt that failed; `outcome` is set when COMMIT had been sent (then it may have committed). */
class AttemptFailed<T> extends Error {
  constructor(
    readonly error: unknown,
    readonly outcome: { value: T } | undefined,
    /** The transaction's id (`pg_current_xact_id()`), to ask whether it committed; null on the embedded database. */
    readonly xid: string | null,
  ) {
    super('transaction attempt failed');
  }
}

/** What to do after a transient failure: try again, give up (DATABASE_UNAVAILABLE), or it succeeded after all. */
type Decision<T> = 'retry' | 'give-up' | { value: T };

function wrap(pool: pg.Pool, embedded: boolean, close: () => Promise<void>, log?: Logger): Database {
  /**
   * Checks out a client for `use` and gives it back: kept when a statement merely failed, dropped
   * (`release(err)`) when its connection broke.
   */
  async function withClient<T>(use: (client: pg.PoolClient) => Promise<T>): Promise<T> {
    const client = await pool.connect();
    let broken: Error | undefined;
    try {
      return await use(client);
    } catch (err) {
      const cause = err instanceof AttemptFailed ? err.error : err;
      if (transientFailure(cause) === 'lost') broken = cause as Error;
      throw err;
    } finally {
      client.release(connectionErrors.get(client) ?? broken ?? false);
    }
  }

  /**
   * Runs `run`; after a transient failure `decide` says what to do. Tries again with backoff while
   * the next try would start within RETRY_BUDGET_MS.
   * @throws the error itself when it is not transient; DATABASE_UNAVAILABLE once retrying is over.
   */
  async function retrying<T>(run: () => Promise<T>, decide: (err: unknown) => Promise<Decision<T>>): Promise<T> {
    const deadline = Date.now() + RETRY_BUDGET_MS;
    for (let attempt = 1; ; attempt++) {
      try {
        return await run();
      } catch (err) {
        const cause = err instanceof AttemptFailed ? err.error : err;
        if (transientFailure(cause) === null) throw cause;
        const decision = await decide(err);
        if (typeof decision === 'object') return decision.value;
        const delay = backoffDelay(attempt, RETRY);
        if (decision === 'give-up' || Date.now() + delay > deadline) {
          log?.warn({ err: cause, attempt }, 'database unavailable');
          throw unavailable(cause);
        }
        log?.warn({ err: cause, attempt, retry_in_ms: delay }, 'database failure; retrying');
        await sleep(delay);
      }
    }
  }

  /**
   * After the connection was lost during COMMIT: did transaction `xid` commit? Asked on another
   * connection (`pg_xact_status`) until it is no longer in progress or the budget is spent.
   * @returns 'committed', 'aborted', or null when it cannot be found out (embedded, unreachable).
   */
  async function commitStatus(xid: string | null): Promise<'committed' | 'aborted' | null> {
    if (xid === null) return null;
    const deadline = Date.now() + RETRY_BUDGET_MS;
    for (let attempt = 1; Date.now() < deadline; attempt++) {
      try {
        const { rows } = await withClient((c) => c.query<{ status: string | null }>('SELECT pg_xact_status($1::xid8) AS status', [xid]));
        const status = rows[0]?.status;
        if (status === 'committed' || status === 'aborted') return status;
        if (status == null) return null; // too old to tell
      } catch (err) {
        if (transientFailure(err) === null) return null;
      }
      await sleep(backoffDelay(attempt, RETRY));
    }
    return null;
  }

  return {
    pool,
    embedded,
    /**
     * One statement; tried again when it never reached the server (no connection), was rolled back,
     * or is a read (`SELECT …`) whose connection broke. A write whose connection broke may have been
     * applied: DATABASE_UNAVAILABLE at once.
     */
    query(text, values) {
      const read = /^\s*SELECT\b/i.test(text);
      let sent = false;
      return retrying(
        () => {
          sent = false;
          return withClient((client) => {
            sent = true;
            return client.query(prepared(text, values));
          });
        },
        async (err) => (!sent || read || transientFailure(err) === 'rolled-back' ? 'retry' : 'give-up'),
      );
    },
    /**
     * Every attempt runs `fn` in its own BEGIN … COMMIT. A failed attempt is tried again when the
     * server rolled it back (serialization failure, deadlock) or the connection was lost before
     * COMMIT was sent (a transaction whose connection dies is rolled back). Lost during COMMIT, it is
     * asked whether it committed (`pg_xact_status`, PostgreSQL 13+, https://www.postgresql.org/docs/current/functions-info.html):
     * committed is success, aborted is tried again, unknown (always on the embedded database) is
     * DATABASE_UNAVAILABLE.
     */
    transaction<T>(fn: (tx: Queryable, first: pg.QueryResultRow[]) => Promise<T>, first?: string): Promise<T> {
      const attempt = () =>
        withClient(async (client) => {
          const tx: Queryable = { query: (text, values) => client.query(prepared(text, values)) };
          let outcome: { value: T } | undefined;
          let xid: string | null = null;
          try {
            let firstRows: pg.QueryResultRow[] = [];
            if (embedded) {
              await client.query('BEGIN');
              if (first) firstRows = lastResult(await client.query(first)).rows;
            } else {
              const results = (await client.query(`BEGIN; SELECT pg_current_xact_id()::text AS xid${first ? `; ${first}` : ''}`)) as unknown as pg.QueryResult[];
              xid = results[1].rows[0].xid;
              if (first) firstRows = results[results.length - 1].rows;
            }
            const value = await fn(tx, firstRows);
            outcome = { value };
            await client.query('COMMIT');
            return value;
          } catch (err) {
            if (transientFailure(err) !== 'lost') await client.query('ROLLBACK').catch(() => undefined);
            throw new AttemptFailed(err, outcome, xid);
          }
        });
      return retrying(attempt, async (err) => {
        const { error, outcome, xid } = err as AttemptFailed<T>;
        if (transientFailure(error) === 'rolled-back' || !outcome) return 'retry';
        const status = await commitStatus(xid);
        return status === 'committed' ? outcome : status === 'aborted' ? 'retry' : 'give-up';
      });
    },
    close,
  };
}

/** The result of the last statement of a simple query (`pg` answers an array when it held several). */
function lastResult(result: pg.QueryResult | pg.QueryResult[]): pg.QueryResult {
  return Array.isArray(result) ? result[result.length - 1] : result;
}

/**
 * Applies pending SQL migrations from `migrations/` (node-pg-migrate, one transaction, with its lock).
 * @returns the names of the migrations applied now (empty when up to date).
 */
export async function migrate(db: Database): Promise<string[]> {
  const client = await db.pool.connect();
  try {
    const applied = await runner({
      dbClient: client,
      dir: MIGRATIONS_DIR,
      direction: 'up',
      migrationsTable: 'pgmigrations',
      singleTransaction: true,
      log: () => undefined,
    });
    return applied.map((m) => m.name);
  } finally {
    client.release(connectionErrors.get(client) ?? false);
  }
}

/** `switchboard migrate`: opens the configured database, migrates it, closes it. */
export async function runMigrations(config: Config): Promise<string[]> {
  const db = await openDatabase(config);
  try {
    return await migrate(db);
  } finally {
    await db.close();
  }
}
