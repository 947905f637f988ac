/**
 * One process at a time opens the embedded database: a second gets a clear refusal, not two writers;
 * a lock whose recorded holder died (kill -9) is taken over at once, without waiting for staleness.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
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

  it('takes over at once a fresh lock whose holder on this host is dead, and refuses one whose holder lives', async () => {
    const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'sb-lock-'));
    const pgdata = path.join(dataDir, 'pgdata');
    fs.mkdirSync(pgdata);
    /** A lock as a holder with `pid` leaves it: fresh mtime, owner.json inside. */
    const leaveLock = (pid: number) => {
      fs.rmSync(`${pgdata}.lock`, { recursive: true, force: true });
      fs.mkdirSync(`${pgdata}.lock`);
      fs.writeFileSync(path.join(`${pgdata}.lock`, 'owner.json'), JSON.stringify({ pid, hostname: os.hostname(), token: 'x' }));
    };
    try {
      // A process that has exited: its pid is free (and not reused within this test).
      const dead = spawnSync(process.execPath, ['-e', 'console.log(process.pid)'], { encoding: 'utf8' });
      leaveLock(Number(dead.stdout.trim()));
      // The lock is fresh (a wait for staleness would be refused at once: no retries), so only a takeover lets it in.
      const taken = migrate(dataDir);
      expect({ status: taken.status, stderr: taken.stderr }).toEqual({ status: 0, stderr: '' });
      expect(fs.existsSync(`${pgdata}.lock`)).toBe(false); // released on exit

      leaveLock(process.pid); // this test's process is alive
      const refused = migrate(dataDir);
      expect(refused.status).toBe(1);
      expect(refused.stderr).toMatch(/in use by another Switchboard process/);
    } finally {
      fs.rmSync(dataDir, { recursive: true, force: true });
    }
  }, 120_000);
});
