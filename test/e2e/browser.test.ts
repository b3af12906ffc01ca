/**
 * The demo chat page in a real browser: headless Chromium (Debian's package, driven by
 * playwright-core; never a downloaded browser), two pages chatting through a 2-worker server
 * with permessage-deflate.
 */
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ShardServer } from '../../src/main/listen.ts';
import { chromiumAvailable, launchChromium } from './chromium.ts';
import { cleanup, startServer } from './helpers.ts';


// Functions given to page.evaluate run in Chromium; the project's lib has no DOM, so this module
// names the few browser globals they touch (module-scoped: nothing leaks into other files).
declare const location: { readonly host: string };
declare const document: { querySelectorAll(selector: string): Iterable<HTMLElement>; readonly documentElement: { readonly scrollWidth: number } };
declare const window: { readonly innerWidth: number };
declare class Image {
  src: string;
  readonly naturalWidth: number;
  decode(): Promise<void>;
}
interface HTMLElement {
  readonly dataset: Readonly<Record<string, string | undefined>>;
}

describe.skipIf(!chromiumAvailable)('demo chat page in Chromium (needs /usr/bin/chromium: apt-get install chromium)', () => {
  let browser: Browser;
  let server: ShardServer;

  beforeAll(async () => {
    server = await startServer({ deflate: 'shared' });
    browser = await launchChromium();
  }, 60_000);

  afterAll(async () => {
    await browser?.close();
    await cleanup();
  });

  async function openChat(name: string): Promise<Page> {
    const page = await browser.newPage();
    await page.goto(`http://127.0.0.1:${server.address().port}/`);
    await page.waitForSelector('#status[data-worker]');
    await page.fill('#name', name);
    return page;
  }

  it('two pages chat across workers, compressed, and see the per-worker counts', async () => {
    // Open pages until two sit on different workers (the balancer alternates; the kernel may not).
    const pages: Page[] = [];
    const workerOf = async (page: Page): Promise<string> => (await page.getAttribute('#status', 'data-worker')) ?? '';
    let ann: Page | undefined;
    let bob: Page | undefined;
    for (let i = 0; i < 8 && (ann === undefined || bob === undefined); i++) {
      const page = await openChat(`user${i}`);
      pages.push(page);
      if (ann === undefined) ann = page;
      else if ((await workerOf(page)) !== (await workerOf(ann))) bob = page;
    }
    expect(bob, 'two pages on different workers').toBeDefined();
    await ann!.fill('#name', 'ann');
    await bob!.fill('#name', 'bob');

    // The browser negotiated permessage-deflate with the server.
    const extensions = await ann!.evaluate(async () => {
      const ws = new WebSocket(`ws://${location.host}/echo`);
      await new Promise((resolve) => ws.addEventListener('open', resolve));
      const value = ws.extensions;
      ws.close();
      return value;
    });
    expect(extensions).toContain('permessage-deflate');

    await ann!.fill('#text', 'hello from ann');
    await ann!.click('button');
    await bob!.waitForSelector('#log li:has-text("hello from ann")');
    await bob!.fill('#text', 'hi ann, bob here');
    await bob!.press('#text', 'Enter');
    await ann!.waitForSelector('#log li:has-text("hi ann, bob here")');
    expect(await bob!.textContent('#log')).toContain('ann: hello from ann');

    // The room's member count covers every worker, and follows a page that leaves.
    await ann!.waitForSelector(`#members[data-members="${pages.length}"]`);
    await bob!.waitForSelector(`#members[data-members="${pages.length}"]`);

    // The per-worker counts on the page follow the server's (pushed once a second).
    const total = pages.length;
    await ann!.waitForFunction(
      (expected) => [...document.querySelectorAll('#workers span')].reduce((sum, el) => sum + Number((el as HTMLElement).dataset.connections), 0) === expected,
      total,
      { timeout: 10_000 },
    );
    expect(await ann!.locator('#workers span').count()).toBe(2);
    await pages.at(-1)!.close();
    await ann!.waitForSelector(`#members[data-members="${total - 1}"]`, { timeout: 10_000 });
    await ann!.waitForFunction(
      (expected) => [...document.querySelectorAll('#workers span')].reduce((sum, el) => sum + Number((el as HTMLElement).dataset.connections), 0) === expected,
      total - 1,
      { timeout: 10_000 },
    );
    await ann!.screenshot({ path: 'test/.artifacts/chat.png' }).catch(() => {});
  }, 60_000);

  // Phones from the narrowest in use (320 px) to a desktop, in light and dark mode.
  it.each([
    ['phone', 320, 568, 'light'],
    ['phone', 390, 844, 'dark'],
    ['phone', 390, 844, 'light'],
    ['desktop', 1280, 800, 'dark'],
  ] as const)('fits a %s screen (%i×%i, %s mode): no horizontal overflow, Send on screen, labelled inputs', async (name, width, height, colorScheme) => {
    const context = await browser.newContext({ viewport: { width, height }, colorScheme, isMobile: width < 500, hasTouch: width < 500 });
    try {
      const page = await context.newPage();
      await page.goto(`http://127.0.0.1:${server.address().port}/`);
      await page.waitForSelector('#status[data-worker]');
      const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
      expect(overflow, 'page wider than the screen').toBeLessThanOrEqual(0);
      const send = page.getByRole('button', { name: 'Send' });
      await expect(send.isVisible()).resolves.toBe(true);
      const box = (await send.boundingBox())!;
      expect(box.x).toBeGreaterThanOrEqual(0);
      expect(box.x + box.width).toBeLessThanOrEqual(width);
      expect(box.y + box.height).toBeLessThanOrEqual(height);
      // Inputs are found by their labels, as a screen reader names them; typing and Send work.
      await page.getByLabel('Your name').fill('narrow');
      await page.getByLabel('Message').fill(`hello from ${width} px`);
      await send.click();
      await page.waitForSelector(`#log li:has-text("hello from ${width} px")`);
      await page.screenshot({ path: `test/.artifacts/chat-${width}-${colorScheme}.png` }).catch(() => {});
    } finally {
      await context.close();
    }
  }, 60_000);

  it('serves a favicon the browser can draw', async () => {
    const page = await browser.newPage();
    try {
      await page.goto(`http://127.0.0.1:${server.address().port}/`);
      const width = await page.evaluate(async () => {
        const image = new Image();
        image.src = '/favicon.ico';
        await image.decode();
        return image.naturalWidth;
      });
      expect(width).toBe(16);
    } finally {
      await page.close();
    }
  });
});
