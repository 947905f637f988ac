/**
 * Federation routes (docs/FEDERATION.md): the server-to-server API under `/_federation/v1` (every
 * route but `/key` needs an HTTP message signature of an allowed hub: 401 FEDERATION_UNAUTHORIZED
 * otherwise, before anything is read or stored), and the client side: `GET /api/users/lookup` and the
 * admins' `GET /api/admin/federation/peers`.
 */
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { Type } from 'typebox';
import { AppError } from '../../errors.js';
import { errorResponses } from '../../plugins/openapi.js';
import { AttachmentParams, FileBytes } from '../attachments/attachments.schemas.js';
import { PublicUser } from '../users/users.schemas.js';
import type { FedTransaction } from './federation.service.js';

const tags = ['federation'];
const signed =
  'Signed with an HTTP message signature (RFC 9421) by an allowed hub; 401 FEDERATION_UNAUTHORIZED otherwise. 429 RATE_LIMITED (with Retry-After) beyond `rate_limits.federation_per_peer_per_min` requests of one peer.';

const KeyDocument = Type.Object({
  server_name: Type.String(),
  keys: Type.Array(Type.Object({ key_id: Type.String(), public_key: Type.String({ description: 'Ed25519, raw 32 bytes, base64url.' }) })),
  valid_until_ms: Type.Integer({ description: 'ms since the epoch' }),
});

/** Events are checked by the service (signatures, senders, rooms); the schema bounds the envelope. */
const TransactionBody = Type.Object(
  {
    events: Type.Array(Type.Object({}, { additionalProperties: true }), { maxItems: 1000 }),
    snapshots: Type.Optional(Type.Array(Type.Object({}, { additionalProperties: true }), { maxItems: 100 })),
    ephemeral: Type.Array(Type.Unknown(), { maxItems: 1000 }),
  },
  { additionalProperties: false },
);

const PeerStatus = Type.Object({
  server_name: Type.String(),
  state: Type.Union([Type.Literal('idle'), Type.Literal('sending'), Type.Literal('retrying')]),
  queue_depth: Type.Integer({ description: 'Queued items the peer has not accepted yet.' }),
  oldest_pending_age_ms: Type.Union([Type.Integer(), Type.Null()]),
  failures: Type.Integer({ description: 'Failed attempts in a row.' }),
  backoff_ms: Type.Integer({ description: 'Until the next attempt, ms (0: none pending).' }),
  last_success_at: Type.Union([Type.String({ format: 'date-time' }), Type.Null()]),
  dead_letters: Type.Integer({ description: 'Transactions the peer refused for good (403 or another permanent 4xx): kept in federation_dead_letters, not retried.' }),
});

export const federationRoutes: FastifyPluginAsyncTypebox = async (app) => {
  const { federation } = app.hub;
  const raw = new WeakMap<FastifyRequest, string>();
  // The signature covers the body's digest: keep the bytes as received.
  app.removeContentTypeParser('application/json');
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (req, body, done) => {
    raw.set(req, body as string);
    try {
      done(null, body ? JSON.parse(body as string) : {});
    } catch {
      done(new AppError('VALIDATION_FAILED', 'Malformed JSON'), undefined);
    }
  });
  const origins = new WeakMap<FastifyRequest, string>();
  const authenticate = async (req: FastifyRequest, reply: FastifyReply) => {
    const origin = await federation.authenticate({ method: req.method, path: req.url.split('?')[0], headers: req.headers, body: raw.get(req) ?? '' });
    const retryMs = await app.peerLimiter(req, origin);
    if (retryMs) {
      const retryS = Math.ceil(retryMs / 1000);
      reply.header('retry-after', retryS);
      throw new AppError('RATE_LIMITED', `Too many requests from ${origin}; retry in ${retryS} s`);
    }
    origins.set(req, origin);
  };
  const originOf = (req: FastifyRequest) => origins.get(req)!;

  app.get(
    '/_federation/v1/key',
    {
      schema: {
        operationId: 'federationKey',
        summary: 'This hub\'s signing key',
        description: 'The Ed25519 public key other hubs verify this hub\'s requests and events with.',
        tags,
        response: { 200: Type.With(KeyDocument, { description: 'The key document' }), ...errorResponses(404) },
      },
    },
    async () => {
      if (!federation.enabled) throw new AppError('NOT_FOUND', 'Federation is disabled');
      return federation.keyDocument();
    },
  );

  app.put(
    '/_federation/v1/send/:txn_id',
    {
      preValidation: authenticate,
      schema: {
        operationId: 'federationSend',
        summary: 'Receive a transaction',
        description: `Events (and snapshots) from another hub, idempotent per (origin, txn_id); events deduplicated by id. 403 FEDERATION_FORBIDDEN when an event is not the origin's to send, and then nothing is stored. ${signed}`,
        tags,
        params: Type.Object({ txn_id: Type.String({ minLength: 1, maxLength: 100 }) }),
        body: TransactionBody,
        response: { 200: Type.Object({}, { description: 'Accepted' }), ...errorResponses(400, 401, 403, 429) },
      },
    },
    async (req) => {
      await federation.receive(originOf(req), req.params.txn_id, req.body as unknown as FedTransaction);
      return {};
    },
  );

  app.get(
    '/_federation/v1/rooms/:room_id/events',
    {
      preValidation: authenticate,
      schema: {
        operationId: 'federationRoomEvents',
        summary: 'A room\'s sequenced events',
        description: `The room's events after \`after_seq\`, in room_seq order (gap filling, history). For hubs with members in the room (403 otherwise). ${signed}`,
        tags,
        params: Type.Object({ room_id: Type.String({ format: 'uuid' }) }),
        querystring: Type.Object({ after_seq: Type.Integer({ minimum: 0 }), limit: Type.Integer({ minimum: 1, maximum: 500, default: 100 }) }),
        response: { 200: Type.Object({ events: Type.Array(Type.Object({}, { additionalProperties: true })) }, { description: 'The events' }), ...errorResponses(401, 403, 429) },
      },
    },
    async (req) => federation.eventsAfter(originOf(req), req.params.room_id, req.query.after_seq, req.query.limit ?? 100),
  );

  for (const thumbnail of [false, true]) {
    app.get(
      `/_federation/v1/media/:id${thumbnail ? '/thumbnail' : ''}`,
      {
        preValidation: authenticate,
        schema: {
          operationId: thumbnail ? 'federationMediaThumbnail' : 'federationMedia',
          summary: thumbnail ? 'A file\'s thumbnail' : 'A file',
          description: `The bytes of a file uploaded to this hub (${thumbnail ? 'its WebP thumbnail' : 'whole'}), for a hub with a member in a federated room where a message carries it: 403 FEDERATION_FORBIDDEN for any other hub, 404 INVALID_ATTACHMENT when unknown${thumbnail ? ' or without a thumbnail' : ''}. The other hub keeps what it fetched. ${signed}`,
          tags,
          params: AttachmentParams,
          response: { 200: FileBytes('The bytes, with the file\'s Content-Type and Content-Length'), ...errorResponses(401, 403, 404, 429) },
        },
      },
      async (req, reply) => {
        const file = await federation.media(originOf(req), req.params.id, thumbnail);
        return reply.header('content-type', file.mime_type).header('content-length', file.size).header('x-content-type-options', 'nosniff').send(file.read());
      },
    );
  }

  app.get(
    '/_federation/v1/users/:username',
    {
      preValidation: authenticate,
      schema: {
        operationId: 'federationUser',
        summary: 'A user\'s public profile',
        description: `A user of this hub by username (address resolution). ${signed}`,
        tags,
        params: Type.Object({ username: Type.String({ maxLength: 32 }) }),
        response: { 200: Type.Object({ username: Type.String(), name: Type.String(), address: Type.String() }, { description: 'The profile' }), ...errorResponses(401, 404, 429) },
      },
    },
    async (req) => federation.profile(req.params.username),
  );
};

