/**
 * `npm run bench`: the same workloads (bench/load.ts) against each server, side by side on this
 * machine, every server in its own child process and the load generator in this one:
 *
 * - `ceiling`: the bare `ws` relay (bench/relay.ts);
 * - `postgres`: the hub (`serve`) on a scratch database created on DATABASE_URL's server and dropped
 *   afterwards (skipped, and said so, without DATABASE_URL);
 * - `pglite`: the hub on the embedded PGlite in a fresh data dir.
 *
 * Hubs run with the rate limits off (the bench's own TOML) on one node without Redis. Prints a table
 * at the end and writes every figure as JSON to bench/results/ (`latest.json` and a dated copy).
 * What each figure means and how it is measured: docs/PERFORMANCE.md.
 *
 * Knobs: BENCH_ONLY=ceiling,postgres,pglite (servers), BENCH_WORKLOADS=rtt,a,b,c,resume,memory,e2ee,federation
 * (federation: two more hubs of the same kind, bench/federation.ts),
 * BENCH_CPU_PROF=<dir> (hubs run under `node --cpu-prof`, one .cpuprofile per hub process, written
 * when it stops), BENCH_QUERY_TIMES=<dir> (hubs time every SQL statement: bench/query-times.mjs, one
 * table per hub process, written when it stops).
 */
import { fork } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import WebSocket from 'ws';
import { loadConfig } from '../src/config/load.js';
import { openDatabase } from '../src/db/database.js';
import { REPO_ROOT, spawnHub } from '../test/e2e/spawn.js';
import ensureBuilt from '../test/helpers/build.js';
import { api, createScratchDatabase, type Session } from '../test/helpers/hub.js';
import { encryptedSends, type E2eeResult } from './e2ee.js';
import { federatedSends, type FederationResult } from './federation.js';
import { writePlainMessages, writerAlone, type WriterResult } from './writer.js';
import { BenchSocket, LISTENERS, SENDERS, WINDOW, ackPaced, burst, createGroup, openIdle, paced, registerUsers, resume, roundTrip, type Latency, type Target, type WorkloadResult } from './load.js';

/** How a hub is started, after `node` and its flags: the TypeScript entry point, from the repo root. */
/** The hub as operators run it: the compiled CLI (rebuilt first when a source is newer, as the tests do). */
const HUB_ENTRY = ['bin/switchboard.js', 'serve'];
/** The hubs' config: rate limits off, so the bench measures the send path and not the limiter. */
const HUB_TOML = `[rate_limits]
login_per_ip_per_min = 0
login_per_account_per_min = 0
register_per_ip_per_hour = 0
messages_per_user_per_min = 0
ws_frames_per_s = 0
`;
const BURST_MESSAGES = 5_000;
const PACED_RATES = [1_000, 2_000];
const RUN_MS = 10_000;
const IDLE_SOCKETS = 10_000;
const RESUME_EVENTS = 100_000;
/** Seeded messages per transaction (and per INSERT). */
const SEED_BATCH = 5_000;
/** The whole run is aborted after this long, ms. */
const DEADLINE_MS = 15 * 60_000;
const RESULTS_DIR = path.join(REPO_ROOT, 'bench/results');

const SERVER_NAMES = ['ceiling', 'postgres', 'pglite'] as const;
const WORKLOAD_NAMES = ['rtt', 'a', 'b', 'c', 'resume', 'memory', 'e2ee', 'federation'] as const;
type ServerName = (typeof SERVER_NAMES)[number];

