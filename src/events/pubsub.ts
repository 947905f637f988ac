/**
 * Topic-keyed publish/subscribe used for fan-out between the parts of one node, and (with the Redis
 * implementation) between nodes. Topics used by the hub:
 * - `stream`: a poke after room events were committed; every node's stream reader then reads them
 *   from the database in stream order (the payload is only a hint).
 * - `room:<room_id>`: ephemeral room events (typing).
 * - `user:<user_id>`: events for one user's sockets (presence of co-members, message.delivered,
 *   socket control such as closing a revoked device's sockets).
 * Messages must be JSON-serialisable; handlers must not mutate them.
 */
export type PubSubHandler = (message: any) => void;

export interface PubSub {
  /** Delivers `message` to every handler subscribed to `topic` (on every node, for Redis). */
  publish(topic: string, message: unknown): Promise<void>;
  /** @returns a function that removes this handler. */
  subscribe(topic: string, handler: PubSubHandler): () => void;
  close(): Promise<void>;
}

/** The in-process implementation: a map of topic -> handlers; delivery is synchronous. */
export class LocalPubSub implements PubSub {
  private readonly topics = new Map<string, Set<PubSubHandler>>();

  async publish(topic: string, message: unknown): Promise<void> {
    const handlers = this.topics.get(topic);
    if (!handlers) return;
    for (const handler of [...handlers]) handler(message);
  }

  subscribe(topic: string, handler: PubSubHandler): () => void {
    let handlers = this.topics.get(topic);
    if (!handlers) this.topics.set(topic, (handlers = new Set()));
    handlers.add(handler);
    return () => {
      handlers!.delete(handler);
      if (handlers!.size === 0 && this.topics.get(topic) === handlers) this.topics.delete(topic);
    };
  }

  async close(): Promise<void> {
    this.topics.clear();
  }
}
