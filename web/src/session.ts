/** The signed-in session, kept in localStorage so a reload (or another tab) stays signed in. */
import type { SessionStore, StoredSession } from '@switchboard/sdk';

const KEY = 'switchboard.session';

export const localSessionStore: SessionStore = {
  load(): StoredSession | null {
    try {
      return JSON.parse(localStorage.getItem(KEY) ?? 'null');
    } catch {
      return null;
    }
  },
  save(session: StoredSession): void {
    localStorage.setItem(KEY, JSON.stringify(session));
  },
  clear(): void {
    localStorage.removeItem(KEY);
  },
};

/** The client's options: the hub is the page's own origin. */
export const clientOptions = { baseUrl: location.origin, sessionStore: localSessionStore };
