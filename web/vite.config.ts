/**
 * Builds the web client into web/dist: index.html (served with no-cache) and content-hashed files
 * under assets/ (served immutable); public/ (the service worker, the icon) is copied as it is. The
 * SDK is bundled from its TypeScript sources, so the client never waits for the SDK's own build.
 */
import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vite';

export default defineConfig({
  resolve: { alias: { '@switchboard/sdk': fileURLToPath(new URL('../sdk/src/index.ts', import.meta.url)) } },
  oxc: { jsx: { runtime: 'automatic', importSource: 'preact' } },
  build: { outDir: 'dist', assetsDir: 'assets', emptyOutDir: true, sourcemap: true, target: 'es2022' },
  // Everything from the page's origin: the hub serves both (dev: `npm run dev -w web` proxies to a hub on 8081).
  server: { proxy: { '/api': 'http://127.0.0.1:8081', '/ws': { target: 'ws://127.0.0.1:8081', ws: true } } },
});
