import { useEffect, useState } from 'preact/hooks';
import type { SwitchboardClient } from '@switchboard/sdk';

/** Re-renders the component after every change of the client's store or outbox. */
export function useClientUpdates(client: SwitchboardClient): void {
  const [, setTick] = useState(0);
  const bump = () => setTick((n) => n + 1);
  useEffect(() => {
    const offs = [client.store.subscribe(bump), client.on('outbox', bump), client.on('state', bump)];
    return () => offs.forEach((off) => off());
  }, [client]);
}
