/** Bridge kit units: the JSON-lines store, the durable per-lane queue and the connector capabilities. */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { HubError } from '../../bridges/kit/hub-client.js';
import { WorkQueue, type WorkItem } from '../../bridges/kit/queue.js';
import { FileStore } from '../../bridges/kit/store.js';
import { RemoteError, capabilitiesOf, type Connector } from '../../bridges/kit/types.js';
import { WhatsAppConnector } from '../../bridges/whatsapp/connector.js';

const log = pino({ level: 'silent' });
const dirs: string[] = [];
const tmpFile = () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sb-kit-'));
  dirs.push(dir);
  return path.join(dir, 'state.jsonl');
};
afterEach(() => {
  for (const d of dirs.splice(0)) fs.rmSync(d, { recursive: true, force: true });
});

describe('FileStore', () => {
  it('keeps batches across reopen and compacts to live keys', async () => {
    const file = tmpFile();
    const a = await FileStore.open(file);
    await a.batch([{ put: 'x', value: 1 }, { put: 'y', value: { n: 2 } }]);
    await a.put('x', 3);
    await a.del('y');
    await a.close();
    expect(fs.readFileSync(file, 'utf8').trim().split('\n')).toHaveLength(3);
    const b = await FileStore.open(file);
    expect(b.get('x')).toBe(3);
    expect(b.has('y')).toBe(false);
    expect(fs.readFileSync(file, 'utf8').trim().split('\n')).toHaveLength(1);
    await b.close();
  });

  it('ignores a torn last line (a crash mid-write) and keeps the batches before it', async () => {
    const file = tmpFile();
    const a = await FileStore.open(file);
    await a.put('kept', true);
    await a.close();
    fs.appendFileSync(file, '[{"put":"lost","val');
    const b = await FileStore.open(file);
    expect(b.tornLines).toBe(1);
    expect(b.get('kept')).toBe(true);
    expect(b.has('lost')).toBe(false);
    await b.put('after', 1);
    await b.close();
    expect((await FileStore.open(file)).get('after')).toBe(1);
  });

  it('drops what `keep` rejects on open (expired dedupe keys)', async () => {
    const file = tmpFile();
    const a = await FileStore.open(file);
    await a.batch([{ put: 'seen:old', value: 1 }, { put: 'seen:new', value: Date.now() }]);
    await a.close();
    const b = await FileStore.open(file, (k, v) => !k.startsWith('seen:') || (v as number) > 1000);
    expect(b.entries('seen:').map(([k]) => k)).toEqual(['seen:new']);
    await b.close();
  });

  it('shares one fsync between concurrent writes and applies them all', async () => {
    const store = await FileStore.open(tmpFile());
    await Promise.all(Array.from({ length: 50 }, (_, i) => store.put(`k${i}`, i)));
    expect(store.entries('k')).toHaveLength(50);
    await store.close();
  });
});

