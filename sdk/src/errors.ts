import type { ErrorCode } from './types.js';

/** A user's E2EE device: the user and its Signal device id. */
export interface DeviceRef {
  user_id: string;
  device_id: number;
}

/** An error answer of the hub: its stable `code` (src/errors.ts in the hub), message and HTTP status (0: no answer). */
export class SwitchboardError extends Error {
  constructor(
    readonly code: ErrorCode | 'NETWORK',
    message: string,
    readonly status: number,
    /** E2EE device-list errors: `missing`/`extra` (MISMATCHED_DEVICES), `stale` (STALE_DEVICES). */
    readonly devices: { missing?: DeviceRef[]; extra?: DeviceRef[]; stale?: DeviceRef[] } = {},
  ) {
    super(message);
    this.name = 'SwitchboardError';
  }

  /** From an `{"error":{"code","message"}}` body (anything else becomes `INTERNAL` with the status). */
  static fromBody(body: unknown, status: number): SwitchboardError {
    const e = (body as { error?: { code?: ErrorCode; message?: string; missing?: DeviceRef[]; extra?: DeviceRef[]; stale?: DeviceRef[] } } | null)?.error;
    return new SwitchboardError(e?.code ?? 'INTERNAL', e?.message ?? `HTTP ${status}`, status, { missing: e?.missing, extra: e?.extra, stale: e?.stale });
  }
}
