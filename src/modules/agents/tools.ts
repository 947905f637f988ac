/**
 * The agent tools: one definition each (name, description, required scope, input and output JSON
 * Schema, handler), served both by the REST tool endpoints (`/api/mcp/tools`) and by the MCP server
 * (`/mcp`, https://modelcontextprotocol.io/specification/2025-06-18/server/tools). Handlers call the
 * hub's services as the token's user, so membership rules are the same as for the user's own clients.
 */
import { Type, type Static, type TSchema } from 'typebox';
import { Compile } from 'typebox/compile';
import { AppError } from '../../errors.js';
import type { Hub } from '../../hub.js';
import { Uuid } from '../users/users.schemas.js';
import type { Scope } from './agents.schemas.js';
import type { AgentContext } from './agents.service.js';
import { Member, Message, Presence, Room, RoomSummary, SearchHit } from './tools.schemas.js';
import { requireUnencrypted, waitForMessages } from './wait.js';

/** Longest `wait_for_messages` wait, ms, and the default. */
export const WAIT_MAX_MS = 30_000;
export const WAIT_DEFAULT_MS = 10_000;

export interface ToolContext {
  hub: Hub;
  agent: AgentContext;
  /** Aborted when the caller goes away (ends `wait_for_messages` early). */
  signal: AbortSignal;
  /**
   * Counts one message send against the user's send rate limit (`rate_limits.messages_per_user_per_min`,
   * shared with REST and the WebSocket). @returns 0 when allowed, else ms until allowed.
   */
  limitSend(): Promise<number>;
}

export interface Tool<I extends TSchema = TSchema, O extends TSchema = TSchema> {
  name: string;
  description: string;
  scope: Scope;
  input: I;
  output: O;
  handler(ctx: ToolContext, args: Static<I>): Promise<Static<O>>;
}

/** Checks a definition's handler against its schemas, then erases the types for the registry. */
function tool<I extends TSchema, O extends TSchema>(t: Tool<I, O>): Tool {
  return t as unknown as Tool;
}

const Strict = { additionalProperties: false } as const;

/** A room the user is a member of (public channels they have not joined are not theirs). */
async function memberRoom(hub: Hub, userId: string, roomId: string) {
  await hub.rooms.requireMember(hub.db, roomId, userId);
  return hub.rooms.get(userId, roomId);
}

