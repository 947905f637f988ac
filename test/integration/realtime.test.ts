import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WsClient, api, register, startTestHub, type Session, type TestHub } from '../helpers/hub.js';

let t: TestHub;
let alice: Session;
let bob: Session;
let roomId: string;

beforeAll(async () => {
  t = await startTestHub();
  alice = await register(t.url, 'Alice');
  bob = await register(t.url, 'Bob');
  const room = await api(t.url, 'POST', '/api/rooms', { token: alice.token, body: { type: 'direct', members: [bob.user.id] } });
  roomId = room.body.id;
});
afterAll(async () => t?.close());

describe('live delivery', () => {
  it('delivers a message to the other member and a delivery receipt to the sender', async () => {
    const a = await WsClient.connect(t.wsUrl, alice.token);
    const b = await WsClient.connect(t.wsUrl, bob.token);
    a.send({ type: 'message.send', room_id: roomId, content: 'Hello Bob', txn_id: 't1' });
    const ack = await a.next('message.sent');
    expect(ack.txn_id).toBe('t1');
    const got = await b.next('message.new');
    expect(got.message).toMatchObject({ id: ack.message_id, content: 'Hello Bob', user_name: 'Alice', room_id: roomId });
    expect(got.stream_position).toBe(ack.stream_position);
    const delivered = await a.next('message.delivered');
    expect(delivered.message_id).toBe(ack.message_id);
    a.close();
    b.close();
  });
});
