/** E2EE: device registration, key upload and claims, device lists and to-device messages (docs/E2EE.md). */
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { errorResponses } from '../../plugins/openapi.js';
import { Uuid } from '../users/users.schemas.js';
import { ClaimBody, E2eeDevice, KeyCounts, PreKeyBundle, RegisterDeviceBody, ToDeviceBody, UploadKeysBody } from './e2ee.schemas.js';

const tags = ['e2ee'];

export const e2eeRoutes: FastifyPluginAsyncTypebox = async (app) => {
  const { e2ee } = app.hub;

  app.post(
    '/api/e2ee/devices',
    {
      schema: {
        operationId: 'registerE2eeDevice',
        summary: 'Make this session an E2EE device',
        description:
          'Registers the calling session as a Signal-protocol device: its registration id and identity key (base64 of libsignal\'s ' +
          'serialized public key). 201 with its Signal device id (1–127 per user, freed when the session is revoked); the same ' +
          'values again: 200, same answer; a new identity key replaces the old one and drops its prekeys. Members of shared ' +
          'encrypted rooms get `e2ee.devices_changed`. 403 E2EE_DEVICE_REQUIRED for an agent, a bridge without `e2ee` or a bridge acting as a ghost (a bridge with `e2ee = true` registers its bot device, docs/BRIDGES.md); 409 CONFLICT when all 127 ids are taken.',
        tags,
        body: RegisterDeviceBody,
        response: {
          200: Type.With(E2eeDevice, { description: 'Already registered with these values' }),
          201: Type.With(E2eeDevice, { description: 'Registered (or a new identity key)' }),
          ...errorResponses(403, 409),
        },
      },
    },
    async (req, reply) => {
      const { created, device } = await e2ee.registerDevice(req.auth, req.body);
      reply.code(created ? 201 : 200);
      return device;
    },
  );

  app.put(
    '/api/e2ee/keys',
    {
      schema: {
        operationId: 'uploadE2eeKeys',
        summary: 'Upload prekeys',
        description:
          'Stores the calling device\'s signed prekey, Kyber last-resort key (each replaces the current one) and one-time keys ' +
          '(EC `pre_keys`, Kyber `kyber_pre_keys`; at most 100 per list). Signatures are by the identity key: 422 INVALID_SIGNATURE. ' +
          'Key ids must grow per device: an id at or below the highest stored is 409 KEY_ID_REUSED unless it is the very key still ' +
          'stored (a retried upload), so a key handed out is never stored again. Answers the one-time key counts. 403 E2EE_DEVICE_REQUIRED.',
        tags,
        body: UploadKeysBody,
        response: { 200: Type.With(KeyCounts, { description: 'One-time keys left now' }), ...errorResponses(403, 409, 422) },
      },
    },
    async (req) => e2ee.uploadKeys(req.auth, req.body),
  );

  app.get(
    '/api/e2ee/keys',
    {
      schema: {
        operationId: 'getE2eeKeyCounts',
        summary: 'One-time key counts',
        description: 'How many one-time keys of the calling device are left. 403 E2EE_DEVICE_REQUIRED.',
        tags,
        response: { 200: Type.With(KeyCounts, { description: 'One-time keys left' }), ...errorResponses(403) },
      },
    },
    async (req) => e2ee.keyCounts(req.auth),
  );

  app.get(
    '/api/e2ee/users/:user_id/devices',
    {
      schema: {
        operationId: 'listE2eeDevices',
        summary: 'A user\'s E2EE devices',
        description: 'The user\'s E2EE devices with their registration ids and identity keys (empty when none).',
        tags,
        params: Type.Object({ user_id: Uuid }),
        response: { 200: Type.Object({ devices: Type.Array(E2eeDevice) }, { description: 'The devices, by Signal device id' }) },
      },
    },
    async (req) => ({ devices: await e2ee.listDevices(req.params.user_id) }),
  );

  app.post(
    '/api/e2ee/keys/claim',
    {
      schema: {
        operationId: 'claimE2eeKeys',
        summary: 'Claim prekey bundles',
        description:
          'Prekey bundles of a user\'s devices (one with `device_id`, else all), to start sessions with. Each one-time key is handed out ' +
          'exactly once, across concurrent claims and nodes; when none is left `pre_key` is null and `kyber_pre_key` is the ' +
          'last-resort key. 404 NOT_FOUND when the user has no (such) E2EE device with keys; 429 RATE_LIMITED past 20 claims a ' +
          'minute by the caller for one device.',
        tags,
        body: ClaimBody,
        response: { 200: Type.Object({ devices: Type.Array(PreKeyBundle) }, { description: 'The bundles' }), ...errorResponses(404, 429) },
      },
    },
    async (req) => e2ee.claim(req.auth, req.body),
  );

  app.post(
    '/api/e2ee/to_device',
    {
      schema: {
        operationId: 'sendToDevice',
        summary: 'Send to-device messages',
        description:
          'Queues ciphertext for other E2EE devices (key distribution, sender-key distribution, session repair): each is delivered ' +
          'as `e2ee.to_device` over the WebSocket, live and on connect, until the device acknowledges it with an ' +
          '`e2ee.to_device.ack` frame. All or nothing: 404 NOT_FOUND for an unknown device; 429 MAILBOX_FULL past 1000 unacknowledged ' +
          'messages for a device; 403 E2EE_DEVICE_REQUIRED when the caller is no E2EE device.',
        tags,
        body: ToDeviceBody,
        response: { 204: Type.Null({ description: 'Queued' }), ...errorResponses(403, 404, 429) },
      },
    },
    async (req, reply) => {
      await e2ee.sendToDevice(req.auth, req.body.messages);
      return reply.code(204).send(null);
    },
  );
};
