/**
 * The MCP server, driven by the SDK's own client: over Streamable HTTP (`/mcp`) and over stdio
 * (`switchboard mcp --url --token`, spawned with tsx, relaying to the same hub).
 */
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import type { CallToolResult } from '@modelcontextprotocol/sdk/types.js';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { api, nextStreamRead, register, type Session, startTestHub, type TestHub, WsClient } from '../helpers/hub.js';

const ALL_SCOPES = ['rooms:read', 'messages:read', 'messages:write', 'search', 'presence:read'];

let t: TestHub;
let alice: Session; // a human on the WebSocket
let bob: Session; // the agent acts as Bob
let carol: Session;
let roomId: string; // Alice and Bob
let carolRoom: string; // Carol alone
/** Clients a test opened for itself, closed after it. */
const clients: Client[] = [];

async function agentToken(scopes = ALL_SCOPES): Promise<string> {
  const res = await api(t.url, 'POST', '/api/agent-tokens', { token: bob.token, body: { name: 'mcp test', scopes } });
  expect(res.status).toBe(201);
  return res.body.token;
}

async function connect(transport: 'http' | 'stdio', token: string): Promise<Client> {
  const client = new Client({ name: 'switchboard-test-agent', version: '1.0.0' });
  if (transport === 'http') {
    await client.connect(new StreamableHTTPClientTransport(new URL(`${t.url}/mcp`), { requestInit: { headers: { authorization: `Bearer ${token}` } } }));
  } else {
    await client.connect(
      new StdioClientTransport({ command: 'node_modules/.bin/tsx', args: ['src/cli.ts', 'mcp', '--url', t.url, '--token', token], cwd: process.cwd(), stderr: 'inherit' }),
    );
  }
  return client;
}

async function call(client: Client, name: string, args: Record<string, unknown> = {}) {
  return (await client.callTool({ name, arguments: args })) as CallToolResult;
}

/** The structured result of a successful call (the SDK client has checked it against the output schema). */
async function ok(client: Client, name: string, args: Record<string, unknown> = {}): Promise<any> {
  const result = await call(client, name, args);
  expect(result.isError, JSON.stringify(result.content)).toBeFalsy();
  expect(JSON.parse((result.content[0] as { text: string }).text)).toEqual(result.structuredContent);
  return result.structuredContent;
}

/** The `{code, message}` of a tool error. */
async function toolError(client: Client, name: string, args: Record<string, unknown> = {}): Promise<{ code: string; message: string }> {
  const result = await call(client, name, args);
  expect(result.isError).toBe(true);
  expect(result.structuredContent).toBeUndefined();
  return JSON.parse((result.content[0] as { text: string }).text).error;
}

beforeAll(async () => {
  t = await startTestHub();
  alice = await register(t.url, 'Alice');
  bob = await register(t.url, 'Bob');
  carol = await register(t.url, 'Carol');
  roomId = (await api(t.url, 'POST', '/api/rooms', { token: alice.token, body: { type: 'group', name: 'Support', members: [bob.user.id] } })).body.id;
  carolRoom = (await api(t.url, 'POST', '/api/rooms', { token: carol.token, body: { type: 'group', name: 'Private' } })).body.id;
});
afterEach(async () => {
  await Promise.all(clients.splice(0).map((c) => c.close()));
});
afterAll(async () => t?.close());

