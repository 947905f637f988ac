/**
 * Attachments: upload (sniffed type, sha256, sanitised name, size limit), sending them in messages,
 * thumbnails, access control, byte ranges and safe response headers.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { THUMBNAIL_MAX_INPUT_PIXELS } from '../../src/modules/attachments/attachments.service.js';
import { WsClient, api, register, startTestHub, type Session, type TestHub } from '../helpers/hub.js';

let t: TestHub;
let alice: Session;
let bob: Session;
let carol: Session;
let roomId: string;
let png: Buffer;

beforeAll(async () => {
  t = await startTestHub({ storage: { max_attachment_size_mb: 1, thumbnail_max_px: 64 } });
  alice = await register(t.url, 'Alice');
  bob = await register(t.url, 'Bob');
  carol = await register(t.url, 'Carol');
  const room = await api(t.url, 'POST', '/api/rooms', { token: alice.token, body: { type: 'group', name: 'Pics', members: [bob.user.id] } });
  roomId = room.body.id;
  png = await sharp({ create: { width: 400, height: 200, channels: 3, background: { r: 200, g: 30, b: 90 } } }).png().toBuffer();
});
afterAll(async () => t?.close());

/** Uploads `bytes` as multipart/form-data, declaring `clientType` (which the server must ignore). */
async function upload(s: Session, bytes: Uint8Array, filename: string, clientType = 'application/octet-stream') {
  const form = new FormData();
  form.append('file', new Blob([Uint8Array.from(bytes)], { type: clientType }), filename);
  const res = await fetch(`${t.url}/api/attachments`, { method: 'POST', headers: { authorization: `Bearer ${s.token}` }, body: form });
  return { status: res.status, body: await res.json() };
}

/** GETs a URL as `s`. @returns status, headers and the raw body. */
async function fetchBytes(s: Session, url: string, headers: Record<string, string> = {}) {
  const res = await fetch(t.url + url, { headers: { authorization: `Bearer ${s.token}`, ...headers } });
  return { status: res.status, headers: res.headers, body: Buffer.from(await res.arrayBuffer()) };
}

/** Every file under the media directory except the temp directory (and the temp files, separately). */
function mediaFiles(): { blobs: string[]; temp: string[] } {
  const root = path.join(t.config.data_dir, 'media');
  const all = fs.existsSync(root) ? (fs.readdirSync(root, { recursive: true }) as string[]).filter((f) => fs.statSync(path.join(root, f)).isFile()) : [];
  return { blobs: all.filter((f) => !f.startsWith('tmp')), temp: all.filter((f) => f.startsWith('tmp')) };
}

