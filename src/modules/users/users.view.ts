/** Row -> wire shapes for users. */
import type { UserRow } from '../auth/auth.repository.js';

export function publicUser(u: Pick<UserRow, 'id' | 'name' | 'avatar_url' | 'created_at'>) {
  return { id: u.id, name: u.name, avatar_url: u.avatar_url, created_at: u.created_at.toISOString() };
}

export function selfUser(u: UserRow) {
  return { ...publicUser(u), email: u.email, is_admin: u.is_admin };
}
