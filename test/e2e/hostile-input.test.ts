/**
 * Hostile frames over real sockets: absurd declared lengths, decompression bombs, floods of
 * fragments, and the bytes the server sends back (never uninitialized memory). Each limit is
 * checked by its close code and by the memory the process (server threads included) took.
 */
import { randomBytes } from 'node:crypto';
import { constants, deflateRawSync } from 'node:zlib';
import type { ClientOptions } from 'ws';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ShardServer } from '../../src/main/listen.ts';
import { RawConnection, cleanup, clientFrame, fixtureApp, openClient, rawWebSocket, startServer, upgradeRequest, waitFor, wsUrl } from './helpers.ts';
import { MIB, RssSampler } from './resources.ts';

afterAll(cleanup);

/** A server frame as the RFC lays it out (unmasked, FIN set), built independently of src/. */
function serverFrame(opcode: number, payload: Buffer): Buffer {
  const length = payload.length;
  const head = length < 126 ? Buffer.from([0x80 | opcode, length]) : length < 65536 ? Buffer.alloc(4) : Buffer.alloc(10);
  if (length >= 126) {
    head[0] = 0x80 | opcode;
    if (length < 65536) {
      head[1] = 126;
      head.writeUInt16BE(length, 2);
    } else {
      head[1] = 127;
      head.writeBigUInt64BE(BigInt(length), 2);
    }
  }
  return Buffer.concat([head, payload]);
}

function closeFrame(code: number, reason: string): Buffer {
  const payload = Buffer.alloc(2 + Buffer.byteLength(reason));
  payload.writeUInt16BE(code, 0);
  payload.write(reason, 2);
  return serverFrame(0x8, payload);
}

/** Compares bytes exactly; a mismatch reports the first differing offset and the bytes around it. */
function expectSame(got: Buffer, expected: Buffer): void {
  let at = 0;
  while (at < got.length && at < expected.length && got[at] === expected[at]) at++;
  const context = (bytes: Buffer): string => bytes.subarray(Math.max(0, at - 8), at + 24).toString('hex');
  expect({ length: got.length, firstDifference: at, around: context(got) }).toEqual({
    length: expected.length,
    firstDifference: expected.length,
    around: context(expected),
  });
}

/** Waits until the server has sent at least `expected.length` bytes and compares them exactly. */
async function expectBytes(raw: RawConnection, expected: Buffer, timeout = 5000): Promise<void> {
  await waitFor(() => raw.buffered.length >= expected.length || raw.closed, `${expected.length} bytes from the server`, timeout);
  expectSame(raw.buffered.subarray(0, expected.length), expected);
  raw.buffered = raw.buffered.subarray(expected.length);
}

/** Splits server frames into data frames (concatenated, as sent) and control frames (each whole). */
function splitFrames(bytes: Buffer): { data: Buffer; control: Buffer[] } {
  const data: Buffer[] = [];
  const control: Buffer[] = [];
  let at = 0;
  while (at + 2 <= bytes.length) {
    const length7 = bytes[at + 1]! & 0x7f;
    const headerSize = length7 === 126 ? 4 : length7 === 127 ? 10 : 2;
    const length = length7 === 126 ? bytes.readUInt16BE(at + 2) : length7 === 127 ? Number(bytes.readBigUInt64BE(at + 2)) : length7;
    const frame = bytes.subarray(at, at + headerSize + length);
    ((bytes[at]! & 0x08) !== 0 ? control : data).push(frame);
    at += frame.length;
  }
  return { data: Buffer.concat(data), control };
}

/** A masked frame header declaring `high * 2^32 + low` payload bytes (beyond Number's exact range). */
function hugeHeader(opcode: number, high: number, low: number): Buffer {
  const head = Buffer.alloc(14);
  head[0] = 0x80 | opcode;
  head[1] = 0x80 | 127;
  head.writeUInt32BE(high, 2);
  head.writeUInt32BE(low, 6);
  randomBytes(4).copy(head, 10);
  return head;
}

async function stillEchoes(server: ShardServer, options?: ClientOptions): Promise<void> {
  const client = await openClient(wsUrl(server, '/echo'), undefined, options);
  expect((await client.request('still serving')).data.toString()).toBe('still serving');
  client.ws.close();
  expect(server.stats().restarts).toBe(0);
}

