/**
 * PostgreSQL access. One `pg` code path serves both an external PostgreSQL (`database.url`) and the
 * embedded default: PGlite under `<data_dir>/pgdata`, served over the Postgres wire protocol on a
 * loopback port by `@electric-sql/pglite-socket`.
 *
 * PGlite is a single-session database; its socket server multiplexes connections onto that one session,
 * so two transactions on two connections would interleave. The embedded pool therefore has exactly one
 * connection: statements and transactions queue in order. Code running inside `transaction()` must
 * use the client it was handed, never the pool, or it would wait for itself.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import pg from 'pg';
import lockfile from 'proper-lockfile';
import { runner } from 'node-pg-migrate';
import type { Logger } from 'pino';
import type { Config } from '../config/schema.js';
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
   * Runs `fn` in one transaction (BEGIN … COMMIT; ROLLBACK and rethrow on any error).
   * @returns what `fn` returns.
   */
  transaction<T>(fn: (tx: Queryable) => Promise<T>): Promise<T>;
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
    const pool = new pg.Pool({ connectionString: config.database.url, max: config.database.pool_max });
    pool.on('error', (err) => log?.error({ err }, 'idle database client error'));
    return wrap(pool, false, async () => pool.end());
  }
  const { PGlite } = await import('@electric-sql/pglite');
  const { PGLiteSocketServer } = await import('@electric-sql/pglite-socket');
  const dir = path.resolve(config.data_dir, 'pgdata');
  fs.mkdirSync(dir, { recursive: true });
  const release = await lockDataDir(dir, log);
  const started = Date.now();
  const pglite = await PGlite.create(dir);
  const server = new PGLiteSocketServer({ db: pglite, host: '127.0.0.1', port: 0 });
  await server.start();
  const url = `postgres://postgres@${server.getServerConn()}/postgres?sslmode=disable`;
  log?.info({ dir, ms: Date.now() - started }, 'embedded PostgreSQL (PGlite) started');
  const pool = new pg.Pool({ connectionString: url, max: 1 });
  pool.on('error', (err) => log?.error({ err }, 'idle database client error'));
  return wrap(pool, true, async () => {
    await pool.end();
    await server.stop();
    await pglite.close();
    await release();
  });
}

/** Another process (a running hub, a CLI command) holds the embedded database. */
export class DatabaseInUseError extends Error {
  override name = 'DatabaseInUseError';
}

/**
 * One process at a time may open the embedded database: a second PGlite on the same files would
 * corrupt them. The lock (`<dir>.lock`, proper-lockfile) is refreshed every 2 s and counts as stale
 * after 10 s, so a crashed holder does not keep it.
 * @returns the release function.
 * @throws DatabaseInUseError when another live process holds it.
 */
async function lockDataDir(dir: string, log?: Logger): Promise<() => Promise<void>> {
  try {
    return await lockfile.lock(dir, {
      stale: 10_000,
      update: 2_000,
      retries: 0,
      onCompromised: (err) => log?.error({ err }, 'lost the lock on the embedded database'),
    });
  } catch (err) {
    if ((err as { code?: string }).code !== 'ELOCKED') throw err;
    throw new DatabaseInUseError(
      `the embedded database in ${dir} is in use by another Switchboard process (a running hub?); stop it first, ` +
        'or point every process at one PostgreSQL server with DATABASE_URL',
    );
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

function wrap(pool: pg.Pool, embedded: boolean, close: () => Promise<void>): Database {
  return {
    pool,
    embedded,
    query: (text, values) => pool.query(prepared(text, values)),
    async transaction(fn) {
      const client = await pool.connect();
      const tx: Queryable = { query: (text, values) => client.query(prepared(text, values)) };
      try {
        await client.query('BEGIN');
        const result = await fn(tx);
        await client.query('COMMIT');
        return result;
      } catch (err) {
        await client.query('ROLLBACK').catch(() => undefined);
        throw err;
      } finally {
        client.release();
      }
    },
    close,
  };
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
    client.release();
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
