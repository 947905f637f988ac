/**
 * Users: profiles (read, search, the caller's own), and the one way other modules create and change
 * user rows: accounts (auth), bots (agents), ghosts (bridges), admin flags and deactivation (admin).
 * Methods taking a `Queryable` run inside the caller's transaction.
 */
import type { Database, Queryable } from '../../db/database.js';
import { AppError } from '../../errors.js';
import { usersRepository as repo, type GhostRow, type UserRow } from './users.repository.js';
import { publicUser, selfUser } from './users.view.js';

/**
 * Runs a change of user rows in a stream transaction and announces the profile of the user
 * `changedUserId` names to that user's rooms (`RoomsService.changeProfile`).
 */
export type ProfileChanges = <T>(change: (tx: Queryable) => Promise<T>, changedUserId: (result: T) => string | null) => Promise<T>;

export class UsersService {
  private profileChanges?: ProfileChanges;

  /** `serverName`: this hub's `federation.server_name`, the domain of local users' addresses. */
  constructor(
    private readonly db: Database,
    readonly serverName: string,
  ) {}

  /**
   * Set once by the hub (rooms depend on users, so not a constructor argument): how a change of a
   * name or avatar reaches the user's rooms. Without it (the CLI) such changes throw.
   */
  announceProfilesThrough(changes: ProfileChanges): void {
    this.profileChanges = changes;
  }

  private changeProfile<T>(change: (tx: Queryable) => Promise<T>, changedUserId: (result: T) => string | null): Promise<T> {
    if (!this.profileChanges) throw new Error('UsersService: profile changes need the hub (announceProfilesThrough)');
    return this.profileChanges(change, changedUserId);
  }

  /** The public view of a row (with its address). */
  view(u: UserRow) {
    return publicUser(u, this.serverName);
  }

  /** The self view of a row (with its address, email and admin flag). */
  selfView(u: UserRow) {
    return selfUser(u, this.serverName);
  }

  /** @throws AppError INVALID_USER (404) when unknown or deactivated. */
  async get(id: string) {
    const user = await repo.find(this.db, id);
    if (!user || user.deactivated_at) throw new AppError('INVALID_USER', 'User not found');
    return publicUser(user, this.serverName);
  }

  /** @throws AppError INVALID_USER (404). */
  async me(id: string) {
    const user = await repo.find(this.db, id);
    if (!user) throw new AppError('INVALID_USER', 'User not found');
    return selfUser(user, this.serverName);
  }

  /** Updates the caller's name and/or avatar URL; either appends `room.updated` to each of their rooms. */
  async updateMe(id: string, patch: { name?: string; avatar_url?: string | null }) {
    const announce = patch.name !== undefined || patch.avatar_url !== undefined;
    return this.selfView(await this.changeProfile((tx) => repo.updateProfile(tx, id, { ...patch, name: patch.name?.trim() }), (u) => (announce ? u.id : null)));
  }

  /**
   * Users whose name starts with `q` or has a word starting with it (case-insensitive), or whose email
   * is exactly `q`: a whole address finds its owner, a fragment never probes which addresses exist.
   */
  async search(q: string, limit: number) {
    return (await repo.search(this.db, q, limit)).map((u) => this.view(u));
  }

  /** The user row (deactivated or not), or null. */
  find(q: Queryable, id: string): Promise<UserRow | null> {
    return repo.find(q, id);
  }

  findByEmail(email: string): Promise<UserRow | null> {
    return repo.findByEmail(this.db, email);
  }

  /**
   * Creates an account. `email` must be normalised; `username` (optional) must match [a-z0-9._-]{1,32},
   * else one is derived from the email's local part. Runs in the caller's transaction `q`.
   * @returns null when the email is taken.
   * @throws AppError USERNAME_TAKEN (409) when the given username is taken.
   */
  async createAccount(q: Queryable, u: { email: string; name: string; passwordHash: string; username?: string }): Promise<UserRow | null> {
    try {
      return await repo.insert(q, u);
    } catch (err) {
      // A derived name raced with another registration: the caller's transaction is aborted, so say so plainly.
      if ((err as { constraint?: string }).constraint === 'users_username') throw new AppError('USERNAME_TAKEN', u.username ? 'This username is taken' : 'Username collision; try again');
      throw err;
    }
  }

  /** The user with this username (`server` null: of this hub; else a shadow user of that hub), or null. */
  findByUsername(username: string, server: string | null): Promise<UserRow | null> {
    return repo.findByUsername(this.db, username, server);
  }

  /**
   * Creates (or renames) the shadow user of `@username:server`, a user of another hub; a rename
   * appends `room.updated` to each of its rooms.
   */
  upsertShadow(s: { server: string; username: string; name: string }): Promise<UserRow> {
    return this.changeProfile((tx) => repo.upsertShadow(tx, s), (u) => (u.renamed ? u.id : null));
  }

  /** The rows of `ids` (any state), in no particular order. */
  findMany(ids: string[]): Promise<UserRow[]> {
    return repo.findMany(this.db, ids);
  }

  /** Creates a bot user (no email, no password). */
  createBot(q: Queryable, name: string): Promise<UserRow> {
    return repo.insertBot(q, name);
  }

  /**
   * Creates a bridge ghost, or updates its name and avatar (`avatarUrl` undefined keeps it); a change
   * of either appends `room.updated` to each of its rooms, an upsert that changes nothing appends nothing.
   * @returns null when the localpart belongs to another bridge.
   */
  upsertGhost(g: { bridgeId: string; localpart: string; name: string; avatarUrl: string | null | undefined }): Promise<GhostRow | null> {
    return this.changeProfile((tx) => repo.upsertGhost(tx, g), (u) => (u?.renamed ? u.id : null));
  }

  /** Those of `ids` that exist and are not deactivated. */
  activeIds(ids: string[]): Promise<string[]> {
    return repo.activeIds(this.db, ids);
  }

  /**
   * @throws AppError INVALID_USER (404) naming the first of `ids` that is unknown or deactivated.
   */
  async requireActive(ids: string[]): Promise<void> {
    const existing = new Set(await repo.activeIds(this.db, ids));
    const missing = ids.find((id) => !existing.has(id));
    if (missing) throw new AppError('INVALID_USER', `Unknown user: ${missing}`);
  }

  /** Those of `ids` that are users (bot or ghosts) of bridge `bridgeId`. */
  bridgeUsersAmong(bridgeId: string, ids: string[]): Promise<string[]> {
    return repo.bridgeUsersAmong(this.db, bridgeId, ids);
  }

  /** A page of users for admins (deactivated included), newest first: `{rows, total}`. */
  page(f: { q?: string; limit: number; offset: number }): Promise<{ rows: UserRow[]; total: number }> {
    return repo.page(this.db, f);
  }

  setAdmin(q: Queryable, id: string): Promise<UserRow> {
    return repo.setAdmin(q, id);
  }

  /** Sets `deactivated_at` (kept when already set). @returns the user, or null when unknown. */
  deactivate(q: Queryable, id: string): Promise<UserRow | null> {
    return repo.deactivate(q, id);
  }

  counts(): Promise<{ users: number; deactivated_users: number }> {
    return repo.counts(this.db);
  }
}
