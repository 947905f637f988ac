/** A `[[bridges]]` entry with the schema's defaults filled in, as `loadConfig` would produce it. */
import { Value } from 'typebox/value';
import { BridgeSchema, type BridgeConfig } from '../../src/config/schema.js';

export function bridgeConfig(partial: Partial<Omit<BridgeConfig, 'whatsapp'>> & { whatsapp?: Partial<NonNullable<BridgeConfig['whatsapp']>> }): BridgeConfig {
  const value = Value.Default(BridgeSchema, structuredClone(partial)) as BridgeConfig;
  if (value.whatsapp) Value.Default(BridgeSchema.properties.whatsapp, value.whatsapp);
  if (!Value.Check(BridgeSchema, value)) throw new Error(`bad bridge config: ${JSON.stringify([...Value.Errors(BridgeSchema, value)][0])}`);
  return value;
}
