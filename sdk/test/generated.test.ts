/**
 * The SDK's REST types are generated from docs/openapi.json by openapi-typescript; this keeps the
 * committed file equal to the generator's output (`npm run openapi` regenerates both).
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { expect, it } from 'vitest';
import { REPO_ROOT } from '../../test/e2e/spawn.js';

it('sdk/src/generated/api.ts is what openapi-typescript makes of docs/openapi.json', () => {
  const cli = path.join(REPO_ROOT, 'node_modules/openapi-typescript/bin/cli.js');
  const out = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'sb-openapi-ts-')), 'api.ts');
  execFileSync(process.execPath, [cli, path.join(REPO_ROOT, 'docs/openapi.json'), '-o', out], { stdio: 'pipe' });
  const committed = fs.readFileSync(path.join(REPO_ROOT, 'sdk/src/generated/api.ts'), 'utf8');
  expect(committed === fs.readFileSync(out, 'utf8'), 'sdk/src/generated/api.ts is stale: run `npm run openapi`').toBe(true);
});