describe('declared lengths', () => {
  let server: ShardServer;
  beforeAll(async () => {
    server = await startServer({ app: fixtureApp('commands') });
  });

  it('a frame declaring 2^63-1 bytes closes with 1009 and allocates nothing', async () => {
    const raw = await rawWebSocket(server.address().port, '/echo');
    const memory = new RssSampler();
    raw.socket.write(hugeHeader(0x2, 0x7fffffff, 0xffffffff));
    // The rest of a large frame may follow: the server has stopped reading it.
    raw.socket.write(randomBytes(64 * 1024));
    const { code } = await raw.nextClose();
    await raw.waitEnded();
    const { growth } = memory.stop();
    expect([1009, 1002]).toContain(code);
    expect(growth).toBeLessThan(32 * MIB);
    await stillEchoes(server);
  });

  it('a 64-bit length with its top bit set closes with 1002', async () => {
    const raw = await rawWebSocket(server.address().port, '/echo');
    raw.socket.write(hugeHeader(0x1, 0x80000000, 0));
    expect((await raw.nextClose()).code).toBe(1002);
    await raw.waitEnded();
    await stillEchoes(server);
  });
});

/** ~1 MiB of DEFLATE that inflates to 1 GiB of zeros: 1024 copies of a flushed 1 MiB block. */
function deflateBomb(): Buffer {
  const block = deflateRawSync(Buffer.alloc(MIB), { level: 9, finishFlush: constants.Z_SYNC_FLUSH });
  return Buffer.concat(Array.from({ length: 1024 }, () => block));
}

describe.each(['shared', 'dedicated'] as const)('a decompression bomb, %s compression', (mode) => {
  let server: ShardServer;
  beforeAll(async () => {
    server = await startServer({ app: fixtureApp('commands'), deflate: mode });
  });

  it('closes with 1009 once the inflated size passes maxPayloadLength, memory stays bounded', async () => {
    const bomb = deflateBomb();
    expect(bomb.length).toBeLessThan(1.1 * MIB);
    const raw = await RawConnection.open(server.address().port);
    const head = await raw.request(upgradeRequest('/echo', { 'Sec-WebSocket-Extensions': 'permessage-deflate; client_max_window_bits' }));
    expect(head.status).toBe(101);
    expect(head.headers['sec-websocket-extensions']).toContain('permessage-deflate');
    const frame = clientFrame(0x2, bomb);
    frame[0] = frame[0]! | 0x40; // RSV1: compressed (RFC 7692 §6)

    const memory = new RssSampler();
    raw.socket.write(frame);
    const { code } = await raw.nextClose(10_000);
    await raw.waitEnded();
    const { growth } = memory.stop();
    expect(code).toBe(1009);
    // The limit (16 MiB) plus a generous margin; inflating the bomb would take 1 GiB.
    expect(growth).toBeLessThan(server.config.maxPayloadLength + 64 * MIB);
    await stillEchoes(server, { perMessageDeflate: true });
  });
});

