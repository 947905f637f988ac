import crypto from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WsClient, api, register, startTestHub, type Session, type TestHub } from '../helpers/hub.js';
import { holdStreamLock } from '../helpers/locks.js';
import { createRoom, expectError, roomEntry, sendMessage } from '../helpers/rest.js';

let t: TestHub;
let alice: Session;
let bob: Session;
let carol: Session;
let dave: Session;
let eve: Session;

beforeAll(async () => {
  t = await startTestHub();
  [alice, bob, carol, dave, eve] = await Promise.all(['Alice', 'Bob', 'Carol', 'Dave', 'Eve'].map((n) => register(t.url, n)));
});
afterAll(async () => t?.close());

function roleOf(room: any, s: Session): string | undefined {
  return room.members.find((m: any) => m.user_id === s.user.id)?.role;
}

async function getRoom(s: Session, id: string) {
  return api(t.url, 'GET', `/api/rooms/${id}`, { token: s.token });
}

async function setRole(actor: Session, roomId: string, target: Session, role: string) {
  return api(t.url, 'PUT', `/api/rooms/${roomId}/members/${target.user.id}/role`, { token: actor.token, body: { role } });
}

async function removeMember(actor: Session, roomId: string, target: Session) {
  return api(t.url, 'DELETE', `/api/rooms/${roomId}/members/${target.user.id}`, { token: actor.token });
}

async function addMembers(actor: Session, roomId: string, targets: Session[]) {
  return api(t.url, 'POST', `/api/rooms/${roomId}/members`, { token: actor.token, body: { user_ids: targets.map((s) => s.user.id) } });
}

describe('direct rooms', () => {
  it('exist once per pair: a second create returns 200 with the same room, whoever creates it', async () => {
    const first = await api(t.url, 'POST', '/api/rooms', { token: alice.token, body: { type: 'direct', members: [bob.user.id] } });
    expect(first.status).toBe(201);
    expect(first.body).toMatchObject({ type: 'direct', visibility: 'private', created_by: alice.user.id });
    expect(first.body.members.map((m: any) => m.user_id).sort()).toEqual([alice.user.id, bob.user.id].sort());

    const again = await api(t.url, 'POST', '/api/rooms', { token: alice.token, body: { type: 'direct', members: [bob.user.id] } });
    expect(again.status).toBe(200);
    expect(again.body.id).toBe(first.body.id);
    const fromBob = await api(t.url, 'POST', '/api/rooms', { token: bob.token, body: { type: 'direct', members: [alice.user.id] } });
    expect(fromBob.status).toBe(200);
    expect(fromBob.body.id).toBe(first.body.id);
    const { rows } = await t.hub.db.query("SELECT id FROM rooms WHERE type = 'direct' AND created_by IN ($1, $2)", [alice.user.id, bob.user.id]);
    expect(rows).toHaveLength(1);
  });

  it.each([
    ['no other member', () => []],
    ['only the caller', () => [alice.user.id]],
    ['two other members', () => [bob.user.id, carol.user.id]],
  ])('needs exactly one other member (%s → 400)', async (_label, members) => {
    expectError(await api(t.url, 'POST', '/api/rooms', { token: alice.token, body: { type: 'direct', members: members() } }), 400, 'VALIDATION_FAILED');
  });

  it('refuses an unknown user (404 INVALID_USER) and public visibility (400)', async () => {
    expectError(await api(t.url, 'POST', '/api/rooms', { token: alice.token, body: { type: 'direct', members: [crypto.randomUUID()] } }), 404, 'INVALID_USER');
    expectError(
      await api(t.url, 'POST', '/api/rooms', { token: alice.token, body: { type: 'direct', members: [dave.user.id], visibility: 'public' } }),
      400,
      'VALIDATION_FAILED',
    );
  });

  it('can be started afresh after a server admin deleted the pair\'s direct room (201, a new room)', async () => {
    const old = await createRoom(t.url, dave, { type: 'direct', members: [eve.user.id] });
    await t.hub.rooms.delete(alice.user.id, old.id, { asServerAdmin: true });
    const again = await api(t.url, 'POST', '/api/rooms', { token: eve.token, body: { type: 'direct', members: [dave.user.id] } });
    expect(again.status).toBe(201);
    expect(again.body.id).not.toBe(old.id);
    expect((await api(t.url, 'POST', '/api/rooms', { token: dave.token, body: { type: 'direct', members: [eve.user.id] } })).body.id).toBe(again.body.id);
  });

  it('have fixed membership and settings: no rename, no adding, no leaving (403)', async () => {
    const room = await createRoom(t.url, carol, { type: 'direct', members: [dave.user.id] });
    expectError(await api(t.url, 'PATCH', `/api/rooms/${room.id}`, { token: carol.token, body: { name: 'x' } }), 403, 'FORBIDDEN');
    expectError(await addMembers(carol, room.id, [eve]), 403, 'FORBIDDEN');
    expectError(await removeMember(carol, room.id, dave), 403, 'FORBIDDEN');
    expectError(await api(t.url, 'POST', `/api/rooms/${room.id}/leave`, { token: carol.token }), 403, 'FORBIDDEN');
    expect((await getRoom(carol, room.id)).body.members).toHaveLength(2);
  });
});

