/**
 * The top level: restores the stored session (a reload stays signed in), else shows the sign-in
 * screen; once signed in, the chat. A session that ends (logout, revoked elsewhere) returns here.
 */
import { useEffect, useState } from 'preact/hooks';
import { SwitchboardClient } from '@switchboard/sdk';
import { SignIn } from './sign-in.tsx';
import { Chat } from './chat.tsx';
import { clientOptions } from './session.ts';

export function App() {
  const [client, setClient] = useState<SwitchboardClient | null | undefined>(undefined);

  useEffect(() => {
    SwitchboardClient.restore(clientOptions).then(setClient, () => setClient(null));
  }, []);

  useEffect(() => {
    if (!client) return;
    return client.on('ended', () => setClient(null));
  }, [client]);

  if (client === undefined) return <p class="loading" role="status">Loading…</p>;
  if (client === null) return <SignIn onSignedIn={setClient} />;
  return (
    <Chat
      key={client.deviceId}
      client={client}
      onLogout={async () => {
        await client.logout();
        setClient(null);
      }}
    />
  );
}
