/**
 * The `deflate` option over real sockets: every preset and a custom setting, negotiated with ws
 * clients that offer or refuse each RFC 7692 parameter and with raw offers ws cannot make;
 * data both ways, and broadcasts mixed into connections that keep context (the bytes on the
 * wire, and ws and Chromium decoding them).
 */
import { constants, inflateRawSync } from 'node:zlib';
import { chromiumAvailable, useChromium } from './chromium.ts';
import { afterEach, describe, expect, it } from 'vitest';
import type { ClientOptions } from 'ws';
import type { ShardServer } from '../../src/main/listen.ts';
import type { DeflateOptions, DeflatePreset } from '../../src/shared/config.ts';
import { resolveConfig } from '../../src/shared/config.ts';
import { parseExtensionHeader } from '../../src/shared/extension-header.ts';
import { acceptDeflateOffer } from '../../src/shared/permessage-deflate.ts';
import { broadcastMessage, jsonRecords, ownMessage } from '../fixtures/apps/deflate-mix.ts';
import { RawConnection, TestClient, cleanup, fixtureApp, startServer, upgradeRequest, waitFor, wsUrl } from './helpers.ts';

afterEach(cleanup);

const startMix = (deflate: DeflatePreset | DeflateOptions): Promise<ShardServer> => startServer({ app: fixtureApp('deflate-mix'), deflate });

/** The settings under test: every preset, and a custom one with both windows limited. */
const SETTINGS: readonly (DeflatePreset | DeflateOptions)[] = [
  'shared',
  'dedicated',
  'dedicated-compressor',
  'dedicated-compressor-small',
  { preset: 'dedicated', serverMaxWindowBits: 12, clientMaxWindowBits: 10, threshold: 0 },
];

/** ws clients offering, or not, each parameter (ws always offers client_max_window_bits unless told a number). */
const WS_OFFERS: readonly (readonly [string, ClientOptions['perMessageDeflate']])[] = [
  ['the default offer', true],
  ['server_no_context_takeover', { serverNoContextTakeover: true }],
  ['server_max_window_bits=10', { serverMaxWindowBits: 10 }],
  ['client_no_context_takeover', { clientNoContextTakeover: true }],
  ['client_max_window_bits=9', { clientMaxWindowBits: 9 }],
  ['everything', { serverNoContextTakeover: true, clientNoContextTakeover: true, serverMaxWindowBits: 9, clientMaxWindowBits: 11 }],
];

const MESSAGE = jsonRecords(20_000);

describe.each(SETTINGS.map((deflate) => ({ name: typeof deflate === 'string' ? deflate : JSON.stringify(deflate), deflate })))(
  'deflate $name with ws clients',
  ({ deflate }) => {
    it.each(WS_OFFERS)('negotiates with %s and carries compressed data both ways, broadcasts mixed in', async (_, perMessageDeflate) => {
      const server = await startMix(deflate);
      const config = resolveConfig({ deflate }, 1).deflate!;
      // ws compresses from 1 KiB by default; zero makes it compress everything, as we do.
      const options = typeof perMessageDeflate === 'object' ? { ...perMessageDeflate, threshold: 0 } : { threshold: 0 };
      const pending = new TestClient(wsUrl(server), undefined, { perMessageDeflate: options });
      let answered: string | undefined;
      pending.ws.once('upgrade', (response) => (answered = response.headers['sec-websocket-extensions']));
      const client = await pending.opened();
      await client.next(); // the greeting
      // What the server answered is what acceptDeflateOffer makes of the offer ws sends.
      const expected = acceptDeflateOffer(parseExtensionHeader(offerOf(options)), config)!;
      expect(answered).toBe(expected.response);

      const socket = client.socket;
      const [read0, written0] = [socket.bytesRead, socket.bytesWritten];
      client.ws.send(MESSAGE);
      await client.next();
      client.ws.send('mix:5');
      await waitFor(() => client.received.length === 2 + 15, 'the mixed messages');
      expect(client.texts.slice(1)).toEqual([MESSAGE, ...mixed(5)]);
      // Both ways compressed: far fewer bytes than the JSON itself.
      expect(socket.bytesWritten - written0).toBeLessThan(MESSAGE.length / 3);
      expect(socket.bytesRead - read0).toBeLessThan(MESSAGE.length / 3 + 3000);
    });
  },
);

/** The Sec-WebSocket-Extensions offer ws sends for these options (its PerMessageDeflate.offer()). */
function offerOf(options: Exclude<ClientOptions['perMessageDeflate'], boolean | undefined>): string {
  const params: string[] = ['permessage-deflate'];
  if (options.serverNoContextTakeover) params.push('server_no_context_takeover');
  if (options.clientNoContextTakeover) params.push('client_no_context_takeover');
  if (options.serverMaxWindowBits !== undefined) params.push(`server_max_window_bits=${options.serverMaxWindowBits}`);
  params.push(typeof options.clientMaxWindowBits === 'number' ? `client_max_window_bits=${options.clientMaxWindowBits}` : 'client_max_window_bits');
  return params.join('; ');
}

/** What `mix:N` sends the connection that asked, in order. */
const mixed = (rounds: number): string[] => Array.from({ length: rounds }, (_, round) => [ownMessage(round, 'a'), broadcastMessage(round), ownMessage(round, 'b')]).flat();

