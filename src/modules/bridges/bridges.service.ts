/**
 * Bridges, hub side (modelled on the Matrix Application Service API,
 * https://spec.matrix.org/v1.11/application-service-api/): bridges registered in config, `as_token`
 * authentication with masquerading (`?user_id=`), ghost users in each bridge's exclusive namespace,
 * idempotent portal rooms, and one transaction pusher per bridge (see `bridges.pusher.ts`).
 */
import crypto from 'node:crypto';
import type { Logger } from 'pino';
import { ConfigError } from '../../config/load.js';
import type { BridgeConfig, Config } from '../../config/schema.js';
import type { Database } from '../../db/database.js';
import { AppError } from '../../errors.js';
import type { PubSub } from '../../events/pubsub.js';
import type { EventStream } from '../../events/stream.js';
import type { AuthContext, AuthService } from '../auth/auth.service.js';
import type { Actor, AuditService } from '../audit/audit.service.js';
import type { RoomsService } from '../rooms/rooms.service.js';
import type { GhostRow } from '../users/users.repository.js';
import type { UsersService } from '../users/users.service.js';
import { bridgesRepository as repo } from './bridges.repository.js';
import { TransactionPusher } from './bridges.pusher.js';

/** A configured bridge with its derived names. */
export interface Registration {
  config: BridgeConfig;
  /** Localpart prefix of its ghosts, e.g. "whatsapp_". */
  namespace: string;
  /** Hub user id of the bridge bot (the acting user when no `?user_id=` is given). */
  botId: string;
  /**
   * With `e2ee = true`: the bot's one device session (AuthService.bridgeBotDevice), which the bridge
   * registers as an E2EE device and which encrypts for the bot and for its ghosts; else undefined.
   */
  deviceId?: string;
}

/** Who a bridge request acts as: the bot or one of the bridge's ghosts. */
export interface BridgeAuth extends AuthContext {
  bridgeId: string;
  /** The bridge's bot: `deviceId` is the bot's device (E2EE bridges), also when acting as a ghost. */
  botId: string;
}

/**
 * True when `auth` is a bridge acting as one of its ghosts. A ghost of an E2EE bridge sends with the
 * bot's device (docs/BRIDGES.md), but only the bot manages that device's keys.
 */
export function actsAsGhost(auth: AuthContext): boolean {
  const b = auth as Partial<BridgeAuth>;
  return b.bridgeId !== undefined && b.userId !== b.botId;
}

/** The nil UUID stands for "no device": a bridge without `e2ee` has no device session. */
const NO_DEVICE = '00000000-0000-0000-0000-000000000000';

/** The bridge id when `auth` is a bridge acting (as its bot or a ghost), else null. */
export function bridgeIdOf(auth: AuthContext): string | null {
  return (auth as Partial<BridgeAuth>).bridgeId ?? null;
}

/** @throws AppError FORBIDDEN (403) unless the caller is a bridge. @returns its id. */
export function requireBridge(auth: AuthContext): string {
  const id = bridgeIdOf(auth);
  if (!id) throw new AppError('FORBIDDEN', 'Only a bridge (with its as_token) may do this');
  return id;
}

const sha256 = (s: string) => crypto.createHash('sha256').update(s).digest('hex');

export class BridgesService {
  private readonly byId = new Map<string, Registration>();
  /** sha256(as_token) -> bridge id: a hash lookup, so the token is never compared byte by byte. */
  private readonly byToken = new Map<string, string>();
  private readonly pushers: TransactionPusher[] = [];

  constructor(
    private readonly db: Database,
    private readonly stream: EventStream,
    private readonly pubsub: PubSub,
    private readonly rooms: RoomsService,
    private readonly users: UsersService,
    private readonly audit: AuditService,
    private readonly auth: AuthService,
    private readonly config: Config,
    private readonly log: Logger,
  ) {}

  /**
   * Checks the registrations (unique ids and tokens, namespaces that do not overlap), creates each
   * bridge's bot user (with its device session when `e2ee = true`; one left from an earlier
   * `e2ee = true` is revoked otherwise) and starts its transaction pusher.
   * @throws ConfigError for a conflicting registration.
   */
  async start(): Promise<void> {
    const seen: BridgeConfig[] = [];
    for (const b of this.config.bridges) {
      const namespace = b.namespace || `${b.id}_`;
      for (const other of seen) {
        const ns = other.namespace || `${other.id}_`;
        if (other.id === b.id) throw new ConfigError('bridges', `bridge id "${b.id}" is configured twice`);
        if (ns.startsWith(namespace) || namespace.startsWith(ns)) throw new ConfigError('bridges', `namespaces of "${other.id}" and "${b.id}" overlap`);
        if (other.as_token === b.as_token) throw new ConfigError('bridges', `"${other.id}" and "${b.id}" share an as_token`);
      }
      if (!b[b.network]) throw new ConfigError(`bridges.${b.id}`, `network "${b.network}" needs a [bridges.${b.network}] table`);
      seen.push(b);
      const bot = await this.users.upsertGhost({ bridgeId: b.id, localpart: `${namespace}bot`, name: b.bot_name || `${b.id} bridge`, avatarUrl: undefined });
      if (!bot) throw new ConfigError(`bridges.${b.id}`, `the bot localpart "${namespace}bot" belongs to another bridge`);
      const deviceId = b.e2ee ? await this.auth.bridgeBotDevice(bot.id, b.id) : undefined;
      if (!b.e2ee) await this.auth.dropBridgeBotDevice(bot.id, b.id);
      this.byId.set(b.id, { config: b, namespace, botId: bot.id, deviceId });
      this.byToken.set(sha256(b.as_token), b.id);
    }
    for (const reg of this.byId.values()) {
      const pusher = new TransactionPusher(this.db, this.stream, this.pubsub, this.rooms, this.users, this.log.child({ bridge: reg.config.id }), reg.config, reg.botId, reg.deviceId);
      this.pushers.push(pusher);
      await pusher.start();
    }
  }