/** A comma-separated environment knob, checked against its allowed values (all of them when unset). */
function knob<T extends string>(name: string, allowed: readonly T[]): Set<T> {
  const picked = (process.env[name] ?? allowed.join(',')).split(',').map((s) => s.trim()).filter(Boolean);
  const unknown = picked.filter((p) => !allowed.includes(p as T));
  if (unknown.length) {
    console.error(`${name}: unknown ${unknown.join(', ')} (choose from ${allowed.join(',')})`);
    process.exit(2);
  }
  return new Set(picked as T[]);
}
const only = knob('BENCH_ONLY', SERVER_NAMES);
const workloads = knob('BENCH_WORKLOADS', WORKLOAD_NAMES);
const cpuProfDir = process.env.BENCH_CPU_PROF ? path.resolve(process.env.BENCH_CPU_PROF) : null;
const queryTimesDir = process.env.BENCH_QUERY_TIMES ? path.resolve(process.env.BENCH_QUERY_TIMES) : null;
/** With BENCH_QUERY_TIMES, hubs preload bench/query-times.mjs through a one-line module naming the output dir. */
const queryTimesFlags = queryTimesDir ? ['--import', queryTimesPreload(queryTimesDir)] : [];
function queryTimesPreload(dir: string): string {
  fs.mkdirSync(dir, { recursive: true });
  const preload = path.join(dir, 'preload.mjs');
  fs.writeFileSync(preload, `import { timeQueries } from ${JSON.stringify(new URL('./query-times.mjs', import.meta.url).href)};\ntimeQueries(${JSON.stringify(dir)});\n`);
  return preload;
}
/** Node flags of every server process: for the memory figure, an inspector on a free loopback port, to collect garbage with. */
const inspectFlags = workloads.has('memory') ? ['--inspect=127.0.0.1:0'] : [];

/** A running server under test. */
interface Server {
  target: Target;
  /** pid of the Node process serving (its RSS is the memory figure). */
  pid: number;
  /** Its inspector's WebSocket URL, when it runs with one. */
  inspectorUrl?: string;
  stop(): Promise<void>;
}

interface ServerResult {
  /** Why this server was not run, or where its run failed. */
  skipped?: string;
  error?: string;
  startup?: { spawnMs: number; hubStartupMs: number };
  memory?: { sockets: number; rssBeforeKiB: number; rssWithKiB: number; perSocketKiB: number; openMs: number };
  roundTrip?: { ackMs: Latency; deliveryMs: Latency };
  workloads: Record<string, WorkloadResult>;
  /** (b) without sockets, and without the hub (PostgreSQL only: bench/writer.ts). */
  writer?: WriterResult;
  resume?: { events: number; toReadyMs: number; toLastEventMs: number; seedMs: number; restartMs?: number };
  e2ee?: E2eeResult;
  federation?: FederationResult;
}

/** Servers running now, for the watchdog and Ctrl-C. */
const running = new Set<Server>();

async function startCeiling(): Promise<Server> {
  const child = fork(fileURLToPath(new URL('./relay.ts', import.meta.url)), { execArgv: [...inspectFlags, '--import', 'tsx'] });
  const exited = new Promise((resolve) => child.once('exit', resolve));
  const { url, pid, inspectorUrl } = await new Promise<{ url: string; pid: number; inspectorUrl?: string }>((resolve, reject) => {
    child.once('message', resolve);
    child.once('exit', (code) => reject(new Error(`relay exited (${code}) before listening`)));
  });
  const server: Server = {
    target: { url, wsUrl: url.replace(/^http/, 'ws') },
    pid,
    inspectorUrl,
    async stop() {
      child.kill('SIGTERM');
      await exited;
      running.delete(server);
    },
  };
  running.add(server);
  return server;
}

/** Spawns a hub on `dataDir` (and the database at `databaseUrl`, else the embedded PGlite in `dataDir`). */
async function startHub(dataDir: string, databaseUrl?: string, extraToml = ''): Promise<Server & { spawnMs: number; hubStartupMs: number }> {
  const command = ['node', ...queryTimesFlags, ...inspectFlags, ...(cpuProfDir ? ['--cpu-prof', `--cpu-prof-dir=${cpuProfDir}`] : []), ...HUB_ENTRY];
  const toml = (databaseUrl ? `${HUB_TOML}[database]\nurl = ${JSON.stringify(databaseUrl)}\n` : HUB_TOML) + extraToml;
  const hub = await spawnHub({ command, dataDir, toml, timeoutMs: 120_000 });
  const server = {
    target: { url: hub.url, wsUrl: hub.wsUrl },
    pid: hub.hubPid,
    inspectorUrl: hub.output().match(/Debugger listening on (ws:\S+)/)?.[1],
    spawnMs: hub.startupMs,
    hubStartupMs: hub.hubStartupMs,
    async stop() {
      await hub.stop();
      running.delete(server);
    },
  };
  running.add(server);
  return server;
}

