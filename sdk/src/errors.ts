import type { ErrorCode } from './types.js';

/** An error answer of the hub: its stable `code` (src/errors.ts in the hub), message and HTTP status (0: no answer). */
export class SwitchboardError extends Error {
  constructor(
    readonly code: ErrorCode | 'NETWORK',
    message: string,
    readonly status: number,
  ) {
    super(message);
    this.name = 'SwitchboardError';
  }

  /** From an `{"error":{"code","message"}}` body (anything else becomes `INTERNAL` with the status). */
  static fromBody(body: unknown, status: number): SwitchboardError {
    const e = (body as { error?: { code?: ErrorCode; message?: string } } | null)?.error;
    return new SwitchboardError(e?.code ?? 'INTERNAL', e?.message ?? `HTTP ${status}`, status);
  }
}
