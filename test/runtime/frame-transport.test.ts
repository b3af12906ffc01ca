/**
 * The transport seam, over both implementations as Node ships them: a TCP socket and an HTTP/2
 * stream (RFC 8441). The same write path (FrameSink's per-turn cork/writev), backpressure by
 * write() and 'drain', the orderly end (FIN / END_STREAM) and the abort (destroy / RST_STREAM
 * CANCEL, which leaves the stream's connection open).
 */
import { once } from 'node:events';
import { connect as http2Connect, constants, createServer as createHttp2Server } from 'node:http2';
import type { ClientHttp2Session, Http2Server, ServerHttp2Stream } from 'node:http2';
import { connect as netConnect, createServer as createNetServer } from 'node:net';
import type { Server as NetServer, Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { afterEach, describe, expect, it } from 'vitest';
import { FlushScheduler, FrameSink } from '../../src/runtime/frame-flush.ts';
import { abortTransport, isHttp2Stream } from '../../src/runtime/frame-transport.ts';
import type { FrameTransport } from '../../src/runtime/frame-transport.ts';
import { ByteArena } from '../../src/shared/frame-writer.ts';
import { Opcode } from '../../src/shared/opcodes.ts';

/** Our end (the transport under test) and the peer's, which reads everything and can stop reading. */
interface Pair {
  readonly ours: FrameTransport;
  readonly peer: Duplex;
  /** After an abort: how the peer saw it end. */
  aborted(): Promise<string>;
  /** Whether the carrier (TCP connection, HTTP/2 session) still works after the abort. */
  carrierAlive(): Promise<boolean>;
}

const closers: (() => void)[] = [];
afterEach(() => {
  for (const close of closers.splice(0)) close();
});

async function socketPair(): Promise<Pair> {
  const server: NetServer = createNetServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const peer: Socket = netConnect((server.address() as { port: number }).port, '127.0.0.1');
  const [ours] = (await once(server, 'connection')) as [Socket];
  closers.push(() => {
    peer.destroy();
    ours.destroy();
    server.close();
  });
  peer.on('error', () => {});
  return {
    ours,
    peer,
    aborted: async () => {
      await once(peer, 'close');
      return 'closed';
    },
    carrierAlive: async () => !peer.destroyed && peer.readyState === 'open',
  };
}

async function streamPair(): Promise<Pair> {
  const server: Http2Server = createHttp2Server({ settings: { enableConnectProtocol: true } });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const session: ClientHttp2Session = http2Connect(`http://127.0.0.1:${(server.address() as { port: number }).port}`);
  await once(session, 'remoteSettings');
  const open = (): ReturnType<ClientHttp2Session['request']> =>
    session.request({ ':method': 'CONNECT', ':protocol': 'websocket', ':scheme': 'http', ':path': '/', 'sec-websocket-version': '13' }, { endStream: false });
  const peer = open();
  peer.on('error', () => {});
  const [ours] = (await once(server, 'stream')) as [ServerHttp2Stream];
  ours.respond({ ':status': 200 });
  closers.push(() => {
    session.destroy();
    server.close();
  });
  return {
    ours,
    peer,
    aborted: async () => {
      await once(peer, 'close');
      return `reset ${String(peer.rstCode)}`;
    },
    carrierAlive: async () => {
      const next = open();
      const [headers] = (await once(server, 'stream')) as [ServerHttp2Stream];
      headers.respond({ ':status': 200 });
      const [response] = (await once(next, 'response')) as [Record<string, unknown>];
      return response[':status'] === 200 && !session.closed;
    },
  };
}

const received = (peer: Duplex): { bytes: () => Buffer } => {
  let bytes = Buffer.alloc(0);
  peer.on('data', (chunk: Buffer) => (bytes = Buffer.concat([bytes, chunk])));
  return { bytes: () => bytes };
};

const waitUntil = async (predicate: () => boolean): Promise<void> => {
  for (let i = 0; i < 500 && !predicate(); i++) await new Promise((resolve) => setTimeout(resolve, 10));
  expect(predicate()).toBe(true);
};

describe.each([
  ['a TCP socket', socketPair, false, 'closed'],
  ['an HTTP/2 stream', streamPair, true, `reset ${constants.NGHTTP2_CANCEL}`],
] as const)('FrameTransport over %s', (_name, makePair, http2, abortSeen) => {
  it('is told apart by isHttp2Stream', async () => {
    const { ours } = await makePair();
    expect(isHttp2Stream(ours)).toBe(http2);
  });

  it('carries the frames a FrameSink gathered in a turn, in order, and ends with FIN / END_STREAM', async () => {
    const { ours, peer } = await makePair();
    const reading = received(peer);
    const sink = new FrameSink(new ByteArena(), null, new FlushScheduler(), ours, null, null);
    sink.frame(Opcode.Text, Buffer.from('one'), true, false);
    sink.frame(Opcode.Binary, Buffer.alloc(5000, 7), true, false);
    sink.frame(Opcode.Text, Buffer.from('three'), true, false);
    await waitUntil(() => reading.bytes().length === 5 + 4 + 5000 + 7);
    const bytes = reading.bytes();
    expect(bytes.subarray(0, 5)).toEqual(Buffer.from([0x81, 3, ...Buffer.from('one')]));
    expect(bytes.subarray(-7)).toEqual(Buffer.from([0x81, 5, ...Buffer.from('three')]));
    ours.end();
    await once(peer, 'end');
  });

  it('pushes back while the peer reads nothing (write() false, writableLength), and drains once it reads', async () => {
    const { ours, peer } = await makePair();
    peer.pause();
    const chunk = Buffer.alloc(64 * 1024);
    let accepted = true;
    for (let i = 0; i < 256 && accepted; i++) accepted = ours.write(chunk);
    expect(accepted).toBe(false);
    expect(ours.writableLength).toBeGreaterThan(0);
    const drained = once(ours as unknown as Duplex, 'drain');
    peer.resume();
    await drained;
  });

  it('aborts at once without touching what carries it (a reset stream leaves its connection open)', async () => {
    const { ours, aborted, carrierAlive } = await makePair();
    abortTransport(ours);
    expect(await aborted()).toBe(abortSeen);
    if (http2) expect(await carrierAlive()).toBe(true);
  });
});
