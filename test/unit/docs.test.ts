/**
 * The docs name only things that exist: every `SWITCHBOARD_*` variable in README.md and docs/*.md is
 * one the config loader accepts, every dotted config key (`section.key`) is in the schema, and every
 * `switchboard …` command line uses commands and flags of the real commander program.
 */
import fs from 'node:fs';
import path from 'node:path';
import type { Command } from 'commander';
import { describe, expect, it } from 'vitest';
import { buildProgram } from '../../src/cli.js';
import { ConfigError, loadConfig } from '../../src/config/load.js';
import { ConfigSchema } from '../../src/config/schema.js';
import { REPO_ROOT } from '../e2e/spawn.js';

/** Names the docs misspell on purpose, to show the errors they get. */
const MISSPELT_ON_PURPOSE = new Set(['SWITCHBOARD_PROT', 'server.prot', 'serv']);

const DOCS = ['README.md', ...fs.readdirSync(path.join(REPO_ROOT, 'docs')).filter((f) => f.endsWith('.md')).map((f) => `docs/${f}`)];
const text = (file: string) => fs.readFileSync(path.join(REPO_ROOT, file), 'utf8');

/** Every match of `re` (with the g flag) in every doc, as `{ file, line, match }`. */
function findAll(re: RegExp): { where: string; match: RegExpExecArray }[] {
  return DOCS.flatMap((file) =>
    text(file)
      .split('\n')
      .flatMap((line, i) => [...line.matchAll(re)].map((match) => ({ where: `${file}:${i + 1}`, match }))),
  );
}

/** Whether the config loader knows an environment variable (a bad value for it is another error). */
function knownVariable(name: string): boolean {
  try {
    loadConfig({ env: { [name]: 'x' }, loadDotEnv: false });
    return true;
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    return !err.message.includes('unknown environment variable');
  }
}

const SECTIONS = Object.fromEntries(
  Object.entries(ConfigSchema.properties)
    .filter(([, s]) => 'properties' in s)
    .map(([name, s]) => [name, Object.keys((s as { properties: object }).properties)]),
);

/** Command name → the command, for the program and each command with subcommands. */
const commandsOf = (cmd: Command) => new Map(cmd.commands.map((c) => [c.name(), c]));
const flagsOf = (cmd: Command) => cmd.options.flatMap((o) => [o.long, o.short]).filter((f): f is string => !!f);

describe('the docs name only what exists', () => {
  it('SWITCHBOARD_* variables are accepted by the config loader', () => {
    const found = findAll(/\bSWITCHBOARD_[A-Z0-9_]*[A-Z0-9]\b/g);
    expect(found.length).toBeGreaterThan(10);
    const unknown = found.filter(({ match }) => !MISSPELT_ON_PURPOSE.has(match[0]) && !knownVariable(match[0])).map(({ where, match }) => `${where}: ${match[0]}`);
    expect(unknown).toEqual([]);
    // The check can fail: a misspelt name is unknown.
    expect(knownVariable('SWITCHBOARD_AUTH__JWT_SECRT')).toBe(false);
  });

  it('dotted config keys are keys of the schema', () => {
    // `section.key`, not part of a longer dotted name or path (search.service.ts, log.info(…)).
    const sections = Object.keys(SECTIONS).join('|');
    const found = findAll(new RegExp(`(?<![\\w./-])(${sections})\\.([a-z_]+|\\*)(?![\\w.(/-])`, 'g'));
    expect(found.length).toBeGreaterThan(20);
    const unknown = found
      .filter(({ match: [name, section, key] }) => key !== '*' && !SECTIONS[section].includes(key) && !MISSPELT_ON_PURPOSE.has(name))
      .map(({ where, match }) => `${where}: ${match[0]}`);
    expect(unknown).toEqual([]);
  });

  it('`switchboard …` command lines use real commands and flags', () => {
    const program = buildProgram();
    const top = commandsOf(program);
    // `switchboard` or `…bin/switchboard.js` where a shell command starts (line or code span start,
    // after `$ `, `| `, `&& `, environment assignments), and its arguments up to the span's or line's
    // end or the next shell operator.
    const found = findAll(/(?:^\s*|`|\$ |\| |&& )(?:[A-Z_]+=\S+ )*(?:node )?(?:\S*bin\/)?switchboard(?:\.js)?((?: [^\s`]+)+)/g);
    const problems: string[] = [];
    let lines = 0;
    for (const { where, match } of found) {
      const words = match[1].split(/[;|&>]/)[0].trim().split(/ +/);
      const flags = words.filter((w) => w.startsWith('-')).map((w) => w.split('=')[0]);
      const [first, second] = words.filter((w) => /^[a-z][a-z-]*$/.test(w));
      const cmd = top.get(first ?? '');
      lines++;
      const sub = cmd && commandsOf(cmd).size > 0 ? commandsOf(cmd).get(second ?? '') : undefined;
      if (first && !cmd && !MISSPELT_ON_PURPOSE.has(first)) problems.push(`${where}: no command "${first}"`);
      if (cmd && commandsOf(cmd).size > 0 && !sub) problems.push(`${where}: no command "${first} ${second}"`);
      const known = new Set([...flagsOf(program), ...(cmd ? flagsOf(cmd) : []), ...(sub ? flagsOf(sub) : []), '--help', '-h']);
      for (const flag of flags) if (/^--?[a-z]/.test(flag) && !known.has(flag)) problems.push(`${where}: no flag ${flag} for "${match[0].trim()}"`);
    }
    expect(lines).toBeGreaterThan(10);
    expect(problems).toEqual([]);
  });
});
