/** Test wiring of the Google Chat bridge to the simulator: its `[[bridges]]` entry and a bridge factory. */
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { pino } from 'pino';
import { Value } from 'typebox/value';
import type { Bridge } from '../../bridges/kit/bridge.js';
import { createBridge } from '../../bridges/run.js';
import { GoogleChatSettingsSchema } from '../../bridges/googlechat/settings.js';
import { BridgeSchema, type BridgeConfig, type Config } from '../../src/config/schema.js';
import type { GoogleChatSimulator } from './sim.js';

/**
 * A googlechat `[[bridges]]` entry (schema defaults filled in) pointing every Google URL at `sim`,
 * with the service account key written into `dir`; the bridge listens on `port`.
 */
export function googleChatBridgeConfig(sim: GoogleChatSimulator, dir: string, port: number, settings: Partial<NonNullable<BridgeConfig['googlechat']>> = {}): BridgeConfig {
  const credentials = path.join(dir, 'service-account.json');
  fs.writeFileSync(credentials, sim.credentialsJson(), { mode: 0o600 });
  const url = `http://127.0.0.1:${port}`;
  const googlechat = Value.Default(GoogleChatSettingsSchema, {
    credentials_file: credentials,
    project_number: sim.projectNumber,
    pubsub_topic: sim.topic,
    pubsub_subscription: sim.pubsubSubscription,
    pubsub_audience: `${url}/googlechat/pubsub`,
    pubsub_service_account: sim.pushServiceAccount,
    delegated_user: sim.delegatedUser.email,
    api_base_url: sim.url,
    token_url: `${sim.url}/token`,
    events_api_base_url: sim.url,
    chat_certs_url: `${sim.url}/x509/chat`,
    oidc_certs_url: `${sim.url}/oauth2/v1/certs`,
    ...settings,
  });
  const entry = Value.Default(BridgeSchema, {
    id: 'googlechat',
    network: 'googlechat',
    url,
    as_token: crypto.randomBytes(24).toString('hex'),
    hs_token: crypto.randomBytes(24).toString('hex'),
    data_dir: path.join(dir, 'state'),
    retry_max_ms: 200,
    max_attempts: 3,
    googlechat,
  }) as BridgeConfig;
  if (!Value.Check(BridgeSchema, entry)) throw new Error(`bad bridge config: ${JSON.stringify([...Value.Errors(BridgeSchema, entry)][0])}`);
  return entry;
}

/** The configured bridge (not started), as `switchboard bridge googlechat` builds it, against `hubUrl`. */
export function googleChatBridge(config: Config, hubUrl: string): Bridge {
  return createBridge(config, 'googlechat', pino({ level: process.env.TEST_LOG_LEVEL ?? 'silent' }), hubUrl);
}
