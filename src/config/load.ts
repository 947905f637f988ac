/**
 * Loads the configuration: CLI flags > environment > TOML file > schema defaults, validated against
 * `ConfigSchema`. Also redaction (`show-config`) and TOML rendering (`generate-config`).
 */
import { existsSync, readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import dotenv from 'dotenv';
import { parse, stringify, TomlError } from 'smol-toml';
import { Value } from 'typebox/value';
import { ConfigSchema, type Config } from './schema.js';

/** A configuration problem; `key` is the offending dotted key (or the file path for file errors). */
export class ConfigError extends Error {
  readonly key: string;
  constructor(key: string, problem: string) {
    super(`${key}: ${problem}`);
    this.name = 'ConfigError';
    this.key = key;
  }
}

export interface LoadOptions {
  /** TOML file to read; none when omitted. A missing file is an error. */
  configPath?: string;
  /** Environment to read (default `process.env`). */
  env?: NodeJS.ProcessEnv;
  /** Dotted keys → values, e.g. `{ 'server.port': 9000, 'log.pretty': true }`. Strings are coerced like env values. */
  cli?: Record<string, unknown>;
  /** Read `.env` from the working directory without overriding existing variables (default true). */
  loadDotEnv?: boolean;
}

/** The subset of JSON Schema that the config schema uses. */
interface JsonSchema {
  type?: string;
  description?: string;
  properties?: Record<string, JsonSchema>;
  items?: JsonSchema;
  anyOf?: JsonSchema[];
  const?: unknown;
  /** Set on secret keys (see schema.ts): true redacts the whole value, 'url' only a password in it. */
  secret?: boolean | 'url';
}

type Obj = Record<string, unknown>;

const ROOT = ConfigSchema as unknown as JsonSchema;
const ENV_PREFIX = 'SWITCHBOARD_';
const ENV_ALIASES: Record<string, string> = {
  SWITCHBOARD_HOST: 'server.host',
  SWITCHBOARD_PORT: 'server.port',
  SWITCHBOARD_LOG_LEVEL: 'log.level',
  DATABASE_URL: 'database.url',
  REDIS_URL: 'redis.url',
};

/** Every leaf key of the schema, dotted path → its schema. */
const LEAVES = new Map<string, JsonSchema>();
for (const [key, schema] of Object.entries(ROOT.properties!)) {
  if (schema.type === 'object') {
    for (const [sub, leaf] of Object.entries(schema.properties!)) LEAVES.set(`${key}.${sub}`, leaf);
  } else {
    LEAVES.set(key, schema);
  }
}

/** Generic env name of every leaf: `SWITCHBOARD_<SECTION>__<KEY>`, e.g. `SWITCHBOARD_AUTH__JWT_SECRET`. */
const ENV_GENERIC = new Map([...LEAVES.keys()].map((k) => [ENV_PREFIX + k.split('.').join('__').toUpperCase(), k]));

const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v) && !(v instanceof Date);

/** Converts a string to the type the leaf schema wants; values that do not convert are left for validation to reject. */
function coerce(raw: string, schema: JsonSchema): unknown {
  switch (schema.type) {
    case 'integer':
    case 'number': {
      const n = Number(raw);
      return raw.trim() !== '' && Number.isFinite(n) ? n : raw;
    }
    case 'boolean': {
      const s = raw.trim().toLowerCase();
      if (s === 'true' || s === '1') return true;
      if (s === 'false' || s === '0') return false;
      return raw;
    }
    case 'array':
      return raw.split(',').map((s) => s.trim()).filter((s) => s !== '');
    default:
      return raw;
  }
}

function setPath(cfg: Obj, dotted: string, value: unknown): void {
  const parts = dotted.split('.');
  let node = cfg;
  for (const p of parts.slice(0, -1)) node = node[p] as Obj;
  node[parts[parts.length - 1]] = value;
}

function getPath(cfg: unknown, dotted: string): unknown {
  return dotted.split('.').reduce<unknown>((node, p) => (isObj(node) ? node[p] : undefined), cfg);
}

function readEnv(opts: LoadOptions): NodeJS.ProcessEnv {
  const dotEnvPath = resolve('.env');
  const useDotEnv = opts.loadDotEnv !== false && existsSync(dotEnvPath);
  if (!opts.env) {
    if (useDotEnv) dotenv.config({ path: dotEnvPath, quiet: true });
    return process.env;
  }
  return useDotEnv ? { ...dotenv.parse(readFileSync(dotEnvPath)), ...opts.env } : opts.env;
}

function readToml(path: string): Obj {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new ConfigError(path, `cannot read config file (${(err as NodeJS.ErrnoException).code ?? String(err)})`);
  }
  try {
    return parse(text) as Obj;
  } catch (err) {
    if (!(err instanceof TomlError)) throw err;
    const reason = err.message.split('\n')[0].replace(/^Invalid TOML document: /, '');
    throw new ConfigError(path, `invalid TOML at line ${err.line}, column ${err.column}: ${reason}`);
  }
}

/** Env variables → dotted key → value. Generic names win over the short aliases. */
function envValues(env: NodeJS.ProcessEnv): Map<string, string> {
  const out = new Map<string, string>();
  for (const [name, key] of Object.entries(ENV_ALIASES)) {
    if (env[name] !== undefined) out.set(key, env[name]);
  }
  for (const [name, value] of Object.entries(env)) {
    if (!name.startsWith(ENV_PREFIX) || name in ENV_ALIASES || value === undefined) continue;
    const key = ENV_GENERIC.get(name);
    if (!key) throw new ConfigError(name, 'unknown environment variable (no such config key)');
    out.set(key, value);
  }
  return out;
}

