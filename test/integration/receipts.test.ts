/** `GET /api/rooms/:id/receipts`: where each member's read receipt stands, for members only. */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { api, register, startTestHub, type TestHub } from '../helpers/hub.js';
import { createRoom, expectError, sendMessage } from '../helpers/rest.js';

let t: TestHub;
beforeAll(async () => {
  t = await startTestHub();
});
afterAll(async () => t?.close());

it('lists the members who read something, with the message and its stream position; others get 403, unknown rooms 404', async () => {
  const [alice, bob, carol] = [await register(t.url, 'Alice'), await register(t.url, 'Bob'), await register(t.url, 'Carol')];
  const room = await createRoom(t.url, alice, { type: 'direct', members: [bob.user.id] });
  expect((await api(t.url, 'GET', `/api/rooms/${room.id}/receipts`, { token: alice.token })).body).toEqual([]);
  const first = await sendMessage(t.url, bob, room.id, 'one');
  await sendMessage(t.url, bob, room.id, 'two');
  await api(t.url, 'POST', `/api/rooms/${room.id}/read`, { token: alice.token, body: { message_id: first.id } });
  const receipts = await api(t.url, 'GET', `/api/rooms/${room.id}/receipts`, { token: bob.token });
  expect(receipts.status).toBe(200);
  expect(receipts.body).toEqual([{ user_id: alice.user.id, message_id: first.id, stream_position: first.stream_position, read_at: expect.any(String) }]);
  expectError(await api(t.url, 'GET', `/api/rooms/${room.id}/receipts`, { token: carol.token }), 403, 'NOT_A_MEMBER');
  expectError(await api(t.url, 'GET', '/api/rooms/00000000-0000-4000-8000-000000000000/receipts', { token: carol.token }), 404, 'INVALID_ROOM');
});
