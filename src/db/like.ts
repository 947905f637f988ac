/** Patterns for SQL `LIKE` built from user text: its wildcards (`%`, `_`) and `\` are escaped. */

/** `s` lower-cased with LIKE's wildcards escaped, for `lower(col) LIKE <this> || '%'` and the like. */
export function escapeLike(s: string): string {
  return s.toLowerCase().replace(/[\\%_]/g, (c) => `\\${c}`);
}

/** A case-insensitive substring match of `s` (compare with `lower(col) LIKE`). */
export function containsPattern(s: string): string {
  return `%${escapeLike(s)}%`;
}