describe.each(['http', 'stdio'] as const)('MCP over %s', (transport) => {
  /** One client with every scope for the tests of this transport (spawning the stdio proxy takes seconds). */
  let shared: Client | undefined;
  const fullClient = async () => (shared ??= await connect(transport, await agentToken()));
  afterAll(async () => shared?.close());

  it('lists the tools with input and output schemas', async () => {
    const client = await fullClient();
    expect(client.getServerVersion()?.name).toBe('switchboard');
    const { tools } = await client.listTools();
    expect(tools.map((x) => x.name).sort()).toEqual(
      ['get_presence', 'get_room', 'list_members', 'list_rooms', 'mark_read', 'react', 'read_messages', 'search_messages', 'send_message', 'wait_for_messages'].sort(),
    );
    const send = tools.find((x) => x.name === 'send_message')!;
    expect(send.inputSchema).toMatchObject({ type: 'object', required: ['room_id', 'content'] });
    expect(send.outputSchema).toMatchObject({ type: 'object', required: ['message', 'duplicate'] });
    expect(send._meta).toEqual({ 'switchboard/scope': 'messages:write' });
  });

  it('holds a conversation with a human on the WebSocket: wait, read, answer, search', async () => {
    const client = await fullClient();
    const ws = await WsClient.connect(t.wsUrl, alice.token);
    expect((await ok(client, 'list_rooms')).rooms.map((r: any) => r.id)).toContain(roomId);

    const { next_since: cursor } = await ok(client, 'wait_for_messages', { timeout_ms: 0 });
    const looked = nextStreamRead(t);
    const waiting = ok(client, 'wait_for_messages', { since: cursor, timeout_ms: 15_000 });
    await looked; // the agent is now waiting
    ws.send({ type: 'message.send', room_id: roomId, content: `Can you check the ${transport} pipeline?`, txn_id: `ask-${transport}` });
    const asked = await ws.next('message.sent');
    const woke = await waiting;
    expect(woke.timed_out).toBe(false);
    expect(woke.messages).toEqual([expect.objectContaining({ id: asked.message_id, user_id: alice.user.id, content: `Can you check the ${transport} pipeline?` })]);

    const sent = await ok(client, 'send_message', { room_id: roomId, content: `The ${transport} pipeline is green.`, reply_to: asked.message_id, txn_id: `answer-${transport}` });
    expect(sent.duplicate).toBe(false);
    const heard = await ws.next('message.new', (e) => e.message.id === sent.message.id);
    expect(heard.message).toMatchObject({ user_id: bob.user.id, user_name: 'Bob', content: `The ${transport} pipeline is green.`, reply_to: asked.message_id });
    expect((await ok(client, 'send_message', { room_id: roomId, content: 'x', txn_id: `answer-${transport}` })).message.id).toBe(sent.message.id);

    // Alice answers while the agent is not waiting; the next wait from next_since still gets it.
    ws.send({ type: 'message.send', room_id: roomId, content: 'Thanks', txn_id: `thanks-${transport}` });
    const thanks = await ws.next('message.sent');
    expect((await ok(client, 'wait_for_messages', { since: woke.next_since, timeout_ms: 5000 })).messages.map((m: any) => m.id)).toEqual([thanks.message_id]);

    const history = await ok(client, 'read_messages', { room_id: roomId, limit: 3 });
    expect(history.messages.map((m: any) => m.id)).toEqual([asked.message_id, sent.message.id, thanks.message_id]);
    expect((await ok(client, 'mark_read', { room_id: roomId })).message_id).toBe(thanks.message_id);
    expect((await ws.next('message.read', (e) => e.user_id === bob.user.id)).message_id).toBe(thanks.message_id);

    const found = await ok(client, 'search_messages', { query: `${transport} pipeline green` });
    expect(found.results.map((r: any) => r.message.id)).toEqual([sent.message.id]);
    expect((await ok(client, 'get_presence', { user_ids: [alice.user.id] })).presence[0]).toMatchObject({ user_id: alice.user.id, status: 'online' });
    ws.close();
  });

  it('answers tool errors with codes: outside membership, bad arguments', async () => {
    const client = await fullClient();
    expect(await toolError(client, 'read_messages', { room_id: carolRoom })).toMatchObject({ code: 'NOT_A_MEMBER' });
    expect(await toolError(client, 'send_message', { room_id: carolRoom, content: 'intrusion' })).toMatchObject({ code: 'NOT_A_MEMBER' });
    expect(await toolError(client, 'list_members', { room_id: carolRoom })).toMatchObject({ code: 'NOT_A_MEMBER' });
    const bad = await toolError(client, 'send_message', { room_id: roomId });
    expect(bad.code).toBe('VALIDATION_FAILED');
    expect(bad.message).toMatch(/content/);
    expect((await toolError(client, 'wait_for_messages', { timeout_ms: 31_000 })).code).toBe('VALIDATION_FAILED');
    await expect(client.callTool({ name: 'drop_tables', arguments: {} })).rejects.toThrow(/No tool named drop_tables/);
    const { rows } = await t.hub.db.query('SELECT count(*)::int AS n FROM messages WHERE room_id = $1', [carolRoom]);
    expect(rows[0].n).toBe(0);
  });

  it('refuses tools outside the token\'s scopes', async () => {
    const client = await connect(transport, await agentToken(['rooms:read']));
    clients.push(client);
    expect((await ok(client, 'list_rooms')).rooms.length).toBeGreaterThan(0);
    const refused = await toolError(client, 'send_message', { room_id: roomId, content: 'not allowed' });
    expect(refused).toMatchObject({ code: 'INSUFFICIENT_SCOPE' });
    expect(refused.message).toMatch(/messages:write/);
    expect((await toolError(client, 'wait_for_messages', { timeout_ms: 0 })).code).toBe('INSUFFICIENT_SCOPE');
    const { rows } = await t.hub.db.query("SELECT count(*)::int AS n FROM messages WHERE content = 'not allowed'");
    expect(rows[0].n).toBe(0);
  });

  it('serves room histories as resources', async () => {
    const client = await fullClient();
    const { resourceTemplates } = await client.listResourceTemplates();
    expect(resourceTemplates.map((r) => r.uriTemplate)).toEqual(['switchboard://rooms/{room_id}/messages']);
    const { resources } = await client.listResources();
    const uri = `switchboard://rooms/${roomId}/messages`;
    expect(resources).toEqual([expect.objectContaining({ uri, name: 'Support', mimeType: 'application/json' })]);
    await ok(client, 'send_message', { room_id: roomId, content: `resource check ${transport}` });
    const { contents } = await client.readResource({ uri });
    const page = JSON.parse((contents[0] as { text: string }).text);
    expect(page.messages.at(-1).content).toBe(`resource check ${transport}`);
    await expect(client.readResource({ uri: `switchboard://rooms/${carolRoom}/messages` })).rejects.toThrow(/NOT_A_MEMBER/);
    await expect(client.readResource({ uri: 'switchboard://elsewhere' })).rejects.toThrow(/Unknown resource/);
    // A malformed percent-encoding is the client's mistake (InvalidParams), not an internal error.
    await expect(client.readResource({ uri: 'switchboard://rooms/%E0%A4%A/messages' })).rejects.toThrow(/-32602/);
  });
});

