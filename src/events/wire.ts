/**
 * Stream events and their wire form as bytes: each event's UTF-8 JSON (`toWire`: its payload,
 * `room_id`, `stream_position`) is made once per node, however many sockets it goes to, and kept on
 * the event. An event read from the database is made from the payload's stored JSON text, so it is
 * never serialized again (a resume writes 100,000 of them).
 */
import type { StreamEvent } from './stream.js';

/** A `StreamEvent` with its wire form kept in a private field (not copied by a spread, never serialized). */
class WireEvent {
  /** The encoded wire form once made; before that, the payload's stored JSON text when known. */
  #wire: Buffer | string | undefined;

  constructor(
    readonly stream_position: number,
    readonly room_id: string,
    readonly type: StreamEvent['type'],
    readonly payload: StreamEvent['payload'],
    readonly notify_user_ids: string[],
    readonly written_ms: number,
    payloadJson: string | undefined,
  ) {
    this.#wire = payloadJson;
  }

  encoded(): Buffer {
    if (typeof this.#wire !== 'string' && this.#wire !== undefined) return this.#wire;
    return (this.#wire = Buffer.from(wireJson(this, this.#wire)));
  }
}

/**
 * A stream event of `fields` (the payload aside: `payload`). @param payloadJson the text `payload`
 *   was parsed from (read from the database), used for the wire form; the payload must not change.
 */
export function streamEvent(fields: Omit<StreamEvent, 'payload'>, payload: StreamEvent['payload'], payloadJson?: string): StreamEvent {
  return new WireEvent(fields.stream_position, fields.room_id, fields.type, payload, fields.notify_user_ids, fields.written_ms, payloadJson) as unknown as StreamEvent;
}

/** The UTF-8 JSON of a room event's wire form: made once per event built by `streamEvent`. */
export function encodeEvent(event: StreamEvent): Buffer {
  return event instanceof WireEvent ? event.encoded() : Buffer.from(wireJson(event));
}

/**
 * `JSON.stringify(toWire(event))`, without copying the payload into a new object first.
 * @param payloadJson the payload's JSON when known (its stored text); serialized here otherwise.
 */
export function wireJson(event: Pick<StreamEvent, 'payload' | 'room_id' | 'stream_position'>, payloadJson = JSON.stringify(event.payload)): string {
  const roomId = 'room_id' in event.payload ? '' : `,"room_id":${JSON.stringify(event.room_id)}`;
  return `${payloadJson.slice(0, payloadJson.lastIndexOf('}'))}${roomId},"stream_position":${event.stream_position}}`;
}
