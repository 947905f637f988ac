/** Helpers for bridge end-to-end tests: a hub user reading and writing a portal room over REST. */
import { expect } from 'vitest';
import { api, type Session, type TestHub } from './hub.js';

/** The room's messages, oldest first (up to 100). */
export async function roomHistory(t: TestHub, who: Session, roomId: string): Promise<any[]> {
  return (await api(t.url, 'GET', `/api/rooms/${roomId}/messages?limit=100`, { token: who.token })).body.messages;
}

/** `who` sends in the room (201 expected). @returns the hub message id. */
export async function say(t: TestHub, who: Session, roomId: string, content: string, extra: Record<string, unknown> = {}): Promise<string> {
  const res = await api(t.url, 'POST', `/api/rooms/${roomId}/messages`, { token: who.token, body: { content, ...extra } });
  expect(res.status).toBe(201);
  return res.body.id;
}