/** VmRSS of a process, KiB, from /proc/<pid>/status. */
function rssKiB(pid: number): number {
  const line = fs.readFileSync(`/proc/${pid}/status`, 'utf8').match(/^VmRSS:\s+(\d+) kB$/m);
  if (!line) throw new Error(`no VmRSS for pid ${pid}`);
  return Number(line[1]);
}

/** A full garbage collection in a server process, through its inspector (`HeapProfiler.collectGarbage`). */
async function collectGarbage(inspectorUrl: string): Promise<void> {
  const ws = new WebSocket(inspectorUrl);
  await new Promise((resolve, reject) => ws.once('open', resolve).once('error', reject));
  await new Promise<void>((resolve) => {
    ws.on('message', (data) => JSON.parse(data.toString()).id === 1 && resolve());
    ws.send(JSON.stringify({ id: 1, method: 'HeapProfiler.collectGarbage' }));
  });
  ws.close();
}

/**
 * The server's RSS after a full garbage collection, once it holds still: sampled every 500 ms until
 * two samples are within 1 % (at most 10 s).
 */
async function settledRssKiB(server: Server): Promise<number> {
  if (!server.inspectorUrl) throw new Error('the server runs without an inspector');
  await collectGarbage(server.inspectorUrl);
  const pid = server.pid;
  let previous = rssKiB(pid);
  for (let i = 0; i < 20; i++) {
    await new Promise((resolve) => setTimeout(resolve, 500));
    const now = rssKiB(pid);
    if (Math.abs(now - previous) <= previous / 100) return now;
    previous = now;
  }
  return previous;
}

/**
 * IDLE_SOCKETS idle sockets of one user, opened by this process: the server's RSS before and with
 * them. The user's first socket (presence, first use of the code paths) is opened before either.
 */
async function benchMemory(server: Server, user: Session): Promise<NonNullable<ServerResult['memory']>> {
  const { sockets: warm } = await openIdle(server.target, user, 1);
  const before = await settledRssKiB(server);
  const { sockets, ms } = await openIdle(server.target, user, IDLE_SOCKETS);
  const withSockets = await settledRssKiB(server);
  await Promise.all([...warm, ...sockets].map((s) => s.close()));
  await new Promise((resolve) => setTimeout(resolve, 2000)); // let the server finish closing before the next workload
  return { sockets: sockets.length, rssBeforeKiB: before, rssWithKiB: withSockets, perSocketKiB: (withSockets - before) / sockets.length, openMs: ms };
}

/**
 * Stores `count` messages from `sender` in `roomId`, SEED_BATCH per transaction, in the hub's
 * database (`config`), with `writePlainMessages` (bench/writer.ts): the rows and the one statement
 * the group commit writes, without its rules. Through the hub's own sends, 100,000 would take
 * minutes here.
 * @returns how long it took, ms.
 */
async function seedMessages(config: { data_dir?: string; 'database.url'?: string }, roomId: string, sender: Session, count: number): Promise<number> {
  const started = performance.now();
  const db = await openDatabase(loadConfig({ env: {}, loadDotEnv: false, cli: config }));
  try {
    for (let from = 0; from < count; from += SEED_BATCH) {
      const sends = Array.from({ length: Math.min(SEED_BATCH, count - from) }, (_, i) => ({ user_id: sender.user.id, user_name: sender.user.name, content: `missed ${from + i}`, txn_id: null }));
      await db.transaction((tx) => writePlainMessages(tx, roomId, sends));
    }
  } finally {
    await db.close();
  }
  return performance.now() - started;
}

/** Resolves with the `ready` event of a socket that `session` opens and closes at once. */
async function readyOf(target: Target, session: Session): Promise<{ stream_position: number }> {
  let ready: { stream_position: number } | undefined;
  const socket = await BenchSocket.connect(target, session, { onFrame: (f) => f.type === 'ready' && (ready = f) });
  await socket.close();
  return ready!;
}

/**
 * Resume of RESUME_EVENTS missed events: bob notes his position, RESUME_EVENTS messages are seeded
 * into his room, then he reconnects with `?since=`. PostgreSQL: seeded while the hub runs, then a
 * message in another room, received on carol's socket, shows that the hub's stream reader has passed
 * the seeded events (else they would reach bob's socket live during the replay). PGlite: one process
 * at a time may open its data dir, so the hub is stopped, the data dir seeded and the hub restarted.
 * @param hub.server replaced by the restarted hub (PGlite).
 */
