/**
 * The web client in a real browser (Debian's Chromium through playwright-core) against a real hub:
 * two browser contexts register, open a direct room and chat both ways with typing, read marks, a
 * reply, a reaction, an edit, a deletion and an image; one goes offline (the browser's network cut),
 * writes two messages, comes back, and the other sees them once, in order; a reload keeps the session.
 * And older history loads page by page when scrolled to the top.
 */
import sharp from 'sharp';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { register, startTestHub, type TestHub } from '../helpers/hub.js';
import { createRoom, sendMessage } from '../helpers/rest.js';
import { chromiumMissing, launchChromium } from './chromium.js';

const WAIT_MS = 10_000;
let t: TestHub;
let browser: Browser;
let contexts: BrowserContext[] = [];
const errors: string[] = [];

async function newPage(): Promise<Page> {
  const context = await browser.newContext({ viewport: { width: 1100, height: 800 } });
  contexts.push(context);
  const page = await context.newPage();
  page.on('pageerror', (err) => errors.push(`${err.message}`));
  page.on('console', (msg) => msg.type() === 'error' && !/Failed to load resource|ERR_INTERNET_DISCONNECTED|WebSocket/.test(msg.text()) && errors.push(msg.text()));
  page.on('dialog', (dialog) => void dialog.accept());
  await page.goto(t.url);
  return page;
}

async function registerIn(page: Page, name: string): Promise<void> {
  await page.getByRole('tab', { name: 'Create account' }).click();
  await page.getByLabel('Email').fill(`${name.toLowerCase()}-${Date.now()}@example.test`);
  await page.getByLabel('Name').fill(name);
  await page.getByLabel('Password').fill('correct horse battery');
  await page.getByRole('button', { name: 'Create account' }).last().click();
  await page.getByRole('button', { name: 'Log out' }).waitFor({ timeout: WAIT_MS });
}

/** The message list item whose text contains `text`. */
const message = (page: Page, text: string) => page.locator('.messages > li.message').filter({ hasText: text });
const bodies = (page: Page) => page.locator('.messages > li.message:not(.pending) .body').allInnerTexts();

async function send(page: Page, text: string): Promise<void> {
  const box = page.getByRole('textbox', { name: 'Message' });
  await box.fill(text);
  await box.press('Enter');
}

beforeAll(async () => {
  if (chromiumMissing) return;
  t = await startTestHub({ realtime: { typing_timeout_ms: 3000 } });
  browser = await launchChromium();
});
afterAll(async () => {
  for (const c of contexts) await c.close().catch(() => undefined);
  await browser?.close();
  await t?.close();
});

