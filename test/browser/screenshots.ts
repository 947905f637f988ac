/**
 * `npm run screenshots`: takes the PNGs of docs/ (docs/screenshots/*.png) with Debian's Chromium:
 * a hub started as `npm start` would (test/e2e/spawn.ts, embedded database, a WhatsApp bridge
 * registered so one ghost shows its badge), seeded over the REST API, then the sign-in screen, the
 * chat on a desktop, a room on a phone-sized screen and the new-group dialog.
 */
import fs from 'node:fs';
import path from 'node:path';
import sharp from 'sharp';
import { REPO_ROOT, spawnHub } from '../e2e/spawn.js';
import { chromiumMissing, launchChromium } from './chromium.js';

const OUT = path.join(REPO_ROOT, 'docs/screenshots');
const AS_TOKEN = 'a'.repeat(64);

async function main(): Promise<void> {
  if (chromiumMissing) throw new Error(chromiumMissing);
  const hub = await spawnHub({
    toml: `[[bridges]]\nid = "whatsapp"\nnetwork = "whatsapp"\nurl = "http://127.0.0.1:9"\nas_token = "${AS_TOKEN}"\nhs_token = "${'b'.repeat(64)}"\n[bridges.whatsapp]\n`,
  });
  const call = async (method: string, url: string, token: string | null, body?: unknown) => {
    const res = await fetch(hub.url + url, {
      method,
      headers: { ...(token ? { authorization: `Bearer ${token}` } : {}), ...(body ? { 'content-type': 'application/json' } : {}) },
      body: body ? JSON.stringify(body) : undefined,
    });
    if (!res.ok) throw new Error(`${method} ${url}: ${res.status} ${await res.text()}`);
    return res.status === 204 ? null : res.json();
  };
  const user = (name: string) => call('POST', '/api/auth/register', null, { email: `${name.toLowerCase()}@example.com`, name, password: 'correct horse battery' });
  try {
    const [alice, bob, carol] = [await user('Alice'), await user('Bob'), await user('Carol')];
    const ghost = await call('POST', '/api/bridge/ghosts', AS_TOKEN, { localpart: 'whatsapp_15551234567', name: 'Dana (WhatsApp)' });
    const direct = await call('POST', '/api/rooms', alice.token, { type: 'direct', members: [bob.user.id] });
    const group = await call('POST', '/api/rooms', alice.token, { type: 'group', name: 'Launch plan', members: [bob.user.id, carol.user.id] });
    await call('POST', '/api/rooms', alice.token, { type: 'channel', name: 'general', topic: 'Everything else', visibility: 'public' });
    const portal = await call('POST', '/api/rooms', alice.token, { type: 'direct', members: [ghost.id] });
    const say = (s: any, room: string, content: string, extra: object = {}) => call('POST', `/api/rooms/${room}/messages`, s.token, { content, ...extra });
    await say(alice, group.id, 'Kick-off is on Monday at 10');
    await say(carol, group.id, 'I will bring the slides');
    await call('POST', `/api/rooms/${portal.id}/messages?user_id=${ghost.id}`, AS_TOKEN, { content: 'Is the order on its way?' });
    const first = await say(alice, direct.id, 'Morning! Did you see the mock-ups?');
    await say(bob, direct.id, `Yes, they look great <@${alice.user.id}>`, { reply_to: first.id });
    const img = await sharp({ create: { width: 480, height: 300, channels: 3, background: { r: 58, g: 91, b: 217 } } })
      .composite([{ input: Buffer.from('<svg width="480" height="300"><text x="40" y="170" font-size="56" fill="white" font-family="sans-serif">Mock-up v2</text></svg>'), top: 0, left: 0 }])
      .png()
      .toBuffer();
    const form = new FormData();
    form.append('file', new Blob([new Uint8Array(img)], { type: 'image/png' }), 'mockup.png');
    const att = await (await fetch(`${hub.url}/api/attachments`, { method: 'POST', headers: { authorization: `Bearer ${bob.token}` }, body: form })).json();
    const photo = await say(bob, direct.id, 'Here is the new one', { attachments: [att.id] });
    await call('PUT', `/api/messages/${photo.id}/reactions/${encodeURIComponent('🎉')}`, alice.token);
    const typo = await say(alice, direct.id, 'Lets ship it on Fridy');
    await call('PATCH', `/api/messages/${typo.id}`, alice.token, { content: "Let's ship it on Friday" });
    await call('POST', `/api/rooms/${direct.id}/read`, bob.token, {});

    fs.mkdirSync(OUT, { recursive: true });
    const browser = await launchChromium();
    const shot = async (name: string, viewport: { width: number; height: number }, steps: (page: import('playwright-core').Page) => Promise<void>) => {
      const context = await browser.newContext({ viewport, deviceScaleFactor: 1, colorScheme: 'light' });
      const page = await context.newPage();
      await page.goto(hub.url);
      await steps(page);
      await page.waitForTimeout(300);
      await page.screenshot({ path: path.join(OUT, `${name}.png`) });
      await context.close();
      console.log(`docs/screenshots/${name}.png`);
    };
    const login = async (page: import('playwright-core').Page, email: string) => {
      await page.getByLabel('Email').fill(email);
      await page.getByLabel('Password').fill('correct horse battery');
      await page.getByRole('button', { name: 'Log in' }).last().click();
      await page.getByRole('button', { name: 'Log out' }).waitFor();
    };
    await shot('sign-in', { width: 900, height: 600 }, async () => undefined);
    await shot('chat', { width: 1200, height: 720 }, async (page) => {
      await login(page, 'alice@example.com');
      await page.getByRole('navigation', { name: 'Rooms' }).getByRole('button', { name: /Bob/ }).click();
      await page.getByRole('img', { name: 'mockup.png' }).waitFor();
      await page.waitForFunction(() => (document.querySelector('.messages img') as HTMLImageElement | null)?.naturalWidth! > 0);
    });
    await shot('phone', { width: 390, height: 760 }, async (page) => {
      await login(page, 'bob@example.com');
      await page.getByRole('navigation', { name: 'Rooms' }).getByRole('button', { name: /Alice/ }).click();
      await page.getByRole('img', { name: 'mockup.png' }).waitFor();
      await page.waitForFunction(() => (document.querySelector('.messages img') as HTMLImageElement | null)?.naturalWidth! > 0);
    });
    await shot('new-group', { width: 1200, height: 720 }, async (page) => {
      await login(page, 'carol@example.com');
      await page.getByRole('button', { name: 'New group' }).click();
      await page.getByLabel('Group name').fill('Design review');
      await page.getByLabel('Add people').fill('Alice');
      await page.getByRole('button', { name: /Add Alice/ }).click();
      await page.getByLabel('Add people').fill('Bo');
      await page.getByRole('button', { name: /Add Bob/ }).waitFor();
    });
    await browser.close();
  } finally {
    await hub.stop();
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
