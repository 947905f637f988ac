/**
 * Presence: a user is online from their first open socket until `presence_grace_ms` after their last
 * one closes; they may set `online | away | busy | offline` and a status text themselves. `last_seen`
 * is kept. Presence is only visible to users who share a room with the user (and to the user), and
 * changes are pushed as `presence` events on the `user:<id>` topic of each such user.
 *
 * Each node counts its own sockets; with several nodes, `PresenceCluster` tells whether another node
 * still holds one, so a user goes offline only when their last socket in the cluster closes.
 */
import type { Logger } from 'pino';
import type { Database } from '../../db/database.js';
import { AppError } from '../../errors.js';
import { backoffDelay } from '../../lib/backoff.js';
import type { PubSub } from '../../events/pubsub.js';
import type { RoomsService } from '../rooms/rooms.service.js';
import { LocalPresenceCluster, type PresenceCluster } from './presence-cluster.js';
import { presenceRepository as repo, type PresenceRow } from './presence.repository.js';

export type PresenceStatus = 'online' | 'away' | 'busy' | 'offline';

export interface PresenceView {
  user_id: string;
  status: PresenceStatus;
  status_text: string;
  last_seen: string | null;
}

/** Told of every presence change this node makes (federation sends its users' changes on). */
export type PresenceListener = (userId: string, view: PresenceView) => void;

export class PresenceService {
  private readonly sockets = new Map<string, number>();
  private readonly listeners: PresenceListener[] = [];
  private readonly offlineTimers = new Map<string, NodeJS.Timeout>();
  /** Automatic changes (online at the first socket, offline after the last) that failed, to try again. */
  private readonly retryTimers = new Map<string, NodeJS.Timeout>();

  constructor(
    private readonly db: Database,
    private readonly rooms: RoomsService,
    private readonly pubsub: PubSub,
    private readonly graceMs: number,
    private readonly log: Logger,
    private readonly cluster: PresenceCluster = new LocalPresenceCluster(),
  ) {}

  /** A socket of the user opened. The first one sets them online. */
  async connected(userId: string): Promise<void> {
    const n = (this.sockets.get(userId) ?? 0) + 1;
    this.sockets.set(userId, n);
    await this.cluster.setLocalCount(userId, n).catch((err) => this.log.warn({ err, userId }, 'presence cluster update failed'));
    const timer = this.offlineTimers.get(userId);
    if (timer) {
      clearTimeout(timer);
      this.offlineTimers.delete(userId);
      return; // never went offline
    }
    if (n === 1) await this.set(userId, 'online', undefined, { onlyIfOffline: true }).catch((err) => this.retryLater(userId, err, 1));
  }

  /** A socket closed. After the last one, and the grace period, the user goes offline. */
  disconnected(userId: string): void {
    const n = (this.sockets.get(userId) ?? 1) - 1;
    this.cluster.setLocalCount(userId, n).catch((err) => this.log.warn({ err, userId }, 'presence cluster update failed'));
    if (n > 0) {
      this.sockets.set(userId, n);
      return;
    }
    this.sockets.delete(userId);
    const goOffline = () => {
      this.offlineTimers.delete(userId);
      this.reconcile(userId, 1);
    };
    if (this.graceMs === 0) return goOffline();
    this.offlineTimers.set(userId, setTimeout(goOffline, this.graceMs).unref());
  }

  /**
   * Brings the stored presence in line with the sockets: online (if it was offline) while one is
   * open, offline once none is, here or on another node.
   * @param attempt counts the tries, for the backoff of the next one (see `retryLater`).
   */
  private reconcile(userId: string, attempt: number): void {
    clearTimeout(this.retryTimers.get(userId));
    this.retryTimers.delete(userId);
    const change = this.sockets.has(userId)
      ? this.set(userId, 'online', undefined, { onlyIfOffline: true })
      : this.cluster.othersHaveSockets(userId).then((elsewhere) => (elsewhere || this.sockets.has(userId) ? undefined : this.set(userId, 'offline')));
    change.catch((err) => this.retryLater(userId, err, attempt + 1));
  }

  /**
   * An automatic change failed (the database away): tried again with backoff (0.5 s doubling, at most
   * 30 s) until it succeeds, so nobody stays online for good after an outage. A pending grace period
   * does it instead.
   */
  private retryLater(userId: string, err: unknown, attempt: number): void {
    const delay = backoffDelay(attempt, { baseMs: 500, maxMs: 30_000 });
    this.log.warn({ err, userId, retry_in_ms: delay }, 'presence update failed; retrying');
    clearTimeout(this.retryTimers.get(userId));
    this.retryTimers.set(
      userId,
      setTimeout(() => {
        this.retryTimers.delete(userId);
        if (!this.offlineTimers.has(userId)) this.reconcile(userId, attempt);
      }, delay).unref(),
    );
  }

  /** Whether the user has a socket open on this node or, with several nodes, on another live one. */
  async hasOpenSocket(userId: string): Promise<boolean> {
    return this.sockets.has(userId) || (await this.cluster.othersHaveSockets(userId));
  }

  /**
   * For a hub that is the only node (no Redis): at start no socket is open, so nobody is online. Resets
   * everyone a crash, or a stop within the grace period, left online, keeping `last_seen`.
   * @returns how many users were reset.
   */
  async resetAtStart(): Promise<number> {
    return repo.resetAll(this.db);
  }

  /** Stops pending offline and retry timers and leaves the cluster. */
  async close(): Promise<void> {
    for (const timer of [...this.offlineTimers.values(), ...this.retryTimers.values()]) clearTimeout(timer);
    this.offlineTimers.clear();
    this.retryTimers.clear();
    await this.cluster.close();
  }

  /** Calls `listener` after each presence change made on this node, once it is stored and published. */
  onChange(listener: PresenceListener): void {
    this.listeners.push(listener);
  }

  /** Sets the caller's status (and optionally status text). */
  async update(userId: string, status: PresenceStatus, statusText?: string): Promise<PresenceView> {
    return (await this.set(userId, status, statusText))!;
  }

  /**
   * A user's presence, when the viewer shares a room with them (or is them).
   * @throws AppError INVALID_USER (404) otherwise, so presence does not reveal who exists.
   */
  async get(viewerId: string, userId: string): Promise<PresenceView> {
    const [found] = await this.query(viewerId, [userId]);
    if (!found) throw new AppError('INVALID_USER', 'No such user among your rooms');
    return found;
  }

  /** Presence of those of `userIds` the viewer may see; the others are left out. */
  async query(viewerId: string, userIds: string[]): Promise<PresenceView[]> {
    const visible = await this.rooms.sharingARoomWith(viewerId, userIds);
    return visible.length ? (await repo.get(this.db, visible)).map(view) : [];
  }

  private async set(userId: string, status: PresenceStatus, statusText?: string, opts: { onlyIfOffline?: boolean } = {}) {
    const row = await repo.set(this.db, userId, status, statusText, opts.onlyIfOffline ?? false);
    if (!row) return null;
    const event = { type: 'presence', ...view(row) };
    const watchers = await this.rooms.coMemberIds(userId);
    await Promise.all(watchers.map((id) => this.pubsub.publish(`user:${id}`, event)));
    for (const listener of this.listeners) listener(userId, view(row));
    return view(row);
  }
}

function view(r: PresenceRow): PresenceView {
  return { user_id: r.user_id, status: r.status, status_text: r.status_text, last_seen: r.last_seen ? new Date(r.last_seen).toISOString() : null };
}
