/**
 * The composition root: builds every service once, in dependency order, around one database and one
 * pub/sub. `app.hub` exposes it to routes and the gateway.
 */
import path from 'node:path';
import type { Logger } from 'pino';
import type { Config } from './config/schema.js';
import type { Database } from './db/database.js';
import { AdminService } from './modules/admin/admin.service.js';
import { AttachmentsService } from './modules/attachments/attachments.service.js';
import { AuditService } from './modules/audit/audit.service.js';
import { AgentsService } from './modules/agents/agents.service.js';
import { AuthService } from './modules/auth/auth.service.js';
import { BridgesService } from './modules/bridges/bridges.service.js';
import { E2eeService } from './modules/e2ee/e2ee.service.js';
import { TokenIssuer, loadSigningSecret } from './modules/auth/tokens.js';
import { FederationService } from './modules/federation/federation.service.js';
import { loadFederationKey } from './modules/federation/federation.keys.js';
import { MessagesService } from './modules/messages/messages.service.js';
import { LocalPresenceCluster, RedisPresenceCluster } from './modules/presence/presence-cluster.js';
import { PresenceService } from './modules/presence/presence.service.js';
import { PushService } from './modules/push/push.service.js';
import { RoomsService } from './modules/rooms/rooms.service.js';
import type { SearchIndexer } from './modules/search/indexer.js';
import { SearchService, createSearch } from './modules/search/search.service.js';
import { UsersService } from './modules/users/users.service.js';
import { createMetrics, type Metrics } from './plugins/metrics.js';
import { Fanout } from './ws/fanout.js';
import { LocalPubSub, type PubSub } from './events/pubsub.js';
import { RedisPubSub } from './events/redis-pubsub.js';
import { EventStream } from './events/stream.js';
import { TypingService } from './modules/typing/typing.service.js';
import type { BlobStorage } from './storage/blob-storage.js';
import { LocalBlobStorage } from './storage/local-storage.js';

export interface Hub {
  config: Config;
  db: Database;
  log: Logger;
  metrics: Metrics;
  pubsub: PubSub;
  stream: EventStream;
  fanout: Fanout;
  auth: AuthService;
  users: UsersService;
  rooms: RoomsService;
  messages: MessagesService;
  presence: PresenceService;
  typing: TypingService;
  search: SearchService;
  /** Feeds Meilisearch from the event stream; absent with the PostgreSQL backend. */
  searchIndexer?: SearchIndexer;
  storage: BlobStorage;
  attachments: AttachmentsService;
  /** Agent tokens and bot users (the agent API: /api/mcp/*, /mcp). */
  agents: AgentsService;
  /** Registered bridges: as_token auth, ghosts, portals and the transaction pushers. */
  bridges: BridgesService;
  /** The audit trail of admin and operator actions. */
  audit: AuditService;
  /** Who is a server admin, and the admin API's user, room and invite management. */
  admin: AdminService;
  /** Push subscriptions, room mutes, and the notifier and sender following the event log. */
  push: PushService;
  /** E2EE devices, their keys and the to-device mailbox (docs/E2EE.md). */
  e2ee: E2eeService;
  /** Rooms shared with other hubs: the relay, the peers' outbound queues, inbound transactions. */
  federation: FederationService;
}

