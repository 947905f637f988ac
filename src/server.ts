/**
 * Starts a hub: logger, database (embedded PGlite unless `database.url`), migrations, services, HTTP
 * and WebSocket listener.
 */
import { pino, type Logger } from 'pino';
import { buildApp } from './app.js';
import type { Config } from './config/schema.js';
import { migrate, openDatabase } from './db/database.js';
import { createHub } from './hub.js';

/** A URL for the logs: the value of an `access_token` query parameter is replaced. */
export function redactUrl(url: string): string {
  return url.replace(/([?&]access_token=)[^&]*/g, '$1<redacted>');
}

/** The hub's pino logger. Request lines carry method, URL (tokens redacted), host and peer address. */
export function createLogger(config: Config): Logger {
  return pino({
    level: config.log.level,
    serializers: {
      req: (req: { method: string; url: string; host?: string; ip?: string; socket?: { remotePort?: number } }) => ({
        method: req.method,
        url: redactUrl(req.url),
        host: req.host,
        remoteAddress: req.ip,
        remotePort: req.socket?.remotePort,
      }),
    },
    ...(config.log.pretty ? { transport: { target: 'pino-pretty', options: { translateTime: 'HH:MM:ss.l' } } } : {}),
  });
}

/**
 * Runs the hub until `close()`.
 * @returns the base URL it listens on (`http://host:port`) and a close function.
 */
export async function startHub(config: Config): Promise<{ url: string; close(): Promise<void> }> {
  const started = performance.now();
  const log = createLogger(config);
  const db = await openDatabase(config, log);
  const applied = await migrate(db);
  if (applied.length) log.info({ applied }, 'migrations applied');
  const hub = await createHub(config, db, log);
  const app = await buildApp(hub);
  try {
    await app.listen({ host: config.server.host, port: config.server.port });
  } catch (err) {
    await app.close(); // closes the hub and its database: a failed start leaves nothing open
    throw err;
  }
  const address = app.server.address();
  const port = typeof address === 'object' && address ? address.port : config.server.port;
  const url = `http://${config.server.host.includes(':') ? `[${config.server.host}]` : config.server.host}:${port}`;
  log.info({ url, startup_ms: Math.round(performance.now() - started), embedded_db: db.embedded }, 'Switchboard listening');
  return { url, close: () => app.close() };
}
