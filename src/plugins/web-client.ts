/**
 * Serves the web client (web/dist, built by `npm install` / `npm run build`) at `/` with
 * `@fastify/static`: one route per built file (no wildcard, so nothing shadows the hub's routes),
 * and index.html for `/` and for any other GET of a page (`Accept: text/html`) outside the hub's
 * own paths, so client URLs survive a reload. Unknown `/api/...` URLs stay JSON 404s.
 *
 * Caching: files under assets/ carry a content hash in their names and are `immutable` for a year;
 * everything else (index.html, sw.js, the icon) is `no-cache` (revalidated with its ETag), so a new
 * build is picked up at the next load. Every response of the client carries a strict
 * Content-Security-Policy: scripts, styles and connections from the hub's own origin only (the
 * WebSocket included), images also from blob: (attachments fetched with the token), no inline
 * code, no framing, no plugins. Details: docs/WEB.md.
 */
import fs from 'node:fs';
import path from 'node:path';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import fastifyStatic from '@fastify/static';
import fp from 'fastify-plugin';
import { PACKAGE_ROOT } from '../lib/package.js';

/** Where the built client is. */
export const WEB_ROOT = path.join(PACKAGE_ROOT, 'web/dist');

/** The Content-Security-Policy of the client's pages and files. */
export const CONTENT_SECURITY_POLICY = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' blob:",
  "connect-src 'self'",
  "manifest-src 'self'",
  "worker-src 'self'",
  "base-uri 'none'",
  "form-action 'self'",
  "frame-ancestors 'none'",
  "object-src 'none'",
].join('; ');

const IMMUTABLE = 'public, max-age=31536000, immutable';

/** Paths the hub answers itself: never the client's index.html. */
const HUB_PATHS = /^\/(api|ws|docs|mcp|metrics|healthz|readyz)(\/|$)/;

function securityHeaders(set: (name: string, value: string) => void): void {
  set('content-security-policy', CONTENT_SECURITY_POLICY);
  set('x-content-type-options', 'nosniff');
  set('referrer-policy', 'no-referrer');
  set('cross-origin-opener-policy', 'same-origin');
}

/** True when `req` is a page load of a client URL (GET or HEAD of HTML, outside the hub's paths) and the client is built. */
export function isClientPage(req: FastifyRequest): boolean {
  if ((req.method !== 'GET' && req.method !== 'HEAD') || !req.server.hasDecorator('webClient')) return false;
  const pathname = req.url.split('?')[0];
  return !HUB_PATHS.test(pathname) && (req.headers.accept ?? '').includes('text/html');
}

/** Answers with the client's index.html. */
export function sendClientPage(reply: FastifyReply): FastifyReply {
  securityHeaders((name, value) => reply.header(name, value));
  return reply.header('cache-control', 'no-cache').sendFile('index.html');
}

async function webClient(app: FastifyInstance): Promise<void> {
  if (!fs.existsSync(path.join(WEB_ROOT, 'index.html'))) {
    app.log.warn({ dir: WEB_ROOT }, 'the web client is not built (npm run build); / is not served');
    return;
  }
  app.decorate('webClient', true);
  await app.register(fastifyStatic, {
    root: WEB_ROOT,
    wildcard: false,
    index: false,
    cacheControl: false,
    setHeaders(res, file) {
      securityHeaders((name, value) => res.header(name, value));
      res.header('cache-control', path.relative(WEB_ROOT, file).startsWith(`assets${path.sep}`) ? IMMUTABLE : 'no-cache');
    },
  });
  app.get('/', { schema: { hide: true } }, (_req, reply) => sendClientPage(reply));
}

/** Registers the client's routes (nothing when web/dist is missing, with a warning). */
export const webClientPlugin = fp(webClient, { name: 'switchboard-web-client' });
