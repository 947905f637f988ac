/**
 * Auth endpoints. Public: register, login, refresh. Authenticated: logout, devices.
 */
import type { FastifyRequest } from 'fastify';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { errorResponses } from '../../plugins/openapi.js';
import { DeviceParams, Device, LoginBody, RefreshBody, RegisterBody, SessionResponse } from './auth.schemas.js';

const tags = ['auth'];
/** No token needed (the OpenAPI document's default is the bearer scheme). */
const security: [] = [];

function deviceInfo(req: FastifyRequest) {
  return { userAgent: String(req.headers['user-agent'] ?? '').slice(0, 300), ip: req.ip };
}

/** Routes that need no access token. */
export const publicAuthRoutes: FastifyPluginAsyncTypebox = async (app) => {
  const { auth } = app.hub;

  app.post(
    '/api/auth/register',
    {
      schema: {
        operationId: 'register',
        summary: 'Create an account',
        description:
          'Creates an account and its first device session. 409 EMAIL_TAKEN or USERNAME_TAKEN; 403 REGISTRATION_CLOSED or INVALID_INVITE depending ' +
          'on `auth.registration` (docs/OPERATIONS.md); 429 RATE_LIMITED per client IP (`rate_limits.register_per_ip_per_hour`).',
        tags,
        security,
        body: RegisterBody,
        response: { 201: Type.With(SessionResponse, { description: 'The new account\'s session' }), ...errorResponses(403, 409, 429) },
      },
    },
    async (req, reply) => {
      reply.code(201);
      return auth.register(req.body, deviceInfo(req), app.hub.config.auth.registration);
    },
  );

  app.post(
    '/api/auth/login',
    {
      schema: {
        operationId: 'login',
        summary: 'Log in',
        description:
          'Logs in with email and password: a new device session. 401 INVALID_CREDENTIALS (also for a deactivated account); ' +
          '429 RATE_LIMITED per client IP and per account (`rate_limits.login_per_*`).',
        tags,
        security,
        body: LoginBody,
        response: { 200: Type.With(SessionResponse, { description: 'The new session' }), ...errorResponses(401, 429) },
      },
    },
    async (req) => auth.login(req.body, deviceInfo(req)),
  );

  app.post(
    '/api/auth/refresh',
    {
      schema: {
        operationId: 'refreshSession',
        summary: 'Rotate a refresh token',
        description:
          'Trades a refresh token for a new access token and the next refresh token. 401 INVALID_REFRESH_TOKEN, or ' +
          'REFRESH_TOKEN_REUSED: a refresh token used twice revokes its session.',
        tags,
        security,
        body: RefreshBody,
        response: { 200: Type.With(SessionResponse, { description: 'The session\'s new tokens' }), ...errorResponses(401) },
      },
    },
    async (req) => auth.refresh(req.body.refresh_token),
  );
};

/** Routes for an authenticated caller. */
export const authRoutes: FastifyPluginAsyncTypebox = async (app) => {
  const { auth } = app.hub;

  app.post(
    '/api/auth/logout',
    {
      schema: {
        operationId: 'logout',
        summary: 'Log out',
        description: 'Ends this device session: its tokens stop working and its sockets close (4401). 204.',
        tags,
        response: { 204: Type.Null({ description: 'Logged out' }) },
      },
    },
    async (req, reply) => {
      await auth.logout(req.auth);
      reply.code(204).send(null);
    },
  );

  app.get(
    '/api/devices',
    {
      schema: {
        operationId: 'listDevices',
        summary: 'Your device sessions',
        description: 'The caller\'s active device sessions; `current` marks this one.',
        tags,
        response: { 200: Type.Array(Device, { description: 'Active sessions' }) },
      },
    },
    async (req) => auth.listDevices(req.auth),
  );

  app.delete(
    '/api/devices/:id',
    {
      schema: {
        operationId: 'revokeDevice',
        summary: 'Revoke a device session',
        description: 'Revokes one of the caller\'s device sessions: its tokens stop working and its sockets close at once. 204; 404 INVALID_DEVICE.',
        tags,
        params: DeviceParams,
        response: { 204: Type.Null({ description: 'Revoked' }), ...errorResponses(404) },
      },
    },
    async (req, reply) => {
      await auth.revokeDevice(req.auth.userId, req.params.id);
      reply.code(204).send(null);
    },
  );
};