  close(): void {
    for (const p of this.pushers) p.stop();
  }

  /** The registration of a configured bridge. */
  get(bridgeId: string): Registration {
    return this.byId.get(bridgeId)!;
  }

  /**
   * Resolves a bearer token that is a bridge's `as_token`. The bridge acts as `userId` (one of its
   * ghosts or its bot) or, without it, as its bot; with `e2ee = true` on the bot's device session
   * either way (ghosts' messages in encrypted rooms are encrypted by the bot's device).
   * @returns null when the token is not an as_token (the caller then tries access tokens).
   * @throws AppError FORBIDDEN (403) when `userId` is not a user of this bridge's namespace.
   */
  async authenticate(token: string, userId: string | undefined): Promise<BridgeAuth | null> {
    if (this.byToken.size === 0) return null;
    const bridgeId = this.byToken.get(sha256(token));
    if (!bridgeId) return null;
    const reg = this.byId.get(bridgeId)!;
    const acting = userId ?? reg.botId;
    const user = /^[0-9a-f-]{36}$/i.test(acting) ? await this.users.find(this.db, acting) : null;
    if (!user || user.deactivated_at || user.bridge_id !== bridgeId) throw new AppError('FORBIDDEN', `user_id ${acting} is not in the namespace of bridge ${bridgeId}`);
    return { userId: acting, deviceId: reg.deviceId ?? NO_DEVICE, userName: user.name, bridgeId, botId: reg.botId };
  }

  /**
   * Creates a ghost, or updates its name and avatar when it exists (idempotent by localpart).
   * @returns `{ghost, created}`.
   * @throws AppError FORBIDDEN (403) when the localpart is outside the bridge's namespace.
   */
  async upsertGhost(bridgeId: string, body: { localpart: string; name: string; avatar_url?: string | null }): Promise<{ ghost: GhostView; created: boolean }> {
    const reg = this.get(bridgeId);
    if (!body.localpart.startsWith(reg.namespace) || body.localpart === `${reg.namespace}bot`) {
      throw new AppError('FORBIDDEN', `Ghost localparts of bridge ${bridgeId} start with "${reg.namespace}" (and "${reg.namespace}bot" is the bot)`);
    }
    const row = await this.users.upsertGhost({ bridgeId, localpart: body.localpart, name: body.name.trim(), avatarUrl: body.avatar_url });
    if (!row) throw new AppError('FORBIDDEN', 'That localpart belongs to another bridge');
    if (row.inserted) await this.audit.record(this.db, bridgeActor(bridgeId), { action: 'bridge.ghost_create', target_type: 'user', target_id: row.id, detail: { localpart: row.ghost_localpart } });
    return { ghost: ghostView(row), created: row.inserted };
  }

  /**
   * The portal room of remote chat `remoteId`, created on first call (a private group owned by the
   * bot) with `members` (hub user ids: ghosts and hub users). Later calls add members not yet in it.
   * One room per (bridge, remote chat), also under concurrent calls.
   * @returns `{room_id, created}`.
   * @throws AppError INVALID_USER (404) for an unknown member.
   */
  async ensurePortal(bridgeId: string, body: { remote_id: string; name: string; topic?: string; members?: string[] }): Promise<{ room_id: string; created: boolean }> {
    const { botId } = this.get(bridgeId);
    const members = [...new Set((body.members ?? []).filter((id) => id !== botId))];
    await this.users.requireActive(members);
    return this.stream.write(async (tx) => {
      // One creator at a time per remote chat; the lock ends with the transaction.
      await repo.lockPortal(tx, bridgeId, body.remote_id);
      const existing = await repo.findPortal(tx, bridgeId, body.remote_id);
      const { roomId } = await this.rooms.ensurePortalRoom(tx, { roomId: existing, name: body.name, topic: body.topic ?? '', ownerId: botId, members });
      if (!existing) {
        await repo.insertPortal(tx, bridgeId, body.remote_id, roomId);
        await this.audit.record(tx, bridgeActor(bridgeId), { action: 'bridge.portal_create', target_type: 'room', target_id: roomId, detail: { remote_id: body.remote_id } });
      }
      return { room_id: roomId, created: !existing };
    });
  }
}

/** A bridge acting through its as_token (as its bot). */
function bridgeActor(bridgeId: string): Actor {
  return { user_id: null, via: `bridge:${bridgeId}`, ip: null, user_agent: null };
}

export interface GhostView {
  id: string;
  localpart: string;
  name: string;
  avatar_url: string | null;
}

function ghostView(row: GhostRow): GhostView {
  return { id: row.id, localpart: row.ghost_localpart, name: row.name, avatar_url: row.avatar_url };
}
