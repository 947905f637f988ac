/** Push: subscriptions (Web Push and HTTP pushers), the VAPID key, and per-room mutes (docs/PUSH.md). */
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { errorResponses } from '../../plugins/openapi.js';
import { RoomParams } from '../rooms/rooms.schemas.js';
import { PushConfig, RoomNotifications, RoomNotificationsBody, Subscription, SubscriptionBody, SubscriptionParams } from './push.schemas.js';

const tags = ['push'];

export const pushRoutes: FastifyPluginAsyncTypebox = async (app) => {
  const { push } = app.hub;

  app.get(
    '/api/push/config',
    {
      schema: {
        operationId: 'getPushConfig',
        summary: 'Web Push settings',
        description: 'The hub\'s VAPID public key, for `PushManager.subscribe({applicationServerKey})` in a browser.',
        tags,
        response: { 200: Type.With(PushConfig, { description: 'The VAPID key' }) },
      },
    },
    async () => ({ vapid_public_key: push.vapidPublicKey }),
  );

  app.post(
    '/api/push/subscriptions',
    {
      schema: {
        operationId: 'createPushSubscription',
        summary: 'Register a push subscription',
        description:
          'Registers a Web Push subscription (`kind: "webpush"`, the browser\'s `PushSubscription.toJSON()`) or an HTTP pusher ' +
          '(`kind: "http"`: a Matrix push gateway such as Sygnal, for mobile apps) for this device session. Direct messages and ' +
          'mentions are then pushed to it while the user has no socket open. The same endpoint (or app_id and pushkey) again ' +
          'replaces the earlier registration: 200 instead of 201. 400 VALIDATION_FAILED: a Web Push endpoint that is not https; ' +
          '403 FORBIDDEN: the gateway URL is not in push.gateway_urls.',
        tags,
        body: SubscriptionBody,
        response: {
          200: Type.With(Subscription, { description: 'The registration, replaced' }),
          201: Type.With(Subscription, { description: 'The new registration' }),
        },
      },
    },
    async (req, reply) => {
      const { subscription, created } = await push.subscribe(req.auth, req.body);
      reply.code(created ? 201 : 200);
      return subscription;
    },
  );

  app.get(
    '/api/push/subscriptions',
    {
      schema: {
        operationId: 'listPushSubscriptions',
        summary: 'Your push subscriptions',
        description: 'The caller\'s push subscriptions and HTTP pushers, oldest first.',
        tags,
        response: { 200: Type.Array(Subscription, { description: 'Subscriptions' }) },
      },
    },
    async (req) => push.list(req.auth.userId),
  );

  app.delete(
    '/api/push/subscriptions/:id',
    {
      schema: {
        operationId: 'deletePushSubscription',
        summary: 'Remove a push subscription',
        description: 'Stops notifications to one of the caller\'s subscriptions (say before logging out, or after `PushSubscription.unsubscribe()`). 204. 404 NOT_FOUND.',
        tags,
        params: SubscriptionParams,
        response: { 204: Type.Null({ description: 'Removed' }), ...errorResponses(404) },
      },
    },
    async (req, reply) => {
      await push.unsubscribe(req.auth.userId, req.params.id);
      reply.code(204).send(null);
    },
  );

  app.get(
    '/api/rooms/:id/notifications',
    {
      schema: {
        operationId: 'getRoomNotifications',
        summary: 'Your notification setting of a room',
        description: 'Whether the caller muted push notifications from this room. 403 NOT_A_MEMBER; 404 INVALID_ROOM.',
        tags,
        params: RoomParams,
        response: { 200: Type.With(RoomNotifications, { description: 'The setting' }), ...errorResponses(404) },
      },
    },
    async (req) => push.roomSetting(req.auth.userId, req.params.id),
  );

  app.put(
    '/api/rooms/:id/notifications',
    {
      schema: {
        operationId: 'setRoomNotifications',
        summary: 'Mute or unmute a room',
        description: 'Mutes (or unmutes) push notifications from this room for the caller only; messages still arrive. 403 NOT_A_MEMBER; 404 INVALID_ROOM.',
        tags,
        params: RoomParams,
        body: RoomNotificationsBody,
        response: { 200: Type.With(RoomNotifications, { description: 'The setting now' }), ...errorResponses(404) },
      },
    },
    async (req) => push.setRoomMuted(req.auth.userId, req.params.id, req.body.muted),
  );
};
