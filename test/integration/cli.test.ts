/**
 * The `switchboard` command as an operator runs it: the compiled bin (`node bin/switchboard.js`, so
 * dist/), in a minimal environment. --version, did-you-mean for commands and flags, one-line errors
 * and their exit codes (3: cannot listen, 4: data dir not writable), and the ways `user create` gets a
 * password: --password-stdin, and a hidden prompt on a terminal (a real pty from util-linux `script`).
 * With DATABASE_URL the commands use a scratch database on that server, else the embedded one.
 */
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PACKAGE_VERSION } from '../../src/lib/package.js';
import { REPO_ROOT, freePort } from '../e2e/spawn.js';
import { api, createScratchDatabase, startTestHub } from '../helpers/hub.js';

const BIN = path.join(REPO_ROOT, 'bin/switchboard.js');
const ENV = { PATH: process.env.PATH, HOME: process.env.HOME };

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs the bin to completion; `input` is written to its stdin (which is otherwise empty). */
function run(args: string[], opts: { input?: string; uid?: number } = {}): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, ...args], {
      cwd: os.tmpdir(),
      env: ENV,
      stdio: ['pipe', 'pipe', 'pipe'],
      ...(opts.uid !== undefined ? { uid: opts.uid, gid: opts.uid } : {}),
    });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d) => (stderr += d));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
    child.stdin.end(opts.input ?? '');
  });
}

const quote = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;

/**
 * Runs the bin on a pseudo-terminal (`script -qec <command> /dev/null`) and types `answers[i]` (plus
 * Enter) once the i-th password prompt has appeared. @returns the exit code and everything the
 * terminal showed.
 */
function onTerminal(args: string[], answers: string[]): Promise<{ code: number | null; screen: string }> {
  return new Promise((resolve, reject) => {
    const command = [process.execPath, BIN, ...args].map(quote).join(' ');
    const child = spawn('script', ['-qec', command, '/dev/null'], { cwd: os.tmpdir(), env: { ...ENV, TERM: 'dumb' }, stdio: ['pipe', 'pipe', 'inherit'] });
    let screen = '';
    let typed = 0;
    child.stdout.setEncoding('utf8').on('data', (d: string) => {
      screen += d;
      const prompts = (screen.match(/Password(?: again)?: /g) ?? []).length;
      for (; typed < prompts && typed < answers.length; typed++) child.stdin.write(`${answers[typed]}\r`);
    });
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, screen }));
  });
}

/** Something listening on 127.0.0.1:<port> until `close()`. */
async function occupy(): Promise<{ port: number; close(): Promise<void> }> {
  const port = await freePort();
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
  return { port, close: () => new Promise((resolve) => server.close(() => resolve())) };
}

const noStack = (text: string) => expect(text).not.toMatch(/\n\s+at /);

/** Whether any user may reach `file` (every directory above it searchable) with the permission `bits` (0o001 run, 0o004 read). */
function othersMay(file: string, bits: number): boolean {
  const real = fs.realpathSync(file);
  const parts = real.split(path.sep).slice(1, -1);
  const dirs = [path.sep, ...parts.map((_, i) => path.sep + parts.slice(0, i + 1).join(path.sep))];
  return dirs.every((d) => (fs.statSync(d).mode & 0o001) !== 0) && (fs.statSync(real).mode & bits) !== 0;
}

// Root may write anywhere, so the EACCES case runs the CLI as nobody, who must be able to run this
// node and read the bin.
const ROOT_USER = process.getuid?.() === 0;
const CAN_TEST_EACCES = !ROOT_USER || (othersMay(process.execPath, 0o001) && othersMay(BIN, 0o004));

let tmp: string;
beforeAll(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'sb-cli-'));
});
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

