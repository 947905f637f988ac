/**
 * Agent tokens: long-lived, scoped bearer tokens for AI agents and bots. A token is `sbat_` plus 32
 * random bytes (base64url); only its sha256 is stored, and it is shown once, at creation. Tokens are
 * accepted only by the agent API (`/api/mcp/*`, `/mcp`), where the agent acts as the token's user and
 * sees only that user's rooms. Admins may create bot users (no email, no password) with a first token.
 */
import crypto from 'node:crypto';
import type { Database } from '../../db/database.js';
import { AppError } from '../../errors.js';
import type { AuthContext } from '../auth/auth.service.js';
import { hashToken } from '../auth/tokens.js';
import type { Actor, AuditService } from '../audit/audit.service.js';
import type { UsersService } from '../users/users.service.js';
import { agentsRepository as repo, type AgentTokenRow } from './agents.repository.js';
import type { Scope } from './agents.schemas.js';

export const AGENT_TOKEN_PREFIX = 'sbat_';

/** Who an agent request acts as, and what it may do. */
export interface AgentContext {
  userId: string;
  userName: string;
  tokenId: string;
  scopes: Scope[];
}

/**
 * `req.auth` for an agent request, so per-user limits (the send rate limit) count the agent as its
 * user. Agent requests have no device session: `deviceId` is the token's id.
 */
export function agentAuth(agent: AgentContext): AuthContext {
  return { userId: agent.userId, deviceId: agent.tokenId, userName: agent.userName };
}

export interface NewTokenInput {
  scopes: Scope[];
  /** Lifetime, seconds; none: never expires. */
  expires_in_s?: number;
}

function tokenView(t: AgentTokenRow) {
  return {
    id: t.id,
    user_id: t.user_id,
    name: t.name,
    scopes: t.scopes as Scope[],
    created_at: t.created_at.toISOString(),
    expires_at: t.expires_at?.toISOString() ?? null,
    last_used_at: t.last_used_at?.toISOString() ?? null,
  };
}

export type AgentTokenView = ReturnType<typeof tokenView>;

function newAgentToken(): { token: string; hash: string } {
  const token = AGENT_TOKEN_PREFIX + crypto.randomBytes(32).toString('base64url');
  return { token, hash: hashToken(token) };
}

export class AgentsService {
  constructor(
    private readonly db: Database,
    private readonly users: UsersService,
    private readonly audit: AuditService,
  ) {}

  /**
   * Creates a token acting as the caller.
   * @returns the token's listing fields plus `token`, the secret, which is never shown again.
   */
  async createToken(actor: Actor & { user_id: string }, body: NewTokenInput & { name: string }): Promise<AgentTokenView & { token: string }> {
    const { token, hash } = newAgentToken();
    return this.db.transaction(async (tx) => {
      const row = await repo.insertToken(tx, { userId: actor.user_id, createdBy: actor.user_id, name: body.name.trim(), hash, scopes: body.scopes, expiresInS: body.expires_in_s });
      await this.audit.record(tx, actor, { action: 'agent_token.create', target_type: 'agent_token', target_id: row.id, detail: { scopes: row.scopes } });
      return { ...tokenView(row), token };
    });
  }

  /** Tokens acting as the caller, and tokens the caller created for bots; newest first, without secrets. */
  async listTokens(userId: string): Promise<AgentTokenView[]> {
    return (await repo.listTokens(this.db, userId)).map(tokenView);
  }

  /**
   * Revokes (deletes) a token acting as the caller or created by the caller. It stops working at once
   * (a `wait_for_messages` call already waiting finishes its wait).
   * @throws AppError INVALID_AGENT_TOKEN (404).
   */
  async revokeToken(actor: Actor & { user_id: string }, tokenId: string): Promise<void> {
    await this.db.transaction(async (tx) => {
      if (!(await repo.deleteToken(tx, tokenId, actor.user_id))) throw new AppError('INVALID_AGENT_TOKEN', 'No such agent token');
      await this.audit.record(tx, actor, { action: 'agent_token.revoke', target_type: 'agent_token', target_id: tokenId });
    });
  }

  /**
   * Creates a bot user (no email, no password: it acts only through agent tokens) and its first token,
   * named after the bot, in one transaction. The admin acting (the caller must have checked they are
   * an admin) may list and revoke the bot's tokens.
   */
  async createBot(actor: Actor & { user_id: string }, body: NewTokenInput & { name: string }) {
    const { token, hash } = newAgentToken();
    return this.db.transaction(async (tx) => {
      const user = await this.users.createBot(tx, body.name.trim());
      const row = await repo.insertToken(tx, { userId: user.id, createdBy: actor.user_id, name: user.name, hash, scopes: body.scopes, expiresInS: body.expires_in_s });
      await this.audit.record(tx, actor, { action: 'bot.create', target_type: 'user', target_id: user.id, detail: { name: user.name, scopes: row.scopes } });
      return { user: { id: user.id, name: user.name }, token: { ...tokenView(row), token } };
    });
  }

  /**
   * Resolves an agent token to the user it acts as and its scopes.
   * @throws AppError UNAUTHORIZED (401: unknown or revoked token, deactivated user), TOKEN_EXPIRED (401).
   */
  async authenticate(token: string): Promise<AgentContext> {
    if (!token.startsWith(AGENT_TOKEN_PREFIX)) throw new AppError('UNAUTHORIZED', `Expected an agent token (${AGENT_TOKEN_PREFIX}…)`);
    const row = await repo.findByHash(this.db, hashToken(token));
    if (!row || row.deactivated_at) throw new AppError('UNAUTHORIZED', 'Unknown or revoked agent token');
    if (row.expires_at && row.expires_at.getTime() <= Date.now()) throw new AppError('TOKEN_EXPIRED', 'Agent token expired; create a new one');
    await repo.touch(this.db, row.id);
    return { userId: row.user_id, userName: row.user_name, tokenId: row.id, scopes: row.scopes as Scope[] };
  }

  /**
   * Authenticates an `Authorization: Bearer <agent token>` header value.
   * @throws AppError UNAUTHORIZED (401) when missing or not a bearer token, and as `authenticate`.
   */
  async authenticateHeader(header: string | undefined): Promise<AgentContext> {
    if (!header?.startsWith('Bearer ')) throw new AppError('UNAUTHORIZED', 'Missing agent token (Authorization: Bearer sbat_…)');
    return this.authenticate(header.slice(7));
  }
}
