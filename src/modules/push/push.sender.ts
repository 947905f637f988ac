/**
 * The sender: takes due notifications from `push_deliveries` (claimed with a lease, so nodes share
 * the queue without sending one twice) and sends each to its subscription:
 *
 * - Web Push (RFC 8030) with the `web-push` library: the payload encrypted for the subscription's
 *   keys (RFC 8291, aes128gcm), a VAPID JWT (RFC 8292), `TTL` = push.ttl_s, `Urgency: high`, and a
 *   `Topic` derived from the message id, so a repeat replaces an undelivered copy. 404 and 410 mean
 *   the subscription is gone: it is dropped.
 * - An HTTP pusher: `POST <gateway url>` with the notification JSON of the Matrix push gateway API
 *   (https://spec.matrix.org/latest/push-gateway-api/#post_matrixpushv1notify); pushkeys the gateway
 *   lists in `rejected` are dropped.
 *
 * 429, 5xx and network errors are retried on the shared backoff (src/lib/backoff.ts, from 250 ms up
 * to push.retry_max_ms; a longer Retry-After wins) until push.max_attempts; other answers drop the
 * notification. A notification is deleted once sent, so at worst a crash between the send and the
 * delete repeats it once (at least once; the Topic and the gateway's event_id let the far side
 * collapse the repeat).
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import https from 'node:https';
import tls from 'node:tls';
import type { Logger } from 'pino';
import webpush, { WebPushError } from 'web-push';
import type { Config } from '../../config/schema.js';
import type { Database } from '../../db/database.js';
import { Follower } from '../../events/follower.js';
import { backoffDelay } from '../../lib/backoff.js';
import type { Notification } from './push.notifier.js';
import { pushRepository as repo, type SubscriptionRow } from './push.repository.js';
import type { VapidKeys } from './push.service.js';

const CLAIM = 20;
const LEASE_MS = 60_000;
const SEND_TIMEOUT_MS = 15_000;

/** What became of one send. */
type Outcome = { kind: 'sent' } | { kind: 'gone' } | { kind: 'retry'; afterMs?: number; why: string } | { kind: 'drop'; why: string };

export class PushSender {
  private readonly follower: Follower;
  private readonly agent?: https.Agent;
  private timer?: NodeJS.Timeout;
  private readonly abort = new AbortController();

  constructor(
    private readonly db: Database,
    private readonly config: Config,
    private readonly vapid: VapidKeys,
    private readonly log: Logger,
  ) {
    this.follower = new Follower({ name: 'push sender', log, step: () => this.step(), retry: { baseMs: 250, maxMs: 30_000 } });
    if (config.push.ca_file) this.agent = new https.Agent({ ca: [...tls.rootCertificates, fs.readFileSync(config.push.ca_file, 'utf8')] });
  }

  wake(): void {
    this.follower.wake();
  }

  async stop(): Promise<void> {
    clearTimeout(this.timer);
    this.abort.abort();
    await this.follower.stop();
  }

  /** Sends one claimed batch. @returns true when more may be due. */
  private async step(): Promise<boolean> {
    const batch = await repo.claimDue(this.db, CLAIM, LEASE_MS);
    await Promise.all(
      batch.map(async (d) => {
        const outcome = await this.send(d.subscription, d.payload as unknown as Notification).catch((err): Outcome => ({ kind: 'retry', why: String(err?.message ?? err) }));
        if (outcome.kind === 'sent') return repo.deleteDelivery(this.db, d.id);
        if (outcome.kind === 'gone') return repo.dropSubscription(this.db, d.subscription_id);
        if (outcome.kind === 'retry' && d.attempts < this.config.push.max_attempts) {
          const delay = Math.max(outcome.afterMs ?? 0, backoffDelay(d.attempts, { baseMs: 250, maxMs: this.config.push.retry_max_ms }));
          return repo.retryLater(this.db, d.id, delay);
        }
        this.log.warn({ subscription: d.subscription_id, attempts: d.attempts, why: outcome.why }, 'push notification dropped');
        return repo.deleteDelivery(this.db, d.id);
      }),
    );
    if (batch.length === CLAIM) return true;
    await this.scheduleNext();
    return false;
  }

