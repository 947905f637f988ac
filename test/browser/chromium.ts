/**
 * Debian's Chromium driven by playwright-core (no browser download): headless, a fresh profile per
 * launch, and the flags that keep it off the network (this machine has none but loopback).
 * `.ci/run` installs the package; without it the browser tests say so and are skipped.
 */
import fs from 'node:fs';
import { chromium, type Browser } from 'playwright-core';

export const CHROMIUM_PATH = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';

/** Why the browser tests cannot run here, or null when they can. */
export const chromiumMissing: string | null = fs.existsSync(CHROMIUM_PATH)
  ? null
  : `browser tests skipped: no Chromium at ${CHROMIUM_PATH} (apt-get install chromium, or set CHROMIUM_PATH)`;
if (chromiumMissing) console.warn(chromiumMissing);

export function launchChromium(): Promise<Browser> {
  return chromium.launch({
    executablePath: CHROMIUM_PATH,
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--disable-quic', '--no-first-run'],
  });
}
