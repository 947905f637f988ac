/**
 * Loads the configuration: CLI flags > environment > TOML file > schema defaults, validated against
 * `ConfigSchema`. Also redaction (`show-config`) and TOML rendering (`generate-config`).
 */
import { existsSync, readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import didYouMean from 'didyoumean2';
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
  /** A commented-out TOML example printed after the description (see schema.ts). */
  sample?: string;
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

/**
 * `did you mean <prefix><name>?` for the name closest to `input` (didyoumean2's default similarity
 * threshold), or '' when none is close. Names are compared without the `prefix` they all share.
 */
function suggest(prefix: string, input: string, names: readonly string[]): string {
  const match = didYouMean(input, names);
  return match ? `did you mean ${prefix}${match}?` : '';
}

/** The schema at a key path (array indexes step into `items`), if the schema has one there. */
function schemaAt(path: string[]): JsonSchema | undefined {
  let schema: JsonSchema | undefined = ROOT;
  for (const part of path) schema = schema?.type === 'array' ? schema.items : schema?.properties?.[part];
  return schema;
}

/** `<key>: unknown key`, suggesting the closest key of the same table. */
function unknownKey(key: string): ConfigError {
  const parts = key.split('.');
  const table = parts.slice(0, -1);
  const hint = suggest(table.map((p) => `${p}.`).join(''), parts[parts.length - 1], Object.keys(schemaAt(table)?.properties ?? {}));
  return new ConfigError(key, hint ? `unknown key (${hint})` : 'unknown key');
}

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
  return dotted.split('.').reduce<unknown>((node, p) => (isObj(node) || Array.isArray(node) ? (node as Obj)[p] : undefined), cfg);
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
    if (!key) {
      const names = [...ENV_GENERIC.keys(), ...Object.keys(ENV_ALIASES)].filter((n) => n.startsWith(ENV_PREFIX)).map((n) => n.slice(ENV_PREFIX.length));
      const hint = suggest(ENV_PREFIX, name.slice(ENV_PREFIX.length), names);
      throw new ConfigError(name, `unknown environment variable (no such config key${hint ? `; ${hint}` : ''})`);
    }
    out.set(key, value);
  }
  return out;
}

function describeError(cfg: Obj, error: { keyword: string; schemaPath: string; instancePath: string; params: Obj; message: string }): ConfigError {
  const key = error.instancePath.split('/').filter(Boolean).join('.');
  if (error.keyword === 'additionalProperties') {
    const [extra] = error.params.additionalProperties as string[];
    return unknownKey(key ? `${key}.${extra}` : extra);
  }
  if (error.keyword === 'boolean' && error.schemaPath.endsWith('/additionalProperties')) return unknownKey(key);
  const schema = schemaAt(key ? key.split('.') : []);
  const value = getPath(cfg, key);
  // The offending value, unless it is a secret or a whole table.
  const got = schema?.secret || isObj(value) ? '' : ` (got ${JSON.stringify(value)})`;
  if (schema?.anyOf?.every((s) => s.const !== undefined)) {
    return new ConfigError(key, `must be one of ${schema.anyOf.map((s) => JSON.stringify(s.const)).join(', ')}${got}`);
  }
  return new ConfigError(key || '(root)', `${error.message}${got}`);
}

