import { describe, it, expect } from 'vitest';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ConfigError, configToToml, loadConfig, redactConfig, type LoadOptions } from '../../src/config/load.js';
import { parse } from 'smol-toml';
import { ConfigSchema } from '../../src/config/schema.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));

function tmp(): string {
  return mkdtempSync(join(tmpdir(), 'switchboard-config-'));
}

function tomlFile(text: string): string {
  const path = join(tmp(), 'switchboard.toml');
  writeFileSync(path, text);
  return path;
}

/** loadConfig isolated from the developer's environment and .env. */
function load(opts: LoadOptions = {}) {
  return loadConfig({ env: {}, loadDotEnv: false, ...opts });
}

function configError(fn: () => unknown): ConfigError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return err as ConfigError;
  }
  throw new Error('expected a ConfigError');
}

const SECRET = 's3cr3t-'.repeat(6);

describe('loadConfig', () => {
  it('returns the schema defaults when nothing is set', () => {
    const cfg = load();
    expect(cfg.data_dir).toBe('./data');
    expect(cfg.server).toEqual({
      host: '127.0.0.1',
      port: 8081,
      public_url: '',
      trust_proxy: false,
      cors_origins: [],
      request_timeout_ms: 120000,
      headers_timeout_ms: 30000,
      connection_timeout_ms: 120000,
      keep_alive_timeout_ms: 72000,
    });
    expect(cfg.database).toEqual({ url: '', pool_max: 10 });
    expect(cfg.redis.url).toBe('');
    expect(cfg.auth).toEqual({ jwt_secret: '', access_token_ttl_s: 900, refresh_token_ttl_s: 2592000, registration: 'open', admin_emails: [] });
    expect(cfg.limits.max_message_bytes).toBe(65536);
    expect(cfg.realtime.typing_timeout_ms).toBe(10000);
    expect(cfg.realtime).toMatchObject({ ws_ping_interval_ms: 30000, ws_pong_timeout_ms: 10000 });
    expect(cfg.limits.max_json_depth).toBe(32);
    expect(cfg.search.backend).toBe('postgres');
    expect(cfg.log).toEqual({ level: 'info', pretty: false });
  });

  it('returns independent objects', () => {
    const a = load();
    a.server.cors_origins.push('https://x.example');
    expect(load().server.cors_origins).toEqual([]);
  });

  it('lets the TOML file override defaults and keeps the other defaults', () => {
    const cfg = load({
      configPath: tomlFile('data_dir = "/var/lib/sb"\n[server]\nport = 9000\ncors_origins = ["https://a.example"]\n[log]\nlevel = "debug"\n'),
    });
    expect(cfg.data_dir).toBe('/var/lib/sb');
    expect(cfg.server.port).toBe(9000);
    expect(cfg.server.cors_origins).toEqual(['https://a.example']);
    expect(cfg.server.host).toBe('127.0.0.1');
    expect(cfg.log).toEqual({ level: 'debug', pretty: false });
  });

  it('lets the environment override the file, coercing to the schema types', () => {
    const configPath = tomlFile('[server]\nport = 9000\nhost = "10.0.0.1"\n[database]\nurl = "postgres://file/db"\n');
    const cfg = load({
      configPath,
      env: {
        SWITCHBOARD_PORT: '9100',
        SWITCHBOARD_SERVER__TRUST_PROXY: 'true',
        SWITCHBOARD_SERVER__CORS_ORIGINS: 'https://a.example, https://b.example',
        SWITCHBOARD_DATA_DIR: '/srv/sb',
        SWITCHBOARD_LOG__PRETTY: '1',
        DATABASE_URL: 'postgres://env/db',
        REDIS_URL: 'redis://cache:6379',
      },
    });
    expect(cfg.server.port).toBe(9100);
    expect(cfg.server.host).toBe('10.0.0.1');
    expect(cfg.server.trust_proxy).toBe(true);
    expect(cfg.server.cors_origins).toEqual(['https://a.example', 'https://b.example']);
    expect(cfg.data_dir).toBe('/srv/sb');
    expect(cfg.log.pretty).toBe(true);
    expect(cfg.database.url).toBe('postgres://env/db');
    expect(cfg.redis.url).toBe('redis://cache:6379');
  });

  it('lets CLI values override the environment', () => {
    const cfg = load({
      configPath: tomlFile('[server]\nport = 9000\n'),
      env: { SWITCHBOARD_PORT: '9100', SWITCHBOARD_LOG_LEVEL: 'warn' },
      cli: { 'server.port': '9200', 'log.level': 'trace', 'log.pretty': true },
    });
    expect(cfg.server.port).toBe(9200);
    expect(cfg.log).toEqual({ level: 'trace', pretty: true });
  });

  it('does not mutate its inputs', () => {
    const cli = { 'server.cors_origins': ['https://a.example'] };
    const env = { SWITCHBOARD_PORT: '9100' };
    const cfg = load({ cli, env });
    cfg.server.cors_origins.push('https://b.example');
    expect(cli).toEqual({ 'server.cors_origins': ['https://a.example'] });
    expect(env).toEqual({ SWITCHBOARD_PORT: '9100' });
  });

  it('rejects a non-integer port from the environment, naming server.port', () => {
    const err = configError(() => load({ env: { SWITCHBOARD_PORT: 'abc' } }));
    expect(err.key).toBe('server.port');
    expect(err.message).toBe('server.port: must be integer (got "abc")');
  });

  it('rejects out-of-range and badly typed values', () => {
    expect(configError(() => load({ cli: { 'server.port': 70000 } })).key).toBe('server.port');
    expect(configError(() => load({ env: { SWITCHBOARD_SERVER__TRUST_PROXY: 'yes' } })).key).toBe('server.trust_proxy');
    const level = configError(() => load({ env: { SWITCHBOARD_LOG_LEVEL: 'loud' } }));
    expect(level.key).toBe('log.level');
    expect(level.message).toContain('"debug"');
    expect(configError(() => load({ configPath: tomlFile('server = 5\n') })).key).toBe('server');
  });

  it('rejects unknown keys in the TOML file, naming them and the closest known key', () => {
    const err = configError(() => load({ configPath: tomlFile('[server]\nprot = 9000\n') }));
    expect(err.key).toBe('server.prot');
    expect(err.message).toBe('server.prot: unknown key (did you mean server.port?)');
    const section = configError(() => load({ configPath: tomlFile('[sevrer]\nport = 1\n') }));
    expect(section.message).toBe('sevrer: unknown key (did you mean server?)');
    expect(configError(() => load({ configPath: tomlFile('dat_dir = "x"\n') })).message).toBe('dat_dir: unknown key (did you mean data_dir?)');
    // Nothing close: no guess (the shared "server." prefix does not count as similarity).
    expect(configError(() => load({ configPath: tomlFile('[server]\nzzzzzz = 1\n') })).message).toBe('server.zzzzzz: unknown key');
  });

  it('validates the connectors\' settings tables (their schemas live with the connectors), naming the key', () => {
    const bridge = (network: string, table: string) =>
      tomlFile(['[[bridges]]', `id = "b"`, `network = "${network}"`, `as_token = "${'a'.repeat(40)}"`, `hs_token = "${'h'.repeat(40)}"`, `[bridges.${network}]`, table].join('\n'));
    expect(configError(() => load({ configPath: bridge('googlechat', 'audience_mode = "whoever"') })).key).toBe('bridges.0.googlechat.audience_mode');
    expect(configError(() => load({ configPath: bridge('whatsapp', 'acces_token = "x"') })).message).toBe('bridges.0.whatsapp.acces_token: unknown key (did you mean bridges.0.whatsapp.access_token?)');
    expect(load({ configPath: bridge('googlechat', 'project_number = "42"') }).bridges[0].googlechat).toMatchObject({ project_number: '42', audience_mode: 'project-number', events_path: '/googlechat/events' });
  });

  it('reports a misspelt key inside [[bridges]] before the required key it hides', () => {
    const err = configError(() => load({ configPath: tomlFile('[[bridges]]\nid = "wa"\nnetwork = "whatsapp"\nas_tokn = "x"\n') }));
    expect(err.message).toBe('bridges.0.as_tokn: unknown key (did you mean bridges.0.as_token?)');
  });

  it('never prints a secret value in an error', () => {
    const toml = `[[bridges]]\nid = "wa"\nnetwork = "whatsapp"\nas_token = "short-secret"\nhs_token = "${'h'.repeat(40)}"\n`;
    const err = configError(() => load({ configPath: tomlFile(toml) }));
    expect(err.key).toBe('bridges.0.as_token');
    expect(err.message).not.toContain('short-secret');
  });

  it('rejects unknown SWITCHBOARD_ variables and unknown CLI keys, suggesting the closest', () => {
    const err = configError(() => load({ env: { SWITCHBOARD_SERVER__PROT: '1' } }));
    expect(err.key).toBe('SWITCHBOARD_SERVER__PROT');
    expect(err.message).toBe('SWITCHBOARD_SERVER__PROT: unknown environment variable (no such config key; did you mean SWITCHBOARD_SERVER__PORT?)');
    expect(configError(() => load({ env: { SWITCHBOARD_POTR: '1' } })).message).toContain('did you mean SWITCHBOARD_PORT?');
    expect(configError(() => load({ env: { SWITCHBOARD_ZZZ: '1' } })).message).toBe('SWITCHBOARD_ZZZ: unknown environment variable (no such config key)');
    const cli = configError(() => load({ cli: { 'server.prot': 1 } }));
    expect(cli.key).toBe('server.prot');
    expect(cli.message).toBe('server.prot: unknown config key (did you mean server.port?)');
  });

  it('ignores unrelated environment variables', () => {
    expect(load({ env: { PATH: '/bin', HOME: '/root', NODE_ENV: 'test' } })).toEqual(load());
  });

  it('reports TOML syntax errors with file and line, and missing files', () => {
    const path = tomlFile('[server]\nport = = 1\n');
    const err = configError(() => load({ configPath: path }));
    expect(err.key).toBe(path);
    expect(err.message).toMatch(/line 2/);
    const missing = join(tmp(), 'nope.toml');
    expect(configError(() => load({ configPath: missing })).key).toBe(missing);
  });

  it('refuses a short jwt_secret and accepts 32 characters or empty', () => {
    const err = configError(() => load({ env: { SWITCHBOARD_AUTH__JWT_SECRET: 'too-short' } }));
    expect(err.key).toBe('auth.jwt_secret');
    expect(load({ env: { SWITCHBOARD_AUTH__JWT_SECRET: 'x'.repeat(32) } }).auth.jwt_secret).toBe('x'.repeat(32));
    expect(load().auth.jwt_secret).toBe('');
  });
});