describe('upload', () => {
  it('stores a PNG with its sniffed type, size, sha256 and a thumbnail, ignoring the client type', async () => {
    const res = await upload(alice, png, 'photo.png', 'text/plain');
    expect(res.status).toBe(201);
    expect(res.body).toEqual({
      id: expect.any(String),
      url: `/api/attachments/${res.body.id}`,
      filename: 'photo.png',
      size: png.length,
      mime_type: 'image/png',
      thumbnail_url: `/api/attachments/${res.body.id}/thumbnail`,
    });
    const { rows } = await t.hub.db.query('SELECT sha256, uploader_id FROM attachments WHERE id = $1', [res.body.id]);
    expect(rows[0]).toEqual({ sha256: crypto.createHash('sha256').update(png).digest('hex'), uploader_id: alice.user.id });
  });

  it('recognises a JPEG made by sharp', async () => {
    const jpeg = await sharp({ create: { width: 50, height: 80, channels: 3, background: '#336699' } }).jpeg().toBuffer();
    const res = await upload(alice, jpeg, 'camera.bin');
    expect(res.status).toBe(201);
    expect(res.body.mime_type).toBe('image/jpeg');
    expect(res.body.thumbnail_url).toBeDefined();
  });

  it('gives text bytes named .png the sniffed type: application/octet-stream, no thumbnail, served as a download', async () => {
    const res = await upload(alice, Buffer.from('<script>alert(1)</script> not an image at all'), 'evil.png', 'image/png');
    expect(res.status).toBe(201);
    expect(res.body.mime_type).toBe('application/octet-stream');
    expect(res.body.thumbnail_url).toBeUndefined();
    const got = await fetchBytes(alice, res.body.url);
    expect(got.status).toBe(200);
    expect(got.headers.get('content-type')).toBe('application/octet-stream');
    expect(got.headers.get('content-disposition')).toMatch(/^attachment; /);
    expect(got.headers.get('x-content-type-options')).toBe('nosniff');
    expect((await fetchBytes(alice, `${res.body.url}/thumbnail`)).status).toBe(404);
  });

  it('sanitises filenames and encodes them per RFC 6266', async () => {
    const res = await upload(alice, png, '..\\..\\se:cr<et\u202Egnp.exe');
    expect(res.body.filename).toBe('se_cr_et_gnp.exe');
    const accented = await upload(alice, png, 'résumé (1).png');
    expect(accented.body.filename).toBe('résumé (1).png');
    const got = await fetchBytes(alice, accented.body.url);
    expect(got.headers.get('content-disposition')).toBe(`inline; filename="r_sum_ (1).png"; filename*=UTF-8''r%C3%A9sum%C3%A9%20%281%29.png`);
  });

  it('accepts exactly the limit, and rejects one byte more with 413 keeping neither a file nor a row', async () => {
    const before = mediaFiles().blobs.length;
    const { rows: countBefore } = await t.hub.db.query('SELECT count(*)::int AS n FROM attachments');
    const tooBig = await upload(alice, crypto.randomBytes(1048576 + 1), 'big.bin');
    expect(tooBig.status).toBe(413);
    expect(tooBig.body.error.code).toBe('ATTACHMENT_TOO_LARGE');
    const { rows: countAfter } = await t.hub.db.query('SELECT count(*)::int AS n FROM attachments');
    expect(countAfter[0].n).toBe(countBefore[0].n);
    expect(mediaFiles()).toEqual({ blobs: expect.any(Array), temp: [] });
    expect(mediaFiles().blobs.length).toBe(before);

    const exact = await upload(alice, crypto.randomBytes(1048576), 'exact.bin');
    expect(exact.status).toBe(201);
    expect(exact.body.size).toBe(1048576);
    expect(mediaFiles().blobs.length).toBe(before + 1);
  });

  /**
   * Streams a multipart upload of `totalBytes` of file data over a raw request (chunked unless
   * `announce`), writing as fast as the server reads. @returns the status and how much was written
   * before the answer came.
   */
  function streamUpload(s: Session, totalBytes: number, announce: boolean): Promise<{ status: number; code: string; written: number }> {
    const boundary = 'sbboundary';
    const head = Buffer.from(`--${boundary}\r\ncontent-disposition: form-data; name="file"; filename="big.bin"\r\ncontent-type: application/octet-stream\r\n\r\n`);
    const tail = Buffer.from(`\r\n--${boundary}--\r\n`);
    return new Promise((resolve, reject) => {
      const url = new URL(`${t.url}/api/attachments`);
      const req = http.request({
        host: url.hostname,
        port: url.port,
        path: url.pathname,
        method: 'POST',
        headers: {
          authorization: `Bearer ${s.token}`,
          'content-type': `multipart/form-data; boundary=${boundary}`,
          ...(announce ? { 'content-length': head.length + totalBytes + tail.length } : {}),
        },
      });
      let written = 0;
      let answered = false;
      req.on('response', (res) => {
        answered = true;
        const chunks: Buffer[] = [];
        res.on('data', (c) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode!, code: JSON.parse(Buffer.concat(chunks).toString()).error?.code, written }));
      });
      req.on('error', (err) => (answered ? undefined : reject(err)));
      const chunk = Buffer.alloc(65536, 7);
      const pump = () => {
        while (!answered && written < totalBytes) {
          written += chunk.length;
          if (!req.write(chunk)) return void req.once('drain', pump);
        }
        if (!answered) req.end(tail);
      };
      req.write(head);
      pump();
    });
  }

  it('refuses an upload whose Content-Length is over the limit at once, before reading the body', async () => {
    const res = await streamUpload(alice, 100 * 1048576, true);
    expect(res).toMatchObject({ status: 413, code: 'ATTACHMENT_TOO_LARGE' });
    // Socket buffers take some; reading the body would have taken all 100 MiB.
    expect(res.written).toBeLessThan(20 * 1048576);
    expect(mediaFiles().temp).toEqual([]);
  });

  it('stops reading a chunked upload at the limit: 413, and no temp file left', async () => {
    const res = await streamUpload(alice, 100 * 1048576, false);
    expect(res).toMatchObject({ status: 413, code: 'ATTACHMENT_TOO_LARGE' });
    expect(res.written).toBeLessThan(20 * 1048576);
    await new Promise((r) => setTimeout(r, 100));
    expect(mediaFiles().temp).toEqual([]);
  });

  it('needs a file part and a token', async () => {
    const noFile = new FormData();
    noFile.append('note', 'no file here');
    const res = await fetch(`${t.url}/api/attachments`, { method: 'POST', headers: { authorization: `Bearer ${alice.token}` }, body: noFile });
    expect(res.status).toBe(400);
    expect((await upload(alice, new Uint8Array(0), 'empty.txt')).status).toBe(400);
    expect((await api(t.url, 'POST', '/api/attachments', { token: alice.token, body: { file: 'x' } })).status).toBeGreaterThanOrEqual(400);
    const form = new FormData();
    form.append('file', new Blob([Uint8Array.from(png)]), 'a.png');
    expect((await fetch(`${t.url}/api/attachments`, { method: 'POST', body: form })).status).toBe(401);
  });

  it('stores an image of more than THUMBNAIL_MAX_INPUT_PIXELS without decoding it for a thumbnail (decompression bombs)', async () => {
    // A few KB of compressed GIF or PNG can decode to gigabytes of pixels.
    const side = Math.ceil(Math.sqrt(THUMBNAIL_MAX_INPUT_PIXELS)) + 1;
    const bomb = await sharp({ create: { width: side, height: side, channels: 3, background: { r: 0, g: 0, b: 0 } } }).png({ compressionLevel: 9 }).toBuffer();
    expect(bomb.length).toBeLessThan(1048576);
    const res = await upload(alice, bomb, 'bomb.png');
    expect(res.status).toBe(201);
    expect(res.body.mime_type).toBe('image/png');
    expect(res.body.thumbnail_url).toBeUndefined();
  });

  it('answers 400 VALIDATION_FAILED to bodies that are not multipart, lack a boundary or are cut short, keeping nothing', async () => {
    const { rows: countBefore } = await t.hub.db.query('SELECT count(*)::int AS n FROM attachments');
    const blobsBefore = mediaFiles().blobs.length;
    const post = async (contentType: string, body: string) => {
      const res = await fetch(`${t.url}/api/attachments`, { method: 'POST', headers: { authorization: `Bearer ${alice.token}`, 'content-type': contentType }, body });
      return { status: res.status, code: ((await res.json()) as { error: { code: string } }).error.code };
    };
    const cutShort = '--xx\r\nContent-Disposition: form-data; name="file"; filename="a.txt"\r\n\r\nhello';
    expect(await post('application/json', '{"file":"x"}')).toEqual({ status: 400, code: 'VALIDATION_FAILED' });
    expect(await post('multipart/form-data', cutShort)).toEqual({ status: 400, code: 'VALIDATION_FAILED' });
    expect(await post('multipart/form-data; boundary=xx', 'garbage')).toEqual({ status: 400, code: 'VALIDATION_FAILED' });
    expect(await post('multipart/form-data; boundary=xx', cutShort)).toEqual({ status: 400, code: 'VALIDATION_FAILED' });
    const { rows: countAfter } = await t.hub.db.query('SELECT count(*)::int AS n FROM attachments');
    expect(countAfter[0].n).toBe(countBefore[0].n);
    expect(mediaFiles()).toEqual({ blobs: expect.any(Array), temp: [] });
    expect(mediaFiles().blobs.length).toBe(blobsBefore);
  });
});

