/**
 * The search backends the conformance suite runs against: PostgreSQL always, the Meilisearch HTTP
 * double always, and a real Meilisearch when MEILISEARCH_URL is set (MEILISEARCH_API_KEY: its master
 * or an admin key), each test run on its own index that is deleted afterwards.
 */
import crypto from 'node:crypto';
import { Meilisearch } from 'meilisearch';
import type { Config } from '../../src/config/schema.js';
import { startTestHub, type DeepPartial, type TestHub } from '../helpers/hub.js';
import { MeiliDouble } from './meili-double.js';

export const MASTER_KEY = 'double-master-key';
export const SEARCH_KEY = { uid: '6062abda-a5aa-4414-ac91-ecd7944c0f8d', key: 'double-search-key', actions: ['search'], indexes: ['*'] };

export interface SearchBackend {
  name: string;
  /** Why the backend is skipped, or null when it runs. */
  skip: string | null;
  /** A hub on a fresh database using this backend. */
  start(overrides?: DeepPartial<Config>): Promise<TestHub & { double?: MeiliDouble }>;
}

function merge<T extends object>(a: DeepPartial<T>, b: DeepPartial<T>): DeepPartial<T> {
  return { ...a, ...b, search: { ...(a as any).search, ...(b as any).search } } as DeepPartial<T>;
}

export const BACKENDS: SearchBackend[] = [
  {
    name: 'postgres',
    skip: null,
    start: (overrides = {}) => startTestHub(overrides),
  },
  {
    name: 'meilisearch-double',
    skip: null,
    async start(overrides = {}) {
      const double = new MeiliDouble(MASTER_KEY, [SEARCH_KEY]);
      await double.start();
      const t = await startTestHub(
        merge<Config>({ search: { backend: 'meilisearch', url: double.url, api_key: MASTER_KEY, token_api_key: SEARCH_KEY.key, token_api_key_uid: SEARCH_KEY.uid } }, overrides),
      );
      return {
        ...t,
        double,
        async close() {
          await t.close();
          await double.stop();
        },
      };
    },
  },
  {
    name: 'meilisearch',
    skip: process.env.MEILISEARCH_URL ? null : 'MEILISEARCH_URL is not set',
    async start(overrides = {}) {
      const url = process.env.MEILISEARCH_URL!;
      const apiKey = process.env.MEILISEARCH_API_KEY ?? '';
      const indexName = `sb_test_${crypto.randomBytes(6).toString('hex')}`;
      const t = await startTestHub(merge<Config>({ search: { backend: 'meilisearch', url, api_key: apiKey, index_name: indexName } }, overrides));
      return {
        ...t,
        async close() {
          await t.close();
          await new Meilisearch({ host: url, apiKey }).deleteIndexIfExists(indexName);
        },
      };
    },
  },
];

/** Resolves once the hub's search index reflects every event written so far (no-op for PostgreSQL). */
export async function settled(t: TestHub): Promise<void> {
  const indexer = t.hub.searchIndexer;
  if (indexer) await indexer.waitFor(await t.hub.stream.maxPosition());
}