async function benchResume(hub: { server: Server }, dataDir: string, databaseUrl?: string): Promise<NonNullable<ServerResult['resume']>> {
  const target = hub.server.target;
  const [alice, bob, carol] = await registerUsers(target, 'resume', 3);
  const room = await createGroup(target, alice, [bob]);
  const since = (await readyOf(target, bob)).stream_position;
  let seedMs: number;
  let restartMs: number | undefined;
  if (databaseUrl) {
    const pokeRoom = await createGroup(target, alice, [carol]);
    let poked!: () => void;
    const pokeSeen = new Promise<void>((resolve) => (poked = resolve));
    const carolSocket = await BenchSocket.connect(target, carol, { onFrame: (f) => f.type === 'message.new' && f.room_id === pokeRoom && poked() });
    seedMs = await seedMessages({ 'database.url': databaseUrl }, room, alice, RESUME_EVENTS);
    const sent = await api(target.url, 'POST', `/api/rooms/${pokeRoom}/messages`, { token: alice.token, body: { content: 'after the seed' } });
    if (sent.status !== 201) throw new Error(`poke send failed: ${sent.status}`);
    await Promise.race([pokeSeen, new Promise((_, reject) => setTimeout(() => reject(new Error('stream reader did not pass the seed in 120 s')), 120_000))]);
    await carolSocket.close();
  } else {
    await hub.server.stop();
    seedMs = await seedMessages({ data_dir: dataDir }, room, alice, RESUME_EVENTS);
    const restarted = await startHub(dataDir);
    restartMs = restarted.spawnMs;
    hub.server = restarted;
  }
  const replay = await resume(hub.server.target, bob, since);
  if (replay.events !== RESUME_EVENTS || replay.resumed !== RESUME_EVENTS) throw new Error(`resume: got ${replay.events} events, ready.resumed=${replay.resumed}`);
  return { events: replay.events, toReadyMs: replay.toReadyMs, toLastEventMs: replay.toLastEventMs, seedMs, restartMs };
}

/** The federation workload (bench/federation.ts) on two more hubs, each on a scratch database (`postgres`) or a fresh PGlite data dir. */
async function benchFederation(postgres: boolean): Promise<FederationResult> {
  const cleanup: (() => Promise<void>)[] = [];
  try {
    return await federatedSends(async (_name, toml) => {
      const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'sb-bench-fed-'));
      cleanup.push(async () => fs.rmSync(dataDir, { recursive: true, force: true }));
      const scratch = postgres ? await createScratchDatabase(process.env.DATABASE_URL!) : null;
      if (scratch) cleanup.push(() => scratch.drop());
      return startHub(dataDir, scratch?.url, toml);
    });
  } finally {
    for (const c of cleanup.reverse()) await c().catch(() => undefined);
  }
}

const log = (line: string) => console.error(`  ${line}`);

