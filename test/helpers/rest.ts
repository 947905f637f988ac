/**
 * Small REST helpers for the integration tests, on top of `api` from ./hub.ts.
 */
import { expect } from 'vitest';
import { api, type Session } from './hub.js';

export type ApiResult = Awaited<ReturnType<typeof api>>;

/** Asserts an error answer: the status and the `{"error":{"code","message"}}` body with `code`. */
export function expectError(res: ApiResult, status: number, code: string): void {
  expect({ status: res.status, code: res.body?.error?.code }).toEqual({ status, code });
  expect(typeof res.body.error.message).toBe('string');
  expect(res.body.error.message.length).toBeGreaterThan(0);
}

/** Creates a room as `s`; expects 201 (or 200 for an existing direct room). @returns the room view. */
export async function createRoom(
  base: string,
  s: Session,
  body: { type: 'direct' | 'group' | 'channel'; name?: string; topic?: string; members?: string[]; visibility?: 'public' | 'private' },
): Promise<any> {
  const res = await api(base, 'POST', '/api/rooms', { token: s.token, body });
  if (res.status !== 201 && res.status !== 200) throw new Error(`create room failed: ${res.status} ${JSON.stringify(res.body)}`);
  return res.body;
}

/** Sends a message as `s`; expects 201. @returns `{id, created_at, stream_position}`. */
export async function sendMessage(base: string, s: Session, roomId: string, content: string, extra: { reply_to?: string; txn_id?: string } = {}) {
  const res = await api(base, 'POST', `/api/rooms/${roomId}/messages`, { token: s.token, body: { content, ...extra } });
  if (res.status !== 201) throw new Error(`send failed: ${res.status} ${JSON.stringify(res.body)}`);
  return res.body as { id: string; created_at: string; stream_position: number };
}

/** The caller's entry for one room in `GET /api/rooms`. */
export async function roomEntry(base: string, s: Session, roomId: string): Promise<any> {
  const res = await api(base, 'GET', '/api/rooms', { token: s.token });
  expect(res.status).toBe(200);
  return res.body.find((r: any) => r.id === roomId);
}
