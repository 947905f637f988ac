/**
 * `GET /ws`: the JSON WebSocket. Authenticated before the upgrade (`Authorization: Bearer <token>` or
 * `?access_token=`; 401 otherwise). `?since=<stream_position>` replays every room event after that
 * position, in order, exactly once, before live events; then the server sends
 * `{"type":"ready","stream_position","resumed"}`. A socket's sends are pipelined into the node's
 * group commit and every reply comes back in frame order (pipeline.ts). Protocol: docs/WEBSOCKET_API.md.
 */
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import type { WebSocket } from 'ws';
import { AppError } from '../errors.js';
import type { Hub } from '../hub.js';
import type { AuthContext } from '../modules/auth/auth.service.js';
import type { SocketLimits } from '../plugins/rate-limit.js';
import { CLOSE } from '../events/socket-control.js';
import type { Connection } from './connection.js';
import type { MessageView } from '../modules/messages/messages.view.js';
import { parseFrame, type AnyFrame, type Frame } from './frames.js';
import { FramePipeline } from './pipeline.js';

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
  const conn = hub.fanout.open(socket, auth, hub.config.limits.max_send_queue_bytes);
  heartbeat(socket, hub.config.realtime.ws_ping_interval_ms, hub.config.realtime.ws_pong_timeout_ms);

  // Frames that arrive while we set up wait for it; then sends are pipelined (see FramePipeline).
  let ready!: () => void;
  const setUp = new Promise<void>((resolve) => (ready = resolve));
  const frames = new FramePipeline(setUp, (reply) => conn.send(reply), (err) => hub.log.error({ err }, 'WebSocket frame handling failed'));
  socket.on('message', (data, isBinary) => acceptFrame(hub, conn, frames, isBinary ? null : data.toString(), limits, limitSend));
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
    // Waiting to-device messages go first, before the backlog: a sender key distributed while the
    // device was away must be there before the messages encrypted with it. Live ones may arrive twice
    // meanwhile: clients drop ids they have seen.
    const e2ee = await hub.e2ee.readyInfo(auth.deviceId);
    if (e2ee) for (const m of await hub.e2ee.pendingToDevice(auth.deviceId)) conn.send(m);
    const written = await conn.catchUp(from, (after) => hub.stream.readSince(after, [...conn.rooms], auth.userId, undefined, { roomsLeft: true }));
    conn.send({ type: 'ready', user_id: auth.userId, device_id: auth.deviceId, stream_position: conn.lastPosition, resumed: since === undefined ? 0 : written, ...(e2ee ? { e2ee } : {}) });
  } catch (err) {
    hub.log.error({ err }, 'WebSocket set-up failed');
    conn.close(CLOSE.INTERNAL_ERROR, 'set-up failed; reconnect with since');
  } finally {
    ready();
  }
}

/**
 * Pings the socket every `intervalMs` (a WebSocket ping frame, RFC 6455 §5.5.2, which every client
 * library answers with a pong by itself); one whose pong has not come `timeoutMs` after a ping is
 * terminated, so a client that vanished without closing (no FIN ever arrives) is closed (1006) and
 * its user goes offline after the presence grace period. `intervalMs` 0: no pings.
 */
function heartbeat(socket: WebSocket, intervalMs: number, timeoutMs: number): void {
  if (intervalMs <= 0) return;
  let waiting: NodeJS.Timeout | undefined;
  const pings = setInterval(() => {
    if (waiting || socket.readyState !== socket.OPEN) return;
    socket.ping();
    waiting = setTimeout(() => socket.terminate(), timeoutMs);
  }, intervalMs);
  socket.on('pong', () => {
    clearTimeout(waiting);
    waiting = undefined;
  });
  socket.on('close', () => {
    clearInterval(pings);
    clearTimeout(waiting);
  });
}

/**
 * Takes one incoming frame, in arrival order: rate limits and validation at once, then a
 * `message.send` goes to the writer without waiting for earlier sends to commit, and any other frame
 * after every earlier frame is done. Replies (acknowledgements, errors) go out in frame order.
 */
