/** The wire shape of an attachment, shared by uploads and messages. */
import type { AttachmentWire } from '../../events/catalog.js';
import type { AttachmentRef } from './attachments.repository.js';

/** An attachment as messages and the upload answer list it. URLs are relative to the hub; fetch them with the bearer token. */
export type AttachmentView = AttachmentWire;

export function attachmentView(a: AttachmentRef): AttachmentView {
  const url = `/api/attachments/${a.id}`;
  return {
    id: a.id,
    url,
    filename: a.filename,
    size: Number(a.size),
    mime_type: a.mime_type,
    ...(a.thumbnail_key ? { thumbnail_url: `${url}/thumbnail` } : {}),
  };
}
