/**
 * Push notifications (docs/PUSH.md): the subscriptions users register (Web Push for browsers, HTTP
 * pushers in the shape of Matrix's for mobile apps behind a push gateway such as Sygnal), per-member
 * room mutes, the VAPID key pair, and the two followers that do the work: the notifier
 * (./push.notifier.ts: room events → queued notifications) and the sender (./push.sender.ts:
 * queue → push services and gateways).
 */
import fs from 'node:fs';
import path from 'node:path';
import type { Static } from 'typebox';
import webpush from 'web-push';
import type { Logger } from 'pino';
import type { Config } from '../../config/schema.js';
import type { Database } from '../../db/database.js';
import { AppError } from '../../errors.js';
import type { EventStream } from '../../events/stream.js';
import type { AuthContext } from '../auth/auth.service.js';
import type { PresenceService } from '../presence/presence.service.js';
import type { RoomsService } from '../rooms/rooms.service.js';
import { PushNotifier } from './push.notifier.js';
import { pushRepository as repo, type SubscriptionRow } from './push.repository.js';
import type { Subscription, SubscriptionBody } from './push.schemas.js';
import { PushSender } from './push.sender.js';

export interface VapidKeys {
  publicKey: string;
  privateKey: string;
}

/**
 * The VAPID key pair (RFC 8292): `push.vapid_public_key` / `push.vapid_private_key` when set, else
 * `<data_dir>/vapid-keys.json`, generated (mode 0600) with a logged warning on first run.
 * @throws Error when only one of the two keys is configured.
 */
export function loadVapidKeys(config: Config, log?: Logger): VapidKeys {
  const { vapid_public_key: publicKey, vapid_private_key: privateKey } = config.push;
  if (publicKey || privateKey) {
    if (!publicKey || !privateKey) throw new Error('push.vapid_public_key and push.vapid_private_key must be set together');
    return { publicKey, privateKey };
  }
  const file = path.resolve(config.data_dir, 'vapid-keys.json');
  if (fs.existsSync(file)) return JSON.parse(fs.readFileSync(file, 'utf8'));
  fs.mkdirSync(path.dirname(file), { recursive: true });
  const keys = webpush.generateVAPIDKeys();
  fs.writeFileSync(file, JSON.stringify(keys) + '\n', { mode: 0o600 });
  log?.warn({ file }, 'generated a new VAPID key pair for Web Push; set push.vapid_* to share one across nodes');
  return keys;
}

function view(r: SubscriptionRow): Static<typeof Subscription> {
  return { id: r.id, kind: r.kind, url: r.url, app_id: r.app_id, pushkey: r.pushkey, device_id: r.device_id, created_at: new Date(r.created_at).toISOString() };
}

export class PushService {
  private readonly notifier: PushNotifier;
  private readonly sender: PushSender;
  readonly vapidPublicKey: string;

  constructor(
    private readonly db: Database,
    stream: EventStream,
    private readonly rooms: RoomsService,
    presence: PresenceService,
    private readonly config: Config,
    log: Logger,
  ) {
    const vapid = loadVapidKeys(config, log);
    this.vapidPublicKey = vapid.publicKey;
    this.sender = new PushSender(db, config, vapid, log);
    this.notifier = new PushNotifier(db, stream, rooms, presence, log, () => this.sender.wake());
  }

  /** Starts following the event log (from its end, the first time) and sending what is queued. */
  async start(): Promise<void> {
    await this.notifier.start();
    this.sender.wake();
  }

  async stop(): Promise<void> {
    await this.notifier.stop();
    await this.sender.stop();
  }

  /**
   * Registers a subscription for the caller's device session (see the route's description).
   * @throws AppError FORBIDDEN (403) for a gateway URL outside `push.gateway_urls`, VALIDATION_FAILED (400) for a Web Push
   * endpoint that is not https or a gateway URL that is not http(s).
   */
  async subscribe(auth: AuthContext, body: Static<typeof SubscriptionBody>): Promise<{ subscription: Static<typeof Subscription>; created: boolean }> {
    const url = body.kind === 'webpush' ? body.endpoint : body.url;
    // Push services are reached over TLS only (RFC 8030 §8); a gateway may sit on the hub's own network.
    if (!(body.kind === 'webpush' ? /^https:\/\//i : /^https?:\/\//i).test(url)) {
      throw new AppError('VALIDATION_FAILED', body.kind === 'webpush' ? 'A Web Push endpoint must be https' : 'The gateway URL must be http(s)');
    }
    if (body.kind === 'http' && this.config.push.gateway_urls.length > 0 && !this.config.push.gateway_urls.includes(url)) {
      throw new AppError('FORBIDDEN', 'This hub does not push to that gateway (push.gateway_urls)');
    }
    const key = body.kind === 'webpush' ? body.endpoint : `${body.app_id} ${body.pushkey}`;
    // A browser or phone now signed in as someone else: what was queued for the previous user is dropped with their registration.
    const { row, created } = await this.db.transaction(async (tx) => {
      await repo.releaseKey(tx, key, auth.userId);
      return repo.upsertSubscription(tx, {
        user_id: auth.userId,
        device_id: auth.deviceId,
        kind: body.kind,
        key,
        url,
        p256dh: body.kind === 'webpush' ? body.keys.p256dh : null,
        auth: body.kind === 'webpush' ? body.keys.auth : null,
        app_id: body.kind === 'http' ? body.app_id : null,
        pushkey: body.kind === 'http' ? body.pushkey : null,
        data: body.kind === 'http' ? (body.data ?? {}) : {},
      });
    });
    return { subscription: view(row), created };
  }

  async list(userId: string): Promise<Static<typeof Subscription>[]> {
    return (await repo.listSubscriptions(this.db, userId)).map(view);
  }

  /** @throws AppError NOT_FOUND (404) when the caller has no such subscription. */
  async unsubscribe(userId: string, id: string): Promise<void> {
    if (!(await repo.deleteSubscription(this.db, userId, id))) throw new AppError('NOT_FOUND', 'No such push subscription');
  }

  /** @throws AppError INVALID_ROOM (404), NOT_A_MEMBER (403). */
  async roomSetting(userId: string, roomId: string): Promise<{ room_id: string; muted: boolean }> {
    await this.rooms.requireMember(this.db, roomId, userId);
    return { room_id: roomId, muted: await repo.isMuted(this.db, roomId, userId) };
  }

  /** @throws AppError INVALID_ROOM (404), NOT_A_MEMBER (403). */
  async setRoomMuted(userId: string, roomId: string, muted: boolean): Promise<{ room_id: string; muted: boolean }> {
    await this.rooms.requireMember(this.db, roomId, userId);
    await repo.setMuted(this.db, roomId, userId, muted);
    return { room_id: roomId, muted };
  }
}
