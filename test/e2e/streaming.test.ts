/**
 * ws.sendFragment over real sockets: a message sent in pieces across event-loop turns, with a
 * send, a publish and pings made meanwhile, read by the ws client, by a raw socket that checks
 * the frames on the wire (FIN, opcodes, RSV1 on the first frame only, the compressed pieces
 * inflating to the message), and by Chromium; with permessage-deflate off, shared and dedicated.
 */
import { constants, inflateRawSync } from 'node:zlib';
import { chromiumAvailable, useChromium } from './chromium.ts';
import { afterEach, describe, expect, it } from 'vitest';
import type { ShardServer } from '../../src/main/listen.ts';
import type { DeflatePreset } from '../../src/shared/config.ts';
import { streamPiece } from '../fixtures/apps/options.ts';
import { RawConnection, TestClient, cleanup, clientFrame, fixtureApp, startServer, upgradeRequest, waitFor, wsUrl } from './helpers.ts';

afterEach(cleanup);

const start = (deflate: DeflatePreset | false): Promise<ShardServer> => startServer({ app: fixtureApp('options'), deflate, workers: 1 });
const streamed = (count: number, size: number): string => Array.from({ length: count }, (_, i) => streamPiece(i, size)).join('');
const AFTER = ['sent during the stream', 'published during the stream'];

describe.each([false, 'shared', 'dedicated'] as const)('sendFragment with deflate %s', (deflate) => {
  it('the ws client reads one message, then what was sent meanwhile; the pings came between its frames', async () => {
    const server = await start(deflate);
    const client = await new TestClient(wsUrl(server), undefined, { perMessageDeflate: deflate !== false }).opened();
    const order: string[] = [];
    client.ws.on('ping', (data: Buffer) => order.push(`ping ${data.toString()}`));
    client.ws.on('message', (data: Buffer) => order.push(`message ${data.length}`));
    client.ws.send('stream:30:1000');
    await waitFor(() => client.received.length === 3, 'the streamed message and the two after it');
    expect(client.texts).toEqual([streamed(30, 1000), ...AFTER]);
    // Pieces went out one turn apart: the pings sent between them arrived before the message ended.
    expect(order.indexOf('ping p0')).toBeLessThan(order.indexOf('message 30000'));
    expect(order.indexOf('ping p28')).toBeLessThan(order.indexOf('message 30000'));
    // Twice more on the same connection: a compressing one keeps its context across them.
    client.ws.send('stream:5:3000');
    await waitFor(() => client.received.length === 6, 'another streamed message');
    client.ws.send('stream:1:10');
    await waitFor(() => client.received.length === 9, 'a one-piece streamed message');
    expect(client.texts.slice(3)).toEqual([streamed(5, 3000), ...AFTER, streamed(1, 10), ...AFTER]);
  });

  it('puts the frames on the wire as RFC 6455 §5.4 and RFC 7692 §6.1 say', async () => {
    const server = await start(deflate);
    const raw = await RawConnection.open(server.address().port);
    const head = await raw.request(upgradeRequest('/', deflate === false ? {} : { 'Sec-WebSocket-Extensions': 'permessage-deflate; client_max_window_bits' }));
    expect(head.status).toBe(101);
    raw.socket.write(clientFrame(0x1, Buffer.from('stream:8:2000')));
    // 8 frames of the message and the 2 messages sent meanwhile, with 8 pings among them.
    const frames = [];
    while (frames.filter((f) => f.opcode !== 0x9).length < 10) frames.push(await raw.nextFrame());
    const data = frames.filter((f) => f.opcode !== 0x9);
    // Text, then continuations, FIN only on the last; RSV1 (compressed) only on the first.
    expect(data.slice(0, 8).map((f) => [f.opcode, f.fin, f.rsv1])).toEqual(
      Array.from({ length: 8 }, (_, i) => [i === 0 ? 0x1 : 0x0, i === 7, i === 0 && deflate !== false]),
    );
    const payload = Buffer.concat(data.slice(0, 8).map((f) => f.payload));
    const message = deflate === false ? payload : inflateRawSync(Buffer.concat([payload, Buffer.from([0, 0, 0xff, 0xff])]), { finishFlush: constants.Z_SYNC_FLUSH });
    expect(message.toString()).toBe(streamed(8, 2000));
    if (deflate !== false) expect(payload.length).toBeLessThan(2000);
    // The pings came between the pieces; the send and the publish after the last.
    expect(frames.findIndex((f) => f.opcode === 0x9)).toBeLessThan(frames.indexOf(data[7]!));
    expect(data.slice(8).map((f) => f.opcode)).toEqual([0x1, 0x1]);
  });

  it('sends a piece uncompressed when told (compress: false on the first)', async () => {
    const server = await start(deflate);
    const client = await new TestClient(wsUrl(server), undefined, { perMessageDeflate: deflate !== false }).opened();
    client.ws.send('stream:4:500:plain');
    await waitFor(() => client.received.length === 3, 'the message');
    expect(client.texts[0]).toBe(streamed(4, 500));
  });
});

describe.skipIf(!chromiumAvailable)('Chromium reads messages sent in fragments', () => {
  const browser = useChromium();

  it.each([false, 'shared', 'dedicated'] as const)('deflate %s', async (deflate) => {
    const server = await start(deflate);
    const page = await browser().newPage();
    const got = await page.evaluate(async (url) => {
      const ws = new WebSocket(url);
      await new Promise((resolve, reject) => {
        ws.onopen = resolve;
        ws.onerror = reject;
      });
      const messages: string[] = [];
      const received = (count: number) =>
        new Promise<void>((resolve) => {
          ws.onmessage = (event) => {
            messages.push(String(event.data));
            if (messages.length === count) resolve();
          };
        });
      // One message in pieces at a time: a connection has one message being sent in fragments.
      let done = received(3);
      ws.send('stream:40:1500');
      await done;
      done = received(6);
      ws.send('stream:3:100');
      await done;
      ws.close();
      return messages;
    }, wsUrl(server));
    expect(got).toEqual([streamed(40, 1500), ...AFTER, streamed(3, 100), ...AFTER]);
    await page.close();
  }, 30_000);
});
