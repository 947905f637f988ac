/** SQL for `users`: accounts, bots and bridge ghosts. The only module that writes the table. */
import type { Queryable } from '../../db/database.js';
import { containsPattern, escapeLike } from '../../db/like.js';

export interface UserRow {
  id: string;
  email: string | null;
  name: string;
  password_hash: string | null;
  avatar_url: string | null;
  is_admin: boolean;
  deactivated_at: Date | null;
  created_at: Date;
  /** Set on ghost users: the bridge that puppets them (see migrations/0006_bridges.sql). */
  bridge_id: string | null;
  /** Unique per hub (per `server` for shadow users), [a-z0-9._-] (migrations/0012_federation.sql). */
  username: string;
  /** The peer's server_name on shadow users (users of another hub); null for users of this hub. */
  server: string | null;
}

export interface GhostRow {
  id: string;
  name: string;
  avatar_url: string | null;
  bridge_id: string;
  ghost_localpart: string;
  created_at: Date;
  /** True when this upsert created the row (PostgreSQL: xmax is 0 for a fresh insert). */
  inserted: boolean;
  /** True when this upsert changed the name or avatar of a row that existed. */
  renamed: boolean;
}

export const usersRepository = {
  /**
   * An account with email and password hash. Its username is `username` when given, else the first
   * free one derived from the email's local part (`bob`, `bob2`, ...; migration 0012's functions).
   * @returns null when the email is taken.
   * @throws a unique violation (23505, constraint users_username) when `username` is taken.
   */
  async insert(q: Queryable, u: { email: string; name: string; passwordHash: string; username?: string }): Promise<UserRow | null> {
    const { rows } = await q.query<UserRow>(
      `INSERT INTO users (email, name, password_hash, username)
       VALUES ($1, $2, $3, COALESCE($4, switchboard_free_username(switchboard_username_base(split_part($1, '@', 1)))))
       ON CONFLICT (email) DO NOTHING RETURNING *`,
      [u.email, u.name, u.passwordHash, u.username ?? null],
    );
    return rows[0] ?? null;
  },

  /** A bot: a user without email or password, so it can only act through agent tokens. */
  async insertBot(q: Queryable, name: string): Promise<UserRow> {
    const { rows } = await q.query<UserRow>(
      'INSERT INTO users (name, username) VALUES ($1, switchboard_free_username(switchboard_username_base($1))) RETURNING *',
      [name],
    );
    return rows[0];
  },

  /**
   * Creates the shadow user of a remote user (no email, no password), or renames it (`renamed`);
   * a row already so named is left as it is.
   */
  async upsertShadow(q: Queryable, s: { server: string; username: string; name: string }): Promise<UserRow & { renamed: boolean }> {
    const { rows } = await q.query<UserRow & { renamed: boolean }>(
      `INSERT INTO users (name, username, server) VALUES ($1, $2, $3)
       ON CONFLICT (COALESCE(server, ''), username) DO UPDATE SET name = EXCLUDED.name
         WHERE users.name IS DISTINCT FROM EXCLUDED.name
       RETURNING *, (xmax <> 0) AS renamed`,
      [s.name, s.username, s.server],
    );
    if (rows[0]) return rows[0];
    const same = await q.query<UserRow & { renamed: boolean }>('SELECT *, false AS renamed FROM users WHERE server = $1 AND username = $2', [s.server, s.username]);
    return same.rows[0];
  },

  /** The user with this username on `server` (null: this hub), or null. */
  async findByUsername(q: Queryable, username: string, server: string | null): Promise<UserRow | null> {
    const { rows } = await q.query<UserRow>(`SELECT * FROM users WHERE COALESCE(server, '') = COALESCE($2, '') AND username = $1`, [username, server]);
    return rows[0] ?? null;
  },

  /** The users among `ids` (any state). */
  async findMany(q: Queryable, ids: string[]): Promise<UserRow[]> {
    const { rows } = await q.query<UserRow>('SELECT * FROM users WHERE id = ANY($1::uuid[])', [ids]);
    return rows;
  },

  /**
   * Creates a ghost or updates its name and avatar (`avatarUrl` undefined: kept). A localpart owned
   * by another bridge is left alone.
   * @returns the ghost, or null when the localpart belongs to another bridge.
   */
  async upsertGhost(q: Queryable, g: { bridgeId: string; localpart: string; name: string; avatarUrl: string | null | undefined }): Promise<GhostRow | null> {
    const { rows } = await q.query<GhostRow>(
      `INSERT INTO users (name, avatar_url, bridge_id, ghost_localpart, username)
       VALUES ($1, $2, $3, $4, switchboard_free_username(switchboard_username_base($4)))
       ON CONFLICT (ghost_localpart) WHERE ghost_localpart IS NOT NULL DO UPDATE
         SET name = EXCLUDED.name, avatar_url = CASE WHEN $5 THEN EXCLUDED.avatar_url ELSE users.avatar_url END
         WHERE users.bridge_id = EXCLUDED.bridge_id
           AND (users.name IS DISTINCT FROM EXCLUDED.name OR ($5 AND users.avatar_url IS DISTINCT FROM EXCLUDED.avatar_url))
       RETURNING id, name, avatar_url, bridge_id, ghost_localpart, created_at, (xmax = 0) AS inserted, (xmax <> 0) AS renamed`,
      [g.name, g.avatarUrl ?? null, g.bridgeId, g.localpart, g.avatarUrl !== undefined],
    );
    if (rows[0]) return rows[0];
    // Unchanged, or the localpart is another bridge's.
    const same = await q.query<GhostRow>(
      `SELECT id, name, avatar_url, bridge_id, ghost_localpart, created_at, false AS inserted, false AS renamed
       FROM users WHERE ghost_localpart = $1 AND bridge_id = $2`,
      [g.localpart, g.bridgeId],
    );
    return same.rows[0] ?? null;
  },

  /** The user, deactivated or not. */
  async find(q: Queryable, id: string): Promise<UserRow | null> {
    const { rows } = await q.query<UserRow>('SELECT * FROM users WHERE id = $1', [id]);
    return rows[0] ?? null;
  },

  async findByEmail(q: Queryable, email: string): Promise<UserRow | null> {
    const { rows } = await q.query<UserRow>('SELECT * FROM users WHERE email = $1', [email]);
    return rows[0] ?? null;
  },

  /** Those of `ids` that exist and are not deactivated. */
  async activeIds(q: Queryable, ids: string[]): Promise<string[]> {
    const { rows } = await q.query<{ id: string }>('SELECT id FROM users WHERE id = ANY($1::uuid[]) AND deactivated_at IS NULL', [ids]);
    return rows.map((r) => r.id);
  },

  /** Those of `ids` that are users (bot or ghosts) of bridge `bridgeId`. */
  async bridgeUsersAmong(q: Queryable, bridgeId: string, ids: string[]): Promise<string[]> {
    const { rows } = await q.query<{ id: string }>('SELECT id FROM users WHERE id = ANY($1::uuid[]) AND bridge_id = $2', [ids, bridgeId]);
    return rows.map((r) => r.id);
  },

  async updateProfile(q: Queryable, id: string, patch: { name?: string; avatar_url?: string | null }): Promise<UserRow> {
    const { rows } = await q.query<UserRow>(
      `UPDATE users SET name = COALESCE($2, name), avatar_url = CASE WHEN $3 THEN $4 ELSE avatar_url END WHERE id = $1 RETURNING *`,
      [id, patch.name ?? null, patch.avatar_url !== undefined, patch.avatar_url ?? null],
    );
    return rows[0];
  },

  /**
   * Active users whose name starts with `q` or has a word starting with it (case-insensitive), or
   * whose email is exactly `q`.
   */
  async search(q: Queryable, text: string, limit: number): Promise<UserRow[]> {
    const pattern = escapeLike(text);
    const { rows } = await q.query<UserRow>(
      `SELECT * FROM users WHERE deactivated_at IS NULL
         AND (lower(name) LIKE $1 || '%' OR lower(name) LIKE '% ' || $1 || '%' OR email = lower($3))
       ORDER BY name LIMIT $2`,
      [pattern, limit, text.trim()],
    );
    return rows;
  },

  /** A page of users (deactivated ones included), newest first, optionally matching `q` in name or email; `total` counts all matches. */
  async page(q: Queryable, f: { q?: string; limit: number; offset: number }): Promise<{ rows: UserRow[]; total: number }> {
    const where = `($1::text IS NULL OR lower(name) LIKE $1 OR email LIKE $1)`;
    const pattern = f.q ? containsPattern(f.q) : null;
    const { rows } = await q.query<UserRow>(`SELECT * FROM users WHERE ${where} ORDER BY created_at DESC, id LIMIT $2 OFFSET $3`, [pattern, f.limit, f.offset]);
    const count = await q.query<{ n: number }>(`SELECT count(*)::int AS n FROM users WHERE ${where}`, [pattern]);
    return { rows, total: count.rows[0].n };
  },

  async setAdmin(q: Queryable, id: string): Promise<UserRow> {
    const { rows } = await q.query<UserRow>('UPDATE users SET is_admin = true WHERE id = $1 RETURNING *', [id]);
    return rows[0];
  },

  /** Sets `deactivated_at` (kept when already set). @returns the user, or null when unknown. */
  async deactivate(q: Queryable, id: string): Promise<UserRow | null> {
    const { rows } = await q.query<UserRow>('UPDATE users SET deactivated_at = COALESCE(deactivated_at, now()) WHERE id = $1 RETURNING *', [id]);
    return rows[0] ?? null;
  },

  async counts(q: Queryable): Promise<{ users: number; deactivated_users: number }> {
    const { rows } = await q.query(
      'SELECT count(*)::int AS users, (count(*) FILTER (WHERE deactivated_at IS NOT NULL))::int AS deactivated_users FROM users',
    );
    return rows[0];
  },
};
