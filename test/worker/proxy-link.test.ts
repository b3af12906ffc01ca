/**
 * ProxyLink's own decisions: which close code each side gets when the other closes or vanishes,
 * and which leg stops being read when the other is behind. The upstream is a real ws server on
 * loopback; the client leg is a stand-in that records what the link asks of a Connection (the
 * client leg's own behaviour is test/worker/connection.test.ts's, and the whole path is
 * test/e2e/proxy.test.ts's).
 */
import { afterEach, describe, expect, it } from 'vitest';
import type { WebSocket as WsSocket } from 'ws';
import { ReadyState } from '../../src/shared/app.ts';
import type { SendStatus, ServerWebSocket } from '../../src/shared/app.ts';
import { ByteArena } from '../../src/shared/frame-writer.ts';
import { FlushScheduler } from '../../src/runtime/frame-flush.ts';
import { kHoldReading } from '../../src/worker/connection.ts';
import { ProxyLink } from '../../src/worker/proxy-link.ts';
import { dialedWsUpstream } from '../support/scripted-upstream.ts';
import { silentLogger, until } from '../support/worker-fakes.ts';

/** What ProxyLink uses of the client's Connection, recorded. */
class ClientStandIn {
  readonly data: ProxyLink;
  readyState: ReadyState = ReadyState.Open;
  readonly sent: { text: string; binary: boolean }[] = [];
  readonly closes: { code: number; reason: string }[] = [];
  readonly holds: boolean[] = [];
  answer: SendStatus = 'written';

  constructor(link: ProxyLink) {
    this.data = link;
  }
  send(data: Buffer, options: { binary: boolean }): SendStatus {
    this.sent.push({ text: data.toString(), binary: options.binary });
    return this.answer;
  }
  close(code: number, reason: string): void {
    this.closes.push({ code, reason });
    this.readyState = ReadyState.Closing;
  }
  [kHoldReading](held: boolean): void {
    this.holds.push(held);
  }
  get ws(): ServerWebSocket<unknown> {
    return this as unknown as ServerWebSocket<unknown>;
  }
}

const closers: (() => void)[] = [];
afterEach(() => {
  for (const close of closers.splice(0)) close();
});

async function linked(highWaterMark = 64 * 1024) {
  const { dialed, peer } = await dialedWsUpstream(closers);
  closers.push(() => dialed.socket.destroy());
  let ended = 0;
  const link = new ProxyLink({
    socket: dialed.socket,
    head: dialed.head,
    compression: null,
    settings: {
      arena: new ByteArena(),
      scheduler: new FlushScheduler(),
      maxPayloadLength: 1024 * 1024,
      highWaterMark,
      lowWaterMark: highWaterMark / 4,
      close: { closeTimeoutMs: 1000, logger: silentLogger() },
      logger: silentLogger(),
    },
    ended: () => ended++,
  });
  const client = new ClientStandIn(link);
  return { link, client, upstream: await peer, socket: dialed.socket, ended: () => ended };
}

/** The client leg opens (its 101 was written): the link starts its upstream leg. */
const open = (client: ClientStandIn): void => ProxyLink.app.open!(client.ws);

