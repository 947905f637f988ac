/** SQL for agent tokens and bot users. */
import type { Queryable } from '../../db/database.js';

export interface AgentTokenRow {
  id: string;
  user_id: string;
  created_by: string | null;
  name: string;
  scopes: string[];
  created_at: Date;
  expires_at: Date | null;
  last_used_at: Date | null;
}

/** A token looked up by hash, with the state of its user. */
export interface AgentTokenAuthRow extends AgentTokenRow {
  user_name: string;
  deactivated_at: Date | null;
}

const COLUMNS = 'id, user_id, created_by, name, scopes, created_at, expires_at, last_used_at';

export const agentsRepository = {
  async insertToken(
    q: Queryable,
    t: { userId: string; createdBy: string; name: string; hash: string; scopes: string[]; expiresInS?: number },
  ): Promise<AgentTokenRow> {
    const { rows } = await q.query<AgentTokenRow>(
      `INSERT INTO agent_tokens (user_id, created_by, name, token_hash, scopes, expires_at)
       VALUES ($1, $2, $3, $4, $5, CASE WHEN $6::int IS NULL THEN NULL ELSE now() + make_interval(secs => $6::int) END)
       RETURNING ${COLUMNS}`,
      [t.userId, t.createdBy, t.name, t.hash, t.scopes, t.expiresInS ?? null],
    );
    return rows[0];
  },

  /** Tokens that act as `userId` or that `userId` created (bots' tokens, for the admin who made them), newest first. */
  async listTokens(q: Queryable, userId: string): Promise<AgentTokenRow[]> {
    const { rows } = await q.query<AgentTokenRow>(
      `SELECT ${COLUMNS} FROM agent_tokens WHERE user_id = $1 OR created_by = $1 ORDER BY created_at DESC, id`,
      [userId],
    );
    return rows;
  },

  /** Deletes a token that acts as `userId` or that `userId` created. @returns whether one was deleted. */
  async deleteToken(q: Queryable, tokenId: string, userId: string): Promise<boolean> {
    const { rowCount } = await q.query('DELETE FROM agent_tokens WHERE id = $1 AND (user_id = $2 OR created_by = $2)', [tokenId, userId]);
    return (rowCount ?? 0) > 0;
  },

  async findByHash(q: Queryable, hash: string): Promise<AgentTokenAuthRow | null> {
    const { rows } = await q.query<AgentTokenAuthRow>(
      `SELECT t.id, t.user_id, t.created_by, t.name, t.scopes, t.created_at, t.expires_at, t.last_used_at,
              u.name AS user_name, u.deactivated_at
       FROM agent_tokens t JOIN users u ON u.id = t.user_id WHERE t.token_hash = $1`,
      [hash],
    );
    return rows[0] ?? null;
  },

  /** Records use, at most once a minute per token (listing shows it; it is not worth a write per call). */
  async touch(q: Queryable, tokenId: string): Promise<void> {
    await q.query(
      `UPDATE agent_tokens SET last_used_at = now() WHERE id = $1 AND (last_used_at IS NULL OR last_used_at < now() - interval '1 minute')`,
      [tokenId],
    );
  },
};