describe('switchboard command', () => {
  it('--version prints the package version', async () => {
    const res = await run(['--version']);
    expect(res).toEqual({ code: 0, stdout: `${PACKAGE_VERSION}\n`, stderr: '' });
  });

  it('suggests the closest command or flag for a misspelt one', async () => {
    const serv = await run(['serv']);
    expect(serv.code).toBe(1);
    expect(serv.stderr).toBe("error: unknown command 'serv'\n(Did you mean serve?)\n");
    expect((await run(['user', 'creat'])).stderr).toContain('(Did you mean create?)');
    const flag = await run(['validate-config', '--prot', '9000']);
    expect(flag.code).toBe(1);
    expect(flag.stderr).toContain('(Did you mean --port?)');
  });

  it('exits 4 with one line when the data dir cannot be created', async () => {
    fs.writeFileSync(path.join(tmp, 'a-file'), '');
    const notDir = await run(['serve', '--data-dir', path.join(tmp, 'a-file', 'data')]);
    expect(notDir.code).toBe(4);
    expect(notDir.stderr).toBe(`error: cannot write to the data directory ${path.join(tmp, 'a-file', 'data')} (data_dir): ENOTDIR\n`);
  });

  it.skipIf(!CAN_TEST_EACCES)(`exits 4 with one line when the data dir is not writable${CAN_TEST_EACCES ? '' : ` (skipped: as root it runs as nobody, who cannot reach ${process.execPath} or ${BIN})`}`, async () => {
    const locked = fs.mkdtempSync(path.join(os.tmpdir(), 'sb-cli-locked-'));
    fs.chmodSync(locked, 0o555);
    try {
      const denied = await run(['serve', '--data-dir', locked], { uid: ROOT_USER ? 65534 : undefined });
      expect(denied.code).toBe(4);
      expect(denied.stderr).toBe(`error: cannot write to the data directory ${locked} (data_dir): EACCES\n`);
    } finally {
      fs.rmSync(locked, { recursive: true, force: true });
    }
  });

  describe('on a database', { timeout: 90_000 }, () => {
    let scratch: Awaited<ReturnType<typeof createScratchDatabase>> | null = null;
    let dataDir: string;
    /** The flags that point a command at the test's database (and data dir). */
    let target: string[];

    beforeAll(async () => {
      dataDir = path.join(tmp, 'data');
      scratch = process.env.DATABASE_URL ? await createScratchDatabase(process.env.DATABASE_URL) : null;
      target = ['--data-dir', dataDir, '--log-level', 'silent', ...(scratch ? ['--database-url', scratch.url] : [])];
    });
    afterAll(async () => {
      await scratch?.drop();
    });

    it('exits 3 with one line when the port, or the metrics port, is in use, and leaves the database closed', async () => {
      const busy = await occupy();
      try {
        const res = await run(['serve', ...target, '--port', String(busy.port)]);
        expect(res.stderr).toBe(`error: cannot listen on 127.0.0.1:${busy.port}: the address is already in use\n`);
        expect(res.code).toBe(3);

        const configFile = path.join(tmp, 'metrics.toml');
        fs.writeFileSync(configFile, `[metrics]\nlisten = "127.0.0.1:${busy.port}"\n`);
        const metrics = await run(['serve', ...target, '--port', '0', '-c', configFile]);
        expect(metrics.stderr).toBe(`error: cannot listen on 127.0.0.1:${busy.port}: the address is already in use\n`);
        expect(metrics.code).toBe(3);
      } finally {
        await busy.close();
      }
      // The failed starts released the embedded database (its lock would make this exit 1).
      const migrate = await run(['migrate', ...target]);
      expect(migrate.stderr).toBe('');
      expect(migrate.stdout).toBe('no pending migrations\n');
    });

    it('user create takes --password-stdin, asks twice at a hidden prompt on a terminal, and refuses without a password', async () => {
      const stdin = await run(['user', 'create', ...target, '--email', 'piped@example.test', '--name', 'Piped', '--password-stdin'], { input: 'piped password 1\n' });
      expect(stdin.stderr).toBe('');
      expect(stdin.stdout).toMatch(/^created user [0-9a-f-]{36} <piped@example\.test>\n$/);

      const typed = await onTerminal(['user', 'create', ...target, '--email', 'typed@example.test', '--name', 'Typed'], ['typed password 2', 'typed password 2']);
      expect(typed.code).toBe(0);
      expect(typed.screen).toMatch(/Password: \r?\nPassword again: \r?\ncreated user [0-9a-f-]{36} <typed@example\.test>/);
      expect(typed.screen).not.toContain('typed password 2');

      const differ = await onTerminal(['user', 'create', ...target, '--email', 'differ@example.test', '--name', 'Differ'], ['first password', 'second password']);
      expect(differ.code).toBe(1);
      expect(differ.screen).toContain('error: the two passwords differ');
      noStack(differ.screen);

      const none = await run(['user', 'create', ...target, '--email', 'none@example.test', '--name', 'None']);
      expect(none.code).toBe(1);
      expect(none.stderr).toBe('error: no password: use --password-stdin, --password or env NEW_USER_PASSWORD (or run on a terminal to be asked)\n');
      const short = await run(['user', 'create', ...target, '--email', 'short@example.test', '--name', 'Short', '--password-stdin'], { input: 'short\n' });
      expect(short.code).toBe(1);
      expect(short.stderr).toBe('error: the password must have at least 8 characters\n');
      const both = await run(['user', 'create', ...target, '--email', 'both@example.test', '--name', 'Both', '--password', 'x'.repeat(10), '--password-stdin']);
      expect(both.code).toBe(1);
      expect(both.stderr).toContain('cannot be used with option');

      // The passwords that were piped and typed are the ones that log in.
      const t = await startTestHub(scratch ? { database: { url: scratch.url } } : { data_dir: dataDir });
      try {
        const login = (email: string, password: string) => api(t.url, 'POST', '/api/auth/login', { body: { email, password } });
        expect((await login('piped@example.test', 'piped password 1')).status).toBe(200);
        expect((await login('typed@example.test', 'typed password 2')).status).toBe(200);
        expect((await login('differ@example.test', 'first password')).status).toBe(401);
      } finally {
        await t.close();
      }
    });
  });
});

describe('generate-config', () => {
  it('prints config.example.toml from the compiled CLI too', () => {
    const res = spawnSync(process.execPath, [BIN, 'generate-config'], { env: ENV, encoding: 'utf8' });
    expect(res.status).toBe(0);
    expect(res.stdout).toBe(fs.readFileSync(path.join(REPO_ROOT, 'config.example.toml'), 'utf8'));
  });
});