describe('redactConfig', () => {
  it('redacts secrets and URL passwords without touching the input', () => {
    const cfg = load({
      env: {
        SWITCHBOARD_AUTH__JWT_SECRET: SECRET,
        DATABASE_URL: 'postgres://user:hunter2@db.example:5432/sb?sslmode=require',
        REDIS_URL: 'redis://:redispw@cache:6379',
      },
    });
    const red = redactConfig(cfg);
    expect(red.auth.jwt_secret).toBe('<redacted>');
    expect(red.database.url).toBe('postgres://user:<redacted>@db.example:5432/sb?sslmode=require');
    expect(red.redis.url).toBe('redis://:<redacted>@cache:6379');
    expect(JSON.stringify(red)).not.toMatch(/hunter2|redispw|s3cr3t/);
    expect(cfg.auth.jwt_secret).toBe(SECRET);
    expect(red.server).toEqual(cfg.server);
  });

  it('redacts secrets inside array tables: every bridge\'s tokens and network secrets', () => {
    const file = join(tmp(), 'bridges.toml');
    writeFileSync(
      file,
      [
        '[[bridges]]',
        'id = "whatsapp"',
        'network = "whatsapp"',
        `as_token = "${'a'.repeat(40)}"`,
        `hs_token = "${'h'.repeat(40)}"`,
        '[bridges.whatsapp]',
        'access_token = "EAAG-meta-token"',
        'app_secret = "meta-app-secret"',
        'verify_token = "verify-me"',
        'phone_number_id = "1234567890"',
      ].join('\n'),
    );
    const cfg = load({ configPath: file });
    const red = redactConfig(cfg);
    expect(red.bridges[0]).toMatchObject({ as_token: '<redacted>', hs_token: '<redacted>', id: 'whatsapp' });
    expect(red.bridges[0].whatsapp).toMatchObject({ access_token: '<redacted>', app_secret: '<redacted>', verify_token: '<redacted>', phone_number_id: '1234567890' });
    expect(JSON.stringify(red)).not.toMatch(/aaaaaaaa|hhhhhhhh|EAAG|meta-app-secret|verify-me/);
    expect(cfg.bridges[0].as_token).toBe('a'.repeat(40));
  });

  it('keeps URLs without password and empty secrets as they are', () => {
    const cfg = load({ env: { DATABASE_URL: 'postgres://user@db.example/sb' } });
    const red = redactConfig(cfg);
    expect(red.database.url).toBe('postgres://user@db.example/sb');
    expect(red.redis.url).toBe('');
    expect(red.auth.jwt_secret).toBe('');
  });
});

