/**
 * JSON Schemas (TypeBox) of the agent tools' results and of the tool endpoints. The wire shapes are
 * those of the REST API, from their modules. Objects are open (extra properties allowed) so fields
 * added to the wire shapes later do not break clients that validate results.
 */
import { Type } from 'typebox';
import { ScopeSchema } from './agents.schemas.js';

export { Message } from '../messages/messages.schemas.js';
export { Room, RoomMember as Member, RoomSummary } from '../rooms/rooms.schemas.js';
export { SearchHit } from '../search/search.schemas.js';
export { Presence } from '../users/users.schemas.js';

export const ToolParams = Type.Object({ name: Type.String({ maxLength: 100 }) });

/** One agent tool as listed (`listTools`): its JSON Schemas are those MCP `tools/list` gives. */
export const ToolListing = Type.Object({
  name: Type.String(),
  description: Type.String(),
  inputSchema: Type.Object({}, { additionalProperties: true, description: 'JSON Schema of the arguments.' }),
  outputSchema: Type.Object({}, { additionalProperties: true, description: 'JSON Schema of the result.' }),
  scope: Type.With(ScopeSchema, { description: 'The scope a token needs to call it.' }),
});

/**
 * The arguments of a tool call, as a JSON body; checked against the tool's input schema by `callTool`.
 * Per media type, so a call without a body (a tool that takes no arguments) is not validated at all.
 */
export const ToolArguments = {
  content: {
    'application/json': {
      schema: Type.Union([Type.Object({}, { additionalProperties: true }), Type.Null()], { description: 'The arguments; {}, null or no body for none.' }),
    },
  },
};

/** A tool's result: it matches the tool's `outputSchema`. */
export const ToolResult = Type.Object({}, { additionalProperties: true, description: 'The tool\'s result; it matches its outputSchema' });