/** Runs the selected workloads against one server, in its own child process. */
async function benchServer(name: ServerName): Promise<ServerResult> {
  const result: ServerResult = { workloads: {} };
  if (name === 'postgres' && !process.env.DATABASE_URL) return { ...result, skipped: 'DATABASE_URL not set' };
  console.error(`${name}:`);
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'sb-bench-'));
  let scratch: Awaited<ReturnType<typeof createScratchDatabase>> | null = null;
  const hub: { server: Server | null } = { server: null };
  try {
    if (name === 'postgres') scratch = await createScratchDatabase(process.env.DATABASE_URL!);
    if (name === 'ceiling') {
      hub.server = await startCeiling();
    } else {
      const started = await startHub(dataDir, scratch?.url);
      hub.server = started;
      result.startup = { spawnMs: started.spawnMs, hubStartupMs: started.hubStartupMs };
      log(`started in ${fmtMs(started.spawnMs)} (hub's own startup_ms ${fmtMs(started.hubStartupMs)})`);
    }
    const target = hub.server.target;
    const users = await registerUsers(target, 'load', LISTENERS + 1);
    if (workloads.has('memory')) {
      result.memory = await benchMemory(hub.server, users[0]);
      log(`memory: ${memoryLine(result.memory)}`);
    }
    if (workloads.has('rtt')) {
      result.roundTrip = await roundTrip(target, users);
      log(`round trip: ${roundTripLine(result.roundTrip)}`);
    }
    const run = async (key: string, work: () => Promise<WorkloadResult>) => {
      result.workloads[key] = await work();
      log(`${key}: ${workloadLine(result.workloads[key])}`);
    };
    if (workloads.has('a')) await run('a', () => burst(target, users, BURST_MESSAGES));
    if (workloads.has('b')) await run('b', () => ackPaced(target, users, RUN_MS));
    if (workloads.has('c')) for (const rate of PACED_RATES) await run(`c${rate}`, () => paced(target, users, rate, RUN_MS));
    if (workloads.has('e2ee') && name !== 'ceiling') {
      result.e2ee = await encryptedSends(target);
      const mode = (m: E2eeResult['envelopes']) => `${m.perS.toFixed(1)} sends/s, all ${result.e2ee!.devices} decrypted ${lat(m.allDecryptedMs)}`;
      log(`e2ee: envelopes ${mode(result.e2ee.envelopes)}; sender key ${mode(result.e2ee.senderKey)}`);
    }
    if (workloads.has('federation') && name !== 'ceiling') {
      result.federation = await benchFederation(name === 'postgres');
      log(`federation: ${federationLine(result.federation)}`);
    }
    if (workloads.has('resume') && name !== 'ceiling') {
      result.resume = await benchResume(hub as { server: Server }, dataDir, scratch?.url);
      log(`resume: ${resumeLine(result.resume)}`);
    }
    // Last: it writes some 50,000 messages beside the hub under test (through a second node in this
    // process, whose commits that hub's reader does not hear of), in a room of users of its own.
    if (workloads.has('b') && scratch) {
      const writers = await registerUsers(target, 'writer', SENDERS);
      const room = await createGroup(target, writers[0], writers.slice(1));
      result.writer = await writerAlone({ dataDir, databaseUrl: scratch.url }, room, writers, RUN_MS, SENDERS / 2);
      log(`b: ${writerLine(result.writer)}`);
    }
  } catch (err) {
    result.error = err instanceof Error ? err.message : String(err);
    console.error(`${name} failed: ${err instanceof Error ? err.stack : err}`);
  } finally {
    await hub.server?.stop();
    await scratch?.drop();
    fs.rmSync(dataDir, { recursive: true, force: true });
  }
  return result;
}

// ---- formatting -------------------------------------------------------------------------------

const fmtMs = (x: number) => `${x.toFixed(x < 100 ? 1 : 0)} ms`;
const fmtRate = (x: number) => Math.round(x).toLocaleString('en-US');
const fmtKiB = (kib: number) => `${(kib / 1024).toFixed(1)} MiB`;
const ratio = (x: number, of: number | undefined) => (of ? `${(x / of).toFixed(x / of < 10 ? 2 : 0)}×` : '');
const cpuPct = (c: number) => `${Math.round(c * 100)}%${c >= 0.9 ? '*' : ''}`;
const lat = (l: Latency) => `p50 ${fmtMs(l.p50)}, p99 ${fmtMs(l.p99)}`;
const workloadLine = (w: WorkloadResult) =>
  `${fmtRate(w.deliveriesPerS)} deliveries/s, ${fmtRate(w.persistedPerS)} acked/s, delivery ${lat(w.deliveryMs)}, generator CPU ${cpuPct(w.generatorCpu)}${w.behind ? `; BEHIND: ${w.behind}` : ''}`;
const memoryLine = (m: NonNullable<ServerResult['memory']>) =>
  `RSS ${fmtKiB(m.rssBeforeKiB)} → ${fmtKiB(m.rssWithKiB)} with ${m.sockets.toLocaleString('en-US')} sockets: ${m.perSocketKiB.toFixed(1)} KiB/socket (opened in ${fmtMs(m.openMs)})`;
const roundTripLine = (r: NonNullable<ServerResult['roundTrip']>) => `send → ack ${lat(r.ackMs)}; send → delivery ${lat(r.deliveryMs)}`;
const federationLine = (f: FederationResult) =>
  `send on A → message.new on B ${lat(f.latency.ms)} (${f.latency.sent} one at a time); catch-up after an outage ${fmtRate(f.catchUp.perS)} events/s (${f.catchUp.messages.toLocaleString('en-US')} queued; heal → last ${fmtMs(f.catchUp.healToLastMs)})`;
