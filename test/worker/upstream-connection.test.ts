/**
 * UpstreamConnection over real loopback sockets, with the ws package as the upstream: messages
 * and their types both ways, reassembly, the read buffer's views kept valid, pings, closing from
 * either side, a vanished upstream, limits, backpressure and holding.
 */
import { afterEach, describe, expect, it } from 'vitest';
import type { WebSocket as WsSocket } from 'ws';
import { ReadyState } from '../../src/shared/app.ts';
import { ByteArena } from '../../src/shared/frame-writer.ts';
import { FlushScheduler } from '../../src/runtime/frame-flush.ts';
import { UpstreamConnection } from '../../src/worker/upstream-connection.ts';
import type { UpstreamEvents, UpstreamSettings } from '../../src/worker/upstream-connection.ts';
import { dialedWsUpstream } from '../support/scripted-upstream.ts';
import { silentLogger, until } from '../support/worker-fakes.ts';

interface Seen {
  messages: { data: Buffer; isBinary: boolean }[];
  drains: number;
  closing: { code: number; reason: string }[];
  closed: { code: number; reason: string }[];
}

/** The owner is the record itself: one events table for every leg, as proxy-link.ts has. */
const events: UpstreamEvents<Seen> = {
  message: (seen, data, isBinary) => seen.messages.push({ data, isBinary }),
  drain: (seen) => seen.drains++,
  closing: (seen, code, reason) => seen.closing.push({ code, reason }),
  closed: (seen, code, reason) => seen.closed.push({ code, reason }),
};

const closers: (() => void)[] = [];
afterEach(() => {
  for (const close of closers.splice(0)) close();
});

function settings(overrides: Partial<UpstreamSettings> = {}): UpstreamSettings {
  return {
    arena: new ByteArena(),
    scheduler: new FlushScheduler(),
    maxPayloadLength: 1024 * 1024,
    highWaterMark: 64 * 1024,
    lowWaterMark: 16 * 1024,
    close: { closeTimeoutMs: 1000, logger: silentLogger() },
    logger: silentLogger(),
    ...overrides,
  };
}

/** A ws server, a dialed upstream leg to it, and the server's side of that connection. */
async function legToWs(overrides: Partial<UpstreamSettings> = {}, options: { start?: boolean } = {}) {
  const { dialed, peer } = await dialedWsUpstream(closers, { maxPayload: 8 * 1024 * 1024 });
  const seen: Seen = { messages: [], drains: 0, closing: [], closed: [] };
  const leg = new UpstreamConnection(dialed.socket, dialed.head, null, events, seen, settings(overrides));
  closers.push(() => leg.terminate());
  if (options.start !== false) leg.start();
  return { leg, seen, upstream: await peer, socket: dialed.socket };
}

