/** Log in or create an account (email, name, password). */
import { useState } from 'preact/hooks';
import { SwitchboardClient, SwitchboardError } from '@switchboard/sdk';
import { clientOptions } from './session.ts';

export function SignIn({ onSignedIn }: { onSignedIn: (client: SwitchboardClient) => void }) {
  const [mode, setMode] = useState<'login' | 'register'>('login');
  const [error, setError] = useState('');
  const [busy, setBusy] = useState(false);

  async function submit(e: Event) {
    e.preventDefault();
    const form = new FormData(e.currentTarget as HTMLFormElement);
    const email = String(form.get('email'));
    const password = String(form.get('password'));
    setBusy(true);
    setError('');
    try {
      const device_name = `Web (${navigator.userAgent.match(/(Firefox|Chrome|Safari)\/[\d.]+/)?.[0] ?? 'browser'})`;
      const client =
        mode === 'login'
          ? await SwitchboardClient.login(clientOptions, { email, password, device_name })
          : await SwitchboardClient.register(clientOptions, {
              email,
              password,
              name: String(form.get('name')),
              device_name,
              ...(form.get('invite_code') ? { invite_code: String(form.get('invite_code')) } : {}),
            });
      onSignedIn(client);
    } catch (err) {
      setError(err instanceof SwitchboardError ? err.message : 'Could not reach the hub');
    } finally {
      setBusy(false);
    }
  }

  return (
    <main class="sign-in">
      <h1>Switchboard</h1>
      <div class="tabs" role="tablist" aria-label="Sign in">
        <button role="tab" aria-selected={mode === 'login'} aria-controls="sign-in-form" onClick={() => setMode('login')}>Log in</button>
        <button role="tab" aria-selected={mode === 'register'} aria-controls="sign-in-form" onClick={() => setMode('register')}>Create account</button>
      </div>
      <form id="sign-in-form" role="tabpanel" onSubmit={submit} aria-label={mode === 'login' ? 'Log in' : 'Create account'}>
        <label>
          Email
          <input name="email" type="email" autocomplete="email" required />
        </label>
        {mode === 'register' && (
          <label>
            Name
            <input name="name" autocomplete="name" required maxLength={100} />
          </label>
        )}
        <label>
          Password
          <input name="password" type="password" autocomplete={mode === 'login' ? 'current-password' : 'new-password'} required minLength={8} />
        </label>
        {mode === 'register' && (
          <label>
            Invite code <small>(if this hub gives accounts by invitation)</small>
            <input name="invite_code" autocomplete="off" maxLength={100} />
          </label>
        )}
        {error && <p class="error" role="alert">{error}</p>}
        <button type="submit" disabled={busy}>{mode === 'login' ? 'Log in' : 'Create account'}</button>
      </form>
    </main>
  );
}