const writerLine = (w: WriterResult) => `the group commit alone (no sockets) ${fmtRate(w.writerPerS)} msg/s; its SQL alone, batches of ${w.batch} ${fmtRate(w.sqlPerS)} msg/s`;
const resumeLine = (r: NonNullable<ServerResult['resume']>) =>
  `${r.events.toLocaleString('en-US')} events: connect → last event ${fmtMs(r.toLastEventMs)}, → ready ${fmtMs(r.toReadyMs)} (seeded in ${fmtMs(r.seedMs)}${r.restartMs ? `, hub restarted in ${fmtMs(r.restartMs)}` : ''})`;

const WORKLOAD_TITLES: Record<string, string> = {
  a: `(a) burst 1→${LISTENERS}, ${BURST_MESSAGES.toLocaleString('en-US')} msgs`,
  b: `(b) ${SENDERS} senders, ${SENDERS + 1} members, window ${WINDOW}`,
  ...Object.fromEntries(PACED_RATES.map((r) => [`c${r}`, `(c) paced ${r.toLocaleString('en-US')} msg/s ×${LISTENERS}`])),
};

function table(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (r: string[]) => `| ${r.map((c, i) => c.padEnd(widths[i])).join(' | ')} |`;
  return [line(header), `|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`, ...rows.map(line)].join('\n');
}

function report(results: Partial<Record<ServerName, ServerResult>>): string {
  const ceiling = results.ceiling;
  const rows: string[][] = [];
  const notes: string[] = [];
  for (const key of Object.keys(WORKLOAD_TITLES)) {
    for (const name of SERVER_NAMES) {
      const w = results[name]?.workloads[key];
      if (!w) continue;
      const c = name === 'ceiling' ? undefined : ceiling?.workloads[key];
      rows.push([
        WORKLOAD_TITLES[key],
        name,
        fmtRate(w.deliveriesPerS),
        fmtRate(w.persistedPerS),
        fmtMs(w.deliveryMs.p50),
        fmtMs(w.deliveryMs.p95),
        fmtMs(w.deliveryMs.p99),
        fmtMs(w.deliveryMs.max),
        fmtMs(w.ackMs.p99),
        w.behind ? 'YES' : 'no',
        cpuPct(w.generatorCpu),
        ratio(w.deliveriesPerS, c?.deliveriesPerS),
        ratio(w.deliveryMs.p99, c?.deliveryMs.p99),
      ]);
      if (w.behind) notes.push(`${WORKLOAD_TITLES[key]}, ${name}: ${w.behind}`);
      const errors = Object.entries(w.errors);
      if (errors.length) notes.push(`${WORKLOAD_TITLES[key]}, ${name}: ${errors.map(([k, n]) => `${n} × ${k}`).join(', ')}`);
      if (name === 'ceiling' && w.generatorCpu >= 0.9) notes.push(`${WORKLOAD_TITLES[key]}: the load generator saturated before the ceiling (the relay can do at least this)`);
    }
  }
  const other: string[][] = [];
  for (const name of SERVER_NAMES) {
    const r = results[name];
    if (!r) continue;
    if (r.skipped) other.push([name, 'skipped', r.skipped]);
    if (r.error) other.push([name, 'FAILED', r.error.split('\n')[0]]);
    if (r.startup) other.push([name, 'startup (fresh data dir): spawn → listening / hub startup_ms', `${fmtMs(r.startup.spawnMs)} / ${fmtMs(r.startup.hubStartupMs)}`]);
    if (r.writer) {
      other.push([name, `${WORKLOAD_TITLES.b}: the group commit alone, no sockets (msg/s)`, fmtRate(r.writer.writerPerS)]);
      other.push([name, `${WORKLOAD_TITLES.b}: its SQL alone, batches of ${r.writer.batch} (msg/s)`, fmtRate(r.writer.sqlPerS)]);
    }
    if (r.roundTrip) other.push([name, 'round trip, one at a time: send → ack / send → delivery', `${lat(r.roundTrip.ackMs)} / ${lat(r.roundTrip.deliveryMs)}`]);
    if (r.memory) other.push([name, `memory: RSS at rest → with ${r.memory.sockets.toLocaleString('en-US')} idle sockets`, `${fmtKiB(r.memory.rssBeforeKiB)} → ${fmtKiB(r.memory.rssWithKiB)}: ${r.memory.perSocketKiB.toFixed(1)} KiB/socket`]);
    if (r.federation) {
      other.push([name, 'federation: send on A → message.new on B', lat(r.federation.latency.ms)]);
      other.push([name, `federation: catch-up of ${r.federation.catchUp.messages.toLocaleString('en-US')} after an outage / heal → last`, `${fmtRate(r.federation.catchUp.perS)} events/s / ${fmtMs(r.federation.catchUp.healToLastMs)}`]);
    }
    if (r.resume) {
      other.push([name, `resume ${r.resume.events.toLocaleString('en-US')} events: connect → last event / → ready`, `${fmtMs(r.resume.toLastEventMs)} / ${fmtMs(r.resume.toReadyMs)}`]);
      other.push([name, 'resume: seeding / hub restart', `${fmtMs(r.resume.seedMs)} / ${r.resume.restartMs ? fmtMs(r.resume.restartMs) : '(seeded while running)'}`]);
    }
  }
  const header = ['workload', 'server', 'deliveries/s', 'acked/s', 'p50', 'p95', 'p99', 'max', 'ack p99', 'behind', 'gen CPU', 'deliv ÷ ceiling', 'p99 ÷ ceiling'];
  if (rows.some((r) => r[10].endsWith('*'))) notes.push('gen CPU*: the load generator used 90 % of a core or more, so the server may be faster than shown.');
  return [
    rows.length ? table(header, rows) : '(no workload run)',
    notes.map((n) => `- ${n}`).join('\n'),
    other.length ? table(['server', 'figure', 'value'], other) : '',
  ]
    .filter(Boolean)
    .join('\n\n');
}

