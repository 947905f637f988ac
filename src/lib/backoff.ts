/**
 * The one retry schedule of the hub and the bridges: exponential backoff with jitter. Every follower
 * that retries (bridge transaction pushers, the search indexer, the bridge kit's queue and its calls to
 * the hub, connectors) takes its delays from here.
 */

export interface BackoffOptions {
  /** Delay before the first retry, ms (default 250). */
  baseMs?: number;
  /** Longest delay, ms. */
  maxMs: number;
  /** Spread around the delay, as a fraction (default 0.2: ±20 %), so retrying peers do not move in step. */
  jitter?: number;
}

/**
 * The delay before retry number `attempt` (1 for the first retry): `baseMs · 2^(attempt-1)`, capped at
 * `maxMs`, then spread by ±`jitter`.
 * @returns milliseconds, a whole number ≥ 0.
 */
export function backoffDelay(attempt: number, opts: BackoffOptions): number {
  const base = opts.baseMs ?? 250;
  const jitter = opts.jitter ?? 0.2;
  const exponent = Math.min(Math.max(attempt, 1) - 1, 30);
  const delay = Math.min(opts.maxMs, base * 2 ** exponent);
  return Math.max(0, Math.round(delay * (1 - jitter + Math.random() * 2 * jitter)));
}
