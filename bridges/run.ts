/**
 * Builds a configured bridge: `switchboard bridge <id>` runs one as a worker process; with
 * `in_process = true`, `switchboard serve` runs it inside the hub.
 */
import path from 'node:path';
import type { Logger } from 'pino';
import type { BridgeConfig, Config } from '../src/config/schema.js';
import { ConfigError } from '../src/config/load.js';
import { GoogleChatConnector } from './googlechat/connector.js';
import { Bridge } from './kit/bridge.js';
import type { Connector } from './kit/types.js';
import { WhatsAppConnector } from './whatsapp/connector.js';

/** The hub URL a bridge uses: its `hub_url`, else `server.public_url`, else the listen address. */
export function hubUrlFor(config: Config, bridge: BridgeConfig): string {
  if (bridge.hub_url) return bridge.hub_url;
  if (config.server.public_url) return config.server.public_url;
  const host = config.server.host === '0.0.0.0' || config.server.host === '::' ? '127.0.0.1' : config.server.host;
  return `http://${host.includes(':') ? `[${host}]` : host}:${config.server.port}`;
}

function connectorFor(bridge: BridgeConfig): Connector {
  switch (bridge.network) {
    case 'whatsapp':
      if (!bridge.whatsapp) throw new ConfigError(`bridges.${bridge.id}`, 'needs a [bridges.whatsapp] table');
      return new WhatsAppConnector(bridge.whatsapp);
    case 'googlechat':
      if (!bridge.googlechat) throw new ConfigError(`bridges.${bridge.id}`, 'needs a [bridges.googlechat] table');
      if (!bridge.googlechat.credentials_file) throw new ConfigError('bridges.googlechat', 'needs credentials_file (the service account key file)');
      return new GoogleChatConnector(bridge.googlechat, bridge.retry_max_ms);
  }
}

/**
 * The bridge with id `id` from `config` (not started): the kit with the network's connector. What
 * `switchboard bridge <id>` runs. `hubUrl` overrides `hubUrlFor` (in-process use).
 * @throws ConfigError when there is no such bridge or its settings are incomplete.
 */
export function createBridge(config: Config, id: string, log: Logger, hubUrl?: string): Bridge {
  const bridge = config.bridges.find((b) => b.id === id);
  if (!bridge) throw new ConfigError('bridges', `no bridge with id "${id}" (configured: ${config.bridges.map((b) => b.id).join(', ') || 'none'})`);
  return new Bridge(
    {
      id: bridge.id,
      hubUrl: hubUrl ?? hubUrlFor(config, bridge),
      asToken: bridge.as_token,
      hsToken: bridge.hs_token,
      url: bridge.url,
      dataDir: bridge.data_dir || path.join(config.data_dir, 'bridges', bridge.id),
      retryMaxMs: bridge.retry_max_ms,
      maxAttempts: bridge.max_attempts,
      e2ee: bridge.e2ee,
      log: log.child({ bridge: bridge.id }),
    },
    connectorFor(bridge),
  );
}

/** Starts the bridges marked `in_process` (inside `switchboard serve`), against the hub at `hubUrl`. */
export async function startInProcessBridges(config: Config, hubUrl: string, log: Logger): Promise<Bridge[]> {
  const started: Bridge[] = [];
  for (const b of config.bridges.filter((x) => x.in_process)) {
    const bridge = createBridge(config, b.id, log, b.hub_url || hubUrl);
    log.info({ bridge: b.id, url: await bridge.start() }, 'bridge running in-process');
    started.push(bridge);
  }
  return started;
}
