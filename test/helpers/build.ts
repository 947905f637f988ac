/**
 * Vitest global setup: some tests run the compiled hub (`npm start`, `node bin/switchboard.js`),
 * which loads dist/. When a source under src/ or bridges/ (or a tsconfig) is newer than the build,
 * this rebuilds it first (`npm run build`, a few seconds), so those tests never run stale code.
 * After `npm install` / `npm ci` the build is fresh and nothing runs.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { REPO_ROOT } from '../e2e/spawn.js';

/** Newest modification time (ms) of `dir` and everything under it; 0 when it is absent. */
function newestMtime(dir: string): number {
  if (!fs.existsSync(dir)) return 0;
  const entries = fs.readdirSync(dir, { recursive: true, encoding: 'utf8' });
  return Math.max(fs.statSync(dir).mtimeMs, ...entries.map((entry) => fs.statSync(path.join(dir, entry)).mtimeMs));
}

export default function setup(): void {
  const marker = path.join(REPO_ROOT, 'dist/src/cli.js');
  const built = fs.existsSync(marker) ? fs.statSync(marker).mtimeMs : 0;
  const sources = Math.max(
    newestMtime(path.join(REPO_ROOT, 'src')),
    newestMtime(path.join(REPO_ROOT, 'bridges')),
    ...['tsconfig.json', 'tsconfig.build.json'].map((f) => fs.statSync(path.join(REPO_ROOT, f)).mtimeMs),
  );
  if (sources > built) execFileSync('npm', ['run', 'build'], { cwd: REPO_ROOT, stdio: 'inherit' });
}
