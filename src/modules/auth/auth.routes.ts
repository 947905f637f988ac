/**
 * Auth endpoints. Public: register, login, refresh. Authenticated: logout, devices.
 */
import type { FastifyRequest } from 'fastify';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { DeviceParams, Device, LoginBody, RefreshBody, RegisterBody, SessionResponse } from './auth.schemas.js';

const tags = ['auth'];

function deviceInfo(req: FastifyRequest) {
  return { userAgent: String(req.headers['user-agent'] ?? '').slice(0, 300), ip: req.ip };
}

/** Routes that need no access token. */
export const publicAuthRoutes: FastifyPluginAsyncTypebox = async (app) => {
  const { auth } = app.hub;

  /**
   * Create an account. 201 `{token, refresh_token, expires_in, device_id, user}`; 409 EMAIL_TAKEN;
   * 403 REGISTRATION_CLOSED or INVALID_INVITE depending on `auth.registration` (docs/OPERATIONS.md).
   */
  app.post('/api/auth/register', { schema: { tags, body: RegisterBody, response: { 201: SessionResponse } } }, async (req, reply) => {
    reply.code(201);
    return auth.register(req.body, deviceInfo(req), app.hub.config.auth.registration);
  });

  /** Log in with email and password: a new device session. 401 INVALID_CREDENTIALS. */
  app.post('/api/auth/login', { schema: { tags, body: LoginBody, response: { 200: SessionResponse } } }, async (req) => {
    return auth.login(req.body, deviceInfo(req));
  });

  /** Rotate a refresh token. 401 INVALID_REFRESH_TOKEN, or REFRESH_TOKEN_REUSED (the session is revoked). */
  app.post('/api/auth/refresh', { schema: { tags, body: RefreshBody, response: { 200: SessionResponse } } }, async (req) => {
    return auth.refresh(req.body.refresh_token);
  });
};

/** Routes for an authenticated caller. */
export const authRoutes: FastifyPluginAsyncTypebox = async (app) => {
  const { auth } = app.hub;

  /** End this device session: its tokens stop working and its sockets close (4401). 204. */
  app.post('/api/auth/logout', { schema: { tags } }, async (req, reply) => {
    await auth.logout(req.auth);
    reply.code(204).send();
  });

  /** The caller's active device sessions; `current` marks this one. */
  app.get('/api/devices', { schema: { tags, response: { 200: Type.Array(Device) } } }, async (req) => auth.listDevices(req.auth));

  /** Revoke one of the caller's device sessions; its sockets close at once. 204; 404 INVALID_DEVICE. */
  app.delete('/api/devices/:id', { schema: { tags, params: DeviceParams } }, async (req, reply) => {
    await auth.revokeDevice(req.auth.userId, req.params.id);
    reply.code(204).send();
  });
};
