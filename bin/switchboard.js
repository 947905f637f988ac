#!/usr/bin/env node
// Entry point of the `switchboard` command: runs the compiled CLI (dist/, built by `npm run build`,
// which `npm install` runs). Stack traces point at the TypeScript sources through the source maps.
process.setSourceMapsEnabled(true);
const { main } = await import('../dist/src/cli.js');
await main(process.argv);
