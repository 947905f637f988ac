/**
 * Client -> server WebSocket frames (JSON text). Each frame is validated against its type's schema;
 * an invalid frame gets an `error` event and the socket stays open. See docs/WEBSOCKET_API.md.
 */
import { Type, type Static } from 'typebox';
import { Compile } from 'typebox/compile';
import { DEFAULT_MAX_DEPTH, inputProblem } from '../lib/input-bounds.js';
import { Envelope, SenderKeyCiphertext } from '../modules/e2ee/e2ee.schemas.js';

const Uuid = Type.String({ format: 'uuid' });
const TxnId = Type.String({ minLength: 1, maxLength: 255 });
const Strict = { additionalProperties: false } as const;

export const ClientFrames = {
  'message.send': Type.Object(
    {
      type: Type.Literal('message.send'),
      room_id: Uuid,
      content: Type.Optional(Type.String()),
      envelopes: Type.Optional(Type.Array(Envelope, { maxItems: 1000 })),
      sender_key: Type.Optional(SenderKeyCiphertext),
      reply_to: Type.Optional(Uuid),
      txn_id: Type.Optional(TxnId),
      attachments: Type.Optional(Type.Array(Uuid, { maxItems: 10 })),
    },
    Strict,
  ),
  'typing.start': Type.Object({ type: Type.Literal('typing.start'), room_id: Uuid }, Strict),
  'typing.stop': Type.Object({ type: Type.Literal('typing.stop'), room_id: Uuid }, Strict),
  'message.read': Type.Object({ type: Type.Literal('message.read'), room_id: Uuid, message_id: Uuid }, Strict),
  'presence.update': Type.Object(
    {
      type: Type.Literal('presence.update'),
      status: Type.Union([Type.Literal('online'), Type.Literal('away'), Type.Literal('busy'), Type.Literal('offline')]),
      status_text: Type.Optional(Type.String({ maxLength: 200 })),
    },
    Strict,
  ),
  'reaction.add': Type.Object({ type: Type.Literal('reaction.add'), message_id: Uuid, key: Type.String({ minLength: 1, maxLength: 64 }), txn_id: Type.Optional(TxnId) }, Strict),
  'reaction.remove': Type.Object({ type: Type.Literal('reaction.remove'), message_id: Uuid, key: Type.String({ minLength: 1, maxLength: 64 }), txn_id: Type.Optional(TxnId) }, Strict),
  ping: Type.Object({ type: Type.Literal('ping'), txn_id: Type.Optional(TxnId) }, Strict),
  'e2ee.to_device.ack': Type.Object({ type: Type.Literal('e2ee.to_device.ack'), up_to: Type.Integer({ minimum: 1 }) }, Strict),
};

export type FrameType = keyof typeof ClientFrames;
export type Frame<T extends FrameType> = Static<(typeof ClientFrames)[T]>;
export type AnyFrame = { [K in FrameType]: Frame<K> }[FrameType];

const validators = Object.fromEntries(Object.entries(ClientFrames).map(([k, s]) => [k, Compile(s)])) as Record<FrameType, ReturnType<typeof Compile>>;

export type ParseResult =
  | { ok: true; frame: AnyFrame }
  | { ok: false; code: 'INVALID_FRAME' | 'VALIDATION_FAILED'; message: string; txn_id?: string };

/**
 * Parses and validates one text frame: the input bounds (src/lib/input-bounds.ts: nesting at most
 * `maxDepth` levels, finite numbers, storable text), then its type's schema. Never throws.
 */
export function parseFrame(text: string, maxDepth = DEFAULT_MAX_DEPTH): ParseResult {
  let data: any;
  try {
    data = JSON.parse(text);
  } catch {
    return { ok: false, code: 'INVALID_FRAME', message: 'Frame is not valid JSON' };
  }
  const txnId = typeof data?.txn_id === 'string' ? data.txn_id : undefined;
  if (typeof data !== 'object' || data === null || Array.isArray(data) || typeof data.type !== 'string') {
    return { ok: false, code: 'INVALID_FRAME', message: 'Frame must be a JSON object with a string "type"', txn_id: txnId };
  }
  const problem = inputProblem(data, maxDepth);
  if (problem) return { ok: false, code: 'VALIDATION_FAILED', message: `${problem.path.replaceAll('/', '.')}: ${problem.message}`, txn_id: txnId };
  const validator = Object.hasOwn(validators, data.type) ? validators[data.type as FrameType] : undefined;
  if (!validator) return { ok: false, code: 'INVALID_FRAME', message: `Unknown frame type "${data.type}"`, txn_id: txnId };
  if (!validator.Check(data)) {
    const [first] = validator.Errors(data);
    const where = first?.instancePath ? first.instancePath.slice(1).replaceAll('/', '.') + ': ' : '';
    return { ok: false, code: 'VALIDATION_FAILED', message: `${where}${first?.message ?? 'invalid frame'}`, txn_id: txnId };
  }
  return { ok: true, frame: data as AnyFrame };
}