describe('configToToml', () => {
  it('generate-config output carries the descriptions and round-trips to the defaults', () => {
    const defaults = load();
    const text = configToToml(defaults, { comments: true });
    const portDoc = (ConfigSchema.properties.server.properties.port as { description?: string }).description;
    expect(text).toContain(`# ${portDoc}`);
    expect(text).toContain('[limits]');
    expect(load({ configPath: tomlFile(text) })).toEqual(defaults);
  });

  it('round-trips a non-default config', () => {
    const cfg = load({ env: { SWITCHBOARD_SERVER__CORS_ORIGINS: 'https://a.example', SWITCHBOARD_PORT: '0', SWITCHBOARD_LOG__PRETTY: 'true' } });
    const text = configToToml(cfg);
    expect(text).not.toContain('#');
    expect(load({ configPath: tomlFile(text) })).toEqual(cfg);
  });

  it('config.example.toml loads and matches the defaults', () => {
    expect(load({ configPath: join(ROOT, 'config.example.toml') })).toEqual(load());
  });

  it('generate-config output is config.example.toml, byte for byte', () => {
    // On a difference: `npx tsx src/cli.ts generate-config > config.example.toml` after changing a description.
    expect(configToToml(load(), { comments: true })).toBe(readFileSync(join(ROOT, 'config.example.toml'), 'utf8'));
  });

  it('wraps comments at 100 columns except the sample lines, and shows every key', () => {
    const text = configToToml(load(), { comments: true });
    const sample = (ConfigSchema.properties.bridges as { sample?: string }).sample!;
    const sampleLines = new Set(sample.split('\n').map((l) => `# ${l}`));
    expect(text.split('\n').filter((l) => l.length > 100 && !sampleLines.has(l))).toEqual([]);
    const written = parse(text) as Record<string, Record<string, unknown>>;
    for (const [section, schema] of Object.entries(ConfigSchema.properties)) {
      if ('properties' in schema) expect(Object.keys(written[section])).toEqual(Object.keys(schema.properties));
    }
  });

  it('the commented-out [[bridges]] sample uses schema keys only', () => {
    const sample = (ConfigSchema.properties.bridges as { sample?: string }).sample!;
    const { bridges } = parse(sample) as { bridges: Record<string, unknown>[] };
    expect(bridges.map((b) => b.network)).toEqual(['whatsapp', 'googlechat']);
    const unknown = (value: Record<string, unknown>, schema: { properties: Record<string, unknown> }, at: string): string[] =>
      Object.entries(value).flatMap(([k, v]) => {
        const sub = schema.properties[k] as { properties?: Record<string, unknown>; anyOf?: { properties?: Record<string, unknown> }[] } | undefined;
        if (!sub) return [`${at}${k}`];
        const table = sub.properties ? sub : sub.anyOf?.find((s) => s.properties);
        return v && typeof v === 'object' && !Array.isArray(v) && table?.properties ? unknown(v as Record<string, unknown>, table as { properties: Record<string, unknown> }, `${at}${k}.`) : [];
      });
    const bridgeSchema = ConfigSchema.properties.bridges.items as unknown as { properties: Record<string, unknown> };
    expect(bridges.flatMap((b, i) => unknown(b, bridgeSchema, `bridges.${i}.`))).toEqual([]);
  });
});

