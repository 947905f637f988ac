/**
 * The E2EE workload (`BENCH_WORKLOADS=e2ee`, docs/PERFORMANCE.md): one sender and 20 recipient E2EE
 * devices (the SDK's E2eeClient on libsignal) in one encrypted group room. Sends one message after
 * another, first with one envelope per device (`e2ee.send`), then with the sender's sender key (one
 * ciphertext stored once, `e2ee.sendWithSenderKey`), and times each from the call to the last of the 20
 * devices decrypting it. Session set-up (claims, PreKey messages, the sender-key distribution) happens
 * in a warm-up message first and is not timed.
 */
import WebSocket from 'ws';
import { SwitchboardClient, type WebSocketConstructor } from '../sdk/src/index.js';
import { E2eeClient, MemoryStore } from '../sdk/src/e2ee/index.js';
import type { Latency, Target } from './load.js';

/** Recipient devices in the room. */
export const E2EE_DEVICES = 20;

export interface E2eeResult {
  devices: number;
  /** Per mode: messages sent, their rate (sends one after another), and send → all devices decrypted. */
  envelopes: { sent: number; perS: number; allDecryptedMs: Latency };
  senderKey: { sent: number; perS: number; allDecryptedMs: Latency };
}

const WS = WebSocket as unknown as WebSocketConstructor;

function summarize(values: number[]): Latency {
  const sorted = [...values].sort((a, b) => a - b);
  const at = (q: number) => sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))] ?? 0;
  return { p50: at(0.5), p95: at(0.95), p99: at(0.99), max: sorted[sorted.length - 1] ?? 0 };
}

async function e2eeDevice(target: Target, name: string) {
  const email = `${name}-${Math.random().toString(36).slice(2)}@bench.test`;
  const client = await SwitchboardClient.register({ baseUrl: target.url, WebSocket: WS }, { email, name, password: 'bench password 1' });
  const e2ee = await E2eeClient.start(client, new MemoryStore(), { rotateEveryMs: 0 });
  await client.connect();
  return { client, e2ee };
}

/** Runs the workload: `count` messages per mode. */
export async function encryptedSends(target: Target, count = 50): Promise<E2eeResult> {
  const sender = await e2eeDevice(target, 'e2ee-sender');
  const recipients = [];
  for (let i = 0; i < E2EE_DEVICES; i++) recipients.push(await e2eeDevice(target, `e2ee-r${i}`));
  try {
    const room = await sender.client.call(
      sender.client.api.POST('/api/rooms', { body: { type: 'group', name: 'bench e2ee', members: recipients.map((r) => r.client.user.id), encrypted: true } }),
    );
    // Decryptions seen per plaintext.
    const seen = new Map<string, { count: number; done: () => void }>();
    for (const r of recipients) {
      r.client.on('message.new', (e) => {
        const entry = seen.get(e.message.content);
        if (entry && ++entry.count === E2EE_DEVICES) entry.done();
      });
    }
    const timed = async (mode: 'envelopes' | 'senderKey') => {
      const send = (text: string) => (mode === 'envelopes' ? sender.e2ee.send(room.id, text) : sender.e2ee.sendWithSenderKey(room.id, text));
      const once = async (text: string) => {
        const all = new Promise<void>((resolve) => seen.set(text, { count: 0, done: resolve }));
        const started = performance.now();
        await send(text);
        await all;
        return performance.now() - started;
      };
      await once(`${mode} warm-up`);
      const ms: number[] = [];
      const started = performance.now();
      for (let i = 0; i < count; i++) ms.push(await once(`${mode} ${i}`));
      return { sent: count, perS: (count * 1000) / (performance.now() - started), allDecryptedMs: summarize(ms) };
    };
    return { devices: E2EE_DEVICES, envelopes: await timed('envelopes'), senderKey: await timed('senderKey') };
  } finally {
    for (const d of [sender, ...recipients]) {
      d.e2ee.stop();
      d.client.disconnect();
    }
  }
}
