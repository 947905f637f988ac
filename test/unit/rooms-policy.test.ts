import { describe, expect, it } from 'vitest';
import { AppError } from '../../src/errors.js';
import {
  assertCanAddMember, assertCanDeleteRoom, assertCanEditRoom, assertCanLeave, assertCanRedact, assertCanRemoveMember, assertCanSetRole,
  directKey, isAdmin, nextOwner, type Role,
} from '../../src/modules/rooms/rooms.policy.js';

/** Asserts that `fn` throws an AppError FORBIDDEN. */
function forbidden(fn: () => void): void {
  let caught: unknown;
  try {
    fn();
  } catch (err) {
    caught = err;
  }
  expect(caught).toBeInstanceOf(AppError);
  expect((caught as AppError).code).toBe('FORBIDDEN');
  expect((caught as AppError).status).toBe(403);
}

describe('isAdmin', () => {
  it('is true for admin and owner, false for member', () => {
    expect([isAdmin('owner'), isAdmin('admin'), isAdmin('member')]).toEqual([true, true, false]);
  });
});

describe('assertCanEditRoom', () => {
  it('allows admins and the owner of groups and channels', () => {
    for (const type of ['group', 'channel'] as const) for (const role of ['owner', 'admin'] as const) expect(() => assertCanEditRoom(type, role)).not.toThrow();
  });
  it('refuses plain members, and everyone in a direct room', () => {
    forbidden(() => assertCanEditRoom('group', 'member'));
    forbidden(() => assertCanEditRoom('channel', 'member'));
    forbidden(() => assertCanEditRoom('direct', 'owner'));
  });
});

describe('assertCanAddMember', () => {
  it('allows admins and the owner of groups and channels', () => {
    expect(() => assertCanAddMember('group', 'admin')).not.toThrow();
    expect(() => assertCanAddMember('channel', 'owner')).not.toThrow();
  });
  it('refuses plain members, and direct rooms', () => {
    forbidden(() => assertCanAddMember('group', 'member'));
    forbidden(() => assertCanAddMember('direct', 'admin'));
  });
});

describe('assertCanRemoveMember', () => {
  it('lets the owner remove admins and members, and admins remove members', () => {
    expect(() => assertCanRemoveMember('group', 'owner', 'admin')).not.toThrow();
    expect(() => assertCanRemoveMember('group', 'owner', 'member')).not.toThrow();
    expect(() => assertCanRemoveMember('channel', 'admin', 'member')).not.toThrow();
  });
  it('refuses removing an equal or higher rank, members removing anyone, and direct rooms', () => {
    forbidden(() => assertCanRemoveMember('group', 'admin', 'admin'));
    forbidden(() => assertCanRemoveMember('group', 'admin', 'owner'));
    forbidden(() => assertCanRemoveMember('group', 'member', 'member'));
    forbidden(() => assertCanRemoveMember('group', 'owner', 'owner'));
    forbidden(() => assertCanRemoveMember('direct', 'owner', 'member'));
  });
});

describe('assertCanSetRole', () => {
  it('allows only the owner, never in direct rooms', () => {
    expect(() => assertCanSetRole('group', 'owner')).not.toThrow();
    forbidden(() => assertCanSetRole('group', 'admin'));
    forbidden(() => assertCanSetRole('channel', 'member'));
    forbidden(() => assertCanSetRole('direct', 'owner'));
  });
});

describe('assertCanDeleteRoom', () => {
  it('allows only the owner', () => {
    expect(() => assertCanDeleteRoom('owner')).not.toThrow();
    forbidden(() => assertCanDeleteRoom('admin'));
    forbidden(() => assertCanDeleteRoom('member'));
  });
});

describe('assertCanLeave', () => {
  it('allows leaving groups and channels but not direct rooms', () => {
    expect(() => assertCanLeave('group')).not.toThrow();
    expect(() => assertCanLeave('channel')).not.toThrow();
    forbidden(() => assertCanLeave('direct'));
  });
});

describe('assertCanRedact', () => {
  it('allows the sender whatever their role, and admins or the owner for others', () => {
    expect(() => assertCanRedact('u1', 'u1', 'member')).not.toThrow();
    expect(() => assertCanRedact('u2', 'u1', 'admin')).not.toThrow();
    expect(() => assertCanRedact('u2', 'u1', 'owner')).not.toThrow();
  });
  it('refuses another plain member', () => {
    forbidden(() => assertCanRedact('u2', 'u1', 'member'));
  });
});

describe('nextOwner', () => {
  const at = (s: number) => new Date(Date.UTC(2024, 0, 1, 0, 0, s));
  const m = (user_id: string, role: Role, joined: number) => ({ user_id, role, joined_at: at(joined) });

  it('picks the longest-standing admin over any member, however old', () => {
    expect(nextOwner([m('old-member', 'member', 1), m('new-admin', 'admin', 9), m('older-admin', 'admin', 5)])).toBe('older-admin');
  });
  it('picks the longest-standing member when there is no admin', () => {
    expect(nextOwner([m('b', 'member', 7), m('a', 'member', 3), m('c', 'member', 8)])).toBe('a');
  });
  it('is null for an empty room', () => {
    expect(nextOwner([])).toBeNull();
  });
  it('does not reorder its input', () => {
    const input = [m('b', 'member', 7), m('a', 'admin', 3)];
    nextOwner(input);
    expect(input.map((x) => x.user_id)).toEqual(['b', 'a']);
  });
});

describe('directKey', () => {
  it('is the same whichever user comes first, and differs per pair', () => {
    expect(directKey('aaa', 'bbb')).toBe('aaa:bbb');
    expect(directKey('bbb', 'aaa')).toBe('aaa:bbb');
    expect(directKey('aaa', 'ccc')).not.toBe(directKey('aaa', 'bbb'));
  });
});