export const TOOLS: Tool[] = [
  tool({
    name: 'list_rooms',
    description: "The user's rooms, most recently active first, with the user's role, unread count and the last message.",
    scope: 'rooms:read',
    input: Type.Object({}, Strict),
    output: Type.Object({ rooms: Type.Array(RoomSummary) }),
    handler: async ({ hub, agent }) => ({ rooms: await hub.rooms.list(agent.userId) }),
  }),

  tool({
    name: 'get_room',
    description: 'One of the user\'s rooms, with its members. Errors: INVALID_ROOM, NOT_A_MEMBER.',
    scope: 'rooms:read',
    input: Type.Object({ room_id: Uuid }, Strict),
    output: Type.Object({ room: Room }),
    handler: async ({ hub, agent }, { room_id }) => ({ room: await memberRoom(hub, agent.userId, room_id) }),
  }),

  tool({
    name: 'list_members',
    description: 'The members of one of the user\'s rooms, with their roles. Errors: INVALID_ROOM, NOT_A_MEMBER.',
    scope: 'rooms:read',
    input: Type.Object({ room_id: Uuid }, Strict),
    output: Type.Object({ members: Type.Array(Member) }),
    handler: async ({ hub, agent }, { room_id }) => ({ members: (await memberRoom(hub, agent.userId, room_id)).members }),
  }),

  tool({
    name: 'read_messages',
    description:
      'A page of a room\'s history, oldest first. Without paging arguments: the latest messages. Use one of ' +
      '`before` (message id: older ones), `after` (message id: newer ones) or `since` (stream position: messages after it). ' +
      '`has_more` tells whether more exist in that direction. Errors: INVALID_ROOM, NOT_A_MEMBER, INVALID_MESSAGE, ROOM_ENCRYPTED.',
    scope: 'messages:read',
    input: Type.Object(
      {
        room_id: Uuid,
        limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 100, default: 50, description: 'Page size (also capped by the hub\'s limits.history_page_max).' })),
        before: Type.Optional(Uuid),
        after: Type.Optional(Uuid),
        since: Type.Optional(Type.Integer({ minimum: 0, maximum: Number.MAX_SAFE_INTEGER, description: 'A stream_position, e.g. a message\'s or wait_for_messages\' next_since.' })),
      },
      Strict,
    ),
    output: Type.Object({ messages: Type.Array(Message), has_more: Type.Boolean() }),
    handler: async ({ hub, agent }, args) => {
      if ([args.before, args.after, args.since].filter((a) => a !== undefined).length > 1) {
        throw new AppError('VALIDATION_FAILED', 'Use one of before, after and since');
      }
      await requireUnencrypted(hub, agent.userId, args.room_id);
      const limit = Math.min(args.limit ?? 50, hub.config.limits.history_page_max);
      return hub.messages.history(agent.userId, args.room_id, { before: args.before, after: args.after, since: args.since, limit });
    },
  }),

  tool({
    name: 'send_message',
    description:
      'Sends a message to a room as the user. Mention someone with <@user_id>. Pass a unique `txn_id` to make retries safe: ' +
      'repeating it returns the first message with `duplicate: true` and sends nothing. ' +
      'Errors: INVALID_ROOM, NOT_A_MEMBER, INVALID_MESSAGE (reply_to), MESSAGE_TOO_LARGE, VALIDATION_FAILED, RATE_LIMITED, ROOM_ENCRYPTED.',
    scope: 'messages:write',
    input: Type.Object(
      {
        room_id: Uuid,
        content: Type.String({ minLength: 1 }),
        reply_to: Type.Optional(Uuid),
        txn_id: Type.Optional(Type.String({ minLength: 1, maxLength: 255 })),
      },
      Strict,
    ),
    output: Type.Object({ message: Message, duplicate: Type.Boolean() }),
    handler: async ({ hub, agent, limitSend }, { room_id, ...input }) => {
      await requireUnencrypted(hub, agent.userId, room_id);
      const retryMs = await limitSend();
      if (retryMs > 0) throw new AppError('RATE_LIMITED', `Too many messages; retry in ${Math.ceil(retryMs / 1000)} s`);
      const { message, created } = await hub.messages.send(agent.userId, room_id, input);
      return { message, duplicate: !created };
    },
  }),

  tool({
    name: 'react',
    description: 'Adds (or with `remove: true` removes) the user\'s reaction to a message. Idempotent. Errors: INVALID_MESSAGE, NOT_A_MEMBER.',
    scope: 'messages:write',
    input: Type.Object(
      {
        message_id: Uuid,
        key: Type.String({ minLength: 1, maxLength: 64, description: 'An emoji or short text.' }),
        remove: Type.Optional(Type.Boolean({ default: false })),
      },
      Strict,
    ),
    output: Type.Object({ key: Type.String(), count: Type.Integer({ description: 'Reactions with this key on the message now.' }) }),
    handler: async ({ hub, agent }, args) => hub.messages.react(agent.userId, args.message_id, args.key, !args.remove),
  }),

  tool({
    name: 'mark_read',
    description:
      'Read receipt: marks everything in the room up to `message_id` (default: the latest message) as read by the user. ' +
      'Never moves backwards (`moved: false`). Errors: INVALID_ROOM, NOT_A_MEMBER, INVALID_MESSAGE.',
    scope: 'messages:write',
    input: Type.Object({ room_id: Uuid, message_id: Type.Optional(Uuid) }, Strict),
    output: Type.Object({
      room_id: Uuid,
      message_id: Type.Union([Uuid, Type.Null()]),
      read_at: Type.Union([Type.String({ format: 'date-time' }), Type.Null()]),
      moved: Type.Boolean(),
    }),
    handler: async ({ hub, agent }, args) => hub.messages.markRead(agent.userId, args.room_id, args.message_id),
  }),

  tool({
    name: 'search_messages',
    description:
      'Full-text search over the user\'s rooms (or one of them), best match first; matches are wrapped in <mark> in `highlight`. ' +
      'Errors: INVALID_ROOM, NOT_A_MEMBER (room_id), SEARCH_UNAVAILABLE.',
    scope: 'search',
    input: Type.Object(
      {
        query: Type.String({ minLength: 1, maxLength: 500 }),
        room_id: Type.Optional(Uuid),
        limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 100, default: 20 })),
        offset: Type.Optional(Type.Integer({ minimum: 0, maximum: 10000, default: 0 })),
      },
      Strict,
    ),
    output: Type.Object({ results: Type.Array(SearchHit), has_more: Type.Boolean() }),
    handler: async ({ hub, agent }, args) =>
      hub.search.search(agent.userId, { q: args.query, room_id: args.room_id, order: 'relevance', limit: args.limit ?? 20, offset: args.offset ?? 0 }),
  }),

  tool({
    name: 'get_presence',
    description: 'Presence (online, away, busy, offline; status text; last seen) of users who share a room with the user. Others are left out.',
    scope: 'presence:read',
    input: Type.Object({ user_ids: Type.Array(Uuid, { minItems: 1, maxItems: 100, uniqueItems: true }) }, Strict),
    output: Type.Object({ presence: Type.Array(Presence) }),
    handler: async ({ hub, agent }, args) => ({ presence: await hub.presence.query(agent.userId, args.user_ids) }),
  }),

  tool({
    name: 'wait_for_messages',
    description:
      `Long poll: returns as soon as there are new messages from other users in the user's rooms (or in \`room_id\`) after ` +
      `stream position \`since\`, or an empty list with \`timed_out: true\` after \`timeout_ms\` (default ${WAIT_DEFAULT_MS}, at most ${WAIT_MAX_MS}). ` +
      'Omit `since` the first time (waits for messages from now on), then pass the returned `next_since`: no message is missed between calls. ' +
      'Encrypted rooms are left out (ROOM_ENCRYPTED for an encrypted room_id). Errors: INVALID_ROOM, NOT_A_MEMBER (room_id), ROOM_ENCRYPTED.',
    scope: 'messages:read',
    input: Type.Object(
      {
        since: Type.Optional(Type.Integer({ minimum: 0, maximum: Number.MAX_SAFE_INTEGER })),
        room_id: Type.Optional(Uuid),
        timeout_ms: Type.Optional(Type.Integer({ minimum: 0, maximum: WAIT_MAX_MS, default: WAIT_DEFAULT_MS })),
        limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 100, default: 50 })),
        include_own: Type.Optional(Type.Boolean({ default: false, description: 'Also return messages the user sent.' })),
      },
      Strict,
    ),
    output: Type.Object({
      messages: Type.Array(Message),
      next_since: Type.Integer({ description: 'Pass as `since` to the next call.' }),
      timed_out: Type.Boolean(),
    }),
    handler: async ({ hub, agent, signal }, args) =>
      waitForMessages(hub, agent.userId, {
        since: args.since,
        roomId: args.room_id,
        timeoutMs: args.timeout_ms ?? WAIT_DEFAULT_MS,
        limit: args.limit ?? 50,
        includeOwn: args.include_own ?? false,
        signal,
      }),
  }),
];

