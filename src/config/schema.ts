/**
 * The configuration schema: one TypeBox schema gives the shape, the defaults and the validation of
 * every key. Sources are merged with precedence CLI flags > environment > TOML file > defaults
 * (see `load.ts`). Units are part of key names (`_ms`, `_s`, `_bytes`).
 *
 * The descriptions are the comments of `switchboard generate-config`, which is config.example.toml
 * (a test keeps them equal): a section's description comes after its `[header]`, a key's before the
 * key; `load.ts` wraps them at 100 columns, "\n" breaks a line and "\n\n" leaves an empty comment line.
 */
import { Type, type Static } from 'typebox';
import { GoogleChatSettingsSchema } from '../../bridges/googlechat/settings.js';
import { WhatsAppSettingsSchema } from '../../bridges/whatsapp/settings.js';

const Strict = { additionalProperties: false } as const;

export const ServerSchema = Type.Object(
  {
    host: Type.String({ default: '127.0.0.1', description: 'Address to listen on; "0.0.0.0" for all interfaces. Env SWITCHBOARD_HOST, flag --host.' }),
    port: Type.Integer({ minimum: 0, maximum: 65535, default: 8081, description: 'TCP port; 0 picks a free one. Env SWITCHBOARD_PORT, flag --port.' }),
    public_url: Type.String({ default: '', description: 'Base URL clients reach the hub at, e.g. "https://chat.example.com". Empty derives it from host and port.' }),
    trust_proxy: Type.Boolean({ default: false, description: 'Trust X-Forwarded-* headers; enable only behind a reverse proxy.' }),
    cors_origins: Type.Array(Type.String(), {
      default: [],
      description: 'Origins allowed by CORS, e.g. ["https://app.example.com"]. Empty disables CORS.\nEnv SWITCHBOARD_SERVER__CORS_ORIGINS="https://a.example,https://b.example".',
    }),
    request_timeout_ms: Type.Integer({
      minimum: 0,
      default: 120000,
      description: 'Longest time a client may take to send a whole request (headers and body), ms; then 408 and the connection is closed. It bounds uploads too: a storage.max_attachment_size_mb upload must arrive within it (10 MiB in 120 s is 85 KiB/s). 0 = no limit (not recommended).',
    }),
    headers_timeout_ms: Type.Integer({ minimum: 1, default: 30000, description: 'Longest time a client may take to send the request headers, ms (at most request_timeout_ms when that is set).' }),
    connection_timeout_ms: Type.Integer({
      minimum: 0,
      default: 120000,
      description: 'A connection with no traffic either way for this long is closed, ms; longer than the longest request the hub holds open (an agent\'s wait_for_messages, 30 s). WebSockets have their own heartbeat (realtime.ws_ping_interval_ms). 0 = no limit.',
    }),
    keep_alive_timeout_ms: Type.Integer({ minimum: 1, default: 72000, description: 'How long an idle keep-alive connection stays open after a response, ms (above the idle timeout of a load balancer in front, e.g. 60 s on AWS ALB).' }),
  },
  Strict,
);

export const DatabaseSchema = Type.Object(
  {
    url: Type.String({
      secret: 'url',
      default: '',
      description: 'PostgreSQL URL, e.g. "postgres://user:password@host:5432/switchboard". Empty starts the embedded PGlite server under data_dir. Env DATABASE_URL, flag --database-url. Secret: the password is redacted by show-config.',
    }),
    pool_max: Type.Integer({ minimum: 1, maximum: 200, default: 10, description: 'Connection pool size for an external database (1-200); the embedded one always uses 1.' }),
  },
  Strict,
);

export const RedisSchema = Type.Object(
  {
    url: Type.String({
      secret: 'url',
      default: '',
      description: 'Redis URL, e.g. "redis://:password@host:6379", for several hub nodes: pub/sub fan-out, rate-limit counters and presence socket counts shared by every node. Empty: the in-process pub/sub and counters in memory (single node). Env REDIS_URL, flag --redis-url. Secret: the password is redacted by show-config.',
    }),
    channel_prefix: Type.String({ default: 'switchboard:', description: 'Prefix of the pub/sub channel names and Redis keys, so several hub clusters can share one Redis.' }),
  },
  Strict,
);

