/**
 * WhatsApp Cloud API webhook payloads -> kit remote events (the network's ids and conversion stay
 * here). Payload reference: https://developers.facebook.com/docs/whatsapp/cloud-api/webhooks/payload-examples
 * `{"object":"whatsapp_business_account","entry":[{"changes":[{"field":"messages","value":{
 *   "metadata":{"phone_number_id"},"contacts":[{"wa_id","profile":{"name"}}],"messages":[...],"statuses":[...]}}]}]}`
 * A portal is one WhatsApp chat (the contact's wa_id); Cloud API chats are one-to-one.
 */
import { Type } from 'typebox';
import type { RemoteEvent, RemotePortal, RemoteUser } from '../kit/types.js';

const Str = Type.Optional(Type.String());
const Obj = (props: Parameters<typeof Type.Object>[0]) => Type.Optional(Type.Object(props));
const List = (props: Parameters<typeof Type.Object>[0]) => Type.Optional(Type.Array(Type.Object(props)));
const Errors = List({ code: Type.Optional(Type.Union([Type.Integer(), Type.String()])), title: Str, message: Str, error_data: Obj({ details: Str }) });
const Media = Obj({ id: Str, mime_type: Str, filename: Str, caption: Str });

/**
 * What `parseWebhook` reads of a webhook delivery, as a schema the route validates the body against
 * (after the signature): every field it reads is optional, but when present has the type it uses;
 * other fields are allowed (Meta adds some). A signed body that breaks it is a 400, never a crash.
 */
export const WebhookPayload = Type.Object({
  object: Str,
  entry: List({
    changes: List({
      field: Str,
      value: Obj({
        metadata: Obj({ phone_number_id: Str }),
        contacts: List({ wa_id: Str, profile: Obj({ name: Str }) }),
        messages: List({
          id: Str,
          from: Str,
          timestamp: Str,
          type: Str,
          context: Obj({ id: Str }),
          text: Obj({ body: Str }),
          reaction: Obj({ message_id: Str, emoji: Str }),
          location: Obj({ name: Str, address: Str }),
          contacts: List({ name: Obj({ formatted_name: Str }), phones: List({ phone: Str, wa_id: Str }), emails: List({ email: Str }) }),
          button: Obj({ text: Str }),
          interactive: Obj({ button_reply: Obj({ title: Str }), list_reply: Obj({ title: Str }) }),
          image: Media,
          video: Media,
          audio: Media,
          document: Media,
          sticker: Media,
          errors: Errors,
        }),
        statuses: List({ id: Str, recipient_id: Str, status: Str, timestamp: Str, errors: Errors }),
      }),
    }),
  }),
});

const MEDIA_TYPES = ['image', 'video', 'audio', 'document', 'sticker'] as const;
const EXTENSIONS: Record<string, string> = { 'image/jpeg': 'jpg', 'image/png': 'png', 'image/webp': 'webp', 'video/mp4': 'mp4', 'audio/ogg': 'ogg', 'audio/mpeg': 'mp3', 'application/pdf': 'pdf' };

/** The events of one webhook delivery (a `WebhookPayload`) addressed to `phoneNumberId` (others are ignored). */
export function parseWebhook(body: any, phoneNumberId: string): RemoteEvent[] {
  const events: RemoteEvent[] = [];
  if (body?.object !== 'whatsapp_business_account') return events;
  for (const entry of body.entry ?? []) {
    for (const change of entry?.changes ?? []) {
      const value = change?.value;
      if (change?.field !== 'messages' || value?.metadata?.phone_number_id !== phoneNumberId) continue;
      const names = new Map<string, string>((value.contacts ?? []).map((c: any) => [String(c.wa_id), c.profile?.name ?? '']));
      for (const m of value.messages ?? []) {
        const ev = convertMessage(m, names.get(String(m.from)) ?? '');
        if (ev) events.push(ev);
      }
      for (const s of value.statuses ?? []) {
        const ev = convertStatus(s);
        if (ev) events.push(ev);
      }
    }
  }
  return events;
}

