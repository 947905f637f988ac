/**
 * The order of one socket's frames. A `message.send` is handed to the writer as soon as every earlier
 * frame has been handed over (so sends reach the writer, and get stream positions, in frame order),
 * without waiting for earlier sends to commit: that is what lets a burst from one socket share a group
 * commit. Any other frame starts only when every earlier frame is done, so a `message.read` or a
 * reaction after a send sees it committed. Replies (acknowledgements, errors, pongs) are written in
 * frame order, whatever order the work finishes in.
 */

/** A frame's reply: the object to send, or null for none. */
export type Reply = object | null;

export class FramePipeline {
  /** Settles once the previous frame was handed over (a send) or done (any other frame). */
  private handedOver: Promise<unknown>;
  /** Settles once every frame so far is done. */
  private done: Promise<unknown>;
  /** The replies, written one after another in frame order. */
  private out: Promise<void> = Promise.resolve();

  /**
   * @param start settles when the socket is set up: no frame starts before.
   * @param write writes one reply to the socket.
   * @param onError a bug: the frame's work threw past its own error handling.
   */
  constructor(
    start: Promise<void>,
    private readonly write: (reply: object) => void,
    private readonly onError: (err: unknown) => void,
  ) {
    this.handedOver = start;
    this.done = start;
  }

  /**
   * A frame whose work may overlap later frames: `handOver` runs after the previous frame was handed
   * over and resolves, once this one is, with the promise of its reply.
   */
  pipelined(handOver: () => Promise<{ reply: Promise<Reply> }>): void {
    const handed = this.handedOver.then(handOver);
    this.handedOver = handed.catch(() => undefined);
    this.settle(handed.then((h) => h.reply));
  }

  /** A frame that runs alone: after every earlier frame is done, and before any later one starts. */
  sequential(run: () => Promise<Reply>): void {
    const reply = this.done.then(run);
    this.handedOver = reply.catch(() => undefined);
    this.settle(reply);
  }

  /** A reply known at once (a frame refused on arrival); still written in frame order. */
  reply(reply: Reply): void {
    this.settle(Promise.resolve(reply));
  }

  private settle(reply: Promise<Reply>): void {
    const settled = reply.catch((err) => (this.onError(err), null));
    this.done = Promise.all([this.done, settled]);
    this.out = this.out.then(() => settled).then((r) => {
      if (r) this.write(r);
    });
  }
}
