/**
 * Does a real browser use RFC 8441 against this server? Headless Chromium (Debian's package,
 * playwright-core), a self-signed certificate accepted with ignoreHTTPSErrors. Chromium opens a
 * WebSocket on an HTTP/2 connection it already holds to the origin, once that connection's
 * SETTINGS enabled extended CONNECT; with none (a page from elsewhere), it upgrades over
 * HTTP/1.1. The app's greeting tells which: method CONNECT (RFC 8441) or GET (RFC 6455).
 */
import { fileURLToPath } from 'node:url';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ShardServer } from '../../src/main/listen.ts';
import { chromiumAvailable, launchChromium } from './chromium.ts';
import { cleanup, fixtureApp, startServer } from './helpers.ts';


const tlsFixture = (name: string): string => fileURLToPath(new URL(`../fixtures/tls/${name}`, import.meta.url));

/** Opens a WebSocket from the page, sends one message, and returns the greeting and the echo. */
function greetAndEcho(page: Page, url: string): Promise<{ hello: { method: string; url: string }; echo: string; protocol: string }> {
  return page.evaluate(
    (target) =>
      new Promise((resolve, reject) => {
        const ws = new WebSocket(target, ['chat']);
        const received: string[] = [];
        ws.onmessage = (event) => {
          received.push(String(event.data));
          if (received.length === 1) ws.send('from chromium');
          else {
            resolve({ hello: JSON.parse(received[0]!) as { method: string; url: string }, echo: received[1]!, protocol: ws.protocol });
            ws.close();
          }
        };
        ws.onerror = () => reject(new Error('WebSocket error'));
      }),
    url,
  );
}

describe.skipIf(!chromiumAvailable)('Chromium against an http2 server (needs /usr/bin/chromium)', () => {
  let browser: Browser;
  let server: ShardServer;

  beforeAll(async () => {
    server = await startServer({ app: fixtureApp('h2-probe'), http2: true, workers: 1, tls: { certFile: tlsFixture('cert.pem'), keyFile: tlsFixture('key.pem') } });
    browser = await launchChromium();
  }, 60_000);

  afterAll(async () => {
    await browser?.close();
    await cleanup();
  });

  it('upgrades over HTTP/1.1 with no HTTP/2 connection to the origin, and over RFC 8441 on the one its page came by', async () => {
    const context = await browser.newContext({ ignoreHTTPSErrors: true });
    try {
      const origin = `localhost:${server.address().port}`;
      const blank = await context.newPage();
      const first = await greetAndEcho(blank, `wss://${origin}/first`);
      expect(first.hello).toMatchObject({ method: 'GET', url: '/first' });
      expect([first.echo, first.protocol]).toEqual(['from chromium', 'chat']);

      const page = await context.newPage();
      const response = await page.goto(`https://${origin}/page`);
      expect(await response!.text()).toBe('http 2.0 GET /page');
      const second = await greetAndEcho(page, `wss://${origin}/second`);
      expect(second.hello).toMatchObject({ method: 'CONNECT', url: '/second' });
      expect([second.echo, second.protocol]).toEqual(['from chromium', 'chat']);
    } finally {
      await context.close();
    }
  });
});