export const AuthSchema = Type.Object(
  {
    jwt_secret: Type.String({
      secret: true,
      default: '',
      description: 'HS256 secret for access tokens, at least 32 characters; prefer setting it through the environment (SWITCHBOARD_AUTH__JWT_SECRET). Empty generates one into data_dir/signing-key on first run. Changing it invalidates every issued access token. Secret: redacted by show-config.',
    }),
    access_token_ttl_s: Type.Integer({ minimum: 30, default: 900, description: 'Access token lifetime, seconds (minimum 30).' }),
    refresh_token_ttl_s: Type.Integer({ minimum: 60, default: 2592000, description: 'Refresh token lifetime, seconds (minimum 60; default 30 days).' }),
    registration: Type.Union([Type.Literal('open'), Type.Literal('invite'), Type.Literal('closed')], {
      default: 'open',
      description: 'Who may register: "open" (anyone), "invite" (needs an invite code from an admin, see docs/OPERATIONS.md) or "closed" (nobody; create users with `switchboard user create`).',
    }),
    admin_emails: Type.Array(Type.String(), {
      default: [],
      description: 'Emails of users treated as server admins, in addition to users created with `switchboard user create --admin`, e.g. ["ops@example.com"].\nEnv SWITCHBOARD_AUTH__ADMIN_EMAILS="a@x,b@y".',
    }),
  },
  Strict,
);

export const RateLimitsSchema = Type.Object(
  {
    login_per_ip_per_min: Type.Integer({ minimum: 0, default: 30, description: 'Login attempts per client IP per minute (behind a proxy set server.trust_proxy).' }),
    login_per_account_per_min: Type.Integer({ minimum: 0, default: 10, description: 'Login attempts per account (email, case-insensitive) per minute, from any IP.' }),
    register_per_ip_per_hour: Type.Integer({ minimum: 0, default: 100, description: 'Registrations per client IP per hour.' }),
    messages_per_user_per_min: Type.Integer({ minimum: 0, default: 1200, description: 'Message sends per user per minute, REST and WebSocket counted together.' }),
    ws_frames_per_s: Type.Integer({ minimum: 0, default: 100, description: 'WebSocket frames per connection per second, sustained (token bucket refill rate).' }),
    ws_burst: Type.Integer({ minimum: 1, default: 1000, description: 'WebSocket frames a connection may send in one burst (token bucket size, minimum 1).' }),
    federation_per_peer_per_min: Type.Integer({ minimum: 0, default: 6000, description: 'Signed requests per federation peer (its server_name) per minute, all /_federation/v1 routes together (docs/FEDERATION.md).' }),
  },
  {
    ...Strict,
    description:
      'Abuse limits; over a limit REST answers 429 RATE_LIMITED with Retry-After (seconds), the WebSocket an error event RATE_LIMITED with retry_after_ms. 0 disables a limit. The login, registration, send and federation peer counters live in Redis when redis.url is set (shared by every node), else in the memory of each hub node; frame buckets belong to their socket (see docs/OPERATIONS.md).',
  },
);

export const LimitsSchema = Type.Object(
  {
    max_message_bytes: Type.Integer({ minimum: 1, default: 65536, description: 'Largest message content, UTF-8 bytes; larger sends get 413 / MESSAGE_TOO_LARGE.' }),
    max_request_bytes: Type.Integer({ minimum: 1024, default: 1048576, description: 'Largest REST request body, bytes (minimum 1024).' }),
    max_ws_frame_bytes: Type.Integer({ minimum: 1024, default: 262144, description: 'Largest WebSocket frame a client may send, bytes (minimum 1024).' }),
    max_json_depth: Type.Integer({
      minimum: 4,
      maximum: 1000,
      default: 32,
      description: 'Deepest nesting of arrays and objects in a REST body, query string, WebSocket frame or bridge webhook body (4-1000); deeper input gets 400 / VALIDATION_FAILED.',
    }),
    max_send_queue_bytes: Type.Integer({ minimum: 1024, default: 4194304, description: 'Bytes queued to one socket before it is closed with 4408 (slow consumer), bytes (minimum 1024).' }),
    history_page_max: Type.Integer({ minimum: 1, maximum: 1000, default: 100, description: 'Largest page of GET .../messages, messages (1-1000).' }),
    edit_window_s: Type.Integer({ minimum: 0, default: 86400, description: 'How long after sending a sender may edit a message, seconds; 0 means no limit (default 1 day).' }),
  },
  Strict,
);