describe('sending and fetching', () => {
  it('delivers an image to the other member with a thumbnail; a non-member cannot fetch it', async () => {
    const up = await upload(alice, png, 'sunset.png');
    // Before it is sent, only the uploader may read it.
    expect((await fetchBytes(alice, up.body.url)).status).toBe(200);
    expect((await fetchBytes(bob, up.body.url)).status).toBe(404);

    const b = await WsClient.connect(t.wsUrl, bob.token);
    const a = await WsClient.connect(t.wsUrl, alice.token);
    a.send({ type: 'message.send', room_id: roomId, content: '', attachments: [up.body.id], txn_id: 'img-1' });
    const sent = await a.next('message.sent');
    const got = await b.next('message.new', (e) => e.message.id === sent.message_id);
    expect(got.message.attachments).toEqual([up.body]);
    a.close();
    b.close();

    const original = await fetchBytes(bob, up.body.url);
    expect(original.status).toBe(200);
    expect(original.body.equals(png)).toBe(true);
    expect(original.headers.get('content-type')).toBe('image/png');
    expect(original.headers.get('content-length')).toBe(String(png.length));
    expect(original.headers.get('content-disposition')).toMatch(/^inline; filename="sunset.png"/);
    expect(original.headers.get('x-content-type-options')).toBe('nosniff');
    expect(original.headers.get('accept-ranges')).toBe('bytes');

    const thumb = await fetchBytes(bob, up.body.thumbnail_url);
    expect(thumb.status).toBe(200);
    expect(thumb.headers.get('content-type')).toBe('image/webp');
    const meta = await sharp(thumb.body).metadata();
    expect({ format: meta.format, width: meta.width, height: meta.height }).toEqual({ format: 'webp', width: 64, height: 32 });

    for (const url of [up.body.url, up.body.thumbnail_url]) {
      const denied = await fetchBytes(carol, url);
      expect(denied.status).toBe(404);
      expect(JSON.parse(denied.body.toString()).error.code).toBe('INVALID_ATTACHMENT');
    }

    const history = await api(t.url, 'GET', `/api/rooms/${roomId}/messages`, { token: bob.token });
    expect(history.body.messages.find((m: any) => m.id === sent.message_id).attachments).toEqual([up.body]);
  });

  it('keeps attachment order over REST and refuses ids the sender did not upload', async () => {
    const first = await upload(alice, png, 'one.png');
    const second = await upload(alice, Buffer.from('plain notes'), 'two.txt');
    const sent = await api(t.url, 'POST', `/api/rooms/${roomId}/messages`, {
      token: alice.token,
      body: { content: 'two files', attachments: [second.body.id, first.body.id] },
    });
    expect(sent.status).toBe(201);
    const msg = await api(t.url, 'GET', `/api/messages/${sent.body.id}`, { token: bob.token });
    expect(msg.body.attachments.map((x: any) => x.id)).toEqual([second.body.id, first.body.id]);

    const bobs = await upload(bob, png, 'bob.png');
    const foreign = await api(t.url, 'POST', `/api/rooms/${roomId}/messages`, { token: alice.token, body: { content: 'x', attachments: [bobs.body.id] } });
    expect({ status: foreign.status, code: foreign.body.error.code }).toEqual({ status: 404, code: 'INVALID_ATTACHMENT' });
    const unknown = await api(t.url, 'POST', `/api/rooms/${roomId}/messages`, { token: alice.token, body: { content: 'x', attachments: [crypto.randomUUID()] } });
    expect(unknown.status).toBe(404);
    const empty = await api(t.url, 'POST', `/api/rooms/${roomId}/messages`, { token: alice.token, body: { content: '  ' } });
    expect(empty.status).toBe(400);
    const { rows } = await t.hub.db.query('SELECT count(*)::int AS n FROM message_attachments WHERE attachment_id = $1', [bobs.body.id]);
    expect(rows[0].n).toBe(0);
  });

  it('stops serving a redacted message’s attachment to members (the uploader keeps it)', async () => {
    const up = await upload(alice, png, 'oops.png');
    const sent = await api(t.url, 'POST', `/api/rooms/${roomId}/messages`, { token: alice.token, body: { content: 'oops', attachments: [up.body.id] } });
    expect((await fetchBytes(bob, up.body.url)).status).toBe(200);
    expect((await api(t.url, 'DELETE', `/api/messages/${sent.body.id}`, { token: alice.token })).status).toBe(204);
    expect((await fetchBytes(bob, up.body.url)).status).toBe(404);
    expect((await fetchBytes(alice, up.body.url)).status).toBe(200);
    const msg = await api(t.url, 'GET', `/api/messages/${sent.body.id}`, { token: bob.token });
    expect(msg.body.attachments).toEqual([]);
    const { rows } = await t.hub.db.query(`SELECT payload FROM room_events WHERE stream_position = $1`, [sent.body.stream_position]);
    expect(rows[0].payload.message.attachments).toEqual([]);
  });
});

