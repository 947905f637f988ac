/** The media repository over REST: upload, download (with byte ranges) and thumbnails. */
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { AppError } from '../../errors.js';
import { errorResponses } from '../../plugins/openapi.js';
import { contentDisposition, parseRange } from './attachments.http.js';
import { Attachment, AttachmentParams, FileBytes, UploadBody } from './attachments.schemas.js';
import { IMAGE_TYPES } from './attachments.service.js';

const tags = ['attachments'];
const download = {
  200: FileBytes('The bytes, with the file\'s Content-Type; Content-Disposition inline for images, else attachment'),
  206: FileBytes('The requested byte range (Content-Range)'),
  ...errorResponses(404, 416, 503),
};

/** Room for the multipart framing (boundaries, part headers) around a file of the largest size, bytes. */
const MULTIPART_OVERHEAD_BYTES = 16384;

export const attachmentsRoutes: FastifyPluginAsyncTypebox = async (app) => {
  const { attachments, config } = app.hub;
  const maxBytes = config.storage.max_attachment_size_mb * 1048576;
  const limitMb = config.storage.max_attachment_size_mb;

  /**
   * 413 ATTACHMENT_TOO_LARGE, with `Connection: close`: Node would otherwise read (and discard) the
   * rest of the body to keep the connection alive; closing it stops the upload.
   */
  function refuseTooLarge(reply: FastifyReply): never {
    reply.header('connection', 'close');
    throw new AppError('ATTACHMENT_TOO_LARGE', `Attachments are limited to ${limitMb} MiB`);
  }

  app.post(
    '/api/attachments',
    {
      schema: {
        operationId: 'uploadAttachment',
        summary: 'Upload a file',
        description:
          'Uploads one file as `multipart/form-data` (the first file part; any field name). `mime_type` is sniffed from the ' +
          'bytes. Send the id in a message\'s `attachments` to share it. 413 ATTACHMENT_TOO_LARGE beyond ' +
          '`storage.max_attachment_size_mb` MiB (at once when Content-Length says so; else once that much was read, and the connection is closed); 400 VALIDATION_FAILED without a file part, for a body that is not ' +
          'multipart/form-data (or has no boundary), and for one cut short. `?encrypted=true` (for encrypted rooms, docs/E2EE.md): ' +
          'the bytes are the client\'s ciphertext, stored as they are: no sniffing (`application/octet-stream`), no thumbnail.',
        tags,
        consumes: ['multipart/form-data'],
        querystring: Type.Object({ encrypted: Type.Optional(Type.Boolean({ description: 'Opaque client-encrypted bytes: no sniffing, no thumbnail.' })) }),
        body: UploadBody,
        response: { 201: Type.With(Attachment, { description: 'The stored file' }) },
      },
      // The body schema documents the multipart parts; the handler reads them from the stream itself.
      validatorCompiler: () => () => true,
      // An announced body over the limit is refused before any of it is read.
      onRequest: async (req, reply) => {
        if (Number(req.headers['content-length']) > maxBytes + MULTIPART_OVERHEAD_BYTES) refuseTooLarge(reply);
      },
    },
    async (req, reply) => {
      if (!req.isMultipart()) throw new AppError('VALIDATION_FAILED', 'Send one file in a multipart/form-data body');
      const part = await req.file({ limits: { fileSize: maxBytes, files: 1 } }).catch((err: Error) => {
        throw new AppError('VALIDATION_FAILED', `Malformed multipart/form-data body: ${err.message}`);
      });
      if (!part) throw new AppError('VALIDATION_FAILED', 'Send one file in a multipart/form-data body');
      // The validator is off for this route (above): the query is read as sent.
      const encrypted = String((req.query as { encrypted?: unknown }).encrypted) === 'true';
      try {
        const view = await attachments.upload(req.auth.userId, part.filename, part.file, { encrypted });
        reply.code(201);
        return view;
      } catch (err) {
        // A (chunked) body that passed the limit: the rest is not read (the connection ends after the answer).
        if (err instanceof AppError && err.code === 'ATTACHMENT_TOO_LARGE') refuseTooLarge(reply);
        throw err;
      }
    },
  );

  app.get(
    '/api/attachments/:id',
    {
      schema: {
        operationId: 'downloadAttachment',
        summary: 'Download a file',
        description:
          'The file\'s bytes, for its uploader and the members of a room where a message carries it (404 INVALID_ATTACHMENT to ' +
          'anyone else). Honours one `Range: bytes=…` (206; 416 RANGE_NOT_SATISFIABLE, with `Content-Range: bytes */size`). ' +
          'A file sent from another hub (docs/FEDERATION.md) is fetched from it on first download and kept; 503 FEDERATION_UNAVAILABLE when that hub does not hand it over.',
        tags,
        params: AttachmentParams,
        response: download,
      },
    },
    async (req, reply) => serve(req, reply, req.params.id, false),
  );

  app.get(
    '/api/attachments/:id/thumbnail',
    {
      schema: {
        operationId: 'downloadAttachmentThumbnail',
        summary: 'Download a thumbnail',
        description:
          'The image\'s WebP thumbnail (longest side `storage.thumbnail_max_px`), for whoever may download the file; 404 ' +
          'INVALID_ATTACHMENT when it has none. Honours `Range` as the download does; fetched from another hub as the download is (503 FEDERATION_UNAVAILABLE).',
        tags,
        params: AttachmentParams,
        response: download,
      },
    },
    async (req, reply) => serve(req, reply, req.params.id, true),
  );

  async function serve(req: FastifyRequest, reply: FastifyReply, id: string, thumbnail: boolean) {
    const file = await attachments.open(req.auth.userId, id, thumbnail);
    const range = parseRange(req.headers.range, file.size);
    if (range === 'unsatisfiable') {
      reply.header('content-range', `bytes */${file.size}`);
      throw new AppError('RANGE_NOT_SATISFIABLE', `The file has ${file.size} bytes`);
    }
    reply
      .header('accept-ranges', 'bytes')
      .header('content-type', file.mime_type)
      .header('content-disposition', contentDisposition(IMAGE_TYPES.has(file.mime_type) ? 'inline' : 'attachment', file.filename))
      .header('x-content-type-options', 'nosniff')
      .header('content-security-policy', "default-src 'none'; sandbox")
      .header('cache-control', 'private, max-age=86400');
    if (range) reply.code(206).header('content-range', `bytes ${range.start}-${range.end}/${file.size}`);
    // Read exactly the announced bytes, never "to end of file": the response then ends with its last
    // byte, before a keep-alive client can send its next request on the same connection (on Node 20 a
    // request arriving while the previous response waits for EOF left the connection never idle, so
    // server.close() hung).
    const span = range ?? { start: 0, end: file.size - 1 };
    return reply.header('content-length', span.end - span.start + 1).send(file.read(span));
  }
};