function acceptFrame(hub: Hub, conn: Connection, frames: FramePipeline, text: string | null, limits: SocketLimits, limitSend: () => Promise<number>): void {
  if (!conn.open) return;
  const frameWaitMs = limits.frame();
  if (frameWaitMs > 0) {
    const parsed = text === null ? null : parseFrame(text, hub.config.limits.max_json_depth);
    return frames.reply(rateLimited(frameWaitMs, parsed?.ok ? txnIdOf(parsed.frame) : parsed?.txn_id));
  }
  if (text === null) return frames.reply({ type: 'error', code: 'INVALID_FRAME', message: 'Binary frames are not supported; send JSON text' });
  const parsed = parseFrame(text, hub.config.limits.max_json_depth);
  if (!parsed.ok) return frames.reply({ type: 'error', code: parsed.code, message: parsed.message, ...(parsed.txn_id ? { txn_id: parsed.txn_id } : {}) });
  const frame = parsed.frame;
  const failed = (err: unknown) => errorReply(hub, frame, err);
  if (frame.type === 'message.send') {
    // Counted now, in frame order; the writer gets the frame once the count allows it.
    const allowed = limitSend();
    return frames.pipelined(async () => {
      const waitMs = await allowed;
      if (waitMs > 0) return { reply: Promise.resolve(rateLimited(waitMs, frame.txn_id)) };
      const sent = hub.messages.send(conn.userId, frame.room_id, { ...frame, content: frame.content ?? '', device_id: conn.auth.deviceId });
      return { reply: sent.then((result) => acknowledge(hub, conn, frame, result), failed) };
    });
  }
  frames.sequential(() => dispatch(hub, conn, frame).catch(failed));
}

/**
 * `message.sent` for a committed send; the sender's typing in that room stops. `pending: true` (only then
 * present) when the room's host server is unreachable: the send is kept and queued, `stream_position` is 0
 * until the host orders it (docs/FEDERATION.md).
 */
function acknowledge(
  hub: Hub,
  conn: Connection,
  frame: Frame<'message.send'>,
  { message, created, pending }: { message: MessageView; created: boolean; pending?: boolean },
) {
  hub.typing.stop(frame.room_id, conn.userId).catch((err) => hub.log.error({ err }, 'typing stop failed'));
  return {
    type: 'message.sent',
    txn_id: frame.txn_id ?? null,
    message_id: message.id,
    room_id: message.room_id,
    stream_position: message.stream_position,
    created_at: message.created_at,
    duplicate: !created,
    ...(pending ? { pending: true } : {}),
  };
}

/** The `error` reply for a frame that failed (an AppError's code; anything else is logged, INTERNAL). */
function errorReply(hub: Hub, frame: AnyFrame, err: unknown) {
  const txn = txnIdOf(frame) ? { txn_id: txnIdOf(frame) } : {};
  if (err instanceof AppError) return { type: 'error', code: err.code, message: err.message, ...err.details, ...txn };
  hub.log.error({ err, frame: frame.type }, 'WebSocket frame failed');
  return { type: 'error', code: 'INTERNAL', message: 'Internal error', ...txn };
}

function txnIdOf(frame: AnyFrame): string | undefined {
  return 'txn_id' in frame ? frame.txn_id : undefined;
}

/** The frame was not processed: `{"type":"error","code":"RATE_LIMITED","retry_after_ms","txn_id"?}`. */
function rateLimited(retryAfterMs: number, txnId: string | undefined) {
  return { type: 'error', code: 'RATE_LIMITED', message: `Rate limited; retry in ${retryAfterMs} ms`, retry_after_ms: retryAfterMs, ...(txnId ? { txn_id: txnId } : {}) };
}

/** Every frame but `message.send` (pipelined above). */
async function dispatch(hub: Hub, conn: Connection, frame: Exclude<AnyFrame, Frame<'message.send'>>): Promise<object | null> {
  const { userId, userName } = conn.auth;
  switch (frame.type) {
    case 'typing.start':
      await requireMembership(hub, conn, frame.room_id);
      await hub.typing.start(frame.room_id, userId, userName);
      return null;
    case 'typing.stop':
      await requireMembership(hub, conn, frame.room_id);
      await hub.typing.stop(frame.room_id, userId);
      return null;
    case 'message.read':
      await hub.messages.markRead(userId, frame.room_id, frame.message_id);
      return null;
    case 'presence.update':
      await hub.presence.update(userId, frame.status, frame.status_text);
      return null;
    case 'reaction.add':
    case 'reaction.remove':
      await hub.messages.react(userId, frame.message_id, frame.key, frame.type === 'reaction.add');
      return null;
    case 'ping':
      return { type: 'pong', ...(frame.txn_id ? { txn_id: frame.txn_id } : {}) };
    case 'e2ee.to_device.ack':
      await hub.e2ee.ackToDevice(conn.auth.deviceId, frame.up_to);
      return null;
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