describe('fragmented messages', () => {
  it('200,000 1-byte fragments close with 1009 once the charged size passes maxPayloadLength, memory bounded', async () => {
    const server = await startServer({ app: fixtureApp('commands'), maxPayloadLength: MIB });
    const raw = await rawWebSocket(server.address().port, '/echo');
    // 1-byte fragments with one mask key: 7 bytes each on the wire, 1 + 8 (overhead) charged.
    const key = randomBytes(4);
    const fragment = (opcode: number): Buffer => Buffer.from([opcode, 0x81, ...key, 0x55 ^ key[0]!]);
    const BATCH = 5000;
    const continuations = Buffer.concat(Array.from({ length: BATCH }, () => fragment(0x0)));
    const memory = new RssSampler();
    raw.socket.write(fragment(0x2));
    let sent = 1;
    while (sent < 200_000 && !raw.closed && !raw.ended && raw.buffered.length === 0) {
      if (!raw.socket.write(continuations)) await new Promise((resolve) => raw.socket.once('drain', resolve));
      sent += BATCH;
      await new Promise((resolve) => setImmediate(resolve));
    }
    const { code } = await raw.nextClose();
    await raw.waitEnded();
    const { growth } = memory.stop();
    expect(code).toBe(1009);
    // The charge passes 1 MiB after ~116,500 fragments, not before.
    expect(sent).toBeGreaterThan(Math.floor(MIB / 9));
    expect(growth).toBeLessThan(48 * MIB);
    await stillEchoes(server);
  });

  it('accepts and echoes a 4 MiB message in 65,537 fragments with the default options', async () => {
    const server = await startServer({ app: fixtureApp('commands') });
    const raw = await rawWebSocket(server.address().port, '/echo');
    const message = randomBytes(4 * MIB);
    const frames: Buffer[] = [];
    for (let i = 0; i < 65_536; i++) frames.push(clientFrame(i === 0 ? 0x2 : 0x0, message.subarray(i * 64, (i + 1) * 64), { fin: false }));
    frames.push(clientFrame(0x0, Buffer.alloc(0), { fin: true }));
    raw.socket.write(Buffer.concat(frames));
    const echo = await raw.nextFrame(15_000);
    expect(echo.opcode).toBe(0x2);
    expect(echo.fin).toBe(true);
    expect(echo.payload.length).toBe(message.length);
    expect(echo.payload.equals(message)).toBe(true);
    await stillEchoes(server);
  });
});

describe('bytes the server sends', () => {
  let server: ShardServer;
  beforeAll(async () => {
    server = await startServer({ app: fixtureApp('commands') });
  });

  it("a close the app starts carries exactly its code and reason", async () => {
    const raw = await rawWebSocket(server.address().port, '/echo');
    raw.socket.write(clientFrame(0x1, Buffer.from('close:4001:bye from the server ✓')));
    await expectBytes(raw, closeFrame(4001, 'bye from the server ✓'));
    raw.socket.write(clientFrame(0x8, Buffer.from([0x0f, 0xa1])));
    await raw.waitEnded();
  });

  it('a close for a protocol error, and for a reason too long to send (1011), carry exactly their reasons', async () => {
    const invalid = await rawWebSocket(server.address().port, '/echo');
    invalid.socket.write(clientFrame(0x1, Buffer.from([0x68, 0xc0, 0xaf])));
    await expectBytes(invalid, closeFrame(1007, 'text message is not valid UTF-8'));
    await invalid.waitEnded();

    // ws.close() refuses a 124-byte reason; the handler throws, which closes with 1011.
    const tooLong = await rawWebSocket(server.address().port, '/echo');
    tooLong.socket.write(clientFrame(0x1, Buffer.from(`close:4001:${'x'.repeat(124)}`)));
    await expectBytes(tooLong, closeFrame(1011, 'internal error'));
    await tooLong.waitEnded();
  });

  it('echoes and pongs are exactly the expected frames, across every header and copy size boundary', async () => {
    const raw = await rawWebSocket(server.address().port, '/echo');
    const sizes = [0, 1, 2, 124, 125, 126, 127, 2047, 2048, 2049, 4000, 65_535, 65_536, 70_000];
    for (let i = 0; i < 40; i++) sizes.push(Math.floor(Math.random() * 3000));
    const payloads = sizes.map((size) => randomBytes(size));
    const ping = randomBytes(125);
    // One write: the server answers within the same ticks, packing small frames in its arena.
    raw.socket.write(Buffer.concat([...payloads.map((p) => clientFrame(0x2, p)), clientFrame(0x9, ping)]));
    const echoes = Buffer.concat(payloads.map((p) => serverFrame(0x2, p)));
    const pong = serverFrame(0xa, ping);
    await waitFor(() => raw.buffered.length >= echoes.length + pong.length, 'every echo and the pong', 5000);
    // The pong skips data queued behind a slow socket, so it may come between any two echoes
    // (RFC 6455 §5.4: control frames may be injected between frames): take it out at its boundary.
    const { data, control } = splitFrames(raw.buffered);
    expect(control).toHaveLength(1);
    expectSame(control[0]!, pong);
    expectSame(data, echoes);
    await stillEchoes(server);
  });
});