export const RealtimeSchema = Type.Object(
  {
    typing_timeout_ms: Type.Integer({ minimum: 100, default: 10000, description: 'Typing expires after this long without a refresh, milliseconds (minimum 100).' }),
    presence_grace_ms: Type.Integer({ minimum: 0, default: 5000, description: 'Delay before a user whose last socket closed goes offline, milliseconds; 0 = immediately.' }),
    ws_ping_interval_ms: Type.Integer({
      minimum: 0,
      default: 30000,
      description: 'How often the hub pings each WebSocket (a WebSocket ping frame, answered by every client library), milliseconds; 0 = never. A client that vanished without closing (a phone losing its network) is found this way.',
    }),
    ws_pong_timeout_ms: Type.Integer({
      minimum: 100,
      default: 10000,
      description: 'A socket whose pong has not come this long after a ping is dropped, milliseconds (minimum 100); its user goes offline after presence_grace_ms.',
    }),
  },
  Strict,
);

export const SearchSchema = Type.Object(
  {
    backend: Type.Union([Type.Literal('postgres'), Type.Literal('meilisearch')], {
      default: 'postgres',
      description: 'Full-text search backend: "postgres" (built in, nothing to run) or "meilisearch" (see docs/SEARCH.md).',
    }),
    url: Type.String({ default: '', description: 'Meilisearch URL the hub indexes into and queries, e.g. "http://127.0.0.1:7700".\nEnv SWITCHBOARD_SEARCH__URL.' }),
    public_url: Type.String({ default: '', description: 'Meilisearch URL web clients use with a tenant token from GET /api/search/token; empty uses url.' }),
    api_key: Type.String({
      secret: true,
      default: '',
      description: 'Meilisearch key for indexing and searching (the master key or an admin key); prefer the environment: SWITCHBOARD_SEARCH__API_KEY. Secret: redacted by show-config.',
    }),
    token_api_key: Type.String({
      secret: true,
      default: '',
      description: 'Meilisearch key that signs tenant tokens (e.g. the "Default Search API Key"), listed by GET /keys with the master key. Empty disables GET /api/search/token.\nEnv SWITCHBOARD_SEARCH__TOKEN_API_KEY. Secret: redacted by show-config.',
    }),
    token_api_key_uid: Type.String({ default: '', description: 'The uid of token_api_key (GET /keys lists it too).' }),
    index_name: Type.String({ default: 'messages', pattern: '^[A-Za-z0-9_-]{1,400}$', description: 'Meilisearch index uid for messages.' }),
    tenant_token_ttl_s: Type.Integer({
      minimum: 10,
      maximum: 86400,
      default: 600,
      description: "Lifetime of a tenant token, seconds (10-86400). A token keeps the caller's room list as it was when issued, so keep this short.",
    }),
  },
  Strict,
);

export const StorageSchema = Type.Object(
  {
    max_attachment_size_mb: Type.Integer({ minimum: 1, default: 10, description: 'Largest attachment upload, MiB (minimum 1); larger uploads get 413 / ATTACHMENT_TOO_LARGE.' }),
    thumbnail_max_px: Type.Integer({ minimum: 16, maximum: 4096, default: 320, description: 'Longest side of image thumbnails, pixels (16-4096).' }),
  },
  { ...Strict, description: 'Attachments (uploaded files) are stored under data_dir/media.' },
);