/** Under the /api access-token hook. */
export const federationApiRoutes: FastifyPluginAsyncTypebox = async (app) => {
  const { federation, admin } = app.hub;

  app.get(
    '/api/users/lookup',
    {
      schema: {
        operationId: 'lookupUser',
        summary: 'Resolve an address',
        description: 'The user of this hub with address `@username:server_name`; a remote address is resolved through federation and its shadow user created. 503 FEDERATION_UNAVAILABLE when the other hub does not answer.',
        tags: ['users'],
        querystring: Type.Object({ address: Type.String({ maxLength: 300 }) }),
        response: { 200: Type.With(PublicUser, { description: 'The user' }), ...errorResponses(400, 404, 503) },
      },
    },
    async (req) => federation.lookup(req.query.address),
  );

  app.put(
    '/api/admin/federation/rooms/:id/deny',
    {
      schema: {
        operationId: 'adminFederationRoomDeny',
        summary: 'Hubs a federated room refuses',
        description:
          'Replaces the list of hubs (server_names) a federated room refuses: this hub sends them nothing more of the room and refuses their events for it (403 FEDERATION_FORBIDDEN). 404 INVALID_ROOM when the room is not federated. Server admins only (403 FORBIDDEN otherwise).',
        tags: ['admin'],
        params: Type.Object({ id: Type.String({ format: 'uuid' }) }),
        body: Type.Object({ deny: Type.Array(Type.String({ maxLength: 255 }), { maxItems: 1000 }) }, { additionalProperties: false }),
        response: {
          200: Type.Object(
            { room_id: Type.String(), host: Type.String(), deny: Type.Array(Type.String()), servers: Type.Array(Type.String({ description: 'Hubs the room\'s events go to' })) },
            { description: 'The room\'s federation settings' },
          ),
          ...errorResponses(403, 404),
        },
      },
    },
    async (req) => {
      if (!(await admin.isAdmin(req.auth.userId))) throw new AppError('FORBIDDEN', 'Server admins only');
      return federation.setRoomDeny(req.params.id, req.body.deny);
    },
  );

  app.get(
    '/api/admin/federation/peers',
    {
      schema: {
        operationId: 'adminFederationPeers',
        summary: 'Federation peers',
        description: 'Per peer: the outbound queue\'s state, depth, oldest pending item\'s age, backoff, last success and dead letters. Server admins only (403 FORBIDDEN otherwise).',
        tags: ['admin'],
        response: { 200: Type.Array(PeerStatus, { description: 'The peers' }), ...errorResponses(403) },
      },
    },
    async (req) => {
      if (!(await admin.isAdmin(req.auth.userId))) throw new AppError('FORBIDDEN', 'Server admins only');
      return federation.peerStatus();
    },
  );
};
