/**
 * The `switchboard` command: serve (default), migrate, generate-config, validate-config, show-config,
 * user create, search reindex, mcp (stdio relay for agents), bridge <id> (a bridge worker).
 * Global flags override environment and config file (see `config/load.ts`).
 *
 * Exit codes: 0 success; 1 failure (a refused `user create`, the embedded database in use, a
 * commander usage error); 2 bad configuration; 3 cannot listen (port in use, or not allowed);
 * 4 the data directory cannot be written. Each prints one line to stderr, no stack trace.
 */
import { accessSync, constants, mkdirSync, realpathSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { Command, Option } from 'commander';
import didYouMean from 'didyoumean2';
import { read } from 'read';
import { ConfigError, configToToml, loadConfig, redactConfig } from './config/load.js';
import type { Config } from './config/schema.js';
import { AppError } from './errors.js';
import { PACKAGE_VERSION } from './lib/package.js';

// Each command imports the modules it needs when it runs (`await import(...)`), so that `--version`,
// `generate-config` or the `mcp` relay do not load the hub (about 1.5 s and 130 MB).

/** Exit codes besides 0 (see the file comment). */
export const EXIT = { FAILURE: 1, CONFIG: 2, LISTEN: 3, DATA_DIR: 4 } as const;

/** Environment variable `user create` reads the password from when no password option is given. */
const PASSWORD_ENV = 'NEW_USER_PASSWORD';

/** Global flag (commander's camelCase name) → dotted config key. */
const FLAG_KEYS: Record<string, string> = {
  host: 'server.host',
  port: 'server.port',
  dataDir: 'data_dir',
  databaseUrl: 'database.url',
  redisUrl: 'redis.url',
  logLevel: 'log.level',
  dev: 'log.pretty',
};

/** An expected failure: `main` prints `error: <message>` and exits with `exitCode`. */
class CliError extends Error {
  constructor(
    message: string,
    readonly exitCode: number,
  ) {
    super(message);
    this.name = 'CliError';
  }
}

/** Loads the effective config from the global flags of `cmd` (`--config` plus the overrides). */
function configFrom(cmd: Command): Config {
  const flags = cmd.optsWithGlobals<Record<string, unknown>>();
  const cli: Record<string, unknown> = {};
  for (const [flag, key] of Object.entries(FLAG_KEYS)) {
    if (flags[flag] !== undefined) cli[key] = flags[flag];
  }
  return loadConfig({ configPath: flags.config as string | undefined, cli });
}

/**
 * Creates `config.data_dir` if needed and checks that this process may write to it.
 * @throws CliError (exit 4) naming the directory and the system error code (EACCES, EROFS, ENOTDIR, …).
 */
function assertWritableDataDir(config: Config): void {
  const dir = path.resolve(config.data_dir);
  try {
    mkdirSync(dir, { recursive: true });
    accessSync(dir, constants.W_OK);
  } catch (err) {
    throw new CliError(`cannot write to the data directory ${dir} (data_dir): ${(err as NodeJS.ErrnoException).code ?? String(err)}`, EXIT.DATA_DIR);
  }
}

/** What a failed `listen()` means, by its error code. */
const LISTEN_ERRORS: Record<string, string> = {
  EADDRINUSE: 'the address is already in use',
  EACCES: 'permission denied (ports below 1024 need privileges)',
  EADDRNOTAVAIL: 'no such address on this machine',
};

/** The CliError (exit 3) for a failed `listen()`, or null when `err` is something else. */
function listenError(err: unknown): CliError | null {
  const e = err as NodeJS.ErrnoException & { address?: string; port?: number };
  if (e?.syscall !== 'listen' || !e.code) return null;
  const where = e.address ? `${e.address.includes(':') ? `[${e.address}]` : e.address}:${e.port}` : String(e.port ?? '');
  return new CliError(`cannot listen on ${where}: ${LISTEN_ERRORS[e.code] ?? e.code}`, EXIT.LISTEN);
}

/** On SIGINT or SIGTERM: runs `close` once, then exits 0. */
function onShutdown(close: () => Promise<void>): void {
  const stop = async () => {
    await close();
    process.exit(0);
  };
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
}

/** Standard input to its end, without one trailing newline (`printf '%s\n' "$PW" | …` works). */
async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8').replace(/\r?\n$/, '');
}

/**
 * The password for `user create`: `--password-stdin`, else `--password`, else env NEW_USER_PASSWORD,
 * else, on a terminal, typed twice at a hidden prompt (on stderr).
 * @throws CliError (exit 1) when there is none, the two typed differ, or the prompt is cancelled.
 */
