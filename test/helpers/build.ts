/**
 * Vitest global setup: some tests run the compiled hub (`npm start`, `node bin/switchboard.js`),
 * which loads dist/, and the hub serves the built web client (web/dist). When a source under src/,
 * bridges/, sdk/src/ or web/ (or a tsconfig) is newer than the builds, this rebuilds them first
 * (`npm run build`, a few seconds), so those tests never run stale code.
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
  const markers = ['dist/src/cli.js', 'web/dist/index.html'].map((f) => path.join(REPO_ROOT, f));
  const built = Math.min(...markers.map((m) => (fs.existsSync(m) ? fs.statSync(m).mtimeMs : 0)));
  const sources = Math.max(
    ...['src', 'bridges', 'sdk/src', 'web/src', 'web/public'].map((dir) => newestMtime(path.join(REPO_ROOT, dir))),
    ...['tsconfig.json', 'tsconfig.build.json', 'web/index.html', 'web/vite.config.ts'].map((f) => fs.statSync(path.join(REPO_ROOT, f)).mtimeMs),
  );
  if (sources > built) execFileSync('npm', ['run', 'build'], { cwd: REPO_ROOT, stdio: 'inherit' });
}
