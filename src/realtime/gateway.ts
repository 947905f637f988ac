/**
 * `GET /ws`: the JSON WebSocket. Authenticated before the upgrade (`Authorization: Bearer <token>` or
 * `?access_token=`; 401 otherwise). `?since=<stream_position>` replays every room event after that
 * position, in order, exactly once, before live events; then the server sends
 * `{"type":"ready","stream_position","resumed"}`. Frames from one socket are handled one at a time,
 * in order. Protocol: docs/WEBSOCKET_API.md.
 */
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import type { WebSocket } from 'ws';
import { AppError } from '../errors.js';
import type { Hub } from '../hub.js';
import type { AuthContext } from '../modules/auth/auth.service.js';
import type { SocketLimits } from '../plugins/rate-limit.js';
import { CLOSE, Connection } from './connection.js';
import type { StreamEvent } from './stream.js';
import { parseFrame, type AnyFrame } from './ws.schemas.js';

const WsQuery = Type.Object({
  access_token: Type.Optional(Type.String()),
  since: Type.Optional(Type.Integer({ minimum: 0 })),
});

export const gatewayRoutes: FastifyPluginAsyncTypebox = async (app) => {
  const hub = app.hub;

  app.get(
    '/ws',
    {
      websocket: true,
      schema: { querystring: WsQuery, hide: true },
      preValidation: async (req) => {
        const header = req.headers.authorization;
        const token = header?.startsWith('Bearer ') ? header.slice(7) : req.query.access_token;
        if (!token) throw new AppError('UNAUTHORIZED', 'Missing access token');
        req.auth = await hub.auth.authenticate(token);
      },
    },
    async (socket: WebSocket, req) => {
      const since = req.query.since;
      await serveSocket(hub, socket, req.auth, since, app.socketLimits(), () => app.sendLimiter(req));
    },
  );
};

async function serveSocket(hub: Hub, socket: WebSocket, auth: AuthContext, since: number | undefined, limits: SocketLimits, limitSend: () => Promise<number>): Promise<void> {
  const onStreamWrite = (conn: Connection, event: StreamEvent) => {
    hub.metrics.eventsDelivered.inc();
    if (event.type !== 'message.new') return;
    const message = event.payload.message as { id: string; user_id: string };
    if (message.user_id === conn.userId) return;
    if (conn.isLive) hub.metrics.deliveryLatency.observe((Date.now() - event.created_at.getTime()) / 1000);
    hub.messages.markDelivered(message.id).catch((err) => hub.log.error({ err }, 'delivery receipt failed'));
  };
  const conn = new Connection(socket, auth, hub.stream.position, hub.config.limits.max_send_queue_bytes, onStreamWrite);

  // Frames that arrive while we set up are queued behind it, then handled one at a time.
  let queue: Promise<void> = Promise.resolve();
  let ready!: () => void;
  const setUp = new Promise<void>((resolve) => (ready = resolve));
  socket.on('message', (data, isBinary) => {
    queue = queue
      .then(() => setUp)
      .then(() => handleFrame(hub, conn, isBinary ? null : data.toString(), limits, limitSend))
      .catch((err) => hub.log.error({ err }, 'WebSocket frame handling failed'));
  });
  // Counted in presence only once `connected` was called, so a failed set-up cannot uncount another socket.
  let present = false;
  socket.on('close', () => {
    // A socket may close half-way through its set-up: undo it once it is complete, or the rooms it
    // joins and the presence it sets afterwards would outlive it.
    void setUp.then(() => {
      hub.fanout.remove(conn);
      hub.metrics.wsConnections.dec();
      if (present) hub.presence.disconnected(auth.userId);
      if (hub.fanout.socketCount(auth.userId) === 0) void hub.typing.stopAll(auth.userId);
    });
  });

  hub.metrics.wsConnections.inc();
  // Register first, read the rooms second: a room.updated that adds the user from now on reaches this
  // socket through the user index, and every event after `startPosition` that was dispatched before
  // the registration is read back from the database by the catch-up (duplicates dropped by position).
  const startPosition = conn.lastPosition;
  hub.fanout.add(conn);
  try {
    hub.fanout.joinRooms(conn, await hub.rooms.roomIdsFor(auth.userId));
    present = true;
    await hub.presence.connected(auth.userId).catch((err) => hub.log.error({ err }, 'presence update failed'));
    // A since past the end of the stream (a stale client, a restored database) would silence every
    // event up to it: it counts as the end.
    const from = since === undefined ? startPosition : Math.min(since, await hub.stream.maxPosition());
    const written = await conn.catchUp(from, (after) => hub.stream.readSince(after, [...conn.rooms], auth.userId, undefined, { roomsLeft: true }));
    conn.send({ type: 'ready', user_id: auth.userId, device_id: auth.deviceId, stream_position: conn.lastPosition, resumed: since === undefined ? 0 : written });
  } catch (err) {
    hub.log.error({ err }, 'WebSocket set-up failed');
    conn.close(CLOSE.INTERNAL_ERROR, 'set-up failed; reconnect with since');
  } finally {
    ready();
  }
}

