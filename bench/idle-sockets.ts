/**
 * Child process of the bench: opens `count` WebSockets to a hub (argv: wsUrl token count), tells
 * the parent `{opened}` once every one got `ready`, and closes them all when the parent says
 * `close`. Keeping the clients in their own process lets the parent measure the server's memory alone.
 */
import { WsClient } from '../test/helpers/hub.js';

const [wsUrl, token, count] = [process.argv[2], process.argv[3], Number(process.argv[4])];
const sockets: WsClient[] = [];
for (let i = 0; i < count; i += 50) {
  sockets.push(...(await Promise.all(Array.from({ length: Math.min(50, count - i) }, () => WsClient.connect(wsUrl, token)))));
}
process.send!({ opened: sockets.length });
process.once('message', async () => {
  for (const s of sockets) s.close();
  await Promise.all(sockets.map((s) => s.waitClosed()));
  process.exit(0);
});
