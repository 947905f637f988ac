/**
 * The `switchboard` command: serve (default), migrate, generate-config, validate-config, show-config,
 * user create, search reindex, mcp (stdio relay for agents), bridge <id> (a bridge worker).
 * Global flags override environment and config file (see `config/load.ts`).
 */
import { realpathSync, writeFileSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
import { Command } from 'commander';
import { ConfigError, configToToml, loadConfig, redactConfig } from './config/load.js';
import type { Config } from './config/schema.js';
import { AppError } from './errors.js';

interface Hub {
  url: string;
  close(): Promise<void>;
}
interface ServerModule {
  startHub(config: Config): Promise<Hub>;
  createLogger(config: Config): import('pino').Logger;
}
interface RunningBridge {
  start(): Promise<string>;
  stop(): Promise<void>;
}
interface BridgesModule {
  createBridge(config: Config, id: string, log: import('pino').Logger): RunningBridge;
  startInProcessBridges(config: Config, hubUrl: string, log: import('pino').Logger): Promise<RunningBridge[]>;
}
interface DatabaseModule {
  runMigrations(config: Config): Promise<string[]>;
}

/** Environment variable `user create` reads the password from when --password is not given. */
const PASSWORD_ENV = 'NEW_USER_PASSWORD';

// Held in variables so the type checker does not require the modules to exist yet.
const SERVER_MODULE: string = './server.js';
const DATABASE_MODULE: string = './db/database.js';
const BRIDGES_MODULE: string = '../bridges/run.js';

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

/** Loads the effective config from the global flags of `cmd` (`--config` plus the overrides). */
function configFrom(cmd: Command): Config {
  const flags = cmd.optsWithGlobals<Record<string, unknown>>();
  const cli: Record<string, unknown> = {};
  for (const [flag, key] of Object.entries(FLAG_KEYS)) {
    if (flags[flag] !== undefined) cli[key] = flags[flag];
  }
  return loadConfig({ configPath: flags.config as string | undefined, cli });
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

/** Builds the commander program; actions throw `ConfigError` for bad configuration (see `main`). */
export function buildProgram(): Command {
  const program = new Command('switchboard')
    .description('Switchboard chat hub')
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
    .action(async (_opts, cmd: Command) => {
      const config = configFrom(cmd);
      const { startHub, createLogger } = (await import(SERVER_MODULE)) as ServerModule;
      const hub = await startHub(config);
      const { startInProcessBridges } = (await import(BRIDGES_MODULE)) as BridgesModule;
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
      const { createBridge } = (await import(BRIDGES_MODULE)) as BridgesModule;
      const { createLogger } = (await import(SERVER_MODULE)) as ServerModule;
      const bridge = createBridge(config, id, createLogger(config));
      const url = await bridge.start();
      console.log(`bridge ${id} listening on ${url}`);
      onShutdown(() => bridge.stop());
    });

  program
    .command('migrate')
    .description('apply pending database migrations')
    .action(async (_opts, cmd: Command) => {
      const config = configFrom(cmd);
      const { runMigrations } = (await import(DATABASE_MODULE)) as DatabaseModule;
      const applied = await runMigrations(config);
      console.log(applied.length ? applied.map((m) => `applied ${m}`).join('\n') : 'no pending migrations');
      process.exit(0);
    });

  program
    .command('generate-config [path]')
    .description('write a commented config file with all defaults (stdout when no path)')
    .option('--force', 'overwrite an existing file')
    .action((path: string | undefined, opts: { force?: boolean }) => {
      const text = configToToml(loadConfig({ env: {}, loadDotEnv: false }), { comments: true });
      if (!path) {
        process.stdout.write(text);
        return;
      }
      try {
        writeFileSync(path, text, { flag: opts.force ? 'w' : 'wx' });
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
        console.error(`${path} already exists (use --force to overwrite)`);
        process.exitCode = 1;
        return;
      }
      console.log(`wrote ${path}`);
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
    .description(`create a user with a password whatever auth.registration says (migrates the database first); prints the user id`)
    .requiredOption('--email <email>', 'email address, used to log in')
    .requiredOption('--name <name>', 'display name')
    .option('--password <password>', `password, at least 8 characters (default: env ${PASSWORD_ENV})`)
    .option('--admin', 'make the user a server admin (users.is_admin)')
    .action(async (opts: { email: string; name: string; password?: string; admin?: boolean }, cmd: Command) => {
      const config = configFrom(cmd);
      const password = opts.password ?? process.env[PASSWORD_ENV] ?? '';
      if (password.length < 8) {
        console.error(`a password of at least 8 characters is required (--password or env ${PASSWORD_ENV})`);
        process.exitCode = 1;
        return;
      }
      const { migrate, openDatabase } = await import('./db/database.js');
      const { createUser } = await import('./modules/admin/admin.service.js');
      const db = await openDatabase(config);
      try {
        await migrate(db);
        const created = await createUser(db, { email: opts.email, name: opts.name, password, admin: opts.admin === true });
        console.log(`created user ${created.id} <${created.email}>${created.is_admin ? ' (admin)' : ''}`);
      } catch (err) {
        if (!(err instanceof AppError)) throw err;
        console.error(`${err.code}: ${err.message}`);
        process.exitCode = 1;
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
 * Runs the CLI on a full `process.argv`-style array. A `ConfigError` prints
 * `config error: <message>` to stderr and sets exit code 2; other errors propagate.
 */
export async function main(argv: string[]): Promise<void> {
  try {
    await buildProgram().parseAsync(argv);
  } catch (err) {
    if (err instanceof ConfigError) {
      console.error(`config error: ${err.message}`);
      process.exitCode = 2;
    } else if (err instanceof Error && err.name === 'DatabaseInUseError') {
      console.error(`error: ${err.message}`);
      process.exitCode = 1;
    } else {
      throw err;
    }
  }
}

// Run when executed directly (`tsx src/cli.ts`); bin/switchboard.js imports this file and calls main itself.
if (process.argv[1] && import.meta.url === pathToFileURL(realpathSync(process.argv[1])).href) {
  await main(process.argv);
}
