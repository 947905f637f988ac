/**
 * One catalog of error codes. REST answers `{"error":{"code","message"}}` with the catalog's HTTP
 * status; the WebSocket gateway sends `{"type":"error","code","message","txn_id"?}`. Codes are stable:
 * clients switch on them, so never rename one, only add.
 */
import { Type } from 'typebox';
export const ERROR_CATALOG = {
  BAD_REQUEST: 400,
  VALIDATION_FAILED: 400,
  INVALID_FRAME: 400,
  UNAUTHORIZED: 401,
  TOKEN_EXPIRED: 401,
  INVALID_CREDENTIALS: 401,
  INVALID_REFRESH_TOKEN: 401,
  REFRESH_TOKEN_REUSED: 401,
  FORBIDDEN: 403,
  NOT_A_MEMBER: 403,
  NOT_FOUND: 404,
  INVALID_ROOM: 404,
  INVALID_MESSAGE: 404,
  INVALID_USER: 404,
  INVALID_DEVICE: 404,
  EMAIL_TAKEN: 409,
  USERNAME_TAKEN: 409,
  FEDERATION_UNAUTHORIZED: 401,
  FEDERATION_FORBIDDEN: 403,
  FEDERATION_UNAVAILABLE: 503,
  CONFLICT: 409,
  MESSAGE_TOO_LARGE: 413,
  PAYLOAD_TOO_LARGE: 413,
  RATE_LIMITED: 429,
  INTERNAL: 500,
  UNAVAILABLE: 503,
  INVALID_ATTACHMENT: 404,
  ATTACHMENT_TOO_LARGE: 413,
  RANGE_NOT_SATISFIABLE: 416,
  EDIT_WINDOW_EXPIRED: 403,
  EDITS_FORBIDDEN: 403,
  REGISTRATION_CLOSED: 403,
  INVALID_INVITE: 403,
  INVALID_AGENT_TOKEN: 404,
  INVALID_TOOL: 404,
  INSUFFICIENT_SCOPE: 403,
  SEARCH_UNAVAILABLE: 503,
  /** The database is unreachable (or lost a write's outcome): try again later, a send with the same txn_id. */
  DATABASE_UNAVAILABLE: 503,
  INVALID_SIGNATURE: 422,
  KEY_ID_REUSED: 409,
  MISMATCHED_DEVICES: 409,
  STALE_DEVICES: 410,
  PLAINTEXT_IN_ENCRYPTED_ROOM: 400,
  ROOM_ENCRYPTED: 403,
  E2EE_DEVICE_REQUIRED: 403,
  MAILBOX_FULL: 429,
} as const;

export type ErrorCode = keyof typeof ERROR_CATALOG;

/** A device named by an E2EE device-list error: a user and a Signal device id (docs/E2EE.md). */
export interface DeviceRef {
  user_id: string;
  device_id: number;
}

/** Fields some errors carry besides code and message: `missing`/`extra` (MISMATCHED_DEVICES), `stale` (STALE_DEVICES). */
export interface ErrorDetails {
  missing?: DeviceRef[];
  extra?: DeviceRef[];
  stale?: DeviceRef[];
}

/** An error a client caused or may see; carries a stable code and its HTTP status. */
export class AppError extends Error {
  readonly code: ErrorCode;
  readonly status: number;
  constructor(
    code: ErrorCode,
    message: string,
    /** Extra fields of the error body (REST `error.*`, WebSocket `error` event). */
    readonly details?: ErrorDetails,
  ) {
    super(message);
    this.code = code;
    this.status = ERROR_CATALOG[code];
  }
}

/** The JSON body of an error response. */
export function errorBody(code: ErrorCode | string, message: string, details?: ErrorDetails) {
  return { error: { code, message, ...details } };
}

const DeviceRefSchema = Type.Object({ user_id: Type.String({ format: 'uuid' }), device_id: Type.Integer({ description: 'The Signal device id (1–127).' }) });

/**
 * The schema of every REST error body, `{"error":{"code","message"}}`; `$id` `Error`, so the OpenAPI
 * document has it once (`#/components/schemas/Error`) and responses refer to it (src/plugins/openapi.ts).
 */
export const ErrorResponse = Type.Object(
  {
    error: Type.Object({
      code: Type.Enum(Object.keys(ERROR_CATALOG), { description: 'A stable code of the catalog in src/errors.ts.' }),
      message: Type.String({ description: 'For people; may change.' }),
      missing: Type.Optional(Type.Array(DeviceRefSchema, { description: 'MISMATCHED_DEVICES: E2EE devices the envelopes left out.' })),
      extra: Type.Optional(Type.Array(DeviceRefSchema, { description: 'MISMATCHED_DEVICES: envelopes for devices that are not (or no longer) E2EE devices of the room.' })),
      stale: Type.Optional(Type.Array(DeviceRefSchema, { description: 'STALE_DEVICES: devices whose registration id does not match.' })),
    }),
  },
  { $id: 'Error' },
);
