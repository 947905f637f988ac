/**
 * A TCP proxy in front of a test hub whose link can be cut, as a network would: `cut()` destroys
 * every connection and refuses new ones until `restore()`. With `cutAfterNextClientData()`, the
 * next chunk the client sends is forwarded and the link is cut right after, before any answer comes
 * back (a send that reached the hub while its acknowledgement was lost).
 */
import net from 'node:net';

export class CutProxy {
  private readonly server: net.Server;
  private readonly sockets = new Set<net.Socket>();
  private down = false;
  private cutAfterData = false;
  port = 0;

  constructor(private readonly targetPort: number) {
    this.server = net.createServer((client) => this.accept(client));
  }

  async listen(): Promise<string> {
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    this.port = (this.server.address() as net.AddressInfo).port;
    return `http://127.0.0.1:${this.port}`;
  }

  cut(): void {
    this.down = true;
    for (const s of this.sockets) s.destroy();
    this.sockets.clear();
  }

  restore(): void {
    this.down = false;
  }

  cutAfterNextClientData(): void {
    this.cutAfterData = true;
  }

  async close(): Promise<void> {
    this.cut();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private accept(client: net.Socket): void {
    if (this.down) return void client.destroy();
    const upstream = net.connect(this.targetPort, '127.0.0.1');
    this.sockets.add(client).add(upstream);
    client.on('data', (chunk) => {
      upstream.write(chunk);
      if (this.cutAfterData && chunk.length > 0) {
        this.cutAfterData = false;
        // The chunk goes on to the hub (end() flushes it), the client's side drops before any answer returns.
        upstream.end();
        client.destroy();
      }
    });
    upstream.on('data', (chunk) => !this.down && !client.destroyed && client.write(chunk));
    for (const s of [client, upstream]) {
      s.on('error', () => undefined);
      s.on('close', () => {
        client.destroy();
        upstream.destroy();
        this.sockets.delete(s);
      });
    }
  }
}