describe('group and channel roles', () => {
  it('makes the creator owner and the other members plain members', async () => {
    const room = await createRoom(t.url, alice, { type: 'group', name: '  Team  ', topic: 'work', members: [bob.user.id, carol.user.id] });
    expect(room).toMatchObject({ type: 'group', name: 'Team', topic: 'work', visibility: 'private' });
    expect([roleOf(room, alice), roleOf(room, bob), roleOf(room, carol)]).toEqual(['owner', 'member', 'member']);
  });

  it('lets only admins edit the room, add and remove members, as ranked', async () => {
    const room = await createRoom(t.url, alice, { type: 'group', name: 'Ranks', members: [bob.user.id, carol.user.id] });
    // A plain member can neither edit nor add.
    expectError(await api(t.url, 'PATCH', `/api/rooms/${room.id}`, { token: bob.token, body: { name: 'Mine' } }), 403, 'FORBIDDEN');
    expectError(await addMembers(bob, room.id, [dave]), 403, 'FORBIDDEN');
    expectError(await removeMember(bob, room.id, carol), 403, 'FORBIDDEN');
    // Only the owner sets roles.
    expectError(await setRole(bob, room.id, bob, 'admin'), 403, 'FORBIDDEN');
    expect((await setRole(alice, room.id, bob, 'admin')).status).toBe(200);

    const edited = await api(t.url, 'PATCH', `/api/rooms/${room.id}`, { token: bob.token, body: { name: 'Renamed', topic: 'new topic' } });
    expect(edited.status).toBe(200);
    expect(edited.body).toMatchObject({ name: 'Renamed', topic: 'new topic' });
    expectError(await api(t.url, 'PATCH', `/api/rooms/${room.id}`, { token: bob.token, body: { visibility: 'public' } }), 400, 'VALIDATION_FAILED');

    const added = await addMembers(bob, room.id, [dave, eve]);
    expect(added.status).toBe(200);
    expect([roleOf(added.body, dave), roleOf(added.body, eve)]).toEqual(['member', 'member']);
    expect((await removeMember(bob, room.id, eve)).status).toBe(200);

    // An admin cannot remove another admin nor the owner; the owner can remove an admin.
    expect((await setRole(alice, room.id, carol, 'admin')).status).toBe(200);
    expectError(await removeMember(bob, room.id, carol), 403, 'FORBIDDEN');
    expectError(await removeMember(bob, room.id, alice), 403, 'FORBIDDEN');
    const removed = await removeMember(alice, room.id, carol);
    expect(removed.status).toBe(200);
    expect(roleOf(removed.body, carol)).toBeUndefined();
    expectError(await getRoom(carol, room.id), 403, 'NOT_A_MEMBER');
    expectError(await removeMember(alice, room.id, eve), 404, 'INVALID_USER');
  });

  it('hands ownership over when the owner makes someone else owner', async () => {
    const room = await createRoom(t.url, alice, { type: 'group', members: [bob.user.id] });
    const res = await setRole(alice, room.id, bob, 'owner');
    expect([roleOf(res.body, alice), roleOf(res.body, bob)]).toEqual(['admin', 'owner']);
    expectError(await setRole(alice, room.id, bob, 'member'), 403, 'FORBIDDEN');
  });

  it('refuses public visibility for a group (400)', async () => {
    expectError(await api(t.url, 'POST', '/api/rooms', { token: alice.token, body: { type: 'group', visibility: 'public' } }), 400, 'VALIDATION_FAILED');
  });
});