async function handleFrame(hub: Hub, conn: Connection, text: string | null, limits: SocketLimits, limitSend: () => Promise<number>): Promise<void> {
  if (!conn.open) return;
  const frameWaitMs = limits.frame();
  if (frameWaitMs > 0) {
    const parsed = text === null ? null : parseFrame(text);
    return sendRateLimited(conn, frameWaitMs, parsed?.ok ? (parsed.frame as { txn_id?: string }).txn_id : parsed?.txn_id);
  }
  if (text === null) {
    conn.send({ type: 'error', code: 'INVALID_FRAME', message: 'Binary frames are not supported; send JSON text' });
    return;
  }
  const parsed = parseFrame(text);
  if (!parsed.ok) {
    conn.send({ type: 'error', code: parsed.code, message: parsed.message, ...(parsed.txn_id ? { txn_id: parsed.txn_id } : {}) });
    return;
  }
  const frame = parsed.frame;
  if (frame.type === 'message.send') {
    const sendWaitMs = await limitSend();
    if (sendWaitMs > 0) return sendRateLimited(conn, sendWaitMs, frame.txn_id);
  }
  try {
    await dispatch(hub, conn, frame);
  } catch (err) {
    const txn = 'txn_id' in frame && frame.txn_id ? { txn_id: frame.txn_id } : {};
    if (err instanceof AppError) {
      conn.send({ type: 'error', code: err.code, message: err.message, ...txn });
    } else {
      hub.log.error({ err, frame: frame.type }, 'WebSocket frame failed');
      conn.send({ type: 'error', code: 'INTERNAL', message: 'Internal error', ...txn });
    }
  }
}

/** The frame was not processed: `{"type":"error","code":"RATE_LIMITED","retry_after_ms","txn_id"?}`. */
function sendRateLimited(conn: Connection, retryAfterMs: number, txnId: string | undefined): void {
  conn.send({ type: 'error', code: 'RATE_LIMITED', message: `Rate limited; retry in ${retryAfterMs} ms`, retry_after_ms: retryAfterMs, ...(txnId ? { txn_id: txnId } : {}) });
}

async function dispatch(hub: Hub, conn: Connection, frame: AnyFrame): Promise<void> {
  const { userId, userName } = conn.auth;
  switch (frame.type) {
    case 'message.send': {
      const { message, created } = await hub.messages.send(userId, frame.room_id, frame);
      if (created) hub.metrics.messagesSent.inc();
      conn.send({
        type: 'message.sent',
        txn_id: frame.txn_id ?? null,
        message_id: message.id,
        room_id: message.room_id,
        stream_position: message.stream_position,
        created_at: message.created_at,
        duplicate: !created,
      });
      await hub.typing.stop(frame.room_id, userId);
      return;
    }
    case 'typing.start':
      await requireMembership(hub, conn, frame.room_id);
      return hub.typing.start(frame.room_id, userId, userName);
    case 'typing.stop':
      await requireMembership(hub, conn, frame.room_id);
      return hub.typing.stop(frame.room_id, userId);
    case 'message.read':
      await hub.messages.markRead(userId, frame.room_id, frame.message_id);
      return;
    case 'presence.update':
      await hub.presence.update(userId, frame.status, frame.status_text);
      return;
    case 'reaction.add':
    case 'reaction.remove':
      await hub.messages.react(userId, frame.message_id, frame.key, frame.type === 'reaction.add');
      return;
    case 'ping':
      conn.send({ type: 'pong', ...(frame.txn_id ? { txn_id: frame.txn_id } : {}) });
      return;
  }
}

/** Membership from the socket's live room set; unknown rooms are checked against the database. */
async function requireMembership(hub: Hub, conn: Connection, roomId: string): Promise<void> {
  if (!conn.rooms.has(roomId)) await hub.rooms.requireMember(hub.db, roomId, conn.userId);
}

/** Closes every socket with 1001 (server going away) on shutdown. */
export function closeAllSockets(hub: Hub): void {
  for (const conn of hub.fanout.all()) conn.close(CLOSE.GOING_AWAY, 'server shutting down; reconnect with since');
}
