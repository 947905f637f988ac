/**
 * Users: profiles (read, search, the caller's own), and the one way other modules create and change
 * user rows: accounts (auth), bots (agents), ghosts (bridges), admin flags and deactivation (admin).
 * Methods taking a `Queryable` run inside the caller's transaction.
 */
import type { Database, Queryable } from '../../db/database.js';
import { AppError } from '../../errors.js';
import { usersRepository as repo, type GhostRow, type UserRow } from './users.repository.js';
import { publicUser, selfUser } from './users.view.js';

export class UsersService {
  constructor(private readonly db: Database) {}

  /** @throws AppError INVALID_USER (404) when unknown or deactivated. */
  async get(id: string) {
    const user = await repo.find(this.db, id);
    if (!user || user.deactivated_at) throw new AppError('INVALID_USER', 'User not found');
    return publicUser(user);
  }

  /** @throws AppError INVALID_USER (404). */
  async me(id: string) {
    const user = await repo.find(this.db, id);
    if (!user) throw new AppError('INVALID_USER', 'User not found');
    return selfUser(user);
  }

  /** Updates the caller's name and/or avatar URL. */
  async updateMe(id: string, patch: { name?: string; avatar_url?: string | null }) {
    return selfUser(await repo.updateProfile(this.db, id, { ...patch, name: patch.name?.trim() }));
  }

  /**
   * Users whose name starts with `q` or has a word starting with it (case-insensitive), or whose email
   * is exactly `q`: a whole address finds its owner, a fragment never probes which addresses exist.
   */
  async search(q: string, limit: number) {
    return (await repo.search(this.db, q, limit)).map(publicUser);
  }

  /** The user row (deactivated or not), or null. */
  find(q: Queryable, id: string): Promise<UserRow | null> {
    return repo.find(q, id);
  }

  findByEmail(email: string): Promise<UserRow | null> {
    return repo.findByEmail(this.db, email);
  }

  /** Creates an account. `email` must be normalised. @returns null when the email is taken. */
  createAccount(q: Queryable, u: { email: string; name: string; passwordHash: string }): Promise<UserRow | null> {
    return repo.insert(q, u);
  }

  /** Creates a bot user (no email, no password). */
  createBot(q: Queryable, name: string): Promise<UserRow> {
    return repo.insertBot(q, name);
  }

  /**
   * Creates a bridge ghost, or updates its name and avatar (`avatarUrl` undefined keeps it).
   * @returns null when the localpart belongs to another bridge.
   */
  upsertGhost(g: { bridgeId: string; localpart: string; name: string; avatarUrl: string | null | undefined }): Promise<GhostRow | null> {
    return repo.upsertGhost(this.db, g);
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
