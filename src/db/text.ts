/**
 * Text PostgreSQL cannot take: `text` columns refuse U+0000 and `jsonb` refuses unpaired UTF-16
 * surrogates (https://www.postgresql.org/docs/current/datatype-json.html), so such input would fail
 * deep inside a query as a 500. Requests and WebSocket frames are checked up front instead.
 */

/** U+0000, or a surrogate that is not half of a pair (with the `u` flag a pair reads as one code point). */
const UNSTORABLE = /[\u0000\p{Cs}]/u;

/**
 * The first string in a parsed JSON value (or query/params object) that PostgreSQL cannot store.
 * @returns its path (`content`, `members.2`; `''` for the value itself), or null when all are fine.
 */
export function unstorableTextPath(value: unknown, path = ''): string | null {
  if (typeof value === 'string') return UNSTORABLE.test(value) ? path : null;
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) {
      const found = unstorableTextPath(value[i], path ? `${path}.${i}` : String(i));
      if (found !== null) return found;
    }
    return null;
  }
  // Parsed JSON, query and params objects; never the bytes of a Buffer or a stream.
  if (value !== null && typeof value === 'object' && !ArrayBuffer.isView(value) && typeof (value as { pipe?: unknown }).pipe !== 'function') {
    for (const [key, v] of Object.entries(value)) {
      const found = unstorableTextPath(v, path ? `${path}.${key}` : key);
      if (found !== null) return found;
    }
  }
  return null;
}