function describeError(cfg: Obj, error: { keyword: string; schemaPath: string; instancePath: string; params: Obj; message: string }): ConfigError {
  const key = error.instancePath.split('/').filter(Boolean).join('.');
  if (error.keyword === 'additionalProperties') {
    const [extra] = error.params.additionalProperties as string[];
    return new ConfigError(key ? `${key}.${extra}` : extra, 'unknown key');
  }
  if (error.keyword === 'boolean' && error.schemaPath.endsWith('/additionalProperties')) {
    return new ConfigError(key, 'unknown key');
  }
  const got = JSON.stringify(getPath(cfg, key));
  const schema = LEAVES.get(key);
  if (schema?.anyOf?.every((s) => s.const !== undefined)) {
    return new ConfigError(key, `must be one of ${schema.anyOf.map((s) => JSON.stringify(s.const)).join(', ')} (got ${got})`);
  }
  return new ConfigError(key || '(root)', `${error.message} (got ${got})`);
}

/**
 * Builds the effective configuration from CLI values > environment > TOML file > schema defaults.
 * Environment: `SWITCHBOARD_<SECTION>__<KEY>` for every key (`SWITCHBOARD_DATA_DIR` for top-level
 * ones), plus `SWITCHBOARD_HOST`, `SWITCHBOARD_PORT`, `SWITCHBOARD_LOG_LEVEL`, `DATABASE_URL`,
 * `REDIS_URL`; strings are coerced to the key's type (arrays are comma-separated).
 * Returns a fresh, fully defaulted object; the inputs are not mutated.
 * @throws ConfigError for an unreadable or invalid TOML file, an unknown `SWITCHBOARD_*` variable or
 *   CLI key, any schema violation (unknown key, wrong type, out of range) and a non-empty
 *   `auth.jwt_secret` shorter than 32 characters.
 */
export function loadConfig(opts: LoadOptions = {}): Config {
  const env = readEnv(opts);
  const cfg: Obj = opts.configPath ? readToml(opts.configPath) : {};

  for (const [key, schema] of Object.entries(ROOT.properties!)) {
    if (schema.type !== 'object') continue;
    if (cfg[key] === undefined) cfg[key] = {};
    else if (!isObj(cfg[key])) throw new ConfigError(key, `must be a table (got ${JSON.stringify(cfg[key])})`);
  }

  for (const [key, raw] of envValues(env)) setPath(cfg, key, coerce(raw, LEAVES.get(key)!));

  for (const [key, value] of Object.entries(opts.cli ?? {})) {
    const schema = LEAVES.get(key);
    if (!schema) throw new ConfigError(key, 'unknown config key');
    if (value !== undefined) setPath(cfg, key, typeof value === 'string' ? coerce(value, schema) : structuredClone(value));
  }

  const config = Value.Default(ConfigSchema, cfg) as Obj;
  const [first] = Value.Errors(ConfigSchema, config);
  if (first) throw describeError(config, first as unknown as Parameters<typeof describeError>[1]);

  const secret = (config as Config).auth.jwt_secret;
  if (secret !== '' && secret.length < 32) {
    throw new ConfigError('auth.jwt_secret', `must be at least 32 characters (got ${secret.length}); leave it empty to generate one`);
  }
  return config as Config;
}

function redactUrl(value: string): string {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    return '<redacted>';
  }
  const search = url.search.replace(/([?&]password=)[^&]*/gi, '$1<redacted>');
  if (!url.password && search === url.search) return value;
  const auth = url.password ? `${url.username}:<redacted>@` : url.username ? `${url.username}@` : '';
  return `${url.protocol}//${auth}${url.host}${url.pathname}${search}${url.hash}`;
}

/**
 * Returns a deep copy of `cfg` in which every non-empty value the schema marks `secret` (at any depth,
 * array items included, e.g. each `[[bridges]]` token) is replaced by `"<redacted>"`; for
 * `secret: 'url'` only a password inside the URL is.
 */
export function redactConfig(cfg: Config): Config {
  const redact = (schema: JsonSchema, value: unknown): unknown => {
    if (schema.secret && typeof value === 'string' && value !== '') return schema.secret === 'url' ? redactUrl(value) : '<redacted>';
    if (schema.type === 'array' && Array.isArray(value) && schema.items) return value.map((v) => redact(schema.items!, v));
    if (schema.properties && isObj(value)) {
      return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, schema.properties![k] ? redact(schema.properties![k], v) : v]));
    }
    return value;
  };
  return redact(ROOT, structuredClone(cfg)) as Config;
}

/**
 * Renders `cfg` as a TOML document in schema order: top-level keys first, then one `[section]`
 * table per section. With `comments: true` every key is preceded by `# <description>` from the
 * schema. `loadConfig` of the output yields `cfg` again.
 */
export function configToToml(cfg: Config, opts: { comments?: boolean } = {}): string {
  const renderKeys = (props: Record<string, JsonSchema>, values: Obj): string[] =>
    Object.entries(props).flatMap(([key, schema]) => [
      ...(opts.comments && schema.description ? [`# ${schema.description}`] : []),
      stringify({ [key]: values[key] }).trim(),
    ]);

  const props = Object.entries(ROOT.properties!);
  const top = Object.fromEntries(props.filter(([, s]) => s.type !== 'object'));
  const blocks = [renderKeys(top, cfg as Obj).join('\n')];
  for (const [section, schema] of props) {
    if (schema.type !== 'object') continue;
    blocks.push([`[${section}]`, ...renderKeys(schema.properties!, (cfg as Obj)[section] as Obj)].join('\n'));
  }
  return blocks.join('\n\n') + '\n';
}
