/**
 * Blob storage on the local filesystem under `<data_dir>/media`: a blob `key` lives at
 * `media/<first two characters of key>/<key>`. Writes go to `media/tmp/` first and are renamed into
 * place once complete (a rename within one filesystem is atomic), so a crash or a failed upload never
 * leaves a partial blob; leftovers in `tmp/` are removed when the storage opens.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { BlobStorage, ByteRange, StoredBlob } from './blob-storage.js';

const KEY = /^[A-Za-z0-9][A-Za-z0-9._-]{1,200}$/;

export class LocalBlobStorage implements BlobStorage {
  private readonly tmpDir: string;

  /** @param root the media directory, e.g. `<data_dir>/media` (created when missing). */
  constructor(private readonly root: string) {
    this.tmpDir = path.join(root, 'tmp');
    fs.rmSync(this.tmpDir, { recursive: true, force: true });
    fs.mkdirSync(this.tmpDir, { recursive: true });
  }

  async put(key: string, source: Readable | AsyncIterable<Uint8Array>): Promise<StoredBlob> {
    const target = this.pathOf(key);
    const tmp = path.join(this.tmpDir, `${crypto.randomUUID()}.part`);
    const hash = crypto.createHash('sha256');
    let size = 0;
    try {
      await pipeline(
        source,
        async function* (chunks: AsyncIterable<Uint8Array>) {
          for await (const chunk of chunks) {
            hash.update(chunk);
            size += chunk.length;
            yield chunk;
          }
        },
        fs.createWriteStream(tmp, { flags: 'wx' }),
      );
      await fs.promises.mkdir(path.dirname(target), { recursive: true });
      await fs.promises.rename(tmp, target);
    } catch (err) {
      await fs.promises.rm(tmp, { force: true });
      throw err;
    }
    return { size, sha256: hash.digest('hex') };
  }

  read(key: string, range?: ByteRange): Readable {
    return fs.createReadStream(this.pathOf(key), range ? { start: range.start, end: range.end } : {});
  }

  async delete(key: string): Promise<void> {
    await fs.promises.rm(this.pathOf(key), { force: true });
  }

  private pathOf(key: string): string {
    if (!KEY.test(key)) throw new Error(`Invalid blob key: ${key}`);
    return path.join(this.root, key.slice(0, 2), key);
  }
}