async function newUserPassword(opts: { password?: string; passwordStdin?: boolean }): Promise<string> {
  if (opts.passwordStdin) return readStdin();
  const given = opts.password ?? process.env[PASSWORD_ENV];
  if (given !== undefined) return given;
  if (!process.stdin.isTTY) {
    throw new CliError(`no password: use --password-stdin, --password or env ${PASSWORD_ENV} (or run on a terminal to be asked)`, EXIT.FAILURE);
  }
  const ask = async (prompt: string) => {
    const typed = await read({ prompt, silent: true, replace: '', output: process.stderr }).catch(() => {
      throw new CliError('cancelled', EXIT.FAILURE);
    });
    process.stderr.write('\n'); // the Enter that ended it was not echoed
    return typed;
  };
  const password = await ask('Password: ');
  if ((await ask('Password again: ')) !== password) throw new CliError('the two passwords differ', EXIT.FAILURE);
  return password;
}

/** Builds the commander program; actions throw `ConfigError` or `CliError` for expected failures (see `main`). */
export function buildProgram(): Command {
  const program = new Command('switchboard')
    .description('Switchboard chat hub')
    .version(PACKAGE_VERSION, '-V, --version', 'print the version')
    .option('-c, --config <path>', 'TOML config file')
    .option('--host <host>', 'address to listen on (server.host)')
    .option('--port <n>', 'TCP port (server.port)')
    .option('--data-dir <dir>', 'data directory (data_dir)')
    .option('--database-url <url>', 'PostgreSQL URL (database.url)')
    .option('--redis-url <url>', 'Redis URL (redis.url)')
    .option('--log-level <level>', 'log level (log.level)')
    .option('--dev', 'human-readable logs (log.pretty = true)');

  program
    .command('serve', { isDefault: true })
    .description('run the hub (default command)')
    // A mistyped command (`switchboard serv`) reaches the default command as an argument.
    .allowExcessArguments()
    .action(async (_opts, cmd: Command) => {
      if (cmd.args.length > 0) {
        const names = program.commands.map((c) => c.name());
        const match = didYouMean(cmd.args[0], names);
        program.error(`error: unknown command '${cmd.args[0]}'${match ? `\n(Did you mean ${match}?)` : ''}`, { code: 'commander.unknownCommand' });
      }
      const config = configFrom(cmd);
      assertWritableDataDir(config);
      const { startHub, createLogger } = await import('./server.js');
      const { startInProcessBridges } = await import('../bridges/run.js');
      const hub = await startHub(config);
      const bridges = await startInProcessBridges(config, hub.url, createLogger(config));
      onShutdown(async () => {
        for (const bridge of bridges) await bridge.stop();
        await hub.close();
      });
    });

  program
    .command('bridge <id>')
    .description('run the bridge worker configured as [[bridges]] id = <id>, e.g. `switchboard bridge whatsapp` (see docs/BRIDGES.md)')
    .action(async (id: string, _opts, cmd: Command) => {
      const config = configFrom(cmd);
      const { createBridge } = await import('../bridges/run.js');
      const { createLogger } = await import('./server.js');
      const bridge = createBridge(config, id, createLogger(config));
      let url: string;
      try {
        url = await bridge.start();
      } catch (err) {
        await bridge.stop().catch(() => undefined);
        throw err;
      }
      console.log(`bridge ${id} listening on ${url}`);
      onShutdown(() => bridge.stop());
    });

  program
    .command('migrate')
    .description('apply pending database migrations')
    .action(async (_opts, cmd: Command) => {
      const config = configFrom(cmd);
      if (!config.database.url) assertWritableDataDir(config);
      const { runMigrations } = await import('./db/database.js');
      const applied = await runMigrations(config);
      console.log(applied.length ? applied.map((m) => `applied ${m}`).join('\n') : 'no pending migrations');
      process.exit(0);
    });

  program
    .command('generate-config [path]')
    .description('write the commented config file with all defaults, config.example.toml (stdout when no path)')
    .option('--force', 'overwrite an existing file')
    .action((file: string | undefined, opts: { force?: boolean }) => {
      const text = configToToml(loadConfig({ env: {}, loadDotEnv: false }), { comments: true });
      if (!file) {
        process.stdout.write(text);
        return;
      }
      try {
        writeFileSync(file, text, { flag: opts.force ? 'w' : 'wx' });
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
        throw new CliError(`${file} already exists (use --force to overwrite)`, EXIT.FAILURE);
      }
      console.log(`wrote ${file}`);
    });

  program
    .command('validate-config')
    .description('check the effective config and print ok')
    .action((_opts, cmd: Command) => {
      configFrom(cmd);
      console.log('ok');
    });

  program
    .command('show-config')
    .description('print the effective config as TOML, secrets redacted')
    .action((_opts, cmd: Command) => {
      process.stdout.write(configToToml(redactConfig(configFrom(cmd))));
    });

  program
    .command('mcp')
    .description("run an MCP server on stdio for desktop agents, relaying to a running hub's /mcp (see docs/AGENTS.md)")
    .requiredOption('--url <url>', "the hub's base URL, e.g. http://127.0.0.1:8081")
    .requiredOption('--token <token>', 'an agent token (sbat_…) from POST /api/agent-tokens')
    .action(async (opts: { url: string; token: string }) => {
      const { runStdioProxy } = await import('./mcp/stdio.js');
      await runStdioProxy(opts);
    });

  const user = program.command('user').description('manage user accounts');
  user
    .command('create')
    .description(
      'create a user with a password whatever auth.registration says (migrates the database first); prints the user id. ' +
        `The password comes from --password-stdin, --password, env ${PASSWORD_ENV} or, on a terminal, a hidden prompt`,
    )
    .requiredOption('--email <email>', 'email address, used to log in')
    .requiredOption('--name <name>', 'display name')
    .addOption(new Option('--password <password>', 'password, at least 8 characters (lands in shell history: prefer the others)').conflicts('passwordStdin'))
    .option('--password-stdin', 'read the password from standard input (one trailing newline is dropped)')
    .option('--admin', 'make the user a server admin (users.is_admin)')
    .action(async (opts: { email: string; name: string; password?: string; passwordStdin?: boolean; admin?: boolean }, cmd: Command) => {
      const config = configFrom(cmd);
      const password = await newUserPassword(opts);
      if (password.length < 8) throw new CliError('the password must have at least 8 characters', EXIT.FAILURE);
      if (!config.database.url) assertWritableDataDir(config);
      const { migrate, openDatabase } = await import('./db/database.js');
      const { createUser } = await import('./modules/admin/admin.service.js');
      const db = await openDatabase(config);
      try {
        await migrate(db);
        const created = await createUser(db, { email: opts.email, name: opts.name, password, admin: opts.admin === true }, config.federation.server_name);
        console.log(`created user ${created.id} <${created.email}>${created.is_admin ? ' (admin)' : ''}`);
      } catch (err) {
        if (!(err instanceof AppError)) throw err;
        console.error(`${err.code}: ${err.message}`);
        process.exitCode = EXIT.FAILURE;
      } finally {
        await db.close();
      }
    });

  const search = program.command('search').description('search index maintenance');
  search
    .command('reindex')
    .description('rebuild the Meilisearch index from the database: clear it, reset the indexing cursor, replay every message (migrates first)')
    .action(async (_opts, cmd: Command) => {
      const config = configFrom(cmd);
      if (config.search.backend !== 'meilisearch') {
        console.log('search.backend is "postgres": nothing to reindex (PostgreSQL search reads the messages table directly)');
        return;
      }
      if (!config.database.url) assertWritableDataDir(config);
      const { migrate, openDatabase } = await import('./db/database.js');
      const { reindex } = await import('./modules/search/indexer.js');
      const { pino } = await import('pino');
      const db = await openDatabase(config);
      try {
        await migrate(db);
        const position = await reindex(config, db, pino({ level: config.log.level }));
        console.log(`reindexed "${config.search.index_name}" up to stream position ${position}`);
      } finally {
        await db.close();
      }
    });

  return program;
}

