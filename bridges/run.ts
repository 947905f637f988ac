/**
 * Builds a configured bridge: `switchboard bridge <id>` runs one as a worker process; with
 * `in_process = true`, `switchboard serve` runs it inside the hub.
 */
import path from 'node:path';
import type { Logger } from 'pino';
import type { BridgeConfig, Config } from '../src/config/schema.js';
import { ConfigError } from '../src/config/load.js';
import { createGoogleChatBridge, type GoogleChatBridge } from './googlechat/bridge.js';
import { Bridge, type BridgeOptions } from './kit/bridge.js';
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
      throw new ConfigError(`bridges.${bridge.id}`, 'googlechat is not a kit connector: use createBridgeWorker');
  }
}

/** The `[[bridges]]` entry `id`. @throws ConfigError when there is no such bridge. */
function bridgeConfig(config: Config, id: string): BridgeConfig {
  const bridge = config.bridges.find((b) => b.id === id);
  if (!bridge) throw new ConfigError('bridges', `no bridge with id "${id}" (configured: ${config.bridges.map((b) => b.id).join(', ') || 'none'})`);
  return bridge;
}

function bridgeOptions(config: Config, bridge: BridgeConfig, log: Logger, hubUrl?: string): BridgeOptions {
  return {
    id: bridge.id,
    hubUrl: hubUrl ?? hubUrlFor(config, bridge),
    asToken: bridge.as_token,
    hsToken: bridge.hs_token,
    url: bridge.url,
    dataDir: bridge.data_dir || path.join(config.data_dir, 'bridges', bridge.id),
    retryMaxMs: bridge.retry_max_ms,
    maxAttempts: bridge.max_attempts,
    log: log.child({ bridge: bridge.id }),
  };
}

/**
 * The kit bridge with id `id` from `config` (not started). `hubUrl` overrides `hubUrlFor` (in-process use).
 * @throws ConfigError when there is no such bridge.
 */
export function createBridge(config: Config, id: string, log: Logger, hubUrl?: string): Bridge {
  const bridge = bridgeConfig(config, id);
  return new Bridge(bridgeOptions(config, bridge, log, hubUrl), connectorFor(bridge));
}

/**
 * Any configured bridge (not started): a kit bridge, or the Google Chat bridge, which runs its own
 * runtime on the kit's pieces (see docs/BRIDGES-GOOGLECHAT.md). What `switchboard bridge <id>` runs.
 * @throws ConfigError when there is no such bridge.
 */
export function createBridgeWorker(config: Config, id: string, log: Logger, hubUrl?: string): Bridge | GoogleChatBridge {
  const bridge = bridgeConfig(config, id);
  if (bridge.network === 'googlechat') return createGoogleChatBridge(bridgeOptions(config, bridge, log, hubUrl), bridge.googlechat);
  return createBridge(config, id, log, hubUrl);
}

/** Starts the bridges marked `in_process` (inside `switchboard serve`), against the hub at `hubUrl`. */
export async function startInProcessBridges(config: Config, hubUrl: string, log: Logger): Promise<(Bridge | GoogleChatBridge)[]> {
  const started: (Bridge | GoogleChatBridge)[] = [];
  for (const b of config.bridges.filter((x) => x.in_process)) {
    const bridge = createBridgeWorker(config, b.id, log, b.hub_url || hubUrl);
    log.info({ bridge: b.id, url: await bridge.start() }, 'bridge running in-process');
    started.push(bridge);
  }
  return started;
}
