/** Where a string is stored: the check that end-to-end encrypted text never reaches the hub's tables. */
import { expect } from 'vitest';
import type { TestHub } from './hub.js';

/** Every text, jsonb, json, bytea and array column of every table of the hub's database that holds `marker`. */
export async function columnsHolding(hub: TestHub, marker: string): Promise<string[]> {
  const { rows: columns } = await hub.hub.db.query<{ table_name: string; column_name: string; data_type: string }>(
    `SELECT c.table_name, c.column_name, c.data_type FROM information_schema.columns c
       JOIN information_schema.tables t ON t.table_schema = c.table_schema AND t.table_name = c.table_name AND t.table_type = 'BASE TABLE'
      WHERE c.table_schema = 'public' AND c.data_type IN ('text', 'character varying', 'jsonb', 'json', 'bytea', 'ARRAY', 'tsvector')`,
  );
  expect(columns.length).toBeGreaterThan(20);
  const found: string[] = [];
  for (const c of columns) {
    const col = `"${c.column_name}"`;
    const test = c.data_type === 'bytea' ? `position(convert_to($1, 'UTF8') in ${col}) > 0` : `${col}::text ILIKE '%' || $1 || '%'`;
    const { rows } = await hub.hub.db.query<{ n: number }>(`SELECT count(*)::int AS n FROM "${c.table_name}" WHERE ${test}`, [marker]);
    if (rows[0].n > 0) found.push(`${c.table_name}.${c.column_name}`);
  }
  return found;
}