/**
 * Builds the effective configuration from CLI values > environment > TOML file > schema defaults.
 * Environment: `SWITCHBOARD_<SECTION>__<KEY>` for every key (`SWITCHBOARD_DATA_DIR` for top-level
 * ones), plus `SWITCHBOARD_HOST`, `SWITCHBOARD_PORT`, `SWITCHBOARD_LOG_LEVEL`, `DATABASE_URL`,
 * `REDIS_URL`; strings are coerced to the key's type (arrays are comma-separated).
 * Returns a fresh, fully defaulted object; the inputs are not mutated.
 * @throws ConfigError for an unreadable or invalid TOML file, an unknown `SWITCHBOARD_*` variable or
 *   CLI key, any schema violation (unknown key, wrong type, out of range) and a non-empty
 *   `auth.jwt_secret` shorter than 32 characters. An unknown key or variable names the closest
 *   known one when there is a close one ("server.prot: unknown key (did you mean server.port?)").
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
    if (!schema) {
      const hint = suggest('', key, [...LEAVES.keys()]);
      throw new ConfigError(key, hint ? `unknown config key (${hint})` : 'unknown config key');
    }
    if (value !== undefined) setPath(cfg, key, typeof value === 'string' ? coerce(value, schema) : structuredClone(value));
  }

  const config = Value.Default(ConfigSchema, cfg) as Obj;
  // An unknown key first: it is often a misspelt required one, which would be reported as missing.
  const errors = [...Value.Errors(ConfigSchema, config)] as unknown as Parameters<typeof describeError>[1][];
  const first = errors.find((e) => e.keyword === 'additionalProperties') ?? errors[0];
  if (first) throw describeError(config, first);

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

/** Comment width: generated lines stay within this many columns. */
const COMMENT_COLUMNS = 100;

/**
 * `text` as `# ` comment lines, wrapped at COMMENT_COLUMNS (a longer word or code span gets a line of
 * its own); "\n" breaks a line, "\n\n" leaves a `#` line.
 */
function commentLines(text: string): string[] {
  return text.split('\n\n').flatMap((paragraph, i) => [
    ...(i > 0 ? ['#'] : []),
    ...paragraph.split('\n').flatMap((line) => {
      const wrapped: string[] = [];
      let current = '';
      // Words, a `code span` counting as one, so that no command is split across lines.
      for (const word of line.match(/(?:`[^`]*`|\S)+/g) ?? ['']) {
        if (current && current.length + 1 + word.length > COMMENT_COLUMNS - 2) {
          wrapped.push(current);
          current = word;
        } else {
          current = current ? `${current} ${word}` : word;
        }
      }
      return [...wrapped, current].map((l) => `# ${l}`);
    }),
  ]);
}

/** An array of tables (`[[bridges]]`): rendered after the sections, never among the top-level keys. */
const isTableArray = (schema: JsonSchema) => schema.type === 'array' && schema.items?.type === 'object';

/**
 * Renders `cfg` as a TOML document in schema order: top-level keys first, then one `[section]`
 * table per section, then `[[bridges]]` tables (none when there are no bridges). With
 * `comments: true` (`generate-config`, and config.example.toml is its output) the root schema's
 * description heads the file, each section's follows its header, each key's precedes the key, and an
 * empty `bridges` shows its description and commented-out sample. `loadConfig` of the output yields
 * `cfg` again.
 */
export function configToToml(cfg: Config, opts: { comments?: boolean } = {}): string {
  const comment = (schema: JsonSchema) => (opts.comments && schema.description ? commentLines(schema.description) : []);
  const renderKeys = (props: [string, JsonSchema][], values: Obj): string[] =>
    props.flatMap(([key, schema]) => [...comment(schema), stringify({ [key]: values[key] }).trim()]);

  const props = Object.entries(ROOT.properties!);
  const blocks = [
    ...(opts.comments ? [comment(ROOT).join('\n')] : []),
    renderKeys(props.filter(([, s]) => s.type !== 'object' && !isTableArray(s)), cfg as Obj).join('\n'),
  ];
  for (const [section, schema] of props) {
    if (schema.type !== 'object') continue;
    const keys = renderKeys(Object.entries(schema.properties!), (cfg as Obj)[section] as Obj);
    blocks.push([`[${section}]`, ...comment(schema), ...keys].join('\n'));
  }
  for (const [key, schema] of props) {
    if (!isTableArray(schema)) continue;
    const tables = (cfg as Obj)[key] as Obj[];
    if (tables.length > 0) blocks.push(stringify({ [key]: tables }).trim());
    else if (opts.comments) blocks.push([...comment(schema), '#', ...(schema.sample ?? '').split('\n').map((l) => (l ? `# ${l}` : '#'))].join('\n'));
  }
  return blocks.join('\n\n') + '\n';
}