describe('ProxyLink', () => {
  it('relays messages with their types both ways once the client leg is open', async () => {
    const { client, upstream } = await linked();
    upstream.send('before open');
    await new Promise((resolve) => setTimeout(resolve, 30));
    // Nothing is read from the upstream before the client's leg is open.
    expect(client.sent).toEqual([]);
    open(client);
    const atUpstream: { text: string; binary: boolean }[] = [];
    upstream.on('message', (data, isBinary) => atUpstream.push({ text: data.toString(), binary: isBinary }));
    ProxyLink.app.message!(client.ws, Buffer.from('up'), false);
    ProxyLink.app.message!(client.ws, Buffer.from('bin'), true);
    upstream.send(Buffer.from('down'), { binary: true });
    await until(() => atUpstream.length === 2 && client.sent.length === 2, 'messages both ways');
    expect(atUpstream).toEqual([
      { text: 'up', binary: false },
      { text: 'bin', binary: true },
    ]);
    expect(client.sent).toEqual([
      { text: 'before open', binary: false },
      { text: 'down', binary: true },
    ]);
  });

  it.each([
    ['a code and reason', (ws: WsSocket) => ws.close(4000, 'maintenance'), { code: 4000, reason: 'maintenance' }],
    ['no status (1005), forwarded as 1000', (ws: WsSocket) => ws.close(), { code: 1000, reason: '' }],
    ['1001 going away', (ws: WsSocket) => ws.close(1001, 'restarting'), { code: 1001, reason: 'restarting' }],
  ])('the upstream closes with %s: the client gets it', async (_name, closeUpstream, expected) => {
    const { client, upstream, ended } = await linked();
    open(client);
    closeUpstream(upstream);
    await until(() => ended() === 1, 'the upstream leg to end');
    expect(client.closes).toEqual([expected]);
  });

  it('the upstream vanishes without a close frame: the client gets 1014 (Bad Gateway, RFC 6455 §7.4.1)', async () => {
    const { client, upstream, ended } = await linked();
    open(client);
    upstream.terminate();
    await until(() => ended() === 1, 'the upstream leg to end');
    expect(client.closes).toEqual([{ code: 1014, reason: 'upstream went away' }]);
  });

  it.each([
    ['vanishes (1006)', 1006, '', { code: 1001, reason: 'client went away' }],
    ['closes with a code and reason', 4002, 'logged out', { code: 4002, reason: 'logged out' }],
    ['closes with no status (1005)', 1005, '', { code: 1000, reason: '' }],
  ])('the client %s: the upstream gets the matching close', async (_name, code, reason, expected) => {
    const { client, upstream, ended } = await linked();
    open(client);
    const got = new Promise<{ code: number; reason: string }>((resolve) => upstream.once('close', (c, r) => resolve({ code: c, reason: r.toString() })));
    client.readyState = ReadyState.Closed;
    ProxyLink.app.close!(client.ws, code, reason);
    expect(await got).toEqual(expected);
    await until(() => ended() === 1, 'the upstream leg to end');
    // The client is already gone: nothing is sent back to it.
    expect(client.closes).toEqual([]);
  });

  it('a client that is behind ("buffered") stops the upstream being read until its drain', async () => {
    const { client, upstream } = await linked();
    open(client);
    client.answer = 'buffered';
    upstream.send('one');
    await until(() => client.sent.length === 1, 'the first message');
    client.answer = 'written';
    upstream.send('two');
    upstream.send('three');
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(client.sent.map((m) => m.text)).toEqual(['one']);
    ProxyLink.app.drain!(client.ws);
    await until(() => client.sent.length === 3, 'the held messages');
    expect(client.sent.map((m) => m.text)).toEqual(['one', 'two', 'three']);
  });

  it('an upstream that is behind stops the client being read until the upstream leg drains', async () => {
    const { client, upstream } = await linked(128 * 1024);
    open(client);
    const raw = (upstream as unknown as { _socket: import('node:net').Socket })._socket;
    raw.pause();
    const chunk = Buffer.alloc(64 * 1024, 2);
    for (let i = 0; i < 2000 && client.holds.length === 0; i++) {
      ProxyLink.app.message!(client.ws, chunk, true);
      await new Promise((resolve) => setImmediate(resolve));
    }
    expect(client.holds).toEqual([true]);
    raw.resume();
    await until(() => client.holds.length === 2, 'the client to be read again', 10_000);
    expect(client.holds).toEqual([true, false]);
  });

  it('abandon() before the client leg opens closes the upstream connection and ends the link once', async () => {
    const { link, upstream, socket, ended } = await linked();
    const gone = new Promise<number>((resolve) => upstream.once('close', (code) => resolve(code)));
    link.abandon();
    link.abandon();
    expect(socket.destroyed).toBe(true);
    expect(await gone).toBe(1006);
    expect(ended()).toBe(1);
  });
});
