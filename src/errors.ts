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
} as const;

export type ErrorCode = keyof typeof ERROR_CATALOG;

/** An error a client caused or may see; carries a stable code and its HTTP status. */
export class AppError extends Error {
  readonly code: ErrorCode;
  readonly status: number;
  constructor(code: ErrorCode, message: string) {
    super(message);
    this.code = code;
    this.status = ERROR_CATALOG[code];
  }
}

/** The JSON body of an error response. */
export function errorBody(code: ErrorCode | string, message: string) {
  return { error: { code, message } };
}

/**
 * The schema of every REST error body, `{"error":{"code","message"}}`; `$id` `Error`, so the OpenAPI
 * document has it once (`#/components/schemas/Error`) and responses refer to it (src/plugins/openapi.ts).
 */
export const ErrorResponse = Type.Object(
  {
    error: Type.Object({
      code: Type.Enum(Object.keys(ERROR_CATALOG), { description: 'A stable code of the catalog in src/errors.ts.' }),
      message: Type.String({ description: 'For people; may change.' }),
    }),
  },
  { $id: 'Error' },
);
