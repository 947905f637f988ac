/**
 * The media repository: uploads are streamed into blob storage (never buffered whole), their type is
 * sniffed from the bytes (`file-type`), their SHA-256 recorded, their filename sanitised, and images
 * get a WebP thumbnail (`sharp`). A file may be read by its uploader and by the members of any room
 * where a message carries it. Files of other hubs (federation, docs/FEDERATION.md) are listed when a
 * message carrying them arrives and their bytes fetched from their hub on first download.
 */
import crypto from 'node:crypto';
import type { Readable } from 'node:stream';
import { fileTypeFromStream } from 'file-type';
import type { Logger } from 'pino';
import sharp from 'sharp';
import type { Database, Queryable } from '../../db/database.js';
import { AppError } from '../../errors.js';
import type { BlobStorage, ByteRange } from '../../storage/blob-storage.js';
import type { RoomsService } from '../rooms/rooms.service.js';
import { attachmentsRepository as repo, type AttachmentRow } from './attachments.repository.js';
import { attachmentView, type AttachmentView } from './attachments.view.js';

/** Raster image types that are shown inline and get a thumbnail. */
export const IMAGE_TYPES = new Set(['image/jpeg', 'image/png', 'image/gif', 'image/webp', 'image/avif']);
const THUMBNAIL_TYPE = 'image/webp';
/**
 * Images with more pixels get no thumbnail: decoding one can take far more memory than its file (a
 * 100 KB GIF of 12000×12000 pixels took 700 MB and 1.8 s). 50 MP still covers a 48 MP phone photo.
 */
export const THUMBNAIL_MAX_INPUT_PIXELS = 50_000_000;

/**
 * A filename safe to store and to hand back: the last path component, NFC, without control
 * characters, bidirectional overrides or characters reserved on common filesystems, trimmed of dots
 * and spaces, at most 200 characters; `file` when nothing is left.
 */