describe('byte ranges', () => {
  let url: string;
  let bytes: Buffer;
  beforeAll(async () => {
    bytes = crypto.randomBytes(1000);
    url = (await upload(alice, bytes, 'data.bin')).body.url;
  });

  it('serves bytes=a-b, bytes=a- and bytes=-n with 206 and Content-Range', async () => {
    const cases: [string, number, number][] = [
      ['bytes=0-9', 0, 9],
      ['bytes=990-5000', 990, 999],
      ['bytes=500-', 500, 999],
      ['bytes=-100', 900, 999],
      ['bytes=-5000', 0, 999],
    ];
    for (const [range, start, end] of cases) {
      const got = await fetchBytes(alice, url, { range });
      expect({ range, status: got.status, contentRange: got.headers.get('content-range') }).toEqual({ range, status: 206, contentRange: `bytes ${start}-${end}/1000` });
      expect(got.headers.get('content-length')).toBe(String(end - start + 1));
      expect(got.body.equals(bytes.subarray(start, end + 1))).toBe(true);
    }
  });

  it('answers 416 for unsatisfiable ranges and ignores malformed or multiple ones', async () => {
    for (const range of ['bytes=1000-', 'bytes=1000-1005', 'bytes=-0']) {
      const got = await fetchBytes(alice, url, { range });
      expect({ range, status: got.status, contentRange: got.headers.get('content-range') }).toEqual({ range, status: 416, contentRange: 'bytes */1000' });
      expect(JSON.parse(got.body.toString()).error.code).toBe('RANGE_NOT_SATISFIABLE');
    }
    for (const range of ['bytes=0-1,5-6', 'items=0-5', 'bytes=9-3']) {
      const got = await fetchBytes(alice, url, { range });
      expect({ range, status: got.status }).toEqual({ range, status: 200 });
      expect(got.body.equals(bytes)).toBe(true);
    }
  });
});
