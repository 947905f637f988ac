/**
 * Blob storage behind one interface, so attachments can move to another backend (S3-style object
 * storage) without touching the attachments module. Keys are chosen by the caller and are opaque,
 * `[A-Za-z0-9._-]` only. A blob is either fully written or absent: readers never see a partial one.
 */
import type { Readable } from 'node:stream';

export interface StoredBlob {
  /** Bytes written. */
  size: number;
  /** Lower-case hex SHA-256 of the bytes, computed while streaming. */
  sha256: string;
}

/** An inclusive byte range, as in an HTTP `Range` request. */
export interface ByteRange {
  start: number;
  end: number;
}

export interface BlobStorage {
  /**
   * Streams `source` into blob `key`, hashing on the way; never holds the whole blob in memory.
   * If `source` fails (for instance because a size limit stopped it), the error is rethrown and
   * nothing is kept.
   */
  put(key: string, source: Readable | AsyncIterable<Uint8Array>): Promise<StoredBlob>;
  /** The blob's bytes, or only `range` of them. The stream errors (ENOENT) when the blob is missing. */
  read(key: string, range?: ByteRange): Readable;
  /** Removes a blob; a missing one is not an error. */
  delete(key: string): Promise<void>;
}
