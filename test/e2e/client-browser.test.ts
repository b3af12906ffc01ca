/**
 * The shardws client next to Chromium's own WebSocket (headless, Debian's package, driven by
 * playwright-core): the same scenarios against the same servers must produce the same events,
 * in the same order, with the same readyState, codes and data types. The one documented
 * difference is the default binaryType ('nodebuffer' here, as ws; 'blob' in browsers).
 */
import { existsSync } from 'node:fs';
import { createServer as createHttpsServer } from 'node:https';
import type { Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { chromium } from 'playwright-core';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WebSocketServer } from 'ws';
import { WebSocket } from '../../src/client/websocket.ts';
import { testCert, testKey } from '../support/tls-fixture.ts';

const CHROMIUM = '/usr/bin/chromium';
// CI installs chromium (.ci/run): there a missing browser is a failure, not a skip.
const run = existsSync(CHROMIUM) || process.env.CI === 'true';


interface Scenario {
  readonly url: string;
  readonly protocols?: string | string[];
  /** Call close() right after the constructor. */
  readonly closeAtOnce?: boolean;
  readonly binaryType?: string;
  /** Sent on open. */
  readonly send?: string;
}

/**
 * Runs one scenario with the WebSocket constructor given and returns what happened. It runs in
 * Chromium as its source text, so it uses nothing but its arguments and the language.
 */
const scenario = `async (Ctor, s) => {
  const events = [];
  let ws;
  try {
    ws = new Ctor(s.url, s.protocols);
  } catch (error) {
    return ['throws ' + error.name];
  }
  events.push('state ' + ws.readyState);
  if (s.binaryType !== undefined) ws.binaryType = s.binaryType;
  return await new Promise((resolve) => {
    const timer = setTimeout(() => resolve([...events, 'no close within 5 s']), 5000);
    ws.onopen = () => {
      events.push('open ' + ws.readyState + ' protocol=' + ws.protocol);
      if (s.send !== undefined) ws.send(s.send);
    };
    ws.onerror = () => events.push('error ' + ws.readyState);
    ws.onmessage = (e) => {
      const d = e.data;
      events.push(typeof d === 'string' ? 'message text ' + d : 'message ' + Object.prototype.toString.call(d) + ' ' + (d.size ?? d.byteLength));
    };
    ws.onclose = (e) => {
      events.push('close ' + e.code + ' ' + JSON.stringify(e.reason) + ' ' + e.wasClean + ' ' + ws.readyState);
      clearTimeout(timer);
      setTimeout(() => resolve(events), 50);
    };
    if (s.closeAtOnce) {
      ws.close();
      events.push('after close() ' + ws.readyState);
    }
  });
}`;

// eslint-disable-next-line @typescript-eslint/no-implied-eval -- the same source runs in both places
const runHere = new Function(`return (${scenario})`)() as (ctor: typeof WebSocket, s: Scenario) => Promise<string[]>;