describe('switchboard CLI', { timeout: 30_000 }, () => {
  const run = (args: string[], opts: { env?: Record<string, string>; cwd?: string } = {}) =>
    spawnSync(join(ROOT, 'node_modules/.bin/tsx'), [join(ROOT, 'src/cli.ts'), ...args], {
      cwd: opts.cwd ?? tmp(),
      env: { PATH: process.env.PATH, HOME: process.env.HOME, ...opts.env },
      encoding: 'utf8',
    });

  it('validate-config exits 2 and names the bad key, without a stack trace', () => {
    const res = run(['validate-config', '--config', tomlFile('[server]\nprot = 9000\n')]);
    expect(res.status).toBe(2);
    expect(res.stderr).toContain('config error: server.prot: unknown key');
    expect(res.stderr).not.toMatch(/\n\s+at /);
  });

  it('validate-config prints ok for a good config, with flags after the command', () => {
    const res = run(['validate-config', '--config', join(ROOT, 'config.example.toml'), '--port', '9000', '--dev']);
    expect(res.stderr).toBe('');
    expect(res.status).toBe(0);
    expect(res.stdout.trim()).toBe('ok');
  });

  it('show-config redacts secrets set through the environment and applies flags', () => {
    const res = run(['show-config', '--port', '9300'], {
      env: { SWITCHBOARD_AUTH__JWT_SECRET: SECRET, DATABASE_URL: 'postgres://u:hunter2@db/sb' },
    });
    expect(res.status).toBe(0);
    expect(res.stdout).not.toContain(SECRET);
    expect(res.stdout).not.toContain('hunter2');
    expect(res.stdout).toContain('jwt_secret = "<redacted>"');
    expect(res.stdout).toContain('port = 9300');
  });

  it('reads .env from the working directory without overriding the environment', () => {
    const cwd = tmp();
    writeFileSync(join(cwd, '.env'), 'SWITCHBOARD_SERVER__PORT=9400\nSWITCHBOARD_LOG_LEVEL=debug\n');
    const res = run(['show-config'], { cwd, env: { SWITCHBOARD_LOG_LEVEL: 'warn' } });
    expect(res.status).toBe(0);
    expect(res.stdout).toContain('port = 9400');
    expect(res.stdout).toContain('level = "warn"');
  });

  it('generate-config writes a file that loads, and refuses to overwrite without --force', () => {
    const path = join(tmp(), 'out.toml');
    expect(run(['generate-config', path]).status).toBe(0);
    expect(load({ configPath: path })).toEqual(load());
    writeFileSync(path, '# mine\n');
    const again = run(['generate-config', path]);
    expect(again.status).toBe(1);
    expect(again.stderr).toContain('already exists');
    expect(readFileSync(path, 'utf8')).toBe('# mine\n');
    expect(run(['generate-config', path, '--force']).status).toBe(0);
    expect(readFileSync(path, 'utf8')).toContain('[server]');
  });
});
