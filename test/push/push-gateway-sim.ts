/**
 * A Matrix push gateway on loopback (https://spec.matrix.org/latest/push-gateway-api/), as Sygnal
 * is to a homeserver: `POST /_matrix/push/v1/notify` with `{"notification": {...}}` answers 200
 * `{"rejected": [pushkeys]}`. A test chooses which pushkeys it rejects, or queues error statuses.
 */
import http from 'node:http';

export class PushGatewaySim {
  private readonly server = http.createServer((req, res) => this.handle(req, res));
  /** Every notification accepted (200), in arrival order. */
  readonly received: any[] = [];
  /** Every request's status. */
  readonly statuses: number[] = [];
  /** Pushkeys answered as rejected (the app was uninstalled, the token expired). */
  readonly reject = new Set<string>();
  private readonly queued: number[] = [];
  url = '';

  async listen(): Promise<void> {
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    this.url = `http://127.0.0.1:${(this.server.address() as { port: number }).port}/_matrix/push/v1/notify`;
  }

  async close(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  /** The next requests get these statuses (with an error body) before 200 again. */
  failNext(...statuses: number[]): void {
    this.queued.push(...statuses);
  }

  async waitFor(count: number, ms = 10_000): Promise<any[]> {
    const deadline = Date.now() + ms;
    while (this.received.length < count) {
      if (Date.now() > deadline) throw new Error(`expected ${count} notifications, got ${this.received.length}`);
      await new Promise((r) => setTimeout(r, 20));
    }
    return this.received;
  }

  private handle(req: http.IncomingMessage, res: http.ServerResponse): void {
    const chunks: Buffer[] = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      const status = req.method === 'POST' && req.url === '/_matrix/push/v1/notify' ? (this.queued.shift() ?? 200) : 404;
      this.statuses.push(status);
      res.writeHead(status, { 'content-type': 'application/json' });
      if (status !== 200) return res.end(JSON.stringify({ errcode: 'M_UNKNOWN', error: 'simulated failure' }));
      const { notification } = JSON.parse(Buffer.concat(chunks).toString('utf8'));
      this.received.push(notification);
      const rejected = (notification.devices ?? []).map((d: { pushkey: string }) => d.pushkey).filter((k: string) => this.reject.has(k));
      res.end(JSON.stringify({ rejected }));
    });
  }
}
