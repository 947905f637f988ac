/**
 * The shapes of the REST API, taken from the types generated out of the hub's OpenAPI document
 * (`generated/api.ts`, `npm run generate -w @switchboard/sdk`): nothing here is written by hand but
 * the names.
 */
import type { components, operations, paths } from './generated/api.js';

export type { components, operations, paths };

/** The JSON body of an operation's response with `status` (200 by default). */
export type ResponseOf<Op extends keyof operations, Status extends number = 200> = operations[Op]['responses'] extends Record<
  Status,
  { content: { 'application/json': infer Body } }
>
  ? Body
  : never;

/** The JSON request body of an operation. */
export type BodyOf<Op extends keyof operations> = operations[Op] extends { requestBody?: { content: { 'application/json': infer Body } } } ? Body : never;

/** What register, login and refresh answer: tokens, `expires_in` (seconds), the device and the user. */
export type SessionTokens = ResponseOf<'login'>;
export type SelfUser = SessionTokens['user'];
export type PublicUser = ResponseOf<'getUser'>;
export type RoomSummary = ResponseOf<'listRooms'>[number];
export type Room = ResponseOf<'getRoom'>;
export type RoomMember = Room['members'][number];
export type PublicRoom = ResponseOf<'listPublicRooms'>[number];
export type Message = ResponseOf<'getMessage'>;
export type Attachment = ResponseOf<'uploadAttachment', 201>;
export type Reaction = Message['reactions'][number];
export type SearchPage = ResponseOf<'searchMessages'>;
export type Presence = ResponseOf<'getPresence'>;
export type ErrorBody = components['schemas']['Error'];
export type ErrorCode = ErrorBody['error']['code'];