describe('leaving', () => {
  it('removes the member who leaves', async () => {
    const room = await createRoom(t.url, alice, { type: 'group', members: [bob.user.id] });
    const res = await api(t.url, 'POST', `/api/rooms/${room.id}/leave`, { token: bob.token });
    expect(res.status).toBe(200);
    expect(roleOf(res.body, bob)).toBeUndefined();
    expectError(await getRoom(bob, room.id), 403, 'NOT_A_MEMBER');
    expectError(await api(t.url, 'POST', `/api/rooms/${room.id}/leave`, { token: bob.token }), 403, 'NOT_A_MEMBER');
  });

  it('an owner who leaves hands ownership to the longest-standing admin, even over longer-standing members', async () => {
    // bob and carol join at creation; dave and eve are added later, so they joined after them.
    const room = await createRoom(t.url, alice, { type: 'group', members: [bob.user.id, carol.user.id] });
    expect((await addMembers(alice, room.id, [dave])).status).toBe(200);
    expect((await addMembers(alice, room.id, [eve])).status).toBe(200);
    await setRole(alice, room.id, eve, 'admin');
    await setRole(alice, room.id, dave, 'admin');

    const res = await api(t.url, 'DELETE', `/api/rooms/${room.id}/members/${alice.user.id}`, { token: alice.token });
    expect(res.status).toBe(200);
    expect(roleOf(res.body, alice)).toBeUndefined();
    expect([roleOf(res.body, bob), roleOf(res.body, carol), roleOf(res.body, dave), roleOf(res.body, eve)]).toEqual(['member', 'member', 'owner', 'admin']);
  });

  it('with no admin left, the longest-standing member becomes owner', async () => {
    const room = await createRoom(t.url, alice, { type: 'group', members: [bob.user.id] });
    expect((await addMembers(alice, room.id, [carol])).status).toBe(200);
    const res = await api(t.url, 'POST', `/api/rooms/${room.id}/leave`, { token: alice.token });
    expect([roleOf(res.body, bob), roleOf(res.body, carol)]).toEqual(['owner', 'member']);
  });
});

describe('concurrent membership changes (need a real PostgreSQL: DATABASE_URL)', () => {
  const leave = (s: Session, roomId: string) => api(t.url, 'POST', `/api/rooms/${roomId}/leave`, { token: s.token });

  it.skipIf(!process.env.DATABASE_URL)('an owner leaving while the heir admin leaves still leaves the room an owner', async () => {
    const room = await createRoom(t.url, alice, { type: 'group', members: [bob.user.id, carol.user.id] });
    await setRole(alice, room.id, bob, 'admin');
    const lock = await holdStreamLock(t);
    const bobLeaves = leave(bob, room.id);
    await lock.waiting(1);
    const aliceLeaves = leave(alice, room.id);
    await lock.waiting(2);
    await lock.release();
    expect((await bobLeaves).status).toBe(200);
    expect((await aliceLeaves).status).toBe(200);
    const after = await getRoom(carol, room.id);
    expect(after.body.members.map((m: any) => [m.user_id, m.role])).toEqual([[carol.user.id, 'owner']]);
  });

  it.skipIf(!process.env.DATABASE_URL)('a send racing its sender leaving is refused, never stored after the leave', async () => {
    const room = await createRoom(t.url, alice, { type: 'group', members: [bob.user.id] });
    const lock = await holdStreamLock(t);
    const bobLeaves = leave(bob, room.id);
    await lock.waiting(1);
    const bobSends = api(t.url, 'POST', `/api/rooms/${room.id}/messages`, { token: bob.token, body: { content: 'on my way out' } });
    await lock.waiting(2);
    await lock.release();
    expect((await bobLeaves).status).toBe(200);
    expectError(await bobSends, 403, 'NOT_A_MEMBER');
    const { rows } = await t.hub.db.query('SELECT count(*)::int AS n FROM messages WHERE room_id = $1 AND user_id = $2', [room.id, bob.user.id]);
    expect(rows[0].n).toBe(0);
  });

  it.skipIf(!process.env.DATABASE_URL)('two concurrent joins of one user emit one room.updated', async () => {
    const room = await createRoom(t.url, alice, { type: 'channel', name: 'open', visibility: 'public' });
    const lock = await holdStreamLock(t);
    const first = api(t.url, 'POST', `/api/rooms/${room.id}/join`, { token: dave.token });
    await lock.waiting(1);
    const second = api(t.url, 'POST', `/api/rooms/${room.id}/join`, { token: dave.token });
    await lock.waiting(2);
    await lock.release();
    expect([(await first).status, (await second).status]).toEqual([200, 200]);
    const { rows } = await t.hub.db.query(`SELECT count(*)::int AS n FROM room_events WHERE room_id = $1 AND type = 'room.updated'`, [room.id]);
    expect(rows[0].n).toBe(2); // the create and one join
  });
});

