/**
 * The WhatsApp connector's settings: the `[bridges.whatsapp]` table. The hub's config schema
 * (src/config/schema.ts) includes this one to validate, default and redact (`secret: true`) it.
 */
import { Type, type Static } from 'typebox';

/** Settings of the WhatsApp bridge (Meta's WhatsApp Cloud API); see docs/BRIDGES.md. */
export const WhatsAppSettingsSchema = Type.Object(
  {
    api_base_url: Type.String({ default: 'https://graph.facebook.com/v23.0', description: 'Graph API base URL, with its version.' }),
    phone_number_id: Type.String({ default: '', description: 'The business phone number id (WhatsApp Manager > API setup).' }),
    access_token: Type.String({ secret: true, default: '', description: 'System-user access token with whatsapp_business_messaging. Secret.' }),
    app_secret: Type.String({ secret: true, default: '', description: 'The Meta app secret: webhooks are checked against X-Hub-Signature-256 with it. Secret.' }),
    verify_token: Type.String({ secret: true, default: '', description: 'The token typed into the webhook setup, echoed back by the GET verification. Secret.' }),
    webhook_path: Type.String({ default: '/whatsapp/webhook', description: 'Path of the webhook on the bridge.' }),
    relay_format: Type.String({ default: '{name}: {body}', description: 'How a hub user\'s message is sent from the one business number; {name} and {body} are replaced. Empty sends the body alone.' }),
    portal_members: Type.Array(Type.String({ format: 'uuid' }), { default: [], description: 'Hub user ids put into every WhatsApp chat room.' }),
    send_rate_per_s: Type.Number({ exclusiveMinimum: 0, default: 20, description: 'Messages per second sent from the business number (Cloud API throughput).' }),
  },
  { additionalProperties: false },
);

export type WhatsAppSettings = Static<typeof WhatsAppSettingsSchema>;