/**
 * Runs the CLI on a full `process.argv`-style array. Expected failures print one line to stderr and
 * exit with their code (see `EXIT`): `config error: <key>: <problem>` (2) for a `ConfigError`,
 * `error: <message>` for the others; anything else propagates (a bug: stack trace, exit 1).
 */
export async function main(argv: string[]): Promise<void> {
  try {
    await buildProgram().parseAsync(argv);
  } catch (err) {
    const failure = expectedFailure(err);
    if (!failure) throw err;
    console.error(failure.line);
    // Exit now: a failed start may leave a timer or a connection that would keep the process up.
    process.exit(failure.code);
  }
}

/** The stderr line and exit code of an expected failure, or null for anything else. */
function expectedFailure(err: unknown): { line: string; code: number } | null {
  if (err instanceof ConfigError) return { line: `config error: ${err.message}`, code: EXIT.CONFIG };
  const known =
    err instanceof CliError ? err : err instanceof Error && err.name === 'DatabaseInUseError' ? new CliError(err.message, EXIT.FAILURE) : listenError(err);
  return known && { line: `error: ${known.message}`, code: known.exitCode };
}

// Run when executed directly (`tsx src/cli.ts`); bin/switchboard.js imports this file and calls main itself.
if (process.argv[1] && import.meta.url === pathToFileURL(realpathSync(process.argv[1])).href) {
  await main(process.argv);
}