export function sanitizeFilename(raw: string | undefined): string {
  const name = (raw ?? '')
    .normalize('NFC')
    .split(/[/\\]/)
    .pop()!
    .replace(/[\u0000-\u001f\u007f-\u009f\u200e\u200f\u202a-\u202e\u2066-\u2069"*:<>?|]/g, '_')
    .replace(/^[\s.]+|[\s.]+$/g, '');
  return Array.from(name).slice(0, 200).join('') || 'file';
}

/** A stored file ready to be served. */
export interface OpenedFile {
  filename: string;
  mime_type: string;
  /** Bytes. */
  size: number;
  read(range?: ByteRange): Readable;
}

/** A file of another hub as a federated message describes it. */
export interface RemoteFile {
  id: string;
  filename: string;
  mime_type: string;
  /** Bytes. */
  size: number;
  /** Lower-case hex SHA-256 of the bytes. */
  sha256: string;
  /** Bytes of its thumbnail; null when it has none. */
  thumbnail_size: number | null;
}

/**
 * Fetches the bytes of a file (or its thumbnail) from the hub it was uploaded to.
 * @throws AppError (FEDERATION_UNAVAILABLE, 503) when that hub does not hand them over.
 */
export type RemoteFetcher = (origin: string, id: string, thumbnail: boolean) => Promise<AsyncIterable<Uint8Array>>;

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const MIME = /^[a-z0-9][a-z0-9!#$&^_.+-]{0,126}\/[a-z0-9][a-z0-9!#$&^_.+-]{0,126}$/;

export class AttachmentsService {
  private remoteFetcher?: RemoteFetcher;
  /** Fetches of other hubs' files under way, by storage key (one at a time per key on this node). */
  private readonly fetching = new Map<string, Promise<void>>();

  constructor(
    private readonly db: Database,
    private readonly rooms: RoomsService,
    private readonly storage: BlobStorage,
    private readonly log: Logger,
    private readonly opts: { maxBytes: number; thumbnailMaxPx: number },
  ) {}

  /** Those of `ids` that exist, with their uploaders (a send may attach only the sender's own uploads). */
  findMany(q: Queryable, ids: string[]): Promise<AttachmentRow[]> {
    return repo.findByIds(q, ids);
  }

  /** Links attachments to new messages, each in display order, inside the sends' transaction. */
  linkToMessages(tx: Queryable, links: { message_id: string; attachment_ids: string[] }[]): Promise<void> {
    return repo.link(tx, links);
  }

  /** Drops a message's attachment links, inside the redaction's transaction (the files stay). */
  unlinkMessage(tx: Queryable, messageId: string): Promise<void> {
    return repo.unlink(tx, messageId);
  }

  /**
   * Stores an upload. `file` is the multipart part's stream; it is truncated (`truncated` set, `limit`
   * emitted) once it passes `maxBytes`, which rejects the whole upload at once: nothing is kept.
   * `opts.encrypted`: the client's ciphertext for an encrypted room, kept as opaque bytes (no sniffing, no thumbnail).
   * @returns the attachment's view.
   * @throws AppError ATTACHMENT_TOO_LARGE (413), VALIDATION_FAILED (400: empty file, or `file` failed,
   *   e.g. a multipart body cut short).
   */
  async upload(userId: string, filename: string | undefined, file: Readable & { truncated?: boolean }, opts: { encrypted?: boolean } = {}): Promise<AttachmentView> {
    const id = crypto.randomUUID();
    const limitMb = this.opts.maxBytes / 1048576;
    const tooLarge = () => new AppError('ATTACHMENT_TOO_LARGE', `Attachments are limited to ${limitMb} MiB`);
    // At the limit, not at the end of the part: a truncated part ends only with the whole body.
    file.once('limit', () => file.destroy(tooLarge()));
    const blob = await this.storage.put(
      id,
      (async function* () {
        try {
          for await (const chunk of file) yield chunk as Uint8Array;
        } catch (err) {
          if (err instanceof AppError) throw err;
          throw new AppError('VALIDATION_FAILED', `The upload is malformed or was cut short: ${(err as Error).message}`);
        }
        if (file.truncated) throw tooLarge();
      })(),
    );
    let thumbnail: { key: string; size: number } | null = null;
    try {
      if (blob.size === 0) throw new AppError('VALIDATION_FAILED', 'The file is empty');
      // Client-encrypted bytes (encrypted rooms) are opaque: never sniffed, never thumbnailed.
      const mimeType = opts.encrypted ? 'application/octet-stream' : await this.sniff(id);
      if (IMAGE_TYPES.has(mimeType)) thumbnail = await this.makeThumbnail(id);
      const row = await repo.insert(this.db, {
        id,
        uploader_id: userId,
        filename: sanitizeFilename(filename),
        mime_type: mimeType,
        size: blob.size,
        sha256: blob.sha256,
        storage_key: id,
        thumbnail_key: thumbnail?.key ?? null,
        thumbnail_size: thumbnail?.size ?? null,
      });
      return attachmentView(row);
    } catch (err) {
      await this.storage.delete(id);
      if (thumbnail) await this.storage.delete(thumbnail.key);
      throw err;
    }
  }

  /**
   * Opens an attachment (or its thumbnail) for `userId`. Unknown and forbidden look the same. A file
   * of another hub not fetched yet is fetched first (whole) and kept.
   * @throws AppError INVALID_ATTACHMENT (404): unknown, not visible to the caller, or no thumbnail;
   *   FEDERATION_UNAVAILABLE (503): the file's hub did not hand it over (or not as described).
   */
  async open(userId: string, id: string, thumbnail: boolean): Promise<OpenedFile> {
    const found = await repo.find(this.db, id);
    const a = found && (found.uploader_id === userId || (await this.rooms.isMemberOfAny(userId, await repo.roomIdsCarrying(this.db, id)))) ? found : null;
    if (!a || (thumbnail && !a.thumbnail_key)) throw new AppError('INVALID_ATTACHMENT', thumbnail && a ? 'This attachment has no thumbnail' : 'Attachment not found');
    if (a.missing.includes(thumbnail ? a.thumbnail_key! : a.storage_key)) await this.fetchMissing(a, thumbnail);
    return this.opened(a, thumbnail);
  }

  /**
   * Federation: opens a file whose bytes are stored here for another hub; `check(roomIds)` gets the
   * rooms where a message carries it and throws when the hub may not read it.
   * @throws AppError INVALID_ATTACHMENT (404): unknown, not stored here, or no thumbnail; whatever `check` throws.
   */
  async openForPeer(id: string, thumbnail: boolean, check: (roomIds: string[]) => Promise<void>): Promise<OpenedFile> {
    const a = await repo.find(this.db, id);
    if (!a) throw new AppError('INVALID_ATTACHMENT', 'Attachment not found');
    await check(await repo.roomIdsCarrying(this.db, id));
    const key = thumbnail ? a.thumbnail_key : a.storage_key;
    if (!key || a.missing.includes(key)) throw new AppError('INVALID_ATTACHMENT', key ? 'This hub does not hold that file' : 'This attachment has no thumbnail');
    return this.opened(a, thumbnail);
  }

  /** Federation: where the bytes of other hubs' files come from. */
  fetchRemoteWith(fetcher: RemoteFetcher): void {
    this.remoteFetcher = fetcher;
  }

  /**
   * Federation: lists files of hub `origin` that a message of `uploaderId` (a shadow user) carries,
   * their bytes to be fetched on first download. A file larger than `storage.max_attachment_size_mb`
   * is left out; its name is sanitised and a MIME type that is not one becomes `application/octet-stream`.
   * @returns the ids of `files` that are now `uploaderId`'s (an id already taken by another user's file is left out).
   */
  async registerRemote(origin: string, uploaderId: string, files: RemoteFile[]): Promise<string[]> {
    const fits = files.filter((f) => {
      const ok =
        typeof f?.id === 'string' && UUID.test(f.id) && typeof f.filename === 'string' && typeof f.mime_type === 'string' &&
        typeof f.sha256 === 'string' && /^[0-9a-f]{64}$/.test(f.sha256) && Number.isSafeInteger(f.size) && f.size > 0 && f.size <= this.opts.maxBytes;
      if (!ok) this.log.warn({ attachment_id: f?.id, origin, size: f?.size }, 'remote attachment left out: too large or not described');
      return ok;
    });
    if (fits.length) {
      await repo.insertRemote(
        this.db,
        fits.map((f) => {
          const thumb = Number.isSafeInteger(f.thumbnail_size) && f.thumbnail_size! > 0 ? `${f.id}.thumb` : null;
          return {
            id: f.id,
            uploader_id: uploaderId,
            filename: sanitizeFilename(f.filename),
            mime_type: MIME.test(f.mime_type) ? f.mime_type : 'application/octet-stream',
            size: f.size,
            sha256: f.sha256,
            storage_key: f.id,
            thumbnail_key: thumb,
            thumbnail_size: thumb ? f.thumbnail_size : null,
            origin,
            missing: thumb ? [f.id, thumb] : [f.id],
          };
        }),
      );
    }
    const rows = await repo.findByIds(this.db, fits.map((f) => f.id));
    return fits.filter((f) => rows.some((r) => r.id === f.id && r.uploader_id === uploaderId)).map((f) => f.id);
  }

  /** Fetches a missing file (or thumbnail) from its hub, once at a time per key on this node. */
  private fetchMissing(a: AttachmentRow, thumbnail: boolean): Promise<void> {
    const key = thumbnail ? a.thumbnail_key! : a.storage_key;
    let running = this.fetching.get(key);
    if (!running) {
      running = this.fetchNow(a, key, thumbnail).finally(() => this.fetching.delete(key));
      this.fetching.set(key, running);
    }
    return running;
  }

  /** Streams the bytes into storage, at most the size described; kept only when size (and, for the file, sha256) match. */
  private async fetchNow(a: AttachmentRow, key: string, thumbnail: boolean): Promise<void> {
    if (!this.remoteFetcher || !a.origin) throw new AppError('FEDERATION_UNAVAILABLE', 'Federation is off: the file of another hub cannot be fetched');
    const expected = Number(thumbnail ? a.thumbnail_size : a.size);
    const source = await this.remoteFetcher(a.origin, a.id, thumbnail);
    const unavailable = (why: string) => new AppError('FEDERATION_UNAVAILABLE', `${a.origin} did not hand over the file: ${why}`);
    let blob;
    try {
      blob = await this.storage.put(
        key,
        (async function* () {
          let n = 0;
          for await (const chunk of source) {
            n += chunk.length;
            if (n > expected) throw unavailable(`more than the ${expected} bytes described`);
            yield chunk;
          }
        })(),
      );
    } catch (err) {
      throw err instanceof AppError ? err : unavailable((err as Error).message);
    }
    if (blob.size !== expected || (!thumbnail && blob.sha256 !== a.sha256)) {
      await this.storage.delete(key);
      throw unavailable(blob.size !== expected ? `${blob.size} bytes instead of ${expected}` : 'its sha256 differs from the one described');
    }
    await repo.markStored(this.db, a.id, key);
  }

  private opened(a: AttachmentRow, thumbnail: boolean): OpenedFile {
    const key = thumbnail ? a.thumbnail_key! : a.storage_key;
    return {
      filename: thumbnail ? `${a.filename.replace(/\.[^.]*$/, '')}.webp` : a.filename,
      mime_type: thumbnail ? THUMBNAIL_TYPE : a.mime_type,
      size: Number(thumbnail ? a.thumbnail_size : a.size),
      read: (range) => this.storage.read(key, range),
    };
  }

  /** The MIME type sniffed from the stored bytes; `application/octet-stream` when unrecognised. */
  private async sniff(key: string): Promise<string> {
    const stream = this.storage.read(key);
    try {
      return (await fileTypeFromStream(stream))?.mime ?? 'application/octet-stream';
    } finally {
      stream.destroy();
    }
  }

  /**
   * A WebP thumbnail no larger than `thumbnailMaxPx` on its longest side, or null when the image does
   * not decode or has more than THUMBNAIL_MAX_INPUT_PIXELS pixels.
   */
  private async makeThumbnail(key: string): Promise<{ key: string; size: number } | null> {
    const thumbKey = `${key}.thumb`;
    const resize = sharp({ limitInputPixels: THUMBNAIL_MAX_INPUT_PIXELS })
      .rotate()
      .resize({ width: this.opts.thumbnailMaxPx, height: this.opts.thumbnailMaxPx, fit: 'inside', withoutEnlargement: true })
      .webp();
    const source = this.storage.read(key);
    source.on('error', (err) => resize.destroy(err));
    try {
      const { size } = await this.storage.put(thumbKey, source.pipe(resize));
      return { key: thumbKey, size };
    } catch (err) {
      this.log.warn({ err, attachment_id: key }, 'thumbnail failed; storing the image without one');
      return null;
    }
  }
}
