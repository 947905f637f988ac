/** Attachment shapes: the upload's multipart body and the attachment as uploads and messages list it (`attachmentView`). */
import { Type } from 'typebox';
import { Uuid } from '../users/users.schemas.js';

export const AttachmentParams = Type.Object({ id: Uuid });

export const Attachment = Type.Object({
  id: Uuid,
  url: Type.String({ description: 'Relative to the hub; fetch it with the bearer token.' }),
  filename: Type.String(),
  size: Type.Integer({ description: 'Bytes.' }),
  mime_type: Type.String({ description: 'Sniffed from the bytes.' }),
  thumbnail_url: Type.Optional(Type.String({ description: 'Present when a thumbnail exists (images).' })),
});

/** The upload's `multipart/form-data` body, for the document: the handler reads the parts itself. */
export const UploadBody = Type.Object({
  file: Type.String({ format: 'binary', description: 'The file. The first file part is stored, whatever its field name; other parts are ignored.' }),
});

/** The bytes of a file or thumbnail, any media type. */
export const FileBytes = (description: string) =>
  ({ description, content: { '*/*': { schema: Type.String({ format: 'binary' }) } } });
