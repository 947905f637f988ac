/** Messages, reactions, read receipts and history. */
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { AppError } from '../../errors.js';
import { bridgeIdOf } from '../bridges/bridges.service.js';
import { EditMessageBody, HistoryQuery, MarkReadBody, MessageIdParams, ReactionParams, RoomIdParams, SendMessageBody } from './messages.schemas.js';

const tags = ['messages'];

export const messagesRoutes: FastifyPluginAsyncTypebox = async (app) => {
  const { messages, config, metrics } = app.hub;

  /**
   * A page of history, oldest first: `{messages, has_more}`. `?limit=` (default 50, max
   * `limits.history_page_max`), `?before=<message_id>` for older, `?after=<message_id>` for newer.
   */
  app.get('/api/rooms/:room_id/messages', { schema: { tags, params: RoomIdParams, querystring: HistoryQuery } }, async (req) => {
    const q = req.query;
    if (q.before && q.after) throw new AppError('VALIDATION_FAILED', 'Use before or after, not both');
    return messages.history(req.auth.userId, req.params.room_id, { ...q, limit: Math.min(q.limit, config.limits.history_page_max) });
  });

  /**
   * Send a message: 201 `{id, created_at, stream_position}`; with a `txn_id` already used by the
   * caller, 200 with the first message and nothing stored (409 CONFLICT if that message is in another
   * room). 413 MESSAGE_TOO_LARGE. `attachments`:
   * ids the caller uploaded (404 INVALID_ATTACHMENT otherwise); content may then be empty.
   * Bridges (as_token) may add `ts` (original time, ms since the epoch) and `remote_id` (a repeat with
   * the same remote_id returns the first message, 200); anyone else gets 403 FORBIDDEN for them.
   */
  app.post('/api/rooms/:room_id/messages', { schema: { tags, params: RoomIdParams, body: SendMessageBody } }, async (req, reply) => {
    const { body } = req;
    if ((body.ts !== undefined || body.remote_id !== undefined) && !bridgeIdOf(req.auth)) throw new AppError('FORBIDDEN', 'ts and remote_id are for bridges');
    const { message, created } = await messages.send(req.auth.userId, req.params.room_id, body);
    if (created) metrics.messagesSent.inc();
    reply.code(created ? 201 : 200);
    return { id: message.id, created_at: message.created_at, stream_position: message.stream_position, duplicate: !created };
  });

  /** One message. */
  app.get('/api/messages/:id', { schema: { tags, params: MessageIdParams } }, async (req) => messages.get(req.auth.userId, req.params.id));

  /**
   * Edit a message's content (sender only, within `limits.edit_window_s`): the message as it now is;
   * `message.edited` is sent and the previous version kept. 403 EDITS_FORBIDDEN (room setting),
   * 403 EDIT_WINDOW_EXPIRED, 403 FORBIDDEN (not the sender), 404 INVALID_MESSAGE (also redacted).
   */
  app.patch('/api/messages/:id', { schema: { tags, params: MessageIdParams, body: EditMessageBody } }, async (req) =>
    messages.edit(req.auth.userId, req.params.id, req.body.content),
  );

  /** A message's versions, oldest first, the last being current: `{message_id, versions: [{content, edited_at, editor_id}]}`. */
  app.get('/api/messages/:id/history', { schema: { tags, params: MessageIdParams } }, async (req) =>
    messages.editHistory(req.auth.userId, req.params.id),
  );

  /** Redact a message (sender or room admin): content removed, tombstone kept, `message.deleted` sent. 204. */
  app.delete('/api/messages/:id', { schema: { tags, params: MessageIdParams } }, async (req, reply) => {
    await messages.redact(req.auth.userId, req.params.id);
    reply.code(204).send();
  });

  /** Add the caller's reaction (URL-encoded emoji or short text). `{key, count}`. Idempotent. */
  app.put('/api/messages/:id/reactions/:key', { schema: { tags, params: ReactionParams } }, async (req) => {
    return messages.react(req.auth.userId, req.params.id, req.params.key, true);
  });

  /** Remove the caller's reaction. `{key, count}`. Idempotent. */
  app.delete('/api/messages/:id/reactions/:key', { schema: { tags, params: ReactionParams } }, async (req) => {
    return messages.react(req.auth.userId, req.params.id, req.params.key, false);
  });

  /**
   * Batch mark-read: everything in the room up to `message_id` (default: the latest message) is read.
   * `{room_id, message_id, read_at, moved}`.
   */
  app.post('/api/rooms/:room_id/read', { schema: { tags, params: RoomIdParams, body: MarkReadBody } }, async (req) =>
    messages.markRead(req.auth.userId, req.params.room_id, req.body.message_id),
  );
};