describe('visibility and access', () => {
  it('anyone can see and join a public channel; a private channel or group cannot be joined (403)', async () => {
    const pub = await createRoom(t.url, alice, { type: 'channel', name: 'Lobby', visibility: 'public' });
    const priv = await createRoom(t.url, alice, { type: 'channel', name: 'Backroom', visibility: 'private' });
    const group = await createRoom(t.url, alice, { type: 'group', name: 'Clique' });

    const directory = await api(t.url, 'GET', '/api/rooms/public', { token: eve.token });
    expect(directory.body.map((r: any) => r.id)).toContain(pub.id);
    expect(directory.body.map((r: any) => r.id)).not.toContain(priv.id);
    expect((await getRoom(eve, pub.id)).status).toBe(200);

    const joined = await api(t.url, 'POST', `/api/rooms/${pub.id}/join`, { token: eve.token });
    expect(joined.status).toBe(200);
    expect(roleOf(joined.body, eve)).toBe('member');
    const again = await api(t.url, 'POST', `/api/rooms/${pub.id}/join`, { token: eve.token });
    expect(again.body.members.filter((m: any) => m.user_id === eve.user.id)).toHaveLength(1);

    expectError(await api(t.url, 'POST', `/api/rooms/${priv.id}/join`, { token: eve.token }), 403, 'FORBIDDEN');
    expectError(await api(t.url, 'POST', `/api/rooms/${group.id}/join`, { token: eve.token }), 403, 'FORBIDDEN');
  });

  it('a non-member gets 403 NOT_A_MEMBER for a private room; an unknown room is 404 INVALID_ROOM', async () => {
    const group = await createRoom(t.url, alice, { type: 'group', members: [bob.user.id] });
    expectError(await getRoom(eve, group.id), 403, 'NOT_A_MEMBER');
    expectError(await api(t.url, 'PATCH', `/api/rooms/${group.id}`, { token: eve.token, body: { name: 'x' } }), 403, 'NOT_A_MEMBER');
    expectError(await addMembers(eve, group.id, [eve]), 403, 'NOT_A_MEMBER');
    expectError(await getRoom(eve, crypto.randomUUID()), 404, 'INVALID_ROOM');
    expectError(await api(t.url, 'POST', `/api/rooms/${crypto.randomUUID()}/join`, { token: eve.token }), 404, 'INVALID_ROOM');
    expectError(await getRoom(eve, 'not-a-uuid'), 400, 'VALIDATION_FAILED');
  });

  it('only the owner deletes a room; afterwards it is gone for everyone', async () => {
    const room = await createRoom(t.url, alice, { type: 'group', members: [bob.user.id, carol.user.id] });
    await setRole(alice, room.id, bob, 'admin');
    expectError(await api(t.url, 'DELETE', `/api/rooms/${room.id}`, { token: bob.token }), 403, 'FORBIDDEN');
    expectError(await api(t.url, 'DELETE', `/api/rooms/${room.id}`, { token: carol.token }), 403, 'FORBIDDEN');
    expectError(await api(t.url, 'DELETE', `/api/rooms/${room.id}`, { token: eve.token }), 403, 'NOT_A_MEMBER');

    const ws = await WsClient.connect(t.wsUrl, carol.token);
    expect((await api(t.url, 'DELETE', `/api/rooms/${room.id}`, { token: alice.token })).status).toBe(204);
    expect(await ws.next('room.deleted', (e) => e.room_id === room.id)).toMatchObject({ deleted_by: alice.user.id });
    ws.close();
    expectError(await getRoom(alice, room.id), 404, 'INVALID_ROOM');
    expect(await roomEntry(t.url, bob, room.id)).toBeUndefined();
    expectError(await api(t.url, 'POST', `/api/rooms/${room.id}/messages`, { token: alice.token, body: { content: 'hi' } }), 404, 'INVALID_ROOM');
  });
});

