/** A stand-in bridge for hub-side tests: records `PUT /transactions/:id` and can refuse some. */
import http from 'node:http';

export interface ReceivedTxn {
  txnId: string;
  authorization: string | undefined;
  body: { events: any[]; ephemeral: any[] };
  status: number;
}

export class FakeBridge {
  readonly received: ReceivedTxn[] = [];
  /** Answer this many next transactions (those `failWhere` matches) with 500. */
  failNext = 0;
  failWhere: (body: ReceivedTxn['body']) => boolean = () => true;
  private waiters: (() => void)[] = [];
  private server!: http.Server;
  url = '';

  async start(): Promise<void> {
    this.server = http.createServer((req, res) => {
      let data = '';
      req.on('data', (c) => (data += c));
      req.on('end', () => {
        const m = /^\/transactions\/([^/]+)$/.exec(req.url ?? '');
        const body = m ? JSON.parse(data) : null;
        const status = req.method === 'PUT' && m ? (this.failNext > 0 && this.failWhere(body) ? (this.failNext--, 500) : 200) : 404;
        if (m) this.received.push({ txnId: decodeURIComponent(m[1]), authorization: req.headers.authorization, body, status });
        res.writeHead(status, { 'content-type': 'application/json' }).end('{}');
        for (const w of this.waiters.splice(0)) w();
      });
    });
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    this.url = `http://127.0.0.1:${(this.server.address() as { port: number }).port}`;
  }

  /** Accepted transactions' events, flattened, in arrival order. */
  acceptedEvents(): any[] {
    return this.received.filter((t) => t.status === 200).flatMap((t) => t.body.events);
  }

  acceptedEphemeral(): any[] {
    return this.received.filter((t) => t.status === 200).flatMap((t) => t.body.ephemeral);
  }

  /** Waits until `check()` holds (re-checked on every transaction), up to `timeoutMs`. */
  async until<T>(check: () => T | undefined | false, timeoutMs = 5000): Promise<T> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const v = check();
      if (v) return v;
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timed out; received ${JSON.stringify(this.received.map((t) => [t.txnId, t.status, t.body.events.map((e) => e.type)]))}`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left);
        this.waiters.push(() => (clearTimeout(t), resolve()));
      });
    }
  }

  async close(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise((resolve) => this.server.close(resolve));
  }
}
