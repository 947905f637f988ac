/**
 * The configuration schema: one TypeBox schema gives the shape, the defaults and the validation of
 * every key. Sources are merged with precedence CLI flags > environment > TOML file > defaults
 * (see `load.ts`). Units are part of key names (`_ms`, `_s`, `_bytes`).
 */
import { Type, type Static } from 'typebox';
import { GoogleChatSettingsSchema } from '../../bridges/googlechat/settings.js';
import { WhatsAppSettingsSchema } from '../../bridges/whatsapp/settings.js';

const Strict = { additionalProperties: false } as const;

export const ServerSchema = Type.Object(
  {
    host: Type.String({ default: '127.0.0.1', description: 'Address to listen on.' }),
    port: Type.Integer({ minimum: 0, maximum: 65535, default: 8081, description: 'TCP port (0 picks a free one).' }),
    public_url: Type.String({ default: '', description: 'Base URL clients reach the hub at; empty derives it from host and port.' }),
    trust_proxy: Type.Boolean({ default: false, description: 'Trust X-Forwarded-* headers (behind a reverse proxy).' }),
    cors_origins: Type.Array(Type.String(), { default: [], description: 'Origins allowed by CORS; empty disables CORS.' }),
  },
  Strict,
);

export const DatabaseSchema = Type.Object(
  {
    url: Type.String({ secret: 'url', default: '', description: 'PostgreSQL URL (env DATABASE_URL). Empty starts the embedded PGlite server under data_dir.' }),
    pool_max: Type.Integer({ minimum: 1, maximum: 200, default: 10, description: 'Pool size for an external database (the embedded one always uses 1).' }),
  },
  Strict,
);

export const RedisSchema = Type.Object(
  {
    url: Type.String({ secret: 'url', default: '', description: 'Redis URL (env REDIS_URL) for multi-node fan-out. Empty uses the in-process pub/sub.' }),
    channel_prefix: Type.String({ default: 'switchboard:', description: 'Prefix of the Redis pub/sub channels (lets several hubs share one Redis).' }),
  },
  Strict,
);

export const AuthSchema = Type.Object(
  {
    jwt_secret: Type.String({ secret: true, default: '', description: 'HS256 secret for access tokens (at least 32 bytes). Empty generates one into data_dir/signing-key on first run.' }),
    access_token_ttl_s: Type.Integer({ minimum: 30, default: 900, description: 'Access token lifetime, seconds.' }),
    refresh_token_ttl_s: Type.Integer({ minimum: 60, default: 2592000, description: 'Refresh token lifetime, seconds (default 30 days).' }),
    registration: Type.Union([Type.Literal('open'), Type.Literal('invite'), Type.Literal('closed')], {
      default: 'open',
      description: 'Who may register: "open" (anyone), "invite" (with an admin-issued invite code), "closed" (nobody; admins create users with the CLI).',
    }),
    admin_emails: Type.Array(Type.String(), { default: [], description: 'Emails of users treated as server admins (besides users with is_admin set).' }),
  },
  Strict,
);

export const RateLimitsSchema = Type.Object(
  {
    login_per_ip_per_min: Type.Integer({ minimum: 0, default: 30, description: 'Login attempts per client IP per minute; 0 disables.' }),
    login_per_account_per_min: Type.Integer({ minimum: 0, default: 10, description: 'Login attempts per account (email) per minute, from any IP; 0 disables.' }),
    register_per_ip_per_hour: Type.Integer({ minimum: 0, default: 100, description: 'Registrations per client IP per hour; 0 disables.' }),
    messages_per_user_per_min: Type.Integer({ minimum: 0, default: 1200, description: 'Message sends per user per minute, REST and WebSocket together; 0 disables.' }),
    ws_frames_per_s: Type.Integer({ minimum: 0, default: 100, description: 'WebSocket frames per connection per second, sustained; 0 disables.' }),
    ws_burst: Type.Integer({ minimum: 1, default: 1000, description: 'WebSocket frames a connection may send at once above the sustained rate.' }),
  },
  Strict,
);

export const LimitsSchema = Type.Object(
  {
    max_message_bytes: Type.Integer({ minimum: 1, default: 65536, description: 'Largest message content, UTF-8 bytes; larger sends get 413 / MESSAGE_TOO_LARGE.' }),
    max_request_bytes: Type.Integer({ minimum: 1024, default: 1048576, description: 'Largest REST request body, bytes.' }),
    max_ws_frame_bytes: Type.Integer({ minimum: 1024, default: 262144, description: 'Largest WebSocket frame a client may send, bytes.' }),
    max_send_queue_bytes: Type.Integer({ minimum: 1024, default: 4194304, description: 'Bytes queued to one socket before it is closed with 4408 (slow consumer).' }),
    history_page_max: Type.Integer({ minimum: 1, maximum: 1000, default: 100, description: 'Largest page of GET .../messages.' }),
    edit_window_s: Type.Integer({ minimum: 0, default: 86400, description: 'How long after sending a sender may edit a message, seconds; 0 means no limit.' }),
  },
  Strict,
);

export const RealtimeSchema = Type.Object(
  {
    typing_timeout_ms: Type.Integer({ minimum: 100, default: 10000, description: 'Typing expires after this long without a refresh, ms.' }),
    presence_grace_ms: Type.Integer({ minimum: 0, default: 5000, description: 'Delay before a user whose last socket closed goes offline, ms.' }),
  },
  Strict,
);

