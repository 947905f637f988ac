/**
 * A loopback TCP proxy that can be cut (drops every connection and refuses new ones) and healed:
 * a network outage between two processes, for federation tests and the federation bench.
 */
import net from 'node:net';

export class CutProxy {
  private readonly server = net.createServer((c) => this.onConnection(c));
  private readonly sockets = new Set<net.Socket>();
  private cut = false;
  /** The port it listens on (after `listen`). */
  port = 0;

  /** @param target the port on 127.0.0.1 it forwards to (may be set later, before the first connection). */
  constructor(public target = 0) {}

  async listen(): Promise<void> {
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    this.port = (this.server.address() as net.AddressInfo).port;
  }

  private onConnection(c: net.Socket): void {
    if (this.cut) return void c.destroy();
    const up = net.connect(this.target, '127.0.0.1');
    for (const s of [c, up]) (this.sockets.add(s), s.on('close', () => this.sockets.delete(s)), s.on('error', () => (c.destroy(), up.destroy())));
    c.pipe(up).pipe(c);
  }

  /** Cuts (drops every connection and refuses new ones) or heals. */
  setCut(cut: boolean): void {
    this.cut = cut;
    if (cut) for (const s of this.sockets) s.destroy();
  }

  close(): Promise<void> {
    this.setCut(true);
    return new Promise((resolve) => this.server.close(() => resolve()));
  }
}
