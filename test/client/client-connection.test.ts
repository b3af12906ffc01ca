/**
 * An open client connection on a socket driven by hand: masked frames out, messages and control
 * frames in, and each way the closing handshake can go (RFC 6455 §7), the close timer included;
 * and, on a real HTTP/2 stream, the abort as RST_STREAM CANCEL (RFC 8441 §5).
 */
import { once } from 'node:events';
import { connect as http2Connect, constants, createServer as createHttp2Server } from 'node:http2';
import type { ServerHttp2Stream } from 'node:http2';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { ClientConnection } from '../../src/client/client-connection.ts';
import type { ConnectionEvents } from '../../src/client/client-connection.ts';
import { ProtocolError } from '../../src/shared/errors.ts';
import { FrameParser } from '../../src/shared/frame-parser.ts';
import { Opcode } from '../../src/shared/opcodes.ts';
import { FakeSocket, settle } from '../support/fake-socket.ts';
import { frameFor } from '../support/frames.ts';

const serverFrame = frameFor('client');

/** What the connection reported, one line per report. */
type Log = string[];

const EVENTS: ConnectionEvents<Log> = {
  message: (log, data, isBinary) => log.push(`message ${isBinary ? 'binary' : 'text'} ${data.toString()}`),
  ping: (log, data) => log.push(`ping ${data.toString()}`),
  pong: (log, data) => log.push(`pong ${data.toString()}`),
  error: (log, error) => log.push(`error ${error instanceof ProtocolError ? error.code : error.message}`),
  closed: (log, code, reason, wasClean) => log.push(`closed ${code} ${JSON.stringify(reason)} ${wasClean}`),
};

/** Frames the client wrote, unmasked (a server's view); every one must be masked (RFC 6455 §5.3). */
function written(socket: FakeSocket): { opcode: Opcode; payload: string }[] {
  const frames: { opcode: Opcode; payload: string }[] = [];
  new FrameParser(
    {
      onFrame: (opcode, _fin, _compressed, payload) => frames.push({ opcode, payload: Buffer.from(payload).toString('latin1') }),
      onError(error) {
        throw error;
      },
    },
    { role: 'server', maxMessageSize: 1 << 20, rsv1Allowed: false },
  ).push(socket.output);
  return frames;
}

/** Waits (polling, at most 5 s) until `log` holds `count` reports: timers may run late on a loaded machine. */
async function reports(log: Log, count: number): Promise<void> {
  const deadline = Date.now() + 5000;
  while (log.length < count && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 10));
}

function open(closeTimeout = 10): { socket: FakeSocket; connection: ClientConnection<Log>; log: Log } {
  const socket = new FakeSocket();
  const log: Log = [];
  const connection = new ClientConnection(socket, null, { maxPayloadLength: 1024, closeTimeout }, EVENTS, log);
  return { socket, connection, log };
}

const closers: (() => void)[] = [];
afterEach(() => {
  for (const close of closers.splice(0)) close();
});

/**
 * A connection on a real RFC 8441 stream (an extended CONNECT answered 200 by Node's http2
 * server), with the server's end of the stream and a probe that the HTTP/2 connection still
 * opens streams.
 */