describe('MCP shutdown', () => {
  it('ends a waiting wait_for_messages at once (timed_out) and closes its connection, so the hub closes promptly', async () => {
    const other = await startTestHub();
    let closed = false;
    const client = new Client({ name: 'x', version: '1' });
    try {
      const owner = await register(other.url, 'Erin');
      const { token } = (await api(other.url, 'POST', '/api/agent-tokens', { token: owner.token, body: { name: 'a', scopes: ALL_SCOPES } })).body;
      await client.connect(new StreamableHTTPClientTransport(new URL(`${other.url}/mcp`), { requestInit: { headers: { authorization: `Bearer ${token}` } } }));
      const waiting = nextStreamRead(other);
      const call = client.callTool({ name: 'wait_for_messages', arguments: { timeout_ms: 30_000 } }) as Promise<CallToolResult>;
      await waiting;
      const started = Date.now();
      await other.close();
      closed = true;
      // Without the abort: the 30 s wait, then the idle keep-alive connection's timeout (72 s).
      expect(Date.now() - started).toBeLessThan(5_000);
      const result = await call;
      expect(result.isError).toBeFalsy();
      expect(result.structuredContent).toMatchObject({ messages: [], timed_out: true });
    } finally {
      await client.close();
      if (!closed) await other.close();
    }
  });
});

describe('MCP authentication', () => {
  it('refuses requests without a valid agent token, with WWW-Authenticate', async () => {
    const initialize = { jsonrpc: '2.0', id: 1, method: 'initialize', params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 'x', version: '1' } } };
    for (const authorization of [undefined, `Bearer ${bob.token}`, 'Bearer sbat_notatoken']) {
      const res = await fetch(`${t.url}/mcp`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream', ...(authorization ? { authorization } : {}) },
        body: JSON.stringify(initialize),
      });
      expect(res.status).toBe(401);
      expect(res.headers.get('www-authenticate')).toMatch(/^Bearer/);
      expect((await res.json()).error.code).toBe('UNAUTHORIZED');
    }
    const client = new Client({ name: 'x', version: '1' });
    await expect(
      client.connect(new StreamableHTTPClientTransport(new URL(`${t.url}/mcp`), { requestInit: { headers: { authorization: 'Bearer sbat_revoked' } } })),
    ).rejects.toThrow();
  });

  it('stdio: answers with an error when the hub refuses the token', async () => {
    const client = new Client({ name: 'x', version: '1' });
    clients.push(client);
    const transport = new StdioClientTransport({ command: 'node_modules/.bin/tsx', args: ['src/cli.ts', 'mcp', '--url', t.url, '--token', 'sbat_wrong'], cwd: process.cwd(), stderr: 'pipe' });
    await expect(client.connect(transport)).rejects.toThrow(/UNAUTHORIZED/);
  });
});
