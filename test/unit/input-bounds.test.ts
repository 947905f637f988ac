import { describe, expect, it } from 'vitest';
import { inputProblem } from '../../src/lib/input-bounds.js';

/** A value nested `depth` levels deep, built without recursion. */
function nested(depth: number): unknown {
  let v: unknown = 'leaf';
  for (let i = 0; i < depth; i++) v = i % 2 ? [v] : { a: v };
  return v;
}

describe('inputProblem', () => {
  it('accepts values within the bounds', () => {
    expect(inputProblem({ a: [1, 'x', null, true, { b: 2.5 }] })).toBeNull();
    expect(inputProblem(nested(32))).toBeNull();
    expect(inputProblem('plain')).toBeNull();
    expect(inputProblem(undefined)).toBeNull();
  });

  it('finds nesting deeper than maxDepth, walking iteratively (a million levels do not overflow the stack)', () => {
    expect(inputProblem(nested(33))).toMatchObject({ message: 'is nested deeper than 32 levels' });
    expect(inputProblem(nested(1_000_000))?.message).toBe('is nested deeper than 32 levels');
    expect(inputProblem(nested(5), 4)?.path).toBe('a/0/a/0');
  });

  it('finds non-finite numbers and unstorable text, with their path, in document order', () => {
    expect(inputProblem({ limit: Infinity })).toEqual({ path: 'limit', message: 'must be a finite number' });
    expect(inputProblem({ a: [1, -Infinity] })?.path).toBe('a/1');
    expect(inputProblem({ a: NaN })?.message).toBe('must be a finite number');
    expect(inputProblem({ first: 'x\u0000', second: Infinity })).toEqual({ path: 'first', message: 'must not contain U+0000 or an unpaired surrogate' });
    expect(inputProblem(['ok', 'half \ud800'])?.path).toBe('1');
    expect(inputProblem({ 'k\u0000': 1 })?.message).toBe('has a key with U+0000 or an unpaired surrogate');
    // A surrogate pair is one code point: fine.
    expect(inputProblem('🙂')).toBeNull();
  });

  it('leaves text alone when told to (bridges), but not depth or numbers', () => {
    expect(inputProblem({ a: 'x\u0000' }, 32, false)).toBeNull();
    expect(inputProblem({ a: Infinity }, 32, false)).not.toBeNull();
    expect(inputProblem(nested(40), 32, false)).not.toBeNull();
  });

  it('does not walk buffers or streams', () => {
    expect(inputProblem({ file: Buffer.from([0, 0, 0]) })).toBeNull();
    expect(inputProblem({ pipe() {}, x: 'a\u0000' })).toBeNull();
  });
});