const byName = new Map(TOOLS.map((t) => [t.name, { tool: t, validator: Compile(t.input) }]));

/**
 * The tool list as MCP's `tools/list` describes it, plus each tool's required scope. Every tool is
 * listed whatever the token's scopes; calling one outside them fails with INSUFFICIENT_SCOPE.
 */
export function listTools() {
  return TOOLS.map((t) => ({ name: t.name, description: t.description, inputSchema: t.input, outputSchema: t.output, scope: t.scope }));
}

/**
 * Calls a tool as the agent: checks the scope, fills defaults, validates the arguments against the
 * tool's input schema, runs it.
 * @returns the tool's result (matches its output schema).
 * @throws AppError INVALID_TOOL (404), INSUFFICIENT_SCOPE (403), VALIDATION_FAILED (400), and whatever
 *   the tool raises (NOT_A_MEMBER, INVALID_ROOM, ...).
 */
export async function callTool(ctx: ToolContext, name: string, args: unknown): Promise<unknown> {
  const entry = byName.get(name);
  if (!entry) throw new AppError('INVALID_TOOL', `No tool named ${name}`);
  const { tool: t, validator } = entry;
  if (!ctx.agent.scopes.includes(t.scope)) {
    throw new AppError('INSUFFICIENT_SCOPE', `${name} needs scope ${t.scope}; this token has ${ctx.agent.scopes.join(', ')}`);
  }
  const value = validator.Default(args ?? {});
  if (!validator.Check(value)) {
    const [first] = validator.Errors(value);
    const where = first?.instancePath ? first.instancePath.slice(1).replaceAll('/', '.') + ': ' : '';
    throw new AppError('VALIDATION_FAILED', `${where}${first?.message ?? 'invalid arguments'}`);
  }
  return t.handler(ctx, value);
}
