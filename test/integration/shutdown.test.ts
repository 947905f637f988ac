/** Closing the app while a request is in flight answers it and does not wait for keep-alive. */
import http from 'node:http';
import { describe, expect, it, vi } from 'vitest';
import { register, startTestHub } from '../helpers/hub.js';

describe('shutdown', () => {
  it('answers a request in flight with Connection: close and closes promptly', async () => {
    const t = await startTestHub();
    const alice = await register(t.url, 'Alice');
    const agent = new http.Agent({ keepAlive: true });
    // Close once the login is inside its handler (hashing the password, tens of ms).
    const login = t.hub.auth.login.bind(t.hub.auth);
    let inHandler!: () => void;
    const handling = new Promise<void>((resolve) => (inHandler = resolve));
    vi.spyOn(t.hub.auth, 'login').mockImplementation((...args) => {
      inHandler();
      return login(...args);
    });
    const body = JSON.stringify({ email: alice.user.email, password: 'correct horse battery' });
    const response = new Promise<{ status: number; connection: string | undefined }>((resolve, reject) => {
      const req = http.request(`${t.url}/api/auth/login`, { method: 'POST', agent, headers: { 'content-type': 'application/json' } }, (res) => {
        res.resume();
        res.on('end', () => resolve({ status: res.statusCode!, connection: res.headers.connection }));
      });
      req.on('error', reject);
      req.end(body);
    });
    await handling;
    const started = Date.now();
    const closed = t.close();
    const answered = await response;
    await closed;
    expect(answered).toEqual({ status: 200, connection: 'close' });
    expect(Date.now() - started).toBeLessThan(10_000);
    agent.destroy();
  });
});