describe.skipIf(chromiumMissing !== null)('web client in Chromium', () => {
  it('two users chat, and an offline one catches up without loss or duplicates', async () => {
    const alice = await newPage();
    const bob = await newPage();
    await registerIn(alice, 'Alice');
    await registerIn(bob, 'Bob');

    // Alice finds Bob and opens a direct room; Bob sees it appear and opens it.
    await alice.getByRole('button', { name: 'New direct message' }).click();
    await alice.getByLabel('Find a person').fill('Bob');
    await alice.getByRole('list', { name: 'People' }).getByRole('button', { name: /Bob/ }).click();
    await alice.getByRole('heading', { name: 'Bob' }).waitFor({ timeout: WAIT_MS });
    await bob.getByRole('navigation', { name: 'Rooms' }).getByRole('button', { name: /Alice/ }).click();
    await bob.getByRole('heading', { name: 'Alice' }).waitFor({ timeout: WAIT_MS });

    // Typing, then the message; Bob has the room open, so Alice's message gets its read mark.
    await alice.getByRole('textbox', { name: 'Message' }).fill('Hello Bob');
    await bob.getByText('Alice is typing…').waitFor({ timeout: WAIT_MS });
    await alice.getByRole('textbox', { name: 'Message' }).press('Enter');
    await message(bob, 'Hello Bob').waitFor({ timeout: WAIT_MS });
    await bob.getByText('Alice is typing…').waitFor({ state: 'hidden', timeout: WAIT_MS });
    await message(alice, 'Hello Bob').getByLabel('Read').waitFor({ timeout: WAIT_MS });

    // Bob replies to it, the other way round.
    await message(bob, 'Hello Bob').getByRole('button', { name: 'Reply' }).click();
    await bob.getByText('Replying to Alice').waitFor();
    await bob.getByRole('textbox', { name: 'Message' }).fill('Hi Alice');
    await alice.getByText('Bob is typing…').waitFor({ timeout: WAIT_MS });
    await bob.getByRole('textbox', { name: 'Message' }).press('Enter');
    const reply = message(alice, 'Hi Alice');
    await reply.waitFor({ timeout: WAIT_MS });
    expect(await reply.locator('blockquote').innerText()).toContain('Hello Bob');
    await message(bob, 'Hi Alice').getByLabel('Read').waitFor({ timeout: WAIT_MS });

    // A reaction, an edit, a deletion.
    await reply.getByRole('button', { name: 'React', exact: true }).click();
    await reply.getByRole('button', { name: 'React with 👍' }).click();
    await message(bob, 'Hi Alice').getByRole('button', { name: '👍 1' }).waitFor({ timeout: WAIT_MS });
    await message(alice, 'Hello Bob').getByRole('button', { name: 'Edit' }).click();
    await alice.getByRole('textbox', { name: 'Message' }).fill('Hello Bob, lunch?');
    await alice.getByRole('button', { name: 'Save' }).click();
    await message(bob, 'Hello Bob, lunch?').getByText('(edited)').waitFor({ timeout: WAIT_MS });
    await message(bob, 'Hi Alice').getByRole('button', { name: 'Delete' }).click();
    await alice.locator('.messages .tombstone', { hasText: 'Message deleted' }).waitFor({ timeout: WAIT_MS });
    expect(await message(alice, 'Hi Alice').count()).toBe(0);

    // An image: upload with progress, then its thumbnail on the other side.
    const png = await sharp({ create: { width: 64, height: 48, channels: 3, background: { r: 40, g: 120, b: 220 } } }).png().toBuffer();
    await alice.getByLabel('Attach files').setInputFiles({ name: 'photo.png', mimeType: 'image/png', buffer: png });
    await alice.getByText('✓ uploaded').waitFor({ timeout: WAIT_MS });
    await send(alice, 'A photo');
    const img = message(bob, 'A photo').getByRole('img', { name: 'photo.png' });
    await img.waitFor({ timeout: WAIT_MS });
    await bob.waitForFunction(() => (document.querySelector('.messages img') as HTMLImageElement | null)?.naturalWidth! > 0, undefined, { timeout: WAIT_MS });
    expect(await img.getAttribute('src')).toMatch(/^blob:/);

    // Bob's network goes away: he writes two messages, which wait in the outbox until he is back.
    await bob.context().setOffline(true);
    await bob.getByRole('status').filter({ hasText: 'Reconnecting' }).waitFor({ timeout: WAIT_MS });
    await send(bob, 'offline one');
    await send(bob, 'offline two');
    await bob.getByText('2 messages waiting to be sent').waitFor({ timeout: WAIT_MS });
    expect(await message(alice, 'offline one').count()).toBe(0);
    await bob.context().setOffline(false);
    await message(alice, 'offline two').waitFor({ timeout: WAIT_MS });
    await message(bob, 'offline two').getByLabel(/Delivered|Read/).waitFor({ timeout: WAIT_MS });
    expect((await bodies(alice)).filter((b) => b.startsWith('offline'))).toEqual(['offline one', 'offline two']);

    // A reload keeps the session and the open room; the history and read marks come back from the hub.
    await alice.reload();
    await alice.getByRole('button', { name: 'Log out' }).waitFor({ timeout: WAIT_MS });
    await message(alice, 'offline two').waitFor({ timeout: WAIT_MS });
    expect((await bodies(alice)).filter((b) => b.startsWith('offline'))).toEqual(['offline one', 'offline two']);
    await message(alice, 'A photo').getByLabel('Read').waitFor({ timeout: WAIT_MS }); // receipts come back too

    // Logging out ends the session, and a reload stays logged out.
    await alice.getByRole('button', { name: 'Log out' }).click();
    await alice.getByRole('tab', { name: 'Log in' }).waitFor({ timeout: WAIT_MS });
    await alice.reload();
    await alice.getByRole('tab', { name: 'Log in' }).waitFor({ timeout: WAIT_MS });
    expect(errors).toEqual([]);
  }, 90_000);

  it('loads older messages when the history is scrolled to the top, keeping their order', async () => {
    const [ivy, jack] = [await register(t.url, 'Ivy'), await register(t.url, 'Jack')];
    const room = await createRoom(t.url, ivy, { type: 'direct', members: [jack.user.id] });
    for (let i = 1; i <= 70; i++) await sendMessage(t.url, ivy, room.id, `history ${i}`);
    const page = await newPage();
    await page.getByLabel('Email').fill(jack.user.email);
    await page.getByLabel('Password').fill('correct horse battery');
    await page.getByRole('button', { name: 'Log in' }).last().click();
    await page.getByRole('navigation', { name: 'Rooms' }).getByRole('button', { name: /Ivy/ }).click();
    await message(page, 'history 70').waitFor({ timeout: WAIT_MS });
    const history = async () => (await bodies(page)).filter((b) => b.startsWith('history'));
    expect(await history()).toEqual(Array.from({ length: 50 }, (_, i) => `history ${i + 21}`)); // the latest page
    await page.getByRole('list', { name: 'Messages' }).evaluate((el) => (el.scrollTop = 0));
    await page.getByText('This is the start of the room.').waitFor({ timeout: WAIT_MS });
    expect(await history()).toEqual(Array.from({ length: 70 }, (_, i) => `history ${i + 1}`));
    expect(errors).toEqual([]);
  }, 60_000);
});
