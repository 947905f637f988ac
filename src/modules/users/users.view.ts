/** Row -> wire shapes for users. */
import type { UserRow } from './users.repository.js';

/**
 * `bridge_id` is set on ghosts (people on another network, puppeted by that bridge): clients may badge them.
 * `address` is the global address `@username:server_name` (`server` is set on shadow users of other
 * hubs; `localServer` is this hub's `federation.server_name`).
 */
export function publicUser(u: Pick<UserRow, 'id' | 'name' | 'avatar_url' | 'created_at' | 'bridge_id' | 'username' | 'server'>, localServer: string) {
  return {
    id: u.id,
    name: u.name,
    avatar_url: u.avatar_url,
    created_at: u.created_at.toISOString(),
    bridge_id: u.bridge_id ?? null,
    username: u.username,
    address: userAddress(u, localServer),
    server: u.server ?? null,
  };
}

export function selfUser(u: UserRow, localServer: string) {
  return { ...publicUser(u, localServer), email: u.email, is_admin: u.is_admin };
}

/** `@username:server_name`. */
export function userAddress(u: Pick<UserRow, 'username' | 'server'>, localServer: string): string {
  return `@${u.username}:${u.server ?? localServer}`;
}