export const LogSchema = Type.Object(
  {
    level: Type.Union(
      ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'].map((l) => Type.Literal(l)),
      { default: 'info', description: 'pino log level: "fatal", "error", "warn", "info", "debug", "trace" or "silent".\nEnv SWITCHBOARD_LOG_LEVEL, flag --log-level.' },
    ),
    pretty: Type.Boolean({ default: false, description: 'Human-readable logs instead of JSON lines (also set by --dev).' }),
  },
  Strict,
);

export const MetricsSchema = Type.Object(
  {
    listen: Type.String({
      default: '',
      pattern: '^$|^(\\[[0-9A-Fa-f:.]+\\]|[^\\s:\\[\\]]+):[0-9]{1,5}$',
      description: 'Serve GET /metrics on a listener of its own at "host:port", e.g. "127.0.0.1:9091", and not on server.port, so that clients cannot reach it. Empty serves it on server.host and server.port.',
    }),
    token: Type.String({
      secret: true,
      default: '',
      description: 'Bearer token that GET /metrics requires (Authorization: Bearer <token>); empty requires none. Prefer the environment: SWITCHBOARD_METRICS__TOKEN. Secret: redacted by show-config.',
    }),
  },
  { ...Strict, description: 'Prometheus metrics (GET /metrics); docs/OPERATIONS.md lists them, docs/grafana-dashboard.json shows them.' },
);

export const PushSchema = Type.Object(
  {
    vapid_public_key: Type.String({
      default: '',
      description: 'VAPID public key for Web Push (RFC 8292), base64url (an uncompressed P-256 point). Empty with vapid_private_key empty: a key pair is generated into data_dir/vapid-keys.json on first run. All nodes of a cluster must share one pair.',
    }),
    vapid_private_key: Type.String({ secret: true, default: '', description: 'VAPID private key, base64url (32 bytes). Prefer the environment: SWITCHBOARD_PUSH__VAPID_PRIVATE_KEY. Secret: redacted by show-config.' }),
    vapid_subject: Type.String({
      default: 'mailto:postmaster@localhost',
      pattern: '^(mailto:|https://)',
      description: 'Contact the push services see in the VAPID JWT ("sub"): a mailto: or https: URL of whoever runs this hub.',
    }),
    gateway_urls: Type.Array(Type.String(), {
      default: [],
      description: 'Push gateway URLs apps may register HTTP pushers for, e.g. ["https://push.example.com/_matrix/push/v1/notify"]. Empty: any http(s) URL (the hub then POSTs wherever an app says).',
    }),
    ca_file: Type.String({ default: '', description: 'PEM file of extra CA certificates trusted for Web Push endpoints (a private push service); empty trusts only the system roots.' }),
    ttl_s: Type.Integer({ minimum: 0, maximum: 2419200, default: 86400, description: 'How long a push service keeps an undelivered Web Push notification, seconds (the TTL header, RFC 8030).' }),
    retry_max_ms: Type.Integer({ minimum: 10, default: 60000, description: 'Longest wait between retries of a notification a push service or gateway answered 429 or 5xx (exponential backoff from 250 ms), ms.' }),
    max_attempts: Type.Integer({ minimum: 1, default: 8, description: 'Tries of one notification before it is dropped.' }),
  },
  {
    ...Strict,
    description:
      'Push notifications (docs/PUSH.md): Web Push for browsers and Matrix-style HTTP pushers for mobile apps; a direct message or a mention notifies the subscriptions of a user with no socket open.',
  },
);

/** A hub this one federates with (docs/FEDERATION.md). */
export const FederationPeerSchema = Type.Object(
  {
    server_name: Type.String({ pattern: '^[a-z0-9.-]+(:[0-9]+)?$', description: 'The peer\'s server_name, e.g. "other.example".' }),
    url: Type.String({ description: 'Where this hub reaches the peer, e.g. "https://other.example" (the /_federation/v1 paths are appended).' }),
    public_key: Type.String({ default: '', description: 'The peer\'s Ed25519 public key (base64url, 32 bytes), pinned; empty: fetched from its /_federation/v1/key and pinned on first use.' }),
  },
  Strict,
);