/** Builds the services and starts following the event stream. */
export async function createHub(config: Config, db: Database, log: Logger): Promise<Hub> {
  const pubsub = await createPubSub(config, log);
  const stream = new EventStream(db, pubsub, log);
  await stream.start();
  // Pokes published while Redis was unreachable are lost: read what was committed meanwhile.
  if (pubsub instanceof RedisPubSub) pubsub.onReconnect(() => stream.catchUp());
  const tokens = new TokenIssuer(loadSigningSecret(config, log), config.auth.access_token_ttl_s);
  const users = new UsersService(db, config.federation.server_name);
  const audit = new AuditService(db);
  await audit.recordRegistrationPolicy(config.auth.registration);
  const rooms = new RoomsService(db, stream, users);
  users.announceProfilesThrough((change, changedUserId) => rooms.changeProfile(change, changedUserId));
  const search = await createSearch(config, db, stream, log);
  const storage = new LocalBlobStorage(path.join(config.data_dir, 'media'));
  const attachments = new AttachmentsService(db, rooms, storage, log, {
    maxBytes: config.storage.max_attachment_size_mb * 1048576,
    thumbnailMaxPx: config.storage.thumbnail_max_px,
  });
  const e2ee = new E2eeService(db, pubsub);
  const auth = new AuthService(db, users, tokens, pubsub, e2ee, config.auth.refresh_token_ttl_s, config.auth.admin_emails);
  const bridges = new BridgesService(db, stream, pubsub, rooms, users, audit, auth, config, log);
  await bridges.start();
  const presence = new PresenceService(
    db,
    rooms,
    pubsub,
    config.realtime.presence_grace_ms,
    log,
    config.redis.url ? new RedisPresenceCluster(config.redis.url, config.redis.channel_prefix, log) : new LocalPresenceCluster(),
  );
  // The only node: whoever the table says is online was left so by a crash or a stop within the grace.
  if (!config.redis.url) await presence.resetAtStart();
  const metrics = createMetrics();
  const fanout = new Fanout(pubsub, stream, log);
  const messages = new MessagesService(db, stream, pubsub, rooms, users, attachments, metrics, config.limits.max_message_bytes, config.limits.edit_window_s, e2ee);
  followSocketWrites(fanout, messages, metrics, log);
  const push = new PushService(db, stream, rooms, presence, config, log);
  await push.start();
  const typing = new TypingService(pubsub, config.realtime.typing_timeout_ms);
  const federation = new FederationService(db, stream, users, rooms, messages, attachments, pubsub, typing, presence, config, loadFederationKey(config.data_dir, log), log);
  federation.registerMetrics(metrics.registry);
  await federation.start();
  return {
    config,
    db,
    log,
    metrics,
    pubsub,
    stream,
    fanout,
    auth,
    users,
    rooms,
    messages,
    presence,
    typing,
    search: new SearchService(db, rooms, search.index, config.search.tenant_token_ttl_s),
    searchIndexer: search.indexer,
    storage,
    attachments,
    agents: new AgentsService(db, users, audit),
    bridges,
    admin: new AdminService({ db, stream, pubsub, fanout, config, auth, users, rooms, messages, audit }),
    audit,
    push,
    e2ee,
    federation,
  };
}

/**
 * What follows each room event written to a local socket: the delivery metrics and, for a
 * `message.new` reaching someone other than its sender, the delivery receipt (once per message).
 */
function followSocketWrites(fanout: Fanout, messages: MessagesService, metrics: Metrics, log: Logger): void {
  fanout.onWritten((event, conn) => {
    metrics.eventsDelivered.inc();
    if (event.type !== 'message.new') return;
    const { message } = event.payload;
    if (message.user_id === conn.userId) return;
    if (conn.isLive) metrics.deliveryLatency.observe((Date.now() - event.written_ms) / 1000);
    messages.markDelivered(message).catch((err) => log.error({ err }, 'delivery receipt failed'));
  });
}

/** Redis pub/sub when `redis.url` is set (several nodes), the in-process one otherwise. */
async function createPubSub(config: Config, log: Logger): Promise<PubSub> {
  if (!config.redis.url) return new LocalPubSub();
  const redis = new RedisPubSub(config.redis.url, config.redis.channel_prefix, log);
  await redis.connect();
  return redis;
}

/** Stops timers and subscriptions, then closes the pub/sub and the database. */
export async function closeHub(hub: Hub): Promise<void> {
  hub.bridges.close();
  await hub.federation.stop();
  await hub.push.stop();
  hub.typing.close();
  await hub.presence.close();
  hub.fanout.close();
  hub.stream.stop();
  await hub.searchIndexer?.stop();
  await hub.pubsub.close();
  await hub.db.close();
}