describe('WorkQueue', () => {
  const opts = { maxAttempts: 3, retryMaxMs: 20 };

  it('handles a lane in order while lanes run side by side', async () => {
    const store = await FileStore.open(tmpFile());
    const seen: string[] = [];
    const q = new WorkQueue(store, async (item) => {
      await new Promise((r) => setTimeout(r, item.data.delay));
      seen.push(`${item.lane}:${item.data.n}`);
    }, () => [], opts, log);
    q.start();
    await q.enqueue([
      { lane: 'a', key: 'a1', kind: 'x', data: { n: 1, delay: 30 } },
      { lane: 'b', key: 'b1', kind: 'x', data: { n: 1, delay: 0 } },
      { lane: 'a', key: 'a2', kind: 'x', data: { n: 2, delay: 0 } },
    ]);
    await q.idle();
    expect(seen).toEqual(['b:1', 'a:1', 'a:2']);
    await store.close();
  });

  it('drops items whose key is queued or was handled, also after a restart', async () => {
    const file = tmpFile();
    let store = await FileStore.open(file);
    let handled = 0;
    let q = new WorkQueue(store, async () => void handled++, () => [], opts, log);
    q.start();
    expect(await q.enqueue([{ lane: 'a', key: 'k', kind: 'x', data: {} }, { lane: 'a', key: 'k', kind: 'x', data: {} }])).toBe(1);
    await q.idle();
    await store.close();
    store = await FileStore.open(file);
    q = new WorkQueue(store, async () => void handled++, () => [], opts, log);
    q.start();
    expect(await q.enqueue([{ lane: 'a', key: 'k', kind: 'x', data: {} }])).toBe(0);
    await q.idle();
    expect(handled).toBe(1);
    await store.close();
  });

  it('retries transient remote errors, then dead-letters with a follow-up item', async () => {
    const store = await FileStore.open(tmpFile());
    const calls: string[] = [];
    const q = new WorkQueue(store, async (item) => {
      calls.push(item.key);
      if (item.kind === 'send' && item.data.flaky-- > 0) throw new RemoteError('busy', true, 130429);
      if (item.kind === 'send' && item.data.broken) throw new RemoteError('window closed', false, 131047);
      if (item.kind === 'send' && item.data.always) throw new RemoteError('down', true, 500);
    }, (item: WorkItem, err) => [{ lane: item.lane, key: `notice:${item.key}`, kind: 'notice', data: { text: err.message } }], opts, log);
    q.start();
    await q.enqueue([
      { lane: 'a', key: 'flaky', kind: 'send', data: { flaky: 2 } },
      { lane: 'a', key: 'broken', kind: 'send', data: { flaky: 0, broken: true } },
      { lane: 'b', key: 'always', kind: 'send', data: { flaky: 0, always: true } },
    ]);
    await q.idle();
    expect(calls.filter((k) => k === 'flaky')).toHaveLength(3);
    expect(calls.filter((k) => k === 'broken')).toHaveLength(1);
    expect(calls.filter((k) => k === 'always')).toHaveLength(3);
    expect(calls).toContain('notice:broken');
    expect(calls).toContain('notice:always');
    expect(calls).not.toContain('notice:flaky');
    expect(store.entries('dead:').map(([, v]: [string, any]) => v.key).sort()).toEqual(['always', 'broken']);
    expect(store.entries('q:')).toHaveLength(0);
    await store.close();
  });

  it('retries hub outages past max_attempts, since the hub comes back', async () => {
    const store = await FileStore.open(tmpFile());
    let tries = 0;
    const q = new WorkQueue(store, async () => {
      if (++tries < 6) throw new HubError('hub unreachable', 0, 'UNREACHABLE');
    }, () => [], opts, log);
    q.start();
    await q.enqueue([{ lane: 'a', key: 'k', kind: 'x', data: {} }]);
    await q.idle();
    expect(tries).toBe(6);
    expect(store.entries('dead:')).toHaveLength(0);
    await store.close();
  });

  it('resumes what was queued when it stopped, in order, exactly once', async () => {
    const file = tmpFile();
    let store = await FileStore.open(file);
    const handled: number[] = [];
    let release!: () => void;
    let entered!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const inSecond = new Promise<void>((r) => (entered = r));
    let q = new WorkQueue(store, async (item) => {
      if (item.data.n === 2) {
        entered();
        await gate;
      }
      handled.push(item.data.n);
    }, () => [], opts, log);
    q.start();
    await q.enqueue([1, 2, 3, 4].map((n) => ({ lane: 'a', key: `k${n}`, kind: 'x', data: { n } })));
    await inSecond;
    const stopping = q.stop();
    release();
    await stopping;
    await store.close();
    expect(handled).toEqual([1, 2]);
    store = await FileStore.open(file);
    q = new WorkQueue(store, async (item) => void handled.push(item.data.n), () => [], opts, log);
    q.start();
    await q.idle();
    // Item 2 was in hand at the stop: handled, and its completion recorded, so it does not run again.
    expect(handled).toEqual([1, 2, 3, 4]);
    await store.close();
  });
});

describe('capabilitiesOf', () => {
  const base: Connector = { network: 'fake', displayName: 'Fake', start: async () => {}, stop: async () => {}, sendMessage: async () => ({ ids: [] }) };

  it('finds the optional interfaces a connector implements, and only those', () => {
    const whatsapp = new WhatsAppConnector({ api_base_url: 'http://127.0.0.1:1', phone_number_id: '1', access_token: '', app_secret: '', verify_token: '', webhook_path: '/w', relay_format: '', portal_members: [], send_rate_per_s: 1 });
    expect(Object.keys(capabilitiesOf(whatsapp)).sort()).toEqual(['media', 'reactions', 'readReceipts', 'typing']);
    expect(capabilitiesOf(base)).toEqual({});
  });

  it('refuses a connector with half of a paired capability', () => {
    const half = { ...base, sendReaction: async () => undefined };
    expect(() => capabilitiesOf(half)).toThrow(/reactions capability: sendReactionRemove missing/);
  });
});