export const SearchSchema = Type.Object(
  {
    backend: Type.Union([Type.Literal('postgres'), Type.Literal('meilisearch')], { default: 'postgres', description: 'Full-text search backend.' }),
    url: Type.String({ default: '', description: 'Meilisearch URL the hub indexes into and queries (backend "meilisearch").' }),
    public_url: Type.String({ default: '', description: 'Meilisearch URL web clients use with a tenant token; empty uses url.' }),
    api_key: Type.String({ secret: true, default: '', description: 'Meilisearch key for indexing and searching (master or admin key). Secret.' }),
    token_api_key: Type.String({ secret: true, default: '', description: 'Meilisearch key that signs tenant tokens (e.g. the Default Search API Key); empty disables GET /api/search/token. Secret.' }),
    token_api_key_uid: Type.String({ default: '', description: 'The uid of token_api_key (GET /keys on Meilisearch shows it).' }),
    index_name: Type.String({ default: 'messages', pattern: '^[A-Za-z0-9_-]{1,400}$', description: 'Meilisearch index uid.' }),
    tenant_token_ttl_s: Type.Integer({ minimum: 10, maximum: 86400, default: 600, description: 'Lifetime of a tenant token from GET /api/search/token, seconds.' }),
  },
  Strict,
);

export const StorageSchema = Type.Object(
  {
    max_attachment_size_mb: Type.Integer({ minimum: 1, default: 10, description: 'Largest attachment upload, MiB; larger uploads get 413 / ATTACHMENT_TOO_LARGE.' }),
    thumbnail_max_px: Type.Integer({ minimum: 16, maximum: 4096, default: 320, description: 'Longest side of image thumbnails, pixels.' }),
  },
  Strict,
);

export const LogSchema = Type.Object(
  {
    level: Type.Union(
      ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'].map((l) => Type.Literal(l)),
      { default: 'info', description: 'pino log level.' },
    ),
    pretty: Type.Boolean({ default: false, description: 'Human-readable logs (also set by --dev).' }),
  },
  Strict,
);

/**
 * One bridge (the Matrix Application Service model): the hub pushes the events of rooms its users are
 * in to `url` (`PUT {url}/transactions/{txn_id}` with `hs_token`); the bridge calls the REST API with
 * `as_token`, acting as its ghosts (users whose localpart starts with `namespace`).
 */
export const BridgeSchema = Type.Object(
  {
    id: Type.String({ pattern: '^[a-z][a-z0-9_]{0,31}$', description: 'Bridge id, e.g. "whatsapp"; `switchboard bridge <id>` runs it.' }),
    network: Type.Union([Type.Literal('whatsapp'), Type.Literal('googlechat')], { description: 'Which connector runs it; its settings are the table of the same name.' }),
    url: Type.String({ default: 'http://127.0.0.1:8090', description: 'Where the hub reaches the bridge; the bridge listens on its host and port.' }),
    hub_url: Type.String({ default: '', description: 'Where the bridge reaches the hub; empty derives it from server.public_url or host and port.' }),
    as_token: Type.String({ secret: true, minLength: 32, description: 'Bearer token the bridge calls the hub with. Secret.' }),
    hs_token: Type.String({ secret: true, minLength: 32, description: 'Bearer token the hub pushes transactions with. Secret.' }),
    namespace: Type.String({ default: '', pattern: '^([a-z0-9_.-]+)?$', description: 'Exclusive localpart prefix of its ghost users; empty means "<id>_".' }),
    bot_name: Type.String({ default: '', description: 'Display name of the bridge bot; empty means "<id> bridge".' }),
    in_process: Type.Boolean({ default: false, description: 'Run the bridge inside `switchboard serve` instead of as `switchboard bridge <id>`.' }),
    data_dir: Type.String({ default: '', description: 'Where the bridge keeps its state file; empty means <data_dir>/bridges/<id>.' }),
    retry_max_ms: Type.Integer({ minimum: 10, default: 60000, description: 'Longest wait between retries (exponential backoff from 250 ms), both ways, ms.' }),
    max_attempts: Type.Integer({ minimum: 1, default: 10, description: 'Tries of a failing send to the remote network before it is dead-lettered (a notice in the room).' }),
    whatsapp: Type.Optional(WhatsAppSettingsSchema),
    googlechat: Type.Optional(GoogleChatSettingsSchema),
  },
  Strict,
);

export type BridgeConfig = Static<typeof BridgeSchema>;

export const ConfigSchema = Type.Object(
  {
    data_dir: Type.String({ default: './data', description: 'Where the embedded database, signing key and local files live.' }),
    server: ServerSchema,
    database: DatabaseSchema,
    redis: RedisSchema,
    auth: AuthSchema,
    limits: LimitsSchema,
    rate_limits: RateLimitsSchema,
    realtime: RealtimeSchema,
    search: SearchSchema,
    storage: StorageSchema,
    log: LogSchema,
    bridges: Type.Array(BridgeSchema, { default: [], description: 'Bridges to other networks (`[[bridges]]` tables); see docs/BRIDGES.md.' }),
  },
  Strict,
);

export type Config = Static<typeof ConfigSchema>;

/**
 * Secrets are marked in the schema itself: `secret: true` (redacted whole) or `secret: 'url'` (only a
 * password inside the URL is redacted). `show-config` and logs never print them.
 */
