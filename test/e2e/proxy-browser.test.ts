/**
 * Chromium through the gateway: headless Chromium (Debian's package, driven by playwright-core)
 * opens WebSockets to a shardws gateway with permessage-deflate, which proxies them in message
 * mode to a ws server that has none.
 */
import type { AddressInfo } from 'node:net';
import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WebSocketServer } from 'ws';
import type { ShardServer } from '../../src/main/listen.ts';
import { chromiumAvailable, launchChromium } from './chromium.ts';
import { cleanup, startServer } from './helpers.ts';


describe.skipIf(!chromiumAvailable)('Chromium through the gateway (needs /usr/bin/chromium)', () => {
  let browser: Browser;
  let upstream: WebSocketServer;
  let gateway: ShardServer;
  const upstreamExtensions: (string | undefined)[] = [];

  beforeAll(async () => {
    upstream = new WebSocketServer({ port: 0, host: '127.0.0.1', perMessageDeflate: false, handleProtocols: (offered) => (offered.has('json.v1') ? 'json.v1' : false) });
    await new Promise((resolve) => upstream.once('listening', resolve));
    upstream.on('connection', (ws, req) => {
      upstreamExtensions.push(req.headers['sec-websocket-extensions']);
      ws.on('message', (data, isBinary) => ws.send(data as Buffer, { binary: isBinary }));
    });
    gateway = await startServer({ deflate: 'shared', proxy: { url: `ws://127.0.0.1:${(upstream.address() as AddressInfo).port}` } });
    browser = await launchChromium();
  }, 60_000);

  afterAll(async () => {
    await browser?.close();
    await cleanup();
    for (const client of upstream?.clients ?? []) client.terminate();
    await new Promise((resolve) => upstream?.close(resolve));
  });

  it('echoes text and binary through the gateway, compressed on the browser leg only, with the upstream subprotocol', async () => {
    const page = await browser.newPage();
    // A page of the gateway's own origin (its 426 answer): Chromium's local-network checks block
    // about:blank from reaching 127.0.0.1.
    await page.goto(`http://127.0.0.1:${gateway.address().port}/`);
    const url = `ws://127.0.0.1:${gateway.address().port}/room/1`;
    const result = await page.evaluate(async (target) => {
      const ws = new WebSocket(target, ['json.v1']);
      ws.binaryType = 'arraybuffer';
      await new Promise((resolve, reject) => {
        ws.addEventListener('open', resolve);
        ws.addEventListener('error', reject);
      });
      const next = (): Promise<unknown> => new Promise((resolve) => ws.addEventListener('message', (event) => resolve(event.data), { once: true }));
      const text = JSON.stringify({ rows: Array.from({ length: 100 }, (_, i) => ({ i })) });
      ws.send(text);
      const echoedText = await next();
      const bytes = new Uint8Array(70_000).map((_, i) => i % 251);
      ws.send(bytes);
      const echoedBytes = new Uint8Array((await next()) as ArrayBuffer);
      const closed = new Promise<number>((resolve) => ws.addEventListener('close', (event) => resolve(event.code)));
      ws.close(4000, 'browser done');
      return {
        protocol: ws.protocol,
        extensions: ws.extensions,
        textOk: echoedText === text,
        bytesOk: echoedBytes.length === bytes.length && echoedBytes.every((b, i) => b === bytes[i]),
        closeCode: await closed,
      };
    }, url);
    expect(result).toEqual({ protocol: 'json.v1', extensions: expect.stringContaining('permessage-deflate'), textOk: true, bytesOk: true, closeCode: 4000 });
    expect(upstreamExtensions).toEqual([undefined]);
  }, 60_000);
});