  /** Wakes again when the next retry is due. */
  private async scheduleNext(): Promise<void> {
    const ms = await repo.msUntilNextDue(this.db);
    clearTimeout(this.timer);
    if (ms === null || this.follower.isStopped) return;
    this.timer = setTimeout(() => this.wake(), Math.min(ms + 5, 2 ** 31 - 1));
    this.timer.unref();
  }

  private send(s: SubscriptionRow, n: Notification): Promise<Outcome> {
    return s.kind === 'webpush' ? this.sendWebPush(s, n) : this.sendToGateway(s, n);
  }

  private async sendWebPush(s: SubscriptionRow, n: Notification): Promise<Outcome> {
    try {
      await webpush.sendNotification({ endpoint: s.url, keys: { p256dh: s.p256dh!, auth: s.auth! } }, JSON.stringify(webPushPayload(n)), {
        vapidDetails: { subject: this.config.push.vapid_subject, publicKey: this.vapid.publicKey, privateKey: this.vapid.privateKey },
        TTL: this.config.push.ttl_s,
        urgency: 'high',
        topic: topicFor(n.message_id),
        timeout: SEND_TIMEOUT_MS,
        ...(this.agent ? { agent: this.agent } : {}),
      });
      return { kind: 'sent' };
    } catch (err) {
      if (!(err instanceof WebPushError)) throw err;
      return outcomeOf(err.statusCode, err.headers?.['retry-after']);
    }
  }

  private async sendToGateway(s: SubscriptionRow, n: Notification): Promise<Outcome> {
    const res = await fetch(s.url, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(gatewayPayload(n, s)),
      signal: AbortSignal.any([this.abort.signal, AbortSignal.timeout(SEND_TIMEOUT_MS)]),
    });
    const body = (await res.json().catch(() => null)) as { rejected?: unknown } | null;
    if (!res.ok) return outcomeOf(res.status, res.headers.get('retry-after') ?? undefined);
    const rejected = Array.isArray(body?.rejected) ? body.rejected.filter((k): k is string => typeof k === 'string') : [];
    if (rejected.length) await repo.dropPushkeys(this.db, s.app_id!, rejected);
    return rejected.includes(s.pushkey!) ? { kind: 'gone' } : { kind: 'sent' };
  }
}

/** The outcome of an error status (RFC 8030 §8.3: 404/410 gone; 429 and 5xx: try later). */
function outcomeOf(status: number, retryAfter: string | undefined): Outcome {
  if (status === 404 || status === 410) return { kind: 'gone' };
  if (status === 429 || status >= 500) {
    const seconds = Number(retryAfter);
    return { kind: 'retry', why: `HTTP ${status}`, ...(Number.isFinite(seconds) && seconds > 0 ? { afterMs: seconds * 1000 } : {}) };
  }
  return { kind: 'drop', why: `HTTP ${status}` };
}

/** A Web Push `Topic` (RFC 8030 §5.4: at most 32 base64url characters) for a message. */
function topicFor(messageId: string): string {
  return crypto.createHash('sha256').update(messageId).digest('base64url').slice(0, 32);
}

/** The JSON a browser's service worker gets (docs/PUSH.md). */
export function webPushPayload(n: Notification): Record<string, unknown> {
  return { type: 'message', ...n };
}

/**
 * The body of `POST /_matrix/push/v1/notify` (https://spec.matrix.org/latest/push-gateway-api/):
 * for an encrypted room only ids, the priority and the device (the spec's `event_id_only` format).
 */
export function gatewayPayload(n: Notification, s: SubscriptionRow): { notification: Record<string, unknown> } {
  const device = { app_id: s.app_id, pushkey: s.pushkey, pushkey_ts: Math.floor(new Date(s.created_at).getTime() / 1000), data: s.data, tweaks: { sound: 'default' } };
  const ids = { event_id: n.message_id, room_id: n.room_id, prio: 'high', devices: [device] };
  if (n.encrypted) return { notification: ids };
  return {
    notification: {
      ...ids,
      type: 'm.room.message',
      sender: n.sender_id,
      sender_display_name: n.sender_name,
      ...(n.room_name ? { room_name: n.room_name } : {}),
      content: { msgtype: 'm.text', body: n.body ?? '' },
      switchboard: { reason: n.reason, room_type: n.room_type, stream_position: n.stream_position },
    },
  };
}
