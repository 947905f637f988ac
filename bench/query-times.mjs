/**
 * Preloaded into a hub process by `npm run bench` with BENCH_QUERY_TIMES=<dir> (`node --import`):
 * times every statement the hub's `pg` clients run, from `client.query` to its result (so a
 * statement's time includes waiting for the server: its round trip and its queue), and when the
 * process exits writes `<dir>/queries.<pid>.txt`: one line per statement text (its first 90
 * characters), most total time first, with the count, the total ms and the mean ms.
 * Plain JavaScript: it runs before the hub's own loader.
 */
import fs from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';

/** Starts timing the statements of this process; writes the table into `dir` at exit. */
export function timeQueries(dir) {
  const pg = createRequire(path.join(process.cwd(), 'package.json'))('pg');
  const stats = new Map();
  const query = pg.Client.prototype.query;
  pg.Client.prototype.query = function (config, values, callback) {
    const text = typeof config === 'string' ? config : (config?.text ?? '?');
    const started = process.hrtime.bigint();
    const result = query.call(this, config, values, callback);
    const record = () => {
      const key = text.replace(/\s+/g, ' ').slice(0, 90);
      const s = stats.get(key) ?? { n: 0, ms: 0 };
      s.n++;
      s.ms += Number(process.hrtime.bigint() - started) / 1e6;
      stats.set(key, s);
    };
    if (result && typeof result.then === 'function') result.then(record, () => undefined);
    return result;
  };
  process.on('exit', () => {
    const lines = [...stats]
      .sort((a, b) => b[1].ms - a[1].ms)
      .map(([key, s]) => `${String(s.n).padStart(8)} ${s.ms.toFixed(0).padStart(9)} ms ${(s.ms / s.n).toFixed(2).padStart(7)} ms/each  ${key}`);
    fs.writeFileSync(path.join(dir, `queries.${process.pid}.txt`), `   count     total      mean  statement\n${lines.join('\n')}\n`);
  });
}
