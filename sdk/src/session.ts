/**
 * A device session: the access token (a JWT that lives `expires_in` seconds) and the single-use
 * refresh token that `POST /api/auth/refresh` trades for the next pair. The access token is renewed
 * before it expires (`refreshMarginMs` ahead), once at a time; every new pair is handed to the
 * `SessionStore` so that a restarted client (a reloaded page) resumes the session.
 */
import type { SessionTokens } from './types.js';
import { SwitchboardError } from './errors.js';

/** A stored session: the tokens and when the access token expires (ms since the epoch). */
export interface StoredSession {
  tokens: SessionTokens;
  expires_at: number;
}

/** Where a session is kept between runs (the web client: localStorage). */
export interface SessionStore {
  load(): StoredSession | null | Promise<StoredSession | null>;
  save(session: StoredSession): void | Promise<void>;
  clear(): void | Promise<void>;
}

/** Keeps the session in memory only (the default: a bot that logs in at every start). */
export class MemorySessionStore implements SessionStore {
  private session: StoredSession | null = null;
  load(): StoredSession | null {
    return this.session;
  }
  save(session: StoredSession): void {
    this.session = session;
  }
  clear(): void {
    this.session = null;
  }
}

/** The Web Locks API where there is one (browsers): tabs sharing a stored session refresh one at a time. */
type LockManager = { request<T>(name: string, fn: () => Promise<T>): Promise<T> };
const locks = (globalThis as { navigator?: { locks?: LockManager } }).navigator?.locks;

export class AuthSession {
  private current: StoredSession;
  private refreshing: Promise<void> | null = null;
  private timer?: ReturnType<typeof setTimeout>;
  private ended = false;
  /** Called once when the session can no longer be refreshed (revoked, expired, reused): log in again. */
  onEnded?: (error: SwitchboardError) => void;

  constructor(
    private readonly baseUrl: string,
    private readonly fetchFn: typeof fetch,
    session: StoredSession,
    private readonly store: SessionStore,
    /** How long before expiry the access token is renewed, ms. */
    private readonly refreshMarginMs: number,
  ) {
    this.current = session;
    this.schedule();
  }

  /** A session from a register, login or refresh answer, timed from now. */
  static stored(tokens: SessionTokens, now = Date.now()): StoredSession {
    return { tokens, expires_at: now + tokens.expires_in * 1000 };
  }

  get tokens(): SessionTokens {
    return this.current.tokens;
  }

  /**
   * An access token valid for at least the refresh margin (refreshing first when needed).
   * @throws SwitchboardError when the session ended.
   */
  async accessToken(): Promise<string> {
    if (this.current.expires_at - Date.now() < this.refreshMarginMs) await this.refresh();
    return this.current.tokens.token;
  }

  /**
   * Trades the refresh token for a new pair (one call at a time; concurrent callers share it).
   * @throws SwitchboardError INVALID_REFRESH_TOKEN / REFRESH_TOKEN_REUSED (the session ended) or a network error.
   */
  refresh(): Promise<void> {
    if (this.ended) return Promise.reject(new SwitchboardError('UNAUTHORIZED', 'The session has ended', 401));
    this.refreshing ??= (locks ? locks.request('switchboard-refresh', () => this.doRefresh()) : this.doRefresh()).finally(() => {
      this.refreshing = null;
    });
    return this.refreshing;
  }

  /** Stops the refresh timer and forgets the stored session. */
  async end(): Promise<void> {
    this.ended = true;
    clearTimeout(this.timer);
    await this.store.clear();
  }

  private async doRefresh(): Promise<void> {
    // Another tab may have rotated the shared refresh token already: take its pair instead.
    const stored = await this.store.load();
    if (stored && stored.tokens.device_id === this.tokens.device_id && stored.tokens.refresh_token !== this.tokens.refresh_token) {
      this.current = stored;
      if (stored.expires_at - Date.now() >= this.refreshMarginMs) return this.schedule();
    }
    const res = await this.fetchFn(`${this.baseUrl}/api/auth/refresh`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ refresh_token: this.tokens.refresh_token }),
    });
    const body = await res.json().catch(() => null);
    if (!res.ok) {
      const error = SwitchboardError.fromBody(body, res.status);
      if (res.status === 401) {
        await this.end();
        this.onEnded?.(error);
      }
      throw error;
    }
    this.current = AuthSession.stored(body as SessionTokens);
    await this.store.save(this.current);
    this.schedule();
  }

  /** Renews the token a margin before it expires, so reconnects never wait for a refresh. */
  private schedule(): void {
    clearTimeout(this.timer);
    if (this.ended) return;
    const delay = Math.max(0, this.current.expires_at - Date.now() - this.refreshMarginMs);
    this.timer = setTimeout(() => this.refresh().catch(() => undefined), Math.min(delay, 2 ** 31 - 1));
    (this.timer as { unref?: () => void }).unref?.();
  }
}