describe('UpstreamConnection', () => {
  it('relays text and binary messages both ways with their types, masked toward the upstream', async () => {
    const { leg, seen, upstream } = await legToWs();
    const received: { data: string; isBinary: boolean }[] = [];
    upstream.on('message', (data, isBinary) => received.push({ data: data.toString(), isBinary }));
    expect(leg.send(Buffer.from('hello'), false)).toBe(true);
    leg.send(Buffer.from([1, 2, 3]), true);
    // ws refuses an unmasked client frame (RFC 6455 §5.1), so arriving at all shows the masking.
    await until(() => received.length === 2, 'both messages at the upstream');
    expect(received).toEqual([
      { data: 'hello', isBinary: false },
      { data: '\u0001\u0002\u0003', isBinary: true },
    ]);
    upstream.send('text back');
    upstream.send(Buffer.from([9, 8]), { binary: true });
    await until(() => seen.messages.length === 2, 'both messages from the upstream');
    expect(seen.messages[0]!.data.toString()).toBe('text back');
    expect(seen.messages[0]!.isBinary).toBe(false);
    expect([...seen.messages[1]!.data]).toEqual([9, 8]);
    expect(seen.messages[1]!.isBinary).toBe(true);
  });

  it('hands over a fragmented message whole, and large masked frames arrive intact', async () => {
    const { leg, seen, upstream } = await legToWs();
    upstream.send('frag-', { fin: false });
    upstream.send('ment', { fin: true });
    await until(() => seen.messages.length === 1, 'the reassembled message');
    expect(seen.messages[0]!.data.toString()).toBe('frag-ment');
    const big = Buffer.alloc(300 * 1024, 7);
    big.write('start');
    let got: Buffer | null = null;
    upstream.on('message', (data) => (got = data as Buffer));
    leg.send(big, true);
    await until(() => got !== null, 'the large message at the upstream');
    expect(got!.equals(big)).toBe(true);
  });

  it('messages read through the shared read buffer stay intact after later reads', async () => {
    const { seen, upstream } = await legToWs();
    const sent = Array.from({ length: 200 }, (_, i) => `${i}:`.padEnd(500 + (i % 37), String.fromCharCode(97 + (i % 26))));
    for (const text of sent) upstream.send(text);
    await until(() => seen.messages.length === sent.length, 'every message');
    // Checked only now, after many more reads into the same buffer.
    expect(seen.messages.map((m) => m.data.toString())).toEqual(sent);
  });

  it('answers the upstream ping with a pong of the same payload', async () => {
    const { upstream } = await legToWs();
    const pong = new Promise<Buffer>((resolve) => upstream.once('pong', resolve));
    upstream.ping(Buffer.from('are you there'));
    expect((await pong).toString()).toBe('are you there');
  });

  it("reports the upstream's close code and reason, answers it, then reports the socket closed with them", async () => {
    const { leg, seen, upstream } = await legToWs();
    const answered = new Promise<number>((resolve) => upstream.once('close', (code) => resolve(code)));
    upstream.close(4001, 'bye now');
    expect(await answered).toBe(4001);
    await until(() => seen.closed.length === 1, 'the closed event');
    expect(seen.closing).toEqual([{ code: 4001, reason: 'bye now' }]);
    expect(seen.closed).toEqual([{ code: 4001, reason: 'bye now' }]);
    expect(leg.readyState).toBe(ReadyState.Closed);
  });

  it('close() sends the code and reason after the messages queued before it', async () => {
    const { leg, seen, upstream } = await legToWs();
    const order: string[] = [];
    upstream.on('message', (data) => order.push(data.toString()));
    const closed = new Promise<void>((resolve) => upstream.once('close', (code, reason) => (order.push(`close ${code} ${reason.toString()}`), resolve())));
    leg.send(Buffer.from('last words'), false);
    leg.close(1001, 'client went away');
    expect(leg.readyState).toBe(ReadyState.Closing);
    expect(leg.send(Buffer.from('too late'), false)).toBe(true);
    await closed;
    expect(order).toEqual(['last words', 'close 1001 client went away']);
    await until(() => seen.closed.length === 1, 'the closed event');
    expect(seen.closed[0]!.code).toBe(1001);
    expect(seen.closing).toEqual([]);
  });

  it('an upstream gone without a close frame is reported as 1006', async () => {
    const { seen, upstream } = await legToWs();
    upstream.terminate();
    await until(() => seen.closed.length === 1, 'the closed event');
    expect(seen.closed[0]!.code).toBe(1006);
    expect(seen.closing).toEqual([]);
  });

  it('a message over maxPayloadLength fails the leg with 1009 toward the upstream', async () => {
    const { seen, upstream } = await legToWs({ maxPayloadLength: 1000 });
    const code = new Promise<number>((resolve) => upstream.once('close', (c) => resolve(c)));
    upstream.send(Buffer.alloc(1001), { binary: true });
    expect(await code).toBe(1009);
    await until(() => seen.closed.length === 1, 'the closed event');
    expect(seen.messages).toEqual([]);
  });

  it('send() says stop at the high-water mark while the upstream does not read, and drain comes once it does', async () => {
    const { leg, seen, upstream } = await legToWs({ highWaterMark: 256 * 1024, lowWaterMark: 64 * 1024 });
    const raw = (upstream as unknown as { _socket: import('node:net').Socket })._socket;
    raw.pause();
    const chunk = Buffer.alloc(64 * 1024, 1);
    let sent = 0;
    // Turns pass between sends so the frames are flushed into the socket and the kernel fills up.
    while (leg.send(chunk, true)) {
      sent++;
      if (sent > 2000) throw new Error('send never said stop');
      await new Promise((resolve) => setImmediate(resolve));
    }
    expect(leg.bufferedAmount).toBeGreaterThanOrEqual(256 * 1024);
    expect(seen.drains).toBe(0);
    let received = 0;
    upstream.on('message', () => received++);
    raw.resume();
    await until(() => seen.drains === 1, 'drain', 10_000);
    expect(leg.bufferedAmount).toBeLessThanOrEqual(64 * 1024);
    await until(() => received === sent + 1, 'every message at the upstream', 10_000);
  });

  it('hold(true) stops reading the upstream until hold(false); nothing is lost', async () => {
    const { leg, seen, upstream } = await legToWs();
    leg.hold(true);
    for (let i = 0; i < 5; i++) upstream.send(`m${i}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(seen.messages).toEqual([]);
    leg.hold(false);
    await until(() => seen.messages.length === 5, 'the held messages');
    expect(seen.messages.map((m) => m.data.toString())).toEqual(['m0', 'm1', 'm2', 'm3', 'm4']);
  });

  it('reads nothing before start(), then what came with the 101 first', async () => {
    const { leg, seen, upstream } = await legToWs({}, { start: false });
    upstream.send('early');
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(seen.messages).toEqual([]);
    leg.start();
    await until(() => seen.messages.length === 1, 'the early message');
    expect(seen.messages[0]!.data.toString()).toBe('early');
  });

  it('terminate() destroys the socket and reports 1006 once', async () => {
    const { leg, seen, upstream } = await legToWs();
    const gone = new Promise<number>((resolve) => upstream.once('close', (code) => resolve(code)));
    leg.terminate();
    expect(await gone).toBe(1006);
    await until(() => seen.closed.length === 1, 'the closed event');
    leg.terminate();
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(seen.closed).toHaveLength(1);
    expect(seen.closed[0]!.code).toBe(1006);
  });
});
