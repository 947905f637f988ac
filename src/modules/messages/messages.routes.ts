/** Messages, reactions, read receipts and history. */
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { AppError } from '../../errors.js';
import { errorResponses } from '../../plugins/openapi.js';
import { bridgeIdOf } from '../bridges/bridges.service.js';
import {
  EditHistory, EditMessageBody, HistoryPage, HistoryQuery, MarkReadBody, Message, MessageIdParams, ReactionCount, ReactionParams, ReadReceipt,
  RoomIdParams, SendMessageBody, SendResult,
} from './messages.schemas.js';

const tags = ['messages'];

export const messagesRoutes: FastifyPluginAsyncTypebox = async (app) => {
  const { messages, config } = app.hub;

  app.get(
    '/api/rooms/:room_id/messages',
    {
      schema: {
        operationId: 'listMessages',
        summary: 'Room history',
        description:
          'A page of a room\'s history, oldest first. Without paging: the latest messages; `before=<message_id>` for older, ' +
          '`after=<message_id>` for newer (not both: 400 VALIDATION_FAILED). `limit` default 50, at most `limits.history_page_max`. ' +
          '403 NOT_A_MEMBER; 404 INVALID_ROOM, INVALID_MESSAGE (an anchor not in this room).',
        tags,
        params: RoomIdParams,
        querystring: HistoryQuery,
        response: { 200: Type.With(HistoryPage, { description: 'A page of messages' }), ...errorResponses(404) },
      },
    },
    async (req) => {
      const q = req.query;
      if (q.before && q.after) throw new AppError('VALIDATION_FAILED', 'Use before or after, not both');
      return messages.history(req.auth.userId, req.params.room_id, { ...q, limit: Math.min(q.limit, config.limits.history_page_max), deviceId: req.auth.deviceId });
    },
  );

  app.post(
    '/api/rooms/:room_id/messages',
    {
      schema: {
        operationId: 'sendMessage',
        summary: 'Send a message',
        description:
          'Sends a message to a room: 201. With a `txn_id` the caller already used, 200 with the first message and nothing stored ' +
          '(409 CONFLICT if that message is in another room). `attachments`: ids the caller uploaded (404 INVALID_ATTACHMENT ' +
          'otherwise); content may then be empty. Bridges (as_token) may add `ts` and `remote_id` (a repeat with the same remote_id ' +
          'returns the first message, 200); anyone else gets 403 FORBIDDEN for them. 403 NOT_A_MEMBER; 404 INVALID_ROOM, ' +
          'INVALID_MESSAGE (`reply_to` not in this room); 413 MESSAGE_TOO_LARGE (`limits.max_message_bytes`); 429 RATE_LIMITED ' +
          '(`rate_limits.messages_per_user_per_min`, with Retry-After). Encrypted rooms (docs/E2EE.md): no content, `envelopes` ' +
          '(or `sender_key`) instead; 400 PLAINTEXT_IN_ENCRYPTED_ROOM, 409 MISMATCHED_DEVICES `{missing, extra}`, 410 STALE_DEVICES `{stale}`, ' +
          '403 E2EE_DEVICE_REQUIRED; nothing is stored then.',
        tags,
        params: RoomIdParams,
        body: SendMessageBody,
        response: {
          200: Type.With(SendResult, { description: 'A repeat: the first message, nothing stored' }),
          201: Type.With(SendResult, { description: 'The message was stored' }),
          ...errorResponses(403, 404, 409, 410, 413, 429),
        },
      },
    },
    async (req, reply) => {
      const { body } = req;
      if ((body.ts !== undefined || body.remote_id !== undefined) && !bridgeIdOf(req.auth)) throw new AppError('FORBIDDEN', 'ts and remote_id are for bridges');
      const { message, created, pending } = await messages.send(req.auth.userId, req.params.room_id, { ...body, device_id: req.auth.deviceId });
      reply.code(created ? 201 : 200);
      return { id: message.id, created_at: message.created_at, stream_position: message.stream_position, duplicate: !created, ...(pending ? { pending } : {}) };
    },
  );

  app.get(
    '/api/messages/:id',
    {
      schema: {
        operationId: 'getMessage',
        summary: 'A message',
        description: 'One message, for members of its room. 403 NOT_A_MEMBER; 404 INVALID_MESSAGE.',
        tags,
        params: MessageIdParams,
        response: { 200: Type.With(Message, { description: 'The message' }), ...errorResponses(404) },
      },
    },
    async (req) => messages.get(req.auth.userId, req.params.id),
  );

  app.patch(
    '/api/messages/:id',
    {
      schema: {
        operationId: 'editMessage',
        summary: 'Edit a message',
        description:
          'Changes a message\'s content (its sender only, within `limits.edit_window_s`): `message.edited` is sent and the previous ' +
          'version kept. Encrypted rooms (docs/E2EE.md): `envelopes` (or `sender_key`) instead of content, checked like a send ' +
          '(400 PLAINTEXT_IN_ENCRYPTED_ROOM, 409 MISMATCHED_DEVICES, 410 STALE_DEVICES). ' +
          'version kept. 403 EDITS_FORBIDDEN (room setting `allow_edits`), EDIT_WINDOW_EXPIRED, FORBIDDEN (not the sender), ' +
          'NOT_A_MEMBER; 404 INVALID_MESSAGE (also when redacted); 413 MESSAGE_TOO_LARGE; 400 VALIDATION_FAILED (empty content without attachments).',
        tags,
        params: MessageIdParams,
        body: EditMessageBody,
        response: { 200: Type.With(Message, { description: 'The message as it now is' }), ...errorResponses(404, 409, 410, 413) },
      },
    },
    async (req) => messages.edit(req.auth.userId, req.params.id, req.body.content, { ...req.body, deviceId: req.auth.deviceId }),
  );

  app.get(
    '/api/messages/:id/history',
    {
      schema: {
        operationId: 'getMessageEditHistory',
        summary: 'A message\'s versions',
        description:
          'A message\'s versions, oldest first, the last being current: the original (`edited_at` null, `editor_id` the sender), ' +
          'then one per edit. 403 NOT_A_MEMBER; 404 INVALID_MESSAGE (also when redacted: redaction removes the history).',
        tags,
        params: MessageIdParams,
        response: { 200: Type.With(EditHistory, { description: 'The versions' }), ...errorResponses(404) },
      },
    },
    async (req) => messages.editHistory(req.auth.userId, req.params.id),
  );

  app.delete(
    '/api/messages/:id',
    {
      schema: {
        operationId: 'redactMessage',
        summary: 'Delete (redact) a message',
        description:
          'Redacts a message (its sender or a room admin): content, mentions and reactions removed, a tombstone kept, ' +
          '`message.deleted` sent. Redacting twice changes nothing. 204. 403 FORBIDDEN, NOT_A_MEMBER; 404 INVALID_MESSAGE.',
        tags,
        params: MessageIdParams,
        response: { 204: Type.Null({ description: 'Redacted' }), ...errorResponses(404) },
      },
    },
    async (req, reply) => {
      await messages.redact(req.auth.userId, req.params.id);
      reply.code(204).send(null);
    },
  );

  app.put(
    '/api/messages/:id/reactions/:key',
    {
      schema: {
        operationId: 'addReaction',
        summary: 'React to a message',
        description: 'Adds the caller\'s reaction `key` (URL-encoded emoji or short text); idempotent. 403 NOT_A_MEMBER; 404 INVALID_MESSAGE (also when redacted).',
        tags,
        params: ReactionParams,
        response: { 200: Type.With(ReactionCount, { description: 'The count for this key now' }), ...errorResponses(404) },
      },
    },
    async (req) => messages.react(req.auth.userId, req.params.id, req.params.key, true),
  );

  app.delete(
    '/api/messages/:id/reactions/:key',
    {
      schema: {
        operationId: 'removeReaction',
        summary: 'Remove a reaction',
        description: 'Removes the caller\'s reaction `key`; idempotent. 403 NOT_A_MEMBER; 404 INVALID_MESSAGE (also when redacted).',
        tags,
        params: ReactionParams,
        response: { 200: Type.With(ReactionCount, { description: 'The count for this key now' }), ...errorResponses(404) },
      },
    },
    async (req) => messages.react(req.auth.userId, req.params.id, req.params.key, false),
  );

  app.post(
    '/api/rooms/:room_id/read',
    {
      schema: {
        operationId: 'markRead',
        summary: 'Mark read',
        description:
          'Read receipt, cumulative: everything in the room up to `message_id` (default: the latest message) is read; ' +
          '`message.read` is sent when the receipt moves forward, never backwards. 403 NOT_A_MEMBER; 404 INVALID_ROOM, INVALID_MESSAGE.',
        tags,
        params: RoomIdParams,
        body: MarkReadBody,
        response: { 200: Type.With(ReadReceipt, { description: 'The receipt in force' }), ...errorResponses(404) },
      },
    },
    async (req) => messages.markRead(req.auth.userId, req.params.room_id, req.body.message_id),
  );
};
