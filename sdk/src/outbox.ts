/**
 * Messages written but not yet acknowledged by the hub (`message.sent`). Each has a `txn_id` from the
 * start, and is sent again with that same `txn_id` on every new socket until acknowledged, so a send
 * that reached the hub before the socket dropped is stored once (the hub answers `duplicate: true`).
 * Sends go out in the order they were written.
 */
import type { SendFrame } from './events.js';
import type { ErrorCode } from './types.js';

export interface OutboxItem {
  txn_id: string;
  room_id: string;
  /** The text as written (shown while pending, even when the frame carries an envelope instead). */
  content: string;
  reply_to?: string;
  attachments?: string[];
  /** The frame to send (after the E2EE layer, if any, had its say). */
  frame: SendFrame;
  /** `queued`: waits for a socket; `sent`: on the current socket, not yet acknowledged; `failed`: refused. */
  state: 'queued' | 'sent' | 'failed';
  /** Why the hub refused it (`failed` only). */
  error?: { code: ErrorCode; message: string };
  /** When it was written, ms since the epoch. */
  created_ms: number;
}

export class Outbox {
  private readonly items: OutboxItem[] = [];
  private readonly listeners = new Set<() => void>();

  /** Every item, oldest first (failed ones included until discarded). */
  list(): readonly OutboxItem[] {
    return this.items;
  }

  forRoom(roomId: string): OutboxItem[] {
    return this.items.filter((i) => i.room_id === roomId);
  }

  add(item: OutboxItem): void {
    this.items.push(item);
    this.changed();
  }

  /** The queued items, oldest first, marked sent: the caller sends their frames now. */
  takeQueued(): OutboxItem[] {
    const queued = this.items.filter((i) => i.state === 'queued');
    for (const item of queued) item.state = 'sent';
    if (queued.length) this.changed();
    return queued;
  }

  /** The socket closed: whatever was sent without an answer is queued again (same `txn_id`). */
  requeueSent(): void {
    let any = false;
    for (const item of this.items) if (item.state === 'sent') (item.state = 'queued'), (any = true);
    if (any) this.changed();
  }

  /** `message.sent` arrived: the item is done. @returns it, or undefined for a txn_id not ours. */
  acknowledge(txnId: string): OutboxItem | undefined {
    const i = this.items.findIndex((item) => item.txn_id === txnId);
    if (i < 0) return undefined;
    const [item] = this.items.splice(i, 1);
    this.changed();
    return item;
  }

  /** The hub refused it for good (anything but `RATE_LIMITED`). */
  fail(txnId: string, error: { code: ErrorCode; message: string }): void {
    const item = this.items.find((i) => i.txn_id === txnId);
    if (!item) return;
    item.state = 'failed';
    item.error = error;
    this.changed();
  }

  /** Puts one item back in the queue (after a rate limit, or a retry of a failed one). */
  requeue(txnId: string): void {
    const item = this.items.find((i) => i.txn_id === txnId);
    if (!item) return;
    item.state = 'queued';
    item.error = undefined;
    this.changed();
  }

  /** Drops an item (a failed one the user gave up on). */
  discard(txnId: string): void {
    const i = this.items.findIndex((item) => item.txn_id === txnId);
    if (i >= 0) this.items.splice(i, 1), this.changed();
  }

  onChange(listener: () => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  private changed(): void {
    for (const l of this.listeners) l();
  }
}