export const FederationSchema = Type.Object(
  {
    enabled: Type.Boolean({ default: false, description: 'Serve /_federation/v1 and share rooms with other hubs.' }),
    server_name: Type.String({ default: 'localhost', pattern: '^[a-z0-9.-]+(:[0-9]+)?$', description: 'This hub\'s name in addresses (@username:server_name) and signatures, e.g. "chat.example.org".' }),
    open: Type.Boolean({ default: false, description: 'Accept any hub that signs its requests (its key fetched and pinned on first use); false: only the listed peers.' }),
    deny: Type.Array(Type.String(), { default: [], description: 'server_names refused outright, even when listed or open.' }),
    retry_max_ms: Type.Integer({ minimum: 10, default: 60000, description: 'Longest wait between retries of a transaction to a peer (exponential backoff with jitter from 250 ms), ms; reset when that peer calls in.' }),
    txn_retention_s: Type.Integer({ minimum: 60, default: 86400, description: 'How long the ids of transactions received from peers are kept to refuse a repeat, s; older ones are deleted (hourly, or every half of this when shorter). Events are also deduplicated by id and room_seq.' }),
    peers: Type.Array(FederationPeerSchema, { default: [], description: 'Hubs this one federates with, as [[federation.peers]] tables: server_name, url, public_key.' }),
  },
  {
    ...Strict,
    description: 'Federation (docs/FEDERATION.md): rooms shared with other hubs, sequenced by the hub that created them; requests signed with HTTP Message Signatures (Ed25519). The signing key is generated into data_dir/federation-key on first run.',
  },
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
    e2ee: Type.Boolean({
      default: false,
      description:
        'End-to-bridge encryption (docs/BRIDGES.md): the bridge bot becomes an E2EE device (its Signal keys in the bridge data dir), decrypts what members send in encrypted portal rooms and encrypts what the network sends there. The bridge host then sees the plaintext of those rooms. false: encrypted rooms are not bridged.',
    }),
    data_dir: Type.String({ default: '', description: 'Where the bridge keeps its state file; empty means <data_dir>/bridges/<id>.' }),
    retry_max_ms: Type.Integer({ minimum: 10, default: 60000, description: 'Longest wait between retries (exponential backoff from 250 ms), both ways, ms.' }),
    max_attempts: Type.Integer({ minimum: 1, default: 10, description: 'Tries of a failing send to the remote network before it is dead-lettered (a notice in the room).' }),
    whatsapp: Type.Optional(WhatsAppSettingsSchema),
    googlechat: Type.Optional(GoogleChatSettingsSchema),
  },
  Strict,
);

export type BridgeConfig = Static<typeof BridgeSchema>;
export type FederationConfig = Static<typeof FederationSchema>;

/**
 * A commented-out example of two bridges, shown by `generate-config` (and config.example.toml) after
 * the description of `bridges`; a test checks that its keys are schema keys.
 */
