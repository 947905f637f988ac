/**
 * docker-compose.yml, checked without a Docker engine: dclint (which validates against the
 * compose-spec JSON schema it ships, then applies its rules) and the file's meaning for Switchboard:
 * which services run by default, and that the hub's environment is a valid Switchboard config.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { DCLinter } from 'dclint';
import { parse } from 'yaml';
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/load.js';
import { REPO_ROOT } from '../e2e/spawn.js';

const COMPOSE = path.join(REPO_ROOT, 'docker-compose.yml');

/** dclint with its schema validation and rules, minus the ones about key and service order (style). */
function lint(file: string) {
  const style = ['service-keys-order', 'services-alphabetical-order', 'top-level-properties-order', 'service-dependencies-alphabetical-order'];
  const linter = new DCLinter({
    rules: { ...Object.fromEntries(style.map((r) => [r, 0])), 'require-quotes-in-ports': [2, { quoteType: 'double' }] },
    quiet: false,
    debug: false,
    exclude: [],
  });
  // dclint's declaration files import without extensions, which NodeNext resolution cannot follow.
  const results = linter.lintFiles([file], false) as { messages: { line: number; rule: string; message: string }[] }[];
  return results.flatMap((r) => r.messages.map((m) => `${m.line}: ${m.rule}: ${m.message}`));
}

/** Compose's `${VAR}`, `${VAR:-default}` and `${VAR:?error}` with `vars`, as `docker compose` would. */
function interpolate(value: string, vars: Record<string, string>): string {
  return value.replace(/\$\{(\w+)(?::([-?])([^}]*))?\}/g, (_, name: string, op?: string, rest?: string) => {
    if (vars[name]) return vars[name];
    if (op === '?') throw new Error(`${name} is required: ${rest}`);
    return rest ?? '';
  });
}

describe('docker-compose.yml', () => {
  const compose = parse(fs.readFileSync(COMPOSE, 'utf8'), { merge: true });

  it('passes dclint: the compose-spec schema and its rules', () => {
    expect(lint(COMPOSE)).toEqual([]);
  });

  it('is rejected by the same check when it breaks the schema (the check is real)', () => {
    const bad = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'sb-compose-')), 'docker-compose.yml');
    fs.writeFileSync(bad, 'services:\n  hub:\n    imagee: switchboard\n');
    try {
      expect(lint(bad).join('\n')).toMatch(/invalid-schema/);
    } finally {
      fs.rmSync(path.dirname(bad), { recursive: true, force: true });
    }
  });

  it('runs the hub, PostgreSQL and Redis by default; Meilisearch and a bridge worker are profiles', () => {
    const profiles = Object.fromEntries(Object.entries(compose.services).map(([name, s]) => [name, (s as { profiles?: string[] }).profiles ?? []]));
    expect(profiles).toEqual({ hub: [], postgres: [], redis: [], meilisearch: ['search'], bridge: ['bridge'] });
    expect(compose.services.hub.depends_on).toEqual({
      postgres: { condition: 'service_healthy' },
      redis: { condition: 'service_healthy' },
      meilisearch: { condition: 'service_started', required: false },
    });
    expect(compose.services.hub.command.slice(0, 3)).toEqual(['node', 'bin/switchboard.js', 'serve']);
    expect(compose.services.bridge.command.slice(0, 3)).toEqual(['node', 'bin/switchboard.js', 'bridge']);
    expect(fs.existsSync(path.join(REPO_ROOT, interpolate(compose.configs.switchboard.file, {})))).toBe(true);
  });

  it('gives the hub an environment that is a valid Switchboard config, and requires the two secrets', () => {
    const secrets = { POSTGRES_PASSWORD: 'pg-secret', SWITCHBOARD_AUTH__JWT_SECRET: 'j'.repeat(32) };
    const hubConfig = (vars: Record<string, string>) => {
      const env = Object.entries(compose.services.hub.environment as Record<string, string>).map(([k, v]) => [k, interpolate(v, vars)]);
      return loadConfig({ env: Object.fromEntries(env), loadDotEnv: false, configPath: path.join(REPO_ROOT, 'config.example.toml') });
    };
    const config = hubConfig(secrets);
    expect(config.database.url).toBe('postgres://switchboard:pg-secret@postgres:5432/switchboard');
    expect(config.redis.url).toBe('redis://redis:6379');
    expect(config.auth.jwt_secret).toBe('j'.repeat(32));
    expect(config.search.backend).toBe('postgres');
    expect(config.metrics.listen).toBe('0.0.0.0:9091');
    const search = hubConfig({ ...secrets, SWITCHBOARD_SEARCH__BACKEND: 'meilisearch', MEILI_MASTER_KEY: 'm'.repeat(24) });
    expect(search.search).toMatchObject({ backend: 'meilisearch', url: 'http://meilisearch:7700', api_key: 'm'.repeat(24) });
    expect(() => hubConfig({ POSTGRES_PASSWORD: 'pg-secret' })).toThrow(/SWITCHBOARD_AUTH__JWT_SECRET is required/);
    expect(() => interpolate(compose.services.postgres.environment.POSTGRES_PASSWORD, {})).toThrow(/POSTGRES_PASSWORD is required/);
  });
});
