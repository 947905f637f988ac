/**
 * `switchboard mcp --url --token`: an MCP server on stdio for desktop agents that launch a local
 * process (https://modelcontextprotocol.io/specification/2025-06-18/basic/transports#stdio). It relays
 * every JSON-RPC message unchanged to a running hub's `/mcp` over Streamable HTTP with the agent token,
 * and the hub's answers back, so tools and resources are exactly the hub's.
 */
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { StdioServerTransport } from '@modelcontextprotocol/sdk/server/stdio.js';
import { ErrorCode, isJSONRPCRequest, isJSONRPCResultResponse, type RequestId } from '@modelcontextprotocol/sdk/types.js';

/**
 * Starts relaying stdin/stdout to `<url>/mcp`; runs until stdin closes. Diagnostics go to stderr.
 * A request the hub cannot be reached for (or refuses, e.g. 401) is answered with a JSON-RPC
 * InternalError so the client never waits forever.
 */
export async function runStdioProxy(opts: { url: string; token: string }): Promise<void> {
  const base = opts.url.endsWith('/') ? opts.url : `${opts.url}/`;
  const upstream = new StreamableHTTPClientTransport(new URL('mcp', base), {
    requestInit: { headers: { authorization: `Bearer ${opts.token}` } },
  });
  const local = new StdioServerTransport();
  const pendingInitialize = new Set<RequestId>();

  local.onmessage = (message) => {
    if (isJSONRPCRequest(message) && message.method === 'initialize') pendingInitialize.add(message.id);
    upstream.send(message).catch((err: Error) => {
      process.stderr.write(`switchboard mcp: ${err.message}\n`);
      if (isJSONRPCRequest(message)) {
        void local.send({ jsonrpc: '2.0', id: message.id, error: { code: ErrorCode.InternalError, message: `Switchboard hub at ${opts.url}: ${err.message}` } });
      }
    });
  };
  upstream.onmessage = (message) => {
    // Later requests must carry the negotiated MCP-Protocol-Version header, as the SDK client would set it.
    if (isJSONRPCResultResponse(message) && pendingInitialize.delete(message.id)) {
      upstream.setProtocolVersion(String(message.result.protocolVersion));
    }
    void local.send(message);
  };
  upstream.onerror = (err) => process.stderr.write(`switchboard mcp: ${err.message}\n`);
  local.onclose = () => void upstream.close();

  await upstream.start();
  await local.start();
  process.stdin.once('end', () => void local.close());
}