const BRIDGES_SAMPLE = `[[bridges]]
id = "whatsapp"                      # \`switchboard bridge whatsapp\`
network = "whatsapp"                 # the connector; its settings are [bridges.whatsapp]
url = "http://127.0.0.1:8090"        # where the hub pushes transactions; the bridge listens here
hub_url = ""                         # where the bridge reaches the hub; empty: server.public_url or host:port
as_token = "<64 hex chars>"          # bridge -> hub (secret)
hs_token = "<64 hex chars>"          # hub -> bridge (secret)
namespace = ""                       # ghost localpart prefix; empty: "<id>_"
bot_name = ""                        # empty: "<id> bridge"
in_process = false
e2ee = false                         # true: the bot is an E2EE device and bridges encrypted rooms (the bridge host sees their plaintext)
data_dir = ""                        # bridge state; empty: <data_dir>/bridges/<id>
retry_max_ms = 60000                 # longest backoff between retries, ms
max_attempts = 10                    # tries of a failing WhatsApp send before a notice in the room

[bridges.whatsapp]
api_base_url = "https://graph.facebook.com/v23.0"
phone_number_id = "<from WhatsApp Manager > API setup>"
access_token = "<system user token>" # secret
app_secret = "<Meta app secret>"     # secret: checks X-Hub-Signature-256
verify_token = "<any string>"        # secret: typed into the webhook setup
webhook_path = "/whatsapp/webhook"
relay_format = "{name}: {body}"      # hub users share one business number
portal_members = []                  # hub user ids put into every WhatsApp chat room
send_rate_per_s = 20

[[bridges]]                          # Google Chat (docs/BRIDGES.md)
id = "googlechat"                    # \`switchboard bridge googlechat\`
network = "googlechat"               # its settings are [bridges.googlechat]
url = "http://127.0.0.1:8091"
as_token = "<64 hex chars>"
hs_token = "<64 hex chars>"

[bridges.googlechat]
credentials_file = "/etc/switchboard/chat-sa.json"  # the Chat app's service account key (secret file)
project_number = "<Cloud project number>"           # interaction-token audience ("project-number" mode)
audience_mode = "project-number"     # or "endpoint-url", as set in the Chat app configuration
endpoint_url = ""                    # with "endpoint-url": the app's HTTP endpoint URL
events_path = "/googlechat/events"   # interaction events (the app's HTTP endpoint)
pubsub_path = "/googlechat/pubsub"   # Pub/Sub push endpoint (Workspace Events)
pubsub_topic = "projects/<id>/topics/<topic>"        # empty: mentions and DMs only, no subscriptions
pubsub_subscription = "projects/<id>/subscriptions/<push subscription>"
pubsub_audience = "<the push subscription's audience>"
pubsub_service_account = "<push service account email>"
subscription_ttl_s = 14400           # Workspace Events subscription lifetime (max 4 h with resources)
subscription_renew_before_s = 1800   # renewed this long before it expires
spaces = []                          # spaces bridged from the start, e.g. ["spaces/AAAAxxxx"]
delegated_user = ""                  # Workspace user impersonated for reactions and files (domain-wide delegation)
relay_format = "*{name}*: {body}"    # the app posts for every hub user
portal_members = []                  # hub user ids put into every Google Chat space room
api_base_url = "https://chat.googleapis.com/"
token_url = "https://oauth2.googleapis.com/token"
events_api_base_url = "https://workspaceevents.googleapis.com/"
chat_certs_url = "https://www.googleapis.com/service_accounts/v1/metadata/x509/chat@system.gserviceaccount.com"
oidc_certs_url = "https://www.googleapis.com/oauth2/v1/certs"`;

export const ConfigSchema = Type.Object(
  {
    data_dir: Type.String({
      default: './data',
      description: 'Where the embedded database, signing key and local files live (relative to the working directory).\nEnv SWITCHBOARD_DATA_DIR, flag --data-dir.',
    }),
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
    metrics: MetricsSchema,
    push: PushSchema,
    federation: FederationSchema,
    bridges: Type.Array(BridgeSchema, {
      default: [],
      description:
        'Bridges to other networks: none by default. Each is one [[bridges]] table plus the settings table of its network; see docs/BRIDGES.md. Run a bridge as `switchboard bridge <id> -c this-file`, or set in_process = true to run it inside `switchboard serve`. Generate tokens with `openssl rand -hex 32`.',
      sample: BRIDGES_SAMPLE,
    }),
  },
  {
    ...Strict,
    description:
      'Switchboard configuration (all values shown are the defaults).\n\nPrecedence: command-line flags > environment > this file > built-in defaults. Every key can be set from the environment as SWITCHBOARD_<SECTION>__<KEY> (double underscore, upper case), e.g. SWITCHBOARD_AUTH__JWT_SECRET; top-level keys as SWITCHBOARD_<KEY>. Lists are comma-separated in the environment. Unknown keys and unknown SWITCHBOARD_* variables are errors. `switchboard validate-config -c FILE` checks a file; `show-config` prints the result.',
  },
);

export type Config = Static<typeof ConfigSchema>;

/**
 * Secrets are marked in the schema itself: `secret: true` (redacted whole) or `secret: 'url'` (only a
 * password inside the URL is redacted). `show-config` and logs never print them.
 */