describe('room.updated over WebSocket', () => {
  it('reaches members on create and add; a removed member gets the update that removes them, then nothing more from that room', async () => {
    const wsBob = await WsClient.connect(t.wsUrl, bob.token);
    const wsCarol = await WsClient.connect(t.wsUrl, carol.token);

    const room = await createRoom(t.url, alice, { type: 'group', name: 'Live', members: [bob.user.id] });
    const created = await wsBob.next('room.updated', (e) => e.room.id === room.id);
    expect(created.room.members.map((m: any) => m.user_id).sort()).toEqual([alice.user.id, bob.user.id].sort());
    expect(created.stream_position).toEqual(expect.any(Number));

    expect((await addMembers(alice, room.id, [carol])).status).toBe(200);
    const added = await wsCarol.next('room.updated', (e) => e.room.id === room.id);
    expect(added.room.members.map((m: any) => m.user_id)).toContain(carol.user.id);
    expect((await wsBob.next('room.updated', (e) => e.room.id === room.id)).stream_position).toBe(added.stream_position);
    const m1 = await sendMessage(t.url, alice, room.id, 'while carol is in');
    expect((await wsCarol.next('message.new', (e) => e.room_id === room.id)).message.id).toBe(m1.id);

    expect((await removeMember(alice, room.id, carol)).status).toBe(200);
    const removal = await wsCarol.next('room.updated', (e) => e.room.id === room.id);
    expect(removal.room.members.map((m: any) => m.user_id)).not.toContain(carol.user.id);
    expect((await wsBob.next('room.updated', (e) => e.room.id === room.id)).stream_position).toBe(removal.stream_position);

    // After the removal: a message in the room, then one in a room carol is still in. Stream order is
    // total, so once carol has the second she would already have the first if she still got the room.
    const after = await sendMessage(t.url, alice, room.id, 'after carol left');
    expect((await wsBob.next('message.new', (e) => e.room_id === room.id)).message.id).toBe(after.id);
    const other = await createRoom(t.url, alice, { type: 'group', members: [carol.user.id] });
    const marker = await sendMessage(t.url, alice, other.id, 'marker');
    expect((await wsCarol.next('message.new', (e) => e.room_id === other.id)).message.id).toBe(marker.id);
    const carolEventsOfRoom = wsCarol.events.filter((e) => e.room_id === room.id && e.stream_position > removal.stream_position);
    expect(carolEventsOfRoom).toEqual([]);

    wsBob.close();
    wsCarol.close();
  });
});

describe('room list', () => {
  it('has last_message and unread_count per room', async () => {
    const room = await createRoom(t.url, alice, { type: 'group', name: 'Counts', members: [dave.user.id] });
    expect(await roomEntry(t.url, dave, room.id)).toMatchObject({ id: room.id, role: 'member', member_count: 2, unread_count: 0, last_message: null });

    await sendMessage(t.url, alice, room.id, 'one');
    await sendMessage(t.url, alice, room.id, 'two');
    const third = await sendMessage(t.url, alice, room.id, 'three');
    await sendMessage(t.url, dave, room.id, 'dave speaks');
    const forDave = await roomEntry(t.url, dave, room.id);
    expect(forDave.unread_count).toBe(3);
    expect(forDave.last_message).toMatchObject({ content: 'dave speaks', user_id: dave.user.id, user_name: 'Dave', deleted: false });
    const forAlice = await roomEntry(t.url, alice, room.id);
    expect(forAlice.unread_count).toBe(1);
    expect(forAlice.role).toBe('owner');

    // The most recently active room comes first.
    const list = await api(t.url, 'GET', '/api/rooms', { token: dave.token });
    expect(list.body[0].id).toBe(room.id);

    // A redacted message no longer counts as unread.
    expect((await api(t.url, 'DELETE', `/api/messages/${third.id}`, { token: alice.token })).status).toBe(204);
    expect((await roomEntry(t.url, dave, room.id)).unread_count).toBe(2);
  });
});
