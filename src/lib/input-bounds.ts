/**
 * The bounds every parsed input must keep before a handler or the database sees it: REST bodies,
 * query strings and path params (src/plugins/input-bounds.ts), WebSocket frames (src/ws/frames.ts),
 * and the bridges' webhook bodies and transactions (bridges/kit/bridge.ts). Sizes are bounded
 * before parsing (body limits, the frame limit); this walk bounds the parsed value:
 *
 * - nesting depth: at most `maxDepth` levels of arrays and objects (a value nested thousands deep
 *   would otherwise overflow the stack of whatever walks it recursively later);
 * - numbers: finite only (`1e400` in JSON, or `"Infinity"` coerced by a schema, is not a number a
 *   query can take);
 * - text PostgreSQL can store: `text` columns refuse U+0000 and `jsonb` refuses unpaired UTF-16
 *   surrogates (https://www.postgresql.org/docs/current/datatype-json.html), so such input would
 *   fail deep inside a query.
 *
 * The walk is iterative (an explicit stack), so no input can make it overflow.
 */

/** U+0000, or a surrogate that is not half of a pair (with the `u` flag a pair reads as one code point). */
const UNSTORABLE = /[\u0000\p{Cs}]/u;

/** The default `maxDepth` (limits.max_json_depth). */
export const DEFAULT_MAX_DEPTH = 32;

/**
 * The first place where `value` breaks the bounds, walking depth first in document order.
 * Strings and numbers are checked, so are object keys (they are stored too, in `jsonb`). Buffers and
 * streams (a multipart body) are not walked.
 * @param maxDepth levels of arrays/objects allowed; the value itself is level 1 when it is one.
 * @param checkText false: text is not checked (a bridge's webhook bodies, whose text the hub checks
 *   when the bridge sends it on: refusing a delivery would only make the network redeliver it).
 * @returns `{ path, message }` (path as `a/0/b`, '' for the value itself), or null when all is fine.
 */
export function inputProblem(value: unknown, maxDepth = DEFAULT_MAX_DEPTH, checkText = true): { path: string; message: string } | null {
  const stack: { value: unknown; path: string; depth: number }[] = [{ value, path: '', depth: 0 }];
  while (stack.length > 0) {
    const { value: v, path, depth } = stack.pop()!;
    if (typeof v === 'string') {
      if (checkText && UNSTORABLE.test(v)) return { path, message: 'must not contain U+0000 or an unpaired surrogate' };
    } else if (typeof v === 'number') {
      if (!Number.isFinite(v)) return { path, message: 'must be a finite number' };
    } else if (v !== null && typeof v === 'object' && !ArrayBuffer.isView(v) && typeof (v as { pipe?: unknown }).pipe !== 'function') {
      if (depth + 1 > maxDepth) return { path, message: `is nested deeper than ${maxDepth} levels` };
      const entries = Array.isArray(v) ? v.map((item, i) => [String(i), item] as const) : Object.entries(v);
      // Pushed in reverse so that the first entry is checked first.
      for (let i = entries.length - 1; i >= 0; i--) {
        const [key, item] = entries[i];
        const at = path ? `${path}/${key}` : key;
        if (checkText && !Array.isArray(v) && UNSTORABLE.test(key)) return { path: at, message: 'has a key with U+0000 or an unpaired surrogate' };
        stack.push({ value: item, path: at, depth: depth + 1 });
      }
    }
  }
  return null;
}