function people(waId: string, name: string): { portal: RemotePortal; sender: RemoteUser } {
  const display = name || `+${waId}`;
  return { portal: { id: waId, name: display }, sender: { id: waId, name: display } };
}

/** One inbound message. @returns null for a message without id or sender. */
export function convertMessage(m: any, name: string): RemoteEvent | null {
  if (typeof m?.id !== 'string' || typeof m?.from !== 'string') return null;
  const { portal, sender } = people(m.from, name);
  const base = { id: m.id, portal, ts: Number(m.timestamp) * 1000 || Date.now() };
  const replyTo: string | undefined = m.context?.id;
  const message = (text: string, extra: object = {}): RemoteEvent => ({ ...base, type: 'message', sender, text, ...(replyTo ? { replyTo } : {}), ...extra });
  switch (m.type) {
    case 'text':
      return message(m.text?.body ?? '');
    case 'reaction': {
      // One reaction per person and message: sender + message identify it; an empty emoji removes it.
      const targetId: string = m.reaction?.message_id;
      const reactionId = `${m.from}:${targetId}`;
      const emoji: string = m.reaction?.emoji ?? '';
      return emoji ? { ...base, type: 'reaction', sender, targetId, reactionId, emoji } : { ...base, type: 'unreaction', reactionId };
    }
    case 'location': {
      const l = m.location ?? {};
      const place = [l.name, l.address].filter(Boolean).join(', ');
      return message(`📍 Location${place ? `: ${place}` : ''} (${l.latitude}, ${l.longitude}) https://www.openstreetmap.org/?mlat=${l.latitude}&mlon=${l.longitude}`);
    }
    case 'contacts':
      return message(
        (m.contacts ?? [])
          .map((c: any) => {
            const phones = (c.phones ?? []).map((p: any) => p.phone ?? p.wa_id).filter(Boolean);
            const emails = (c.emails ?? []).map((e: any) => e.email).filter(Boolean);
            return `👤 Contact: ${c.name?.formatted_name ?? 'unnamed'}${[...phones, ...emails].length ? ` — ${[...phones, ...emails].join(', ')}` : ''}`;
          })
          .join('\n'),
      );
    case 'button':
      return message(m.button?.text ?? '');
    case 'interactive':
      return message(m.interactive?.button_reply?.title ?? m.interactive?.list_reply?.title ?? '');
    default:
      if ((MEDIA_TYPES as readonly string[]).includes(m.type) && m[m.type]?.id) {
        const media = m[m.type];
        const mimeType = String(media.mime_type ?? 'application/octet-stream').split(';')[0].trim();
        const fileName = media.filename ?? `${m.type}.${EXTENSIONS[mimeType] ?? 'bin'}`;
        return message(media.caption ?? '', { media: [{ id: media.id, mimeType, fileName }] });
      }
      return {
        ...base,
        type: 'notice',
        text: `⚠️ ${portal.name} sent a WhatsApp message the bridge cannot show (type "${m.type}"${m.errors?.[0] ? `, error ${m.errors[0].code}: ${m.errors[0].title}` : ''}). Open WhatsApp to see it.`,
      };
  }
}

/** One status of a message the business sent: delivered/read -> receipts, failed -> a notice. */
export function convertStatus(s: any): RemoteEvent | null {
  if (typeof s?.id !== 'string' || typeof s?.recipient_id !== 'string') return null;
  const { portal } = people(s.recipient_id, '');
  const base = { id: `status:${s.id}:${s.status}`, portal, ts: Number(s.timestamp) * 1000 || Date.now() };
  if (s.status === 'delivered' || s.status === 'read') {
    return { ...base, type: 'receipt', sender: { id: s.recipient_id, name: '' }, targetId: s.id, receipt: s.status };
  }
  if (s.status === 'failed') {
    const e = s.errors?.[0] ?? {};
    const details = e.error_data?.details ? ` — ${e.error_data.details}` : '';
    return { ...base, type: 'notice', targetId: s.id, text: `⚠️ WhatsApp could not deliver this message (error ${e.code ?? 'unknown'}: ${e.title ?? e.message ?? 'no reason given'}${details})` };
  }
  return null;
}
