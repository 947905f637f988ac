/** Row -> wire shapes for users. */
import type { UserRow } from './users.repository.js';

/** `bridge_id` is set on ghosts (people on another network, puppeted by that bridge): clients may badge them. */
export function publicUser(u: Pick<UserRow, 'id' | 'name' | 'avatar_url' | 'created_at' | 'bridge_id'>) {
  return { id: u.id, name: u.name, avatar_url: u.avatar_url, created_at: u.created_at.toISOString(), bridge_id: u.bridge_id ?? null };
}

export function selfUser(u: UserRow) {
  return { ...publicUser(u), email: u.email, is_admin: u.is_admin };
}
