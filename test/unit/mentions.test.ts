import { describe, expect, it } from 'vitest';
import { parseMentions } from '../../src/modules/messages/messages.view.js';

const A = '0b8f2d6e-1c2a-4e5b-8f90-1a2b3c4d5e6f';
const B = 'f1e2d3c4-b5a6-4978-8a9b-0c1d2e3f4a5b';
const OUTSIDER = '11111111-2222-4333-8444-555555555555';

describe('parseMentions', () => {
  it('finds <@user_id> mentions of members, in order of first appearance, once each', () => {
    expect(parseMentions(`hi <@${B}> and <@${A}>, again <@${B}>`, new Set([A, B]))).toEqual([B, A]);
  });

  it('ignores users who are not members', () => {
    expect(parseMentions(`<@${OUTSIDER}> <@${A}>`, new Set([A, B]))).toEqual([A]);
  });

  it('matches upper-case ids and returns them lower-case', () => {
    expect(parseMentions(`<@${A.toUpperCase()}>`, new Set([A]))).toEqual([A]);
  });

  it('ignores malformed forms', () => {
    const content = [`@${A}`, `<${A}>`, `<@ ${A}>`, `<@${A.slice(0, -1)}>`, `<@${A}x>`, '<@not-a-uuid>', `<@!${A}>`].join(' ');
    expect(parseMentions(content, new Set([A]))).toEqual([]);
  });

  it('returns nothing for content without mentions or an empty member list', () => {
    expect(parseMentions('no mentions here', new Set([A]))).toEqual([]);
    expect(parseMentions(`<@${A}>`, new Set([]))).toEqual([]);
  });
});