// ---- main -------------------------------------------------------------------------------------

async function stopAll(): Promise<void> {
  await Promise.all([...running].map((s) => s.stop().catch(() => undefined)));
}
const watchdog = setTimeout(() => {
  console.error(`bench: over ${DEADLINE_MS / 60_000} min, aborting`);
  void stopAll().finally(() => process.exit(1));
}, DEADLINE_MS).unref();
process.once('SIGINT', () => void stopAll().finally(() => process.exit(130)));

ensureBuilt();
const began = performance.now();
const loadAtStart = os.loadavg();
const machine = `node ${process.version}, ${os.cpus().length} × ${os.cpus()[0]?.model ?? 'cpu'}`;
console.error(`bench: ${machine}, load average ${loadAtStart.map((l) => l.toFixed(2)).join(' ')}`);
if (cpuProfDir) console.error(`bench: hubs run with --cpu-prof, profiles in ${cpuProfDir}`);
const results: Partial<Record<ServerName, ServerResult>> = {};
for (const name of SERVER_NAMES) if (only.has(name)) results[name] = await benchServer(name);
clearTimeout(watchdog);

const date = new Date().toISOString();
const loadAtEnd = os.loadavg();
const tookS = Math.round((performance.now() - began) / 1000);
console.log(`\nSwitchboard bench, ${date}: ${machine}; load average ${loadAtStart[0].toFixed(2)} at start, ${loadAtEnd[0].toFixed(2)} at end; took ${tookS} s`);
console.log(report(results));
fs.mkdirSync(RESULTS_DIR, { recursive: true });
const json = JSON.stringify({ date, machine, cpus: os.cpus().length, loadAverage: { start: loadAtStart, end: loadAtEnd }, tookS, servers: results }, null, 2);
fs.writeFileSync(path.join(RESULTS_DIR, 'latest.json'), json);
fs.writeFileSync(path.join(RESULTS_DIR, `${date.replace(/[:.]/g, '-')}.json`), json);
console.log(`\nfigures written to ${path.relative(process.cwd(), path.join(RESULTS_DIR, 'latest.json'))}`);
if (cpuProfDir) console.log(`hub CPU profiles: ${cpuProfDir}`);
if (queryTimesDir) console.log(`hub statement times: ${queryTimesDir}/queries.<pid>.txt`);
process.exit(Object.values(results).some((r) => r?.error) ? 1 : 0);
