/**
 * The media repository: uploads are streamed into blob storage (never buffered whole), their type is
 * sniffed from the bytes (`file-type`), their SHA-256 recorded, their filename sanitised, and images
 * get a WebP thumbnail (`sharp`). A file may be read by its uploader and by the members of any room
 * where a message carries it.
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

export class AttachmentsService {
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
   * Opens an attachment (or its thumbnail) for `userId`. Unknown and forbidden look the same.
   * @throws AppError INVALID_ATTACHMENT (404): unknown, not visible to the caller, or no thumbnail.
   */
  async open(userId: string, id: string, thumbnail: boolean): Promise<OpenedFile> {
    const found = await repo.find(this.db, id);
    const a = found && (found.uploader_id === userId || (await this.rooms.isMemberOfAny(userId, await repo.roomIdsCarrying(this.db, id)))) ? found : null;
    if (!a || (thumbnail && !a.thumbnail_key)) throw new AppError('INVALID_ATTACHMENT', thumbnail && a ? 'This attachment has no thumbnail' : 'Attachment not found');
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
