/**
 * Room permission rules, as pure functions of roles (unit-tested on their own). Roles: owner > admin >
 * member. Direct rooms have no roles that matter: their membership and settings are fixed.
 */
import type { Role, RoomType } from '../../events/catalog.js';
import { AppError } from '../../errors.js';

export type { Role, RoomType };

const RANK: Record<Role, number> = { member: 0, admin: 1, owner: 2 };

export function isAdmin(role: Role): boolean {
  return RANK[role] >= RANK.admin;
}

/** Name, topic and visibility: admins and the owner; never for direct rooms. */
export function assertCanEditRoom(type: RoomType, role: Role): void {
  if (type === 'direct') throw new AppError('FORBIDDEN', 'Direct rooms cannot be changed');
  if (!isAdmin(role)) throw new AppError('FORBIDDEN', 'Only room admins can change the room');
}

export function assertCanAddMember(type: RoomType, role: Role): void {
  if (type === 'direct') throw new AppError('FORBIDDEN', 'Direct rooms have exactly two members');
  if (!isAdmin(role)) throw new AppError('FORBIDDEN', 'Only room admins can add members');
}

/** The owner may remove anyone else; admins may remove plain members. Leaving is not removal. */
export function assertCanRemoveMember(type: RoomType, actor: Role, target: Role): void {
  if (type === 'direct') throw new AppError('FORBIDDEN', 'Direct rooms have exactly two members');
  if (!isAdmin(actor) || RANK[target] >= RANK[actor]) {
    throw new AppError('FORBIDDEN', 'You can only remove members ranked below you');
  }
}

/** Only the owner sets roles; making someone owner hands ownership over (the old owner becomes admin). */
export function assertCanSetRole(type: RoomType, actor: Role): void {
  if (type === 'direct') throw new AppError('FORBIDDEN', 'Direct rooms have no roles');
  if (actor !== 'owner') throw new AppError('FORBIDDEN', 'Only the room owner can change roles');
}

/** Direct rooms keep both members for good (they are unique per pair); other rooms can be left. */
export function assertCanLeave(type: RoomType): void {
  if (type === 'direct') throw new AppError('FORBIDDEN', 'Direct rooms cannot be left');
}

export function assertCanDeleteRoom(role: Role): void {
  if (role !== 'owner') throw new AppError('FORBIDDEN', 'Only the room owner can delete the room');
}

/** Redaction: the sender, or an admin/owner of the room. */
export function assertCanRedact(actorId: string, senderId: string, actor: Role): void {
  if (actorId !== senderId && !isAdmin(actor)) throw new AppError('FORBIDDEN', 'Only the sender or a room admin can delete this message');
}

/** Who takes over when the owner leaves: the longest-standing admin, else the longest-standing member. */
export function nextOwner(members: { user_id: string; role: Role; joined_at: Date }[]): string | null {
  const sorted = [...members].sort((a, b) => RANK[b.role] - RANK[a.role] || a.joined_at.getTime() - b.joined_at.getTime());
  return sorted[0]?.user_id ?? null;
}

/** One direct room per pair: the key is the two user ids in sorted order. */
export function directKey(a: string, b: string): string {
  return a < b ? `${a}:${b}` : `${b}:${a}`;
}
