/**
 * The bridge's durable state: a key -> JSON value map kept in memory and persisted as an append-only
 * JSON-lines log (`state.jsonl` in the bridge's data dir), one line per atomic batch, fsync'ed before
 * the write resolves (concurrent writes share one fsync: group commit).
 *
 * Why a file and not a database: a bridge is a separate process that talks to the hub only over HTTP,
 * so it must not share the hub's database (and the embedded PGlite is single-session and not reachable
 * from another process); no SQLite binding is installed; and its state (id mappings, queue, dedupe
 * keys) is small enough to hold in memory. Crash safety: a batch is one line, so a crash mid-write
 * leaves at most a torn last line, which `open` ignores; the batch it held was never acknowledged.
 * On open the log is compacted (live keys written to a temp file, fsync'ed, renamed over the log).
 */
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';

export type Op = { put: string; value: unknown } | { del: string };

export class FileStore {
  private readonly map = new Map<string, unknown>();
  private handle!: fsp.FileHandle;
  private pending: { line: string; resolve: () => void; reject: (err: unknown) => void }[] = [];
  private flushing: Promise<void> | null = null;
  /** Lines ignored on open because they were torn (crash mid-write). */
  tornLines = 0;

  private constructor(readonly file: string) {}

  /**
   * Opens (or creates) the store at `file`, replays it and compacts it.
   * @param keep called for each live key on compaction; return false to drop it (e.g. expired dedupe keys).
   */
  static async open(file: string, keep: (key: string, value: unknown) => boolean = () => true): Promise<FileStore> {
    const store = new FileStore(file);
    await fsp.mkdir(path.dirname(file), { recursive: true });
    const text = fs.existsSync(file) ? await fsp.readFile(file, 'utf8') : '';
    for (const line of text.split('\n')) {
      if (!line) continue;
      let ops: Op[];
      try {
        ops = JSON.parse(line);
      } catch {
        store.tornLines++;
        continue;
      }
      store.applyOps(ops);
    }
    for (const [key, value] of store.map) if (!keep(key, value)) store.map.delete(key);
    const tmp = `${file}.tmp`;
    const entries = [...store.map].map(([put, value]) => JSON.stringify([{ put, value }]));
    await fsp.writeFile(tmp, entries.length ? entries.join('\n') + '\n' : '');
    const h = await fsp.open(tmp, 'r+');
    await h.sync();
    await h.close();
    await fsp.rename(tmp, file);
    const dir = await fsp.open(path.dirname(file), 'r');
    await dir.sync().catch(() => undefined);
    await dir.close();
    store.handle = await fsp.open(file, 'a');
    return store;
  }

  get<T = unknown>(key: string): T | undefined {
    return this.map.get(key) as T | undefined;
  }

  has(key: string): boolean {
    return this.map.has(key);
  }

  /** Live entries whose key starts with `prefix`, in first-insertion order. */
  entries<T = unknown>(prefix: string): [string, T][] {
    const out: [string, T][] = [];
    for (const [k, v] of this.map) if (k.startsWith(prefix)) out.push([k, v as T]);
    return out;
  }

  /**
   * Applies `ops` atomically: visible in memory at once, durable (fsync'ed) when the promise resolves.
   * Either all of a batch survives a crash or none of it.
   */
  batch(ops: Op[]): Promise<void> {
    if (ops.length === 0) return Promise.resolve();
    this.applyOps(ops);
    return new Promise((resolve, reject) => {
      this.pending.push({ line: JSON.stringify(ops) + '\n', resolve, reject });
      if (!this.flushing) this.flushing = this.flush();
    });
  }

  put(key: string, value: unknown): Promise<void> {
    return this.batch([{ put: key, value }]);
  }

  del(key: string): Promise<void> {
    return this.batch([{ del: key }]);
  }

  async close(): Promise<void> {
    while (this.flushing) await this.flushing;
    await this.handle?.close();
  }

  private applyOps(ops: Op[]): void {
    for (const op of ops) {
      if ('put' in op) this.map.set(op.put, op.value);
      else this.map.delete(op.del);
    }
  }

  private async flush(): Promise<void> {
    while (this.pending.length) {
      const batch = this.pending.splice(0);
      try {
        await this.handle.write(batch.map((p) => p.line).join(''));
        await this.handle.datasync();
        for (const p of batch) p.resolve();
      } catch (err) {
        for (const p of batch) p.reject(err);
      }
    }
    this.flushing = null;
  }
}
