/**
 * The bench's ceiling: a bare `ws` relay speaking just enough of the hub's protocol for the load
 * generator (bench/load.ts) to drive it unchanged. No storage, no rules, no validation:
 *
 * - `POST /api/auth/register` `{name}` → 201 `{token, user: {id, name}}` (the token is a random id);
 * - `POST /api/rooms` `{members}` (bearer token) → 201 `{id}`: a room of the caller and `members`;
 * - `GET /ws` (bearer token) → a socket in every room of its user, greeted with `{"type":"ready"}`;
 * - a `message.send` frame `{room_id, content, txn_id}` is serialized once as a `message.new`
 *   (`{room_id, stream_position, message: {user_id, content}}`) and written to every other socket of
 *   the room; the sender gets `{"type":"message.sent", txn_id, stream_position}`.
 *
 * Run as a child process (`fork`, with tsx): it listens on a free loopback port and sends its parent
 * `{url, pid, inspectorUrl}` (the last when run with `--inspect`). Stops on SIGTERM.
 */
import crypto from 'node:crypto';
import http from 'node:http';
import inspector from 'node:inspector';
import type { AddressInfo } from 'node:net';
import { WebSocketServer, type WebSocket } from 'ws';

/** token → user id */
const users = new Map<string, string>();
/** room id → its members' user ids */
const rooms = new Map<string, string[]>();
/** user id → their open sockets */
const socketsOf = new Map<string, Set<WebSocket>>();
let streamPosition = 0;

const bearer = (req: http.IncomingMessage) => users.get(req.headers.authorization?.replace(/^Bearer /, '') ?? '');

function answer(res: http.ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));
}

const server = http.createServer((req, res) => {
  let text = '';
  req.setEncoding('utf8').on('data', (chunk: string) => (text += chunk));
  req.on('end', () => {
    const body = text ? JSON.parse(text) : {};
    if (req.method === 'POST' && req.url === '/api/auth/register') {
      const [token, id] = [crypto.randomUUID(), crypto.randomUUID()];
      users.set(token, id);
      return answer(res, 201, { token, user: { id, name: body.name } });
    }
    const caller = bearer(req);
    if (req.method === 'POST' && req.url === '/api/rooms' && caller) {
      const id = crypto.randomUUID();
      rooms.set(id, [caller, ...(body.members ?? [])]);
      return answer(res, 201, { id });
    }
    answer(res, 404, { error: { code: 'NOT_FOUND', message: `${req.method} ${req.url}` } });
  });
});

const wss = new WebSocketServer({ noServer: true });
server.on('upgrade', (req, socket, head) => {
  const userId = bearer(req);
  if (!userId || !req.url?.startsWith('/ws')) return void socket.end('HTTP/1.1 401 Unauthorized\r\n\r\n');
  wss.handleUpgrade(req, socket, head, (ws) => {
    const own = socketsOf.get(userId) ?? new Set<WebSocket>();
    socketsOf.set(userId, own.add(ws));
    ws.on('close', () => own.delete(ws));
    ws.on('message', (data) => {
      const frame = JSON.parse(data.toString());
      if (frame.type !== 'message.send') return;
      const position = ++streamPosition;
      const event = Buffer.from(JSON.stringify({ type: 'message.new', room_id: frame.room_id, stream_position: position, message: { user_id: userId, content: frame.content } }));
      for (const member of rooms.get(frame.room_id) ?? []) {
        for (const s of socketsOf.get(member) ?? []) if (s !== ws) s.send(event);
      }
      ws.send(JSON.stringify({ type: 'message.sent', txn_id: frame.txn_id ?? null, stream_position: position }));
    });
    ws.send('{"type":"ready"}');
  });
});

server.listen(0, '127.0.0.1', () => {
  process.send!({ url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, pid: process.pid, inspectorUrl: inspector.url() });
});
process.once('SIGTERM', () => process.exit(0));
