/**
 * Runs `npm start` (or another command line of the hub's `serve`) as a child process the way an
 * operator would: cwd = repo root, an environment holding only PATH and HOME (so no DATABASE_URL: the
 * embedded PGlite serves it unless the TOML config names a database), a fresh data dir, a free
 * loopback port and an optional TOML config. Used by the end-to-end test and the benchmarks.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

export interface SpawnedHub {
  /** http://127.0.0.1:<port> */
  url: string;
  /** ws://127.0.0.1:<port> */
  wsUrl: string;
  /** Wall time from spawning the command to the "Switchboard listening" log line, ms. */
  startupMs: number;
  /** The hub's own `startup_ms` from that log line (database open, migrations, listen), ms. */
  hubStartupMs: number;
  /** pid of the Node process serving the hub (from the pino log line; not npm's pid). */
  hubPid: number;
  /** Last lines of the child's stdout and stderr, for diagnosing failures. */
  output(): string;
  /** SIGTERM to the child's process group, SIGKILL after `graceMs`; then removes the temp dir (not a given `dataDir`). */
  stop(graceMs?: number): Promise<void>;
  /** SIGKILL to the child's process group at once (a crash); resolves once it exited. Keeps the temp dir. */
  kill(): Promise<void>;
}

/** A port that was free a moment ago on 127.0.0.1. */
export async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve, reject) => server.once('error', reject).listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/**
 * Spawns `<command> --data-dir <tmp>/data --port <free> [--config <tmp>/switchboard.toml]` and
 * resolves once the hub logs "Switchboard listening".
 * @param opts.command the hub's `serve` command line, run in the repo root (default `npm start --`).
 * @param opts.dataDir data dir to serve (left in place by `stop()`); default a fresh `<tmp>/data`.
 * @param opts.toml config file contents (written to the temp dir); none when omitted.
 * @param opts.timeoutMs give up (and kill the child) after this long, ms (default 60 000).
 * @throws Error when the child exits or times out before listening (with its output).
 */
export async function spawnHub(opts: { command?: string[]; dataDir?: string; toml?: string; timeoutMs?: number } = {}): Promise<SpawnedHub> {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'sb-e2e-'));
  const port = await freePort();
  const [command, ...args] = [...(opts.command ?? ['npm', 'start', '--']), '--data-dir', opts.dataDir ?? path.join(tmp, 'data'), '--port', String(port)];
  if (opts.toml !== undefined) {
    fs.writeFileSync(path.join(tmp, 'switchboard.toml'), opts.toml);
    args.push('--config', path.join(tmp, 'switchboard.toml'));
  }
  const env: NodeJS.ProcessEnv = { PATH: process.env.PATH, HOME: process.env.HOME };
  const started = performance.now();
  // detached: the child leads its own process group, so stop() reaches npm and the node it starts together.
  const child = spawn(command, args, { cwd: REPO_ROOT, env, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });

  const tail: string[] = [];
  const keep = (line: string) => {
    tail.push(line);
    if (tail.length > 200) tail.shift();
  };
  let exited: { code: number | null; signal: NodeJS.Signals | null } | null = null;
  const exit = new Promise<void>((resolve) => child.once('exit', (code, signal) => ((exited = { code, signal }), resolve())));

  // stdout is read to the end (not only until listening), or a full pipe would block the hub's logging.
  const listening = new Promise<{ url: string; startup_ms: number; pid: number }>((resolve, reject) => {
    let buffer = '';
    child.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
      buffer += chunk;
      const lines = buffer.split('\n');
      buffer = lines.pop()!;
      for (const line of lines) {
        keep(line);
        if (!line.startsWith('{')) continue;
        try {
          const entry = JSON.parse(line);
          if (entry.msg === 'Switchboard listening') resolve(entry);
        } catch {
          // a non-JSON line (npm's banner): kept for diagnostics only
        }
      }
    });
    child.stderr!.setEncoding('utf8').on('data', (chunk: string) => chunk.split('\n').forEach((l) => l && keep(`[stderr] ${l}`)));
    void exit.then(() => reject(new Error(`${command} exited (${JSON.stringify(exited)}) before listening:\n${tail.join('\n')}`)));
  });

  let hubPid: number | undefined;
  const alive = (pid: number) => {
    try {
      process.kill(pid, 0);
      return true;
    } catch {
      return false;
    }
  };
  const signal = (s: NodeJS.Signals) => {
    try {
      process.kill(-child.pid!, s);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ESRCH') throw err;
    }
  };
  const kill = async () => {
    signal('SIGKILL');
    await exit;
    while (hubPid !== undefined && alive(hubPid)) await new Promise((resolve) => setTimeout(resolve, 20));
  };
  const stop = async (graceMs = 10_000) => {
    signal('SIGTERM');
    // npm may exit before the hub has closed its database: wait for both, then kill what is left.
    const deadline = Date.now() + graceMs;
    while ((!exited || (hubPid !== undefined && alive(hubPid))) && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    signal('SIGKILL');
    await exit;
    fs.rmSync(tmp, { recursive: true, force: true });
  };

  const timeoutMs = opts.timeoutMs ?? 60_000;
  let timer: NodeJS.Timeout | undefined;
  try {
    const entry = await Promise.race([
      listening,
      new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`not listening after ${timeoutMs} ms:\n${tail.join('\n')}`)), timeoutMs))),
    ]);
    const startupMs = performance.now() - started;
    hubPid = entry.pid;
    return {
      url: entry.url,
      wsUrl: entry.url.replace(/^http/, 'ws'),
      startupMs,
      hubStartupMs: entry.startup_ms,
      hubPid: entry.pid,
      output: () => tail.join('\n'),
      stop,
      kill,
    };
  } catch (err) {
    await stop(2000);
    throw err;
  } finally {
    clearTimeout(timer);
  }
}
