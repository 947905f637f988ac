/** One process at a time opens the embedded database: a second gets a clear refusal, not two writers. */
import { spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { startTestHub } from '../helpers/hub.js';

function migrate(dataDir: string) {
  return spawnSync(process.execPath, ['--import', 'tsx', 'src/cli.ts', 'migrate', '--data-dir', dataDir, '--log-level', 'silent'], {
    env: { PATH: process.env.PATH, HOME: process.env.HOME },
    encoding: 'utf8',
    timeout: 60_000,
  });
}

describe('embedded database lock', () => {
  it('refuses a second process while a hub holds the data dir, and lets it in once the hub stops', async () => {
    const t = await startTestHub({ database: { url: '' } });
    const dataDir = t.config.data_dir;
    const refused = migrate(dataDir);
    expect(refused.status).toBe(1);
    expect(refused.stderr).toMatch(/^error: the embedded database in .* is in use by another Switchboard process/m);
    await t.app.close(); // stops the hub and releases the lock; t.close() then removes the data dir
    const allowed = migrate(dataDir);
    expect(allowed.stderr).toBe('');
    expect(allowed.status).toBe(0);
    await t.close();
  }, 120_000); // two CLI processes that each start PGlite: tens of seconds on a loaded machine
});
