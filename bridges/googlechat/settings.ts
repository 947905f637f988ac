/**
 * The Google Chat connector's settings: the `[bridges.googlechat]` table. The hub's config schema
 * (src/config/schema.ts) includes this one to validate, default and redact (`secret: true`) it.
 */
import { Type, type Static } from 'typebox';

/**
 * Settings of the Google Chat bridge (the Chat API as a Chat app, Workspace Events over Pub/Sub push);
 * see docs/BRIDGES.md. The base URLs point at Google; tests and private deployments may
 * point them elsewhere.
 */
export const GoogleChatSettingsSchema = Type.Object(
  {
    credentials_file: Type.String({ default: '', description: 'Path of the Chat app\'s service account JSON key file. Secret (the file).' }),
    project_number: Type.String({ default: '', description: 'Google Cloud project number: the audience of interaction-event tokens with audience_mode "project-number".' }),
    audience_mode: Type.Union([Type.Literal('project-number'), Type.Literal('endpoint-url')], { default: 'project-number', description: 'The Chat app\'s "Authentication Audience" setting: which tokens interaction events carry.' }),
    endpoint_url: Type.String({ default: '', description: 'The HTTP endpoint URL set in the Chat app: the token audience with audience_mode "endpoint-url".' }),
    events_path: Type.String({ default: '/googlechat/events', description: 'Path of the interaction-event endpoint on the bridge.' }),
    pubsub_path: Type.String({ default: '/googlechat/pubsub', description: 'Path of the Pub/Sub push endpoint on the bridge.' }),
    pubsub_topic: Type.String({ default: '', description: 'Pub/Sub topic (projects/<id>/topics/<name>) the Workspace Events subscriptions publish to; empty: interaction events only (mentions and DMs).' }),
    pubsub_subscription: Type.String({ default: '', description: 'The push subscription (projects/<id>/subscriptions/<name>); pushes naming another are refused. Empty accepts any.' }),
    pubsub_audience: Type.String({ default: '', description: 'Audience of the push subscription\'s OIDC token (its "audience" setting).' }),
    pubsub_service_account: Type.String({ default: '', description: 'Email of the service account the push subscription authenticates with.' }),
    subscription_ttl_s: Type.Integer({ minimum: 1, maximum: 14400, default: 14400, description: 'Lifetime asked for each Workspace Events subscription, seconds (at most 4 hours with resources included).' }),
    subscription_renew_before_s: Type.Integer({ minimum: 0, default: 1800, description: 'A subscription is renewed this long before it expires, seconds.' }),
    spaces: Type.Array(Type.String({ pattern: '^spaces/[^/]+$' }), { default: [], description: 'Spaces bridged from the start (the app must be a member); spaces the app is added to later are bridged too.' }),
    delegated_user: Type.String({ default: '', description: 'Workspace user (email) the service account impersonates by domain-wide delegation for reactions and files; empty disables those two.' }),
    relay_format: Type.String({ default: '*{name}*: {body}', description: 'How a hub user\'s message is posted by the app; {name} and {body} are replaced (*…* is bold in Chat). Empty sends the body alone.' }),
    portal_members: Type.Array(Type.String({ format: 'uuid' }), { default: [], description: 'Hub user ids put into every Google Chat space room.' }),
    api_base_url: Type.String({ default: 'https://chat.googleapis.com/', description: 'Chat API root URL.' }),
    token_url: Type.String({ default: 'https://oauth2.googleapis.com/token', description: 'OAuth 2.0 token endpoint (service-account JWT bearer flow).' }),
    events_api_base_url: Type.String({ default: 'https://workspaceevents.googleapis.com/', description: 'Workspace Events API root URL.' }),
    chat_certs_url: Type.String({ default: 'https://www.googleapis.com/service_accounts/v1/metadata/x509/chat@system.gserviceaccount.com', description: 'x509 certificates of the Chat token signer (audience_mode "project-number").' }),
    oidc_certs_url: Type.String({ default: 'https://www.googleapis.com/oauth2/v1/certs', description: 'Google\'s OIDC signing certificates, x509 PEM by key id (endpoint-URL audience and Pub/Sub push tokens).' }),
  },
  { additionalProperties: false },
);

export type GoogleChatSettings = Static<typeof GoogleChatSettingsSchema>;