describe('deflate offers ws cannot make (raw sockets)', () => {
  it.each([
    ['dedicated, client window limited, no client_max_window_bits offered', { preset: 'dedicated', clientMaxWindowBits: 10 } as DeflateOptions, 'permessage-deflate', 'permessage-deflate; client_no_context_takeover'],
    ['dedicated, client window limited, client_max_window_bits offered', { preset: 'dedicated', clientMaxWindowBits: 10 } as DeflateOptions, 'permessage-deflate; client_max_window_bits', 'permessage-deflate; client_max_window_bits=10'],
    ['shared, a bare offer', 'shared', 'permessage-deflate', 'permessage-deflate; server_no_context_takeover; client_no_context_takeover'],
    ['4kb compressor, a larger window asked for', 'dedicated-compressor-small', 'permessage-deflate; server_max_window_bits=15', 'permessage-deflate; client_no_context_takeover; server_max_window_bits=9'],
    ['dedicated, an invalid offer then a valid one', 'dedicated', 'permessage-deflate; server_max_window_bits=16, permessage-deflate; server_max_window_bits=11', 'permessage-deflate; server_max_window_bits=11'],
    ['dedicated, only an invalid offer', 'dedicated', 'permessage-deflate; client_max_window_bits=7', null],
  ] as const)('%s', async (_, deflate, offer, answer) => {
    const server = await startMix(deflate);
    const raw = await RawConnection.open(server.address().port);
    const head = await raw.request(upgradeRequest('/', { 'Sec-WebSocket-Extensions': offer }));
    expect(head.status).toBe(101);
    expect(head.headers['sec-websocket-extensions'] ?? null).toBe(answer);
  });
});

describe('broadcasts in every compressor mode', () => {
  it.each(['shared', 'dedicated', 'dedicated-compressor', 'dedicated-compressor-small'] as const)(
    '%s: a 100 KB JSON publish goes out compressed to subscribers on every worker',
    async (deflate) => {
      const server = await startMix(deflate);
      const json = jsonRecords(100_000);
      // A raw subscriber on each worker, reading the frame as it is on the wire.
      const raws: RawConnection[] = [];
      const seen = new Set<number>();
      for (let attempt = 0; attempt < 64 && seen.size < 2; attempt++) {
        const raw = await RawConnection.open(server.address().port);
        const head = await raw.request(upgradeRequest('/', { 'Sec-WebSocket-Extensions': 'permessage-deflate; client_max_window_bits' }));
        expect(head.status).toBe(101);
        const hello = JSON.parse((await raw.nextFrame()).payload.toString()) as { hello: number };
        if (seen.has(hello.hello)) raw.socket.destroy();
        else {
          seen.add(hello.hello);
          raws.push(raw);
        }
      }
      expect(seen.size).toBe(2);
      const publisher = await new TestClient(wsUrl(server)).opened();
      await publisher.next();
      publisher.ws.send(`json:${json.length}`);
      for (const raw of raws) {
        const frame = await raw.nextFrame();
        expect(frame.rsv1).toBe(true);
        // Uncompressed it would be the whole 100 KB (as dedicated mode sent broadcasts before).
        expect(frame.payload.length).toBeLessThan(json.length / 5);
        const inflated = inflateRawSync(Buffer.concat([frame.payload, Buffer.from([0, 0, 0xff, 0xff])]), { finishFlush: constants.Z_SYNC_FLUSH });
        expect(inflated.toString()).toBe(json);
      }
    },
  );
});

describe('broadcasts on a route with deflate of its own', () => {
  it('go out compressed when only the route turns deflate on', async () => {
    const server = await startServer({ routes: { '/feed': { app: fixtureApp('deflate-mix'), deflate: 'dedicated' } } });
    const raw = await RawConnection.open(server.address().port);
    const head = await raw.request(upgradeRequest('/feed', { 'Sec-WebSocket-Extensions': 'permessage-deflate; client_max_window_bits' }));
    expect(head.headers['sec-websocket-extensions']).toBe('permessage-deflate');
    await raw.nextFrame(); // the greeting
    const json = jsonRecords(100_000);
    const publisher = await new TestClient(wsUrl(server, '/feed')).opened();
    await publisher.next();
    publisher.ws.send(`json:${json.length}`);
    const frame = await raw.nextFrame();
    expect(frame.rsv1).toBe(true);
    expect(frame.payload.length).toBeLessThan(json.length / 5);
    const inflated = inflateRawSync(Buffer.concat([frame.payload, Buffer.from([0, 0, 0xff, 0xff])]), { finishFlush: constants.Z_SYNC_FLUSH });
    expect(inflated.toString()).toBe(json);
  });
});

describe.skipIf(!chromiumAvailable)('Chromium decodes broadcasts mixed into a context-takeover stream', () => {
  const browser = useChromium();

  it.each(['dedicated', 'dedicated-compressor-small', 'shared'] as const)('%s', async (deflate) => {
    const server = await startMix(deflate);
    const page = await browser().newPage();
    const rounds = 20;
    const result = await page.evaluate(
      async ({ url, rounds, size }) => {
        const ws = new WebSocket(url);
        const got: string[] = [];
        await new Promise((resolve, reject) => {
          ws.onopen = resolve;
          ws.onerror = reject;
        });
        const done = new Promise<void>((resolve) => {
          ws.onmessage = (event) => {
            got.push(String(event.data));
            if (got.length === rounds * 3 + 2) resolve();
          };
        });
        ws.send(`mix:${rounds}`);
        ws.send(`json:${size}`);
        await done;
        ws.close();
        return { extensions: ws.extensions, got };
      },
      { url: wsUrl(server, '/'), rounds, size: 50_000 },
    );
    expect(result.extensions).toContain('permessage-deflate');
    expect(result.got.slice(1)).toEqual([...mixed(rounds), jsonRecords(50_000)]);
    await page.close();
  }, 30_000);
});