async function openOnStream(closeTimeout = 10) {
  const server = createHttp2Server({ settings: { enableConnectProtocol: true } });
  server.on('stream', (stream: ServerHttp2Stream) => {
    stream.on('error', () => {});
    stream.respond({ ':status': 200 });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const session = http2Connect(`http://127.0.0.1:${(server.address() as AddressInfo).port}`);
  session.on('error', () => {});
  closers.push(() => {
    session.destroy();
    server.close();
  });
  await once(session, 'remoteSettings');
  const request = () => session.request({ ':method': 'CONNECT', ':protocol': 'websocket', ':scheme': 'http', ':path': '/', 'sec-websocket-version': '13' }, { endStream: false });
  const serverStream = once(server, 'stream') as Promise<[ServerHttp2Stream]>;
  const stream = request();
  stream.on('error', () => {});
  await once(stream, 'response');
  const [theirs] = await serverStream;
  const log: Log = [];
  const connection = new ClientConnection(stream, null, { maxPayloadLength: 1024, closeTimeout }, EVENTS, log);
  const sessionAlive = async (): Promise<boolean> => {
    const next = request();
    next.on('error', () => {});
    const [headers] = (await once(next, 'response')) as [Record<string, unknown>];
    return headers[':status'] === 200 && !session.closed;
  };
  return { connection, log, theirs, sessionAlive };
}

describe('ClientConnection', () => {
  it('writes masked frames once per turn and reports messages and control frames', async () => {
    const { socket, connection, log } = open();
    connection.send(Opcode.Text, Buffer.from('hello'));
    connection.send(Opcode.Binary, Buffer.from('bytes'));
    connection.ping(Buffer.from('p'));
    expect(socket.writes).toHaveLength(0);
    await settle();
    expect(socket.writes).toHaveLength(1);
    expect(written(socket)).toEqual([
      { opcode: Opcode.Text, payload: 'hello' },
      { opcode: Opcode.Binary, payload: 'bytes' },
      { opcode: Opcode.Ping, payload: 'p' },
    ]);
    socket.receive(Buffer.concat([serverFrame(Opcode.Text, 'hi'), serverFrame(Opcode.Binary, 'raw'), serverFrame(Opcode.Ping, 'srv'), serverFrame(Opcode.Pong, 'p')]));
    expect(log).toEqual(['message text hi', 'message binary raw', 'ping srv', 'pong p']);
    await settle();
    // The server's ping is answered with the same payload.
    expect(written(socket).at(-1)).toEqual({ opcode: Opcode.Pong, payload: 'srv' });
    expect(connection.state).toBe(1);
  });

  it("answers the server's close with its code and waits for the server to close TCP (RFC 6455 §7.1.1)", async () => {
    const { socket, connection, log } = open();
    socket.receive(serverFrame(Opcode.Close, Buffer.from([0x0f, 0xa0, ...Buffer.from('bye')])));
    expect(connection.state).toBe(2);
    connection.send(Opcode.Text, Buffer.from('too late'));
    await settle();
    expect(written(socket)).toEqual([{ opcode: Opcode.Close, payload: '\x0f\xa0' }]);
    expect(log).toEqual([]);
    socket.destroy();
    await settle();
    expect(log).toEqual(['closed 4000 "bye" true']);
    expect(connection.state).toBe(3);
  });

  it('destroys the socket after closeTimeout when the server never closes TCP', async () => {
    const { socket, connection, log } = open(0.05);
    connection.close(Buffer.from([0x03, 0xe8]));
    expect(connection.state).toBe(2);
    await settle();
    expect(written(socket)).toEqual([{ opcode: Opcode.Close, payload: '\x03\xe8' }]);
    expect(log).toEqual([]);
    await reports(log, 1);
    // No close frame came back: the handshake did not complete.
    expect(log).toEqual(['closed 1006 "" false']);
    expect(socket.destroyed).toBe(true);
  });

  it('fails the connection on a protocol error: reports it, sends 1002, and closes', async () => {
    const { socket, connection, log } = open(0.05);
    socket.receive(Buffer.from([0x83, 0x00])); // opcode 3 is reserved (RFC 6455 §5.2)
    expect(log).toEqual(['error WS_ERR_INVALID_OPCODE']);
    expect(connection.state).toBe(2);
    await settle();
    expect(written(socket)).toEqual([{ opcode: Opcode.Close, payload: '\x03\xea' }]);
    await reports(log, 2);
    expect(log).toEqual(['error WS_ERR_INVALID_OPCODE', 'closed 1006 "" false']);
  });

  it('a FIN without a close frame ends our side too and closes with 1006', async () => {
    const { socket, log } = open();
    socket.receive(serverFrame(Opcode.Text, 'last words'));
    socket.peerEnd();
    await settle();
    expect(socket.writableEnded).toBe(true);
    expect(log).toEqual(['message text last words', 'closed 1006 "" false']);
  });

  it('a message over maxPayloadLength closes with 1009', async () => {
    const { socket, log } = open(0.05);
    socket.receive(serverFrame(Opcode.Binary, Buffer.alloc(2000)));
    await settle();
    expect(log).toEqual(['error WS_ERR_FRAME_TOO_BIG']);
    expect(written(socket)).toEqual([{ opcode: Opcode.Close, payload: '\x03\xf1' }]);
  });

  it('sends a Blob in order with the messages around it, and counts it as buffered meanwhile', async () => {
    const { socket, connection } = open();
    connection.send(Opcode.Text, Buffer.from('one'));
    connection.sendBlob(new Blob(['two']));
    connection.send(Opcode.Text, Buffer.from('three'));
    connection.close(Buffer.from([0x03, 0xe8]));
    expect(connection.bufferedAmount).toBeGreaterThanOrEqual(8);
    await settle(8);
    expect(written(socket).map((f) => f.payload)).toEqual(['one', 'two', 'three', '\x03\xe8']);
  });

  describe('over an HTTP/2 stream (RFC 8441)', () => {
    it('terminate() resets the stream with CANCEL (RFC 8441 §5), not NO_ERROR, and leaves the connection open', async () => {
      const { connection, log, theirs, sessionAlive } = await openOnStream();
      connection.terminate();
      await once(theirs, 'close');
      expect(theirs.rstCode).toBe(constants.NGHTTP2_CANCEL);
      await reports(log, 1);
      expect(log).toEqual(['closed 1006 "" false']);
      expect(await sessionAlive()).toBe(true);
    });

    it('an expired close handshake resets the stream with CANCEL too', async () => {
      const { connection, log, theirs } = await openOnStream(0.05);
      connection.close(Buffer.from([0x03, 0xe8]));
      await once(theirs, 'close');
      expect(theirs.rstCode).toBe(constants.NGHTTP2_CANCEL);
      await reports(log, 1);
      expect(log).toEqual(['closed 1006 "" false']);
    });
  });
});