describe.skipIf(!run)('the shardws client next to Chromium (needs /usr/bin/chromium)', () => {
  let browser: Browser;
  let page: Page;
  let wss: WebSocketServer;
  let tlsServer: Server;
  let tlsWss: WebSocketServer;
  let base: string;
  let closedPort: number;
  let tlsPort: number;

  beforeAll(async () => {
    wss = new WebSocketServer({
      port: 0,
      host: '127.0.0.1',
      handleProtocols: (offered) => (offered.has('chat') ? 'chat' : false),
      verifyClient: (info, done) => {
        const path = info.req.url ?? '/';
        if (path === '/forbidden') done(false, 403, 'Forbidden');
        else if (path === '/redirect') done(false, 302, 'Found', { Location: '/echo' });
        else done(true);
      },
    });
    await new Promise((resolve) => wss.once('listening', resolve));
    wss.on('connection', (socket, req) => {
      if (req.url === '/close') socket.close(4001, 'bye');
      else if (req.url === '/terminate') setTimeout(() => socket.terminate(), 20);
      else if (req.url === '/bad-frame') (socket as unknown as { _socket: import('node:net').Socket })._socket.write(Buffer.from([0x83, 0x00]));
      else if (req.url === '/binary') {
        socket.send(Buffer.from([1, 2, 3]));
        socket.close(1000);
      } else socket.on('message', (data, isBinary) => {
        socket.send(data, { binary: isBinary });
        socket.close(1000, 'echoed');
      });
    });
    base = `ws://127.0.0.1:${(wss.address() as AddressInfo).port}`;
    const closed = new WebSocketServer({ port: 0, host: '127.0.0.1' });
    await new Promise((resolve) => closed.once('listening', resolve));
    closedPort = (closed.address() as AddressInfo).port;
    await new Promise((resolve) => closed.close(resolve));
    tlsServer = createHttpsServer({ cert: testCert, key: testKey });
    tlsWss = new WebSocketServer({ server: tlsServer });
    await new Promise<void>((resolve) => tlsServer.listen(0, '127.0.0.1', resolve));
    tlsPort = (tlsServer.address() as AddressInfo).port;
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    });
    page = await browser.newPage();
  }, 60_000);

  afterAll(async () => {
    await browser?.close();
    for (const server of [wss, tlsWss]) {
      for (const client of server?.clients ?? []) client.terminate();
      await new Promise((resolve) => server?.close(resolve));
    }
    await new Promise((resolve) => tlsServer?.close(resolve));
  });

  async function both(s: Scenario): Promise<{ chromium: string[]; shardws: string[] }> {
    const inBrowser = (await page.evaluate(`(${scenario})(WebSocket, ${JSON.stringify(s)})`)) as string[];
    return { chromium: inBrowser, shardws: await runHere(WebSocket, s) };
  }

  const cases: [string, () => Scenario][] = [
    ['a refused connection', () => ({ url: `ws://127.0.0.1:${closedPort}/` })],
    ['a 403 answer to the upgrade', () => ({ url: `${base}/forbidden` })],
    ['a 302 answer (redirects are not followed)', () => ({ url: `${base}/redirect` })],
    ['wss:// to an IP address with a certificate nobody vouches for', () => ({ url: `wss://127.0.0.1:${tlsPort}/` })],
    ['a server that closes with 4001 and a reason', () => ({ url: `${base}/close` })],
    ['an echo of text, then the server closes', () => ({ url: `${base}/echo`, send: 'hello' })],
    ['a subprotocol the server picks', () => ({ url: `${base}/echo`, protocols: ['superchat', 'chat'], send: 'p' })],
    ["binary with binaryType 'blob'", () => ({ url: `${base}/binary`, binaryType: 'blob' })],
    ["binary with binaryType 'arraybuffer'", () => ({ url: `${base}/binary`, binaryType: 'arraybuffer' })],
    ['a server that drops the connection without a close frame', () => ({ url: `${base}/terminate` })],
    ['a server that breaks the protocol (a reserved opcode)', () => ({ url: `${base}/bad-frame` })],
    ['close() while connecting', () => ({ url: `${base}/echo`, closeAtOnce: true })],
    ['an http: URL, taken as ws:', () => ({ url: `${base.replace('ws:', 'http:')}/close` })],
    ['a URL with a fragment', () => ({ url: `${base}/echo#part` })],
    ['an ftp: URL', () => ({ url: 'ftp://127.0.0.1/' })],
    ['an unparsable URL', () => ({ url: 'ws://[::1/' })],
    ['a repeated subprotocol', () => ({ url: `${base}/echo`, protocols: ['chat', 'chat'] })],
    ['a subprotocol that is not a token', () => ({ url: `${base}/echo`, protocols: 'a b' })],
  ];

  for (const [name, make] of cases) {
    it(name, async () => {
      const { chromium: expected, shardws } = await both(make());
      expect(shardws).toEqual(expected);
    });
  }

  it("differs only in the default binaryType: 'nodebuffer' here (as ws), 'blob' in browsers", async () => {
    const { chromium: inBrowser, shardws } = await both({ url: `${base}/binary` });
    expect(inBrowser).toContain('message [object Blob] 3');
    expect(shardws).toContain('message [object Uint8Array] 3');
    expect(shardws.filter((e) => !e.startsWith('message'))).toEqual(inBrowser.filter((e) => !e.startsWith('message')));
  });
});
