/**
 * The demo chat with a streams bridge, in headless Chromium: a page that leaves and comes back
 * (another page of the site, then back; a reload) gets the messages sent meanwhile, after the
 * ones it had, each once. Needs redis-server and /usr/bin/chromium (CI installs both).
 */
import { existsSync } from 'node:fs';
import { chromium } from 'playwright-core';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { redisBridge } from '../src/main/redis-bridge.ts';
import type { ShardServer } from '../src/main/listen.ts';
import { cleanup, startServer, waitFor } from './e2e/helpers.ts';
import { RedisServer, hasRedisServer } from './support/redis-server.ts';

const CHROMIUM = '/usr/bin/chromium';
const run = (existsSync(CHROMIUM) && hasRedisServer) || process.env.CI === 'true';

describe.skipIf(!run)('demo chat recovery in Chromium (needs chromium and redis-server)', () => {
  let redis: RedisServer;
  let server: ShardServer;
  let browser: Browser;
  let bob: WebSocket;
  // The chat messages bob got back with their stream ids: each one is in Redis.
  const bobSaw: string[] = [];

  beforeAll(async () => {
    redis = await RedisServer.launch();
    // The demo app (no `app`), two workers, chat recovery through Redis streams.
    server = await startServer({ bridge: redisBridge({ url: redis.url, mode: 'streams' }) });
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    });
    bob = new WebSocket(`ws://127.0.0.1:${server.address().port}/chat`);
    bob.on('message', (data) => {
      const msg = JSON.parse(String(data)) as { type?: string; id?: string; text?: string };
      if (msg.type === 'chat' && msg.id !== undefined && msg.text !== undefined) bobSaw.push(msg.text);
    });
    await new Promise((resolve) => bob.once('open', resolve));
  }, 60_000);

  afterAll(async () => {
    bob?.terminate();
    await browser?.close();
    await cleanup();
    await redis?.stop();
  });

  const say = (text: string): void => bob.send(JSON.stringify({ name: 'bob', text }));
  const chat = async (page: Page): Promise<string[]> => page.locator('#log li:not(.system) ').evaluateAll((items) => items.map((li) => li.childNodes[1]?.textContent ?? ''));
  const system = async (page: Page): Promise<string[]> => page.locator('#log li.system').allTextContents();

  it('a page that left and came back, or reloaded, shows what it missed after what it had, each once', async () => {
    const url = `http://127.0.0.1:${server.address().port}/`;
    const page = await browser.newPage();
    await page.goto(url);
    await page.waitForSelector('#status[data-worker]');
    say('one');
    await page.waitForSelector('#log li:has-text("one")');

    // Away: another page of the site in the same tab (sessionStorage stays), while bob talks.
    await page.goto(`${url}nothing-here`);
    say('two');
    say('three');
    // Wait until bob has both back with their ids: then both are in the stream. (The bridge's
    // `published` count is no sign of that: the demo also publishes worker counts each second.)
    await waitFor(() => bobSaw.includes('three') && bobSaw.includes('two'), 'the messages in Redis', 10_000);
    await page.goto(url);
    await page.waitForSelector('#log li:has-text("three")');
    expect(await chat(page)).toEqual(['one', 'two', 'three']);
    expect(await system(page)).toContain('2 messages arrived while you were away.');

    // Live again.
    say('four');
    await page.waitForSelector('#log li:has-text("four")');
    // A reload: everything once, in order; nothing was missed this time.
    await page.reload();
    await page.waitForSelector('#status[data-worker]');
    say('five');
    await page.waitForSelector('#log li:has-text("five")');
    expect(await chat(page)).toEqual(['one', 'two', 'three', 'four', 'five']);
    const ids = await page.locator('#log li[data-id]').evaluateAll((items) => items.map((li) => (li as unknown as { dataset: { id: string } }).dataset.id));
    expect(new Set(ids).size).toBe(5);
  }, 60_000);
});
