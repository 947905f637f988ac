/**
 * Draining on shutdown. From the moment `app.close()` starts (its preClose hooks):
 * - every response still to be sent ends its connection (`Connection: close`): a request in flight
 *   would otherwise leave a keep-alive connection that holds close() for the keep-alive timeout.
 *   Requests arriving later get Fastify's own 503, with `Connection: close` as well.
 * - `app.closingSignal` aborts, so long requests in flight (an agent's `wait_for_messages`, over REST
 *   and MCP) end early and answer, instead of holding close() for their whole timeout.
 * A hijacked reply (the MCP transport writes the raw response) is not seen by the onSend hook; such
 * a route calls `reply.endConnectionOnShutdown()` instead.
 */
import type { FastifyInstance, FastifyReply } from 'fastify';
import fp from 'fastify-plugin';

declare module 'fastify' {
  interface FastifyInstance {
    /** Aborted when `app.close()` starts. */
    closingSignal: AbortSignal;
  }
  interface FastifyReply {
    /** For a hijacked reply: once the app is closing, its connection is not kept alive after it. */
    endConnectionOnShutdown(): void;
  }
}

async function draining(app: FastifyInstance): Promise<void> {
  const closing = new AbortController();
  app.decorate('closingSignal', closing.signal);
  app.addHook('preClose', async () => closing.abort());
  app.addHook('onSend', async (_req, reply) => {
    if (closing.signal.aborted) reply.header('connection', 'close');
  });
  app.decorateReply('endConnectionOnShutdown', function (this: FastifyReply) {
    const res = this.raw;
    const end = () => {
      res.shouldKeepAlive = false;
    };
    if (closing.signal.aborted) return end();
    closing.signal.addEventListener('abort', end, { once: true });
    res.once('close', () => closing.signal.removeEventListener('abort', end));
  });
}

/** Registers the shutdown draining (`app.closingSignal`, `reply.endConnectionOnShutdown`). Register before the routes. */
export const drainingPlugin = fp(draining, { name: 'switchboard-draining' });
