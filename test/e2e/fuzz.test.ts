/**
 * Property-based fuzzing of a live server over raw sockets (bounded for CI; `npm run fuzz` runs
 * the same idea for minutes). Whatever a peer sends (random bytes, valid frames mutated by bit
 * flips, random RSV bits, opcodes and lengths, split anywhere, random extension offers), no
 * worker crashes, everything the server sends is a well-formed frame, each connection ends with
 * a close frame carrying a valid code or a TCP close, and a normal client is still served.
 */
import { randomBytes } from 'node:crypto';
import { connect } from 'node:net';
import { constants, deflateRawSync } from 'node:zlib';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ShardServer } from '../../src/main/listen.ts';
import { cleanup, fixtureApp, openClient, startServer, upgradeRequest, withTimeout, wsUrl } from './helpers.ts';

const MAX_PAYLOAD = 64 * 1024;

afterAll(cleanup);

interface Outcome {
  readonly status: number | null;
  readonly deflate: boolean;
  /** The close code the server sent (1005: an empty close payload), or null for none. */
  readonly closeCode: number | null;
  /** Whatever is wrong with what the server sent, or null. */
  readonly problem: string | null;
}

const VALID_CLOSE = (code: number): boolean => (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014) || (code >= 3000 && code <= 4999);

/** Checks every byte the server sent after its 101: complete, unmasked, valid frames; nothing after a close. */
function judge(bytes: Buffer, deflate: boolean): { closeCode: number | null; problem: string | null } {
  let at = 0;
  while (at < bytes.length) {
    if (bytes.length - at < 2) return { closeCode: null, problem: `a partial frame header at ${at}` };
    const b0 = bytes[at]!;
    const b1 = bytes[at + 1]!;
    const opcode = b0 & 0x0f;
    if ((b1 & 0x80) !== 0) return { closeCode: null, problem: `a masked server frame at ${at}` };
    if ((b0 & 0x30) !== 0 || ((b0 & 0x40) !== 0 && !(deflate && (opcode === 1 || opcode === 2)))) return { closeCode: null, problem: `reserved bits ${b0.toString(16)} at ${at}` };
    if (![0x0, 0x1, 0x2, 0x8, 0x9, 0xa].includes(opcode)) return { closeCode: null, problem: `opcode ${opcode} at ${at}` };
    const length7 = b1 & 0x7f;
    const headerSize = length7 === 126 ? 4 : length7 === 127 ? 10 : 2;
    if (bytes.length - at < headerSize) return { closeCode: null, problem: `a partial frame header at ${at}` };
    const length = length7 === 126 ? bytes.readUInt16BE(at + 2) : length7 === 127 ? Number(bytes.readBigUInt64BE(at + 2)) : length7;
    if (bytes.length - at - headerSize < length) return { closeCode: null, problem: `a partial frame of ${length} bytes at ${at}` };
    const payload = bytes.subarray(at + headerSize, at + headerSize + length);
    at += headerSize + length;
    if (opcode >= 0x8 && length > 125) return { closeCode: null, problem: `a control frame of ${length} bytes` };
    if (opcode === 0x8) {
      if (at !== bytes.length) return { closeCode: null, problem: `${bytes.length - at} bytes after the close frame` };
      if (length === 0) return { closeCode: 1005, problem: null };
      const code = length >= 2 ? payload.readUInt16BE(0) : 0;
      if (length === 1 || !VALID_CLOSE(code)) return { closeCode: code, problem: `close frame with code ${code} (${length} bytes)` };
      try {
        new TextDecoder('utf-8', { fatal: true }).decode(payload.subarray(2));
      } catch {
        return { closeCode: code, problem: 'a close reason that is not UTF-8' };
      }
      return { closeCode: code, problem: null };
    }
  }
  return { closeCode: null, problem: null };
}

/**
 * Sends an upgrade request (with `offer` as Sec-WebSocket-Extensions, if any), then the chunks
 * one by one, then closes our side, and waits for the server to close TCP.
 */
async function fuzzConnection(port: number, offer: string | null, chunks: (deflate: boolean) => Buffer[]): Promise<Outcome> {
  const socket = connect({ port, host: '127.0.0.1' });
  let received = Buffer.alloc(0);
  let closed = false;
  socket.on('data', (chunk: Buffer) => (received = Buffer.concat([received, chunk])));
  socket.on('error', () => {});
  const closedPromise = new Promise<void>((resolve) => socket.once('close', () => ((closed = true), resolve())));
  try {
    await withTimeout(new Promise((resolve) => socket.once('connect', resolve)), 'a TCP connection');
    socket.write(upgradeRequest('/echo', offer === null ? {} : { 'Sec-WebSocket-Extensions': offer }), 'latin1');
    const deadline = Date.now() + 5000;
    while (!received.includes('\r\n\r\n') && !closed && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 2));
    const end = received.indexOf('\r\n\r\n');
    if (end < 0) {
      await withTimeout(closedPromise, 'the connection to close after no response');
      return { status: null, deflate: false, closeCode: null, problem: closed ? null : 'no response to the upgrade request' };
    }
    const head = received.subarray(0, end).toString('latin1');
    const status = Number(head.split(' ')[1]);
    const deflate = status === 101 && /\r\nsec-websocket-extensions: *permessage-deflate/i.test(head);
    if (status === 101) {
      for (const chunk of chunks(deflate)) {
        if (closed) break;
        socket.write(chunk);
        await new Promise((resolve) => setImmediate(resolve));
      }
    }
    socket.end();
    await withTimeout(closedPromise, 'the server to close TCP after our FIN');
    if (status !== 101) return { status, deflate, closeCode: null, problem: null };
    return { status, deflate, ...judge(received.subarray(end + 4), deflate) };
  } finally {
    socket.destroy();
  }
}

// ---- frames -----------------------------------------------------------------------------

interface FrameSpec {
  readonly opcode: number;
  readonly fin: boolean;
  readonly payload: Uint8Array;
  readonly compress: boolean;
  /** Overrides: RSV bits, opcode nibble, declared length. */
  readonly rsv: number | null;
  readonly rawOpcode: number | null;
  readonly declared: number | null;
  readonly key: Uint8Array;
}

function encode(frame: FrameSpec, deflate: boolean): Buffer {
  let payload = Buffer.from(frame.payload);
  let rsv1 = 0;
  if (frame.compress && deflate && (frame.opcode === 1 || frame.opcode === 2)) {
    payload = deflateRawSync(payload, { finishFlush: constants.Z_SYNC_FLUSH }).subarray(0, -4);
    rsv1 = 0x40;
  }
  const length = frame.declared ?? payload.length;
  const head = [(frame.fin ? 0x80 : 0) | (frame.rsv === null ? rsv1 : frame.rsv << 4) | (frame.rawOpcode ?? frame.opcode)];
  if (length < 126) head.push(0x80 | length);
  else if (length < 65536) head.push(0x80 | 126, length >> 8, length & 0xff);
  else {
    const big = Buffer.alloc(8);
    big.writeBigUInt64BE(BigInt(length));
    head.push(0x80 | 127, ...big);
  }
  const masked = Buffer.from(payload);
  for (let i = 0; i < masked.length; i++) masked[i] = masked[i]! ^ frame.key[i & 3]!;
  return Buffer.concat([Buffer.from(head), frame.key, masked]);
}

const text = fc.string({ maxLength: 200 }).map((s) => new TextEncoder().encode(s));
const closePayload = fc.tuple(fc.constantFrom(1000, 1001, 1003, 1008, 3000, 4999), fc.string({ maxLength: 20 })).map(([code, reason]) => {
  const bytes = Buffer.alloc(2 + Buffer.byteLength(reason));
  bytes.writeUInt16BE(code, 0);
  bytes.write(reason, 2);
  return new Uint8Array(bytes);
});

/** A valid frame, most often data, with a small chance of each override. */
const frameSpec: fc.Arbitrary<FrameSpec> = fc
  .record({
    kind: fc.constantFrom('text', 'binary', 'fragment', 'continuation', 'ping', 'pong', 'close'),
    text,
    binary: fc.uint8Array({ maxLength: 300 }),
    control: fc.uint8Array({ maxLength: 125 }),
    close: closePayload,
    compress: fc.boolean(),
    rsv: fc.option(fc.integer({ min: 0, max: 7 }), { freq: 8 }),
    rawOpcode: fc.option(fc.integer({ min: 0, max: 15 }), { freq: 8 }),
    declared: fc.option(fc.oneof(fc.integer({ min: 0, max: 300 }), fc.constantFrom(125, 126, 65_535, 65_536, MAX_PAYLOAD + 1, 2 ** 32, 2 ** 53 - 1)), { freq: 8 }),
    key: fc.uint8Array({ minLength: 4, maxLength: 4 }),
  })
  .map(({ kind, text: t, binary, control, close, compress, rsv, rawOpcode, declared, key }) => {
    const base = { compress, rsv, rawOpcode, declared, key };
    switch (kind) {
      case 'text':
        return { ...base, opcode: 0x1, fin: true, payload: t };
      case 'binary':
        return { ...base, opcode: 0x2, fin: true, payload: binary };
      case 'fragment':
        return { ...base, opcode: 0x2, fin: false, payload: binary };
      case 'continuation':
        return { ...base, opcode: 0x0, fin: true, payload: binary, compress: false };
      case 'ping':
        return { ...base, opcode: 0x9, fin: true, payload: control, compress: false };
      case 'pong':
        return { ...base, opcode: 0xa, fin: true, payload: control, compress: false };
      default:
        return { ...base, opcode: 0x8, fin: true, payload: close, compress: false };
    }
  });

/** Cuts `bytes` at the given points (taken modulo its length). */
function split(bytes: Buffer, points: readonly number[]): Buffer[] {
  if (bytes.length === 0) return [];
  const cuts = [...new Set(points.map((p) => p % bytes.length))].filter((p) => p > 0).sort((a, b) => a - b);
  const out: Buffer[] = [];
  let from = 0;
  for (const cut of cuts) {
    out.push(bytes.subarray(from, cut));
    from = cut;
  }
  out.push(bytes.subarray(from));
  return out;
}

/** Flips the given bits (positions modulo the length in bits). */
function flip(bytes: Buffer, bits: readonly number[]): Buffer {
  const out = Buffer.from(bytes);
  if (out.length === 0) return out;
  for (const bit of bits) {
    const at = bit % (out.length * 8);
    out[at >> 3] = out[at >> 3]! ^ (1 << (at & 7));
  }
  return out;
}

const offerParam = fc.oneof(
  fc.constantFrom('client_max_window_bits', 'server_no_context_takeover', 'client_no_context_takeover', 'server_max_window_bits'),
  fc.tuple(fc.constantFrom('client_max_window_bits', 'server_max_window_bits'), fc.integer({ min: 0, max: 20 })).map(([name, bits]) => `${name}=${bits}`),
  fc.string({ unit: fc.integer({ min: 0x21, max: 0x7e }).map((c) => String.fromCharCode(c)), maxLength: 12 }),
);
const extensionOffer = fc.oneof(
  { weight: 4, arbitrary: fc.array(fc.tuple(fc.constantFrom('permessage-deflate', 'x-webkit-deflate-frame', 'foo'), fc.array(offerParam, { maxLength: 4 })).map(([name, params]) => [name, ...params].join('; ')), { minLength: 1, maxLength: 3 }).map((offers) => offers.join(', ')) },
  { weight: 1, arbitrary: fc.string({ unit: fc.integer({ min: 0x20, max: 0x7e }).map((c) => String.fromCharCode(c)), maxLength: 60 }) },
);

describe('fuzzing a live server', () => {
  const servers: ShardServer[] = [];
  beforeAll(async () => {
    servers.push(await startServer({ app: fixtureApp('commands'), maxPayloadLength: MAX_PAYLOAD }));
    servers.push(await startServer({ app: fixtureApp('commands'), maxPayloadLength: MAX_PAYLOAD, deflate: 'shared' }));
    servers.push(await startServer({ app: fixtureApp('commands'), maxPayloadLength: MAX_PAYLOAD, deflate: 'dedicated' }));
  });

  const server = fc.integer({ min: 0, max: 2 });
  const deflateOffer = fc.constantFrom(null, 'permessage-deflate; client_max_window_bits');

  async function stillServing(): Promise<void> {
    for (const s of servers) {
      expect(s.stats().restarts).toBe(0);
      const client = await openClient(wsUrl(s, '/echo'), undefined, { perMessageDeflate: s.config.deflate !== null });
      expect((await client.request('still serving')).data.toString()).toBe('still serving');
      client.ws.close();
    }
  }

  const expectWellEnded = (outcome: Outcome): void => {
    expect(outcome.problem).toBeNull();
  };

  it('random bytes after a valid handshake', async () => {
    await fc.assert(
      fc.asyncProperty(server, deflateOffer, fc.uint8Array({ minLength: 1, maxLength: 2048 }), fc.array(fc.nat(), { maxLength: 8 }), async (which, offer, bytes, cuts) => {
        const outcome = await fuzzConnection(servers[which]!.address().port, offer, () => split(Buffer.from(bytes), cuts));
        expect(outcome.status).toBe(101);
        expectWellEnded(outcome);
      }),
      { numRuns: 120 },
    );
    await stillServing();
  });

  it('valid frames with random RSV bits, opcodes, lengths and bit flips, split anywhere', async () => {
    await fc.assert(
      fc.asyncProperty(
        server,
        deflateOffer,
        fc.array(frameSpec, { minLength: 1, maxLength: 8 }),
        fc.array(fc.nat(), { maxLength: 4 }),
        fc.array(fc.nat(), { maxLength: 10 }),
        async (which, offer, frames, bits, cuts) => {
          const outcome = await fuzzConnection(servers[which]!.address().port, offer, (deflate) =>
            split(flip(Buffer.concat(frames.map((f) => encode(f, deflate))), bits), cuts),
          );
          expect(outcome.status).toBe(101);
          expectWellEnded(outcome);
        },
      ),
      { numRuns: 300 },
    );
    await stillServing();
  });

  it('random extension offers, then valid and mutated frames', async () => {
    await fc.assert(
      fc.asyncProperty(server, extensionOffer, fc.array(frameSpec, { maxLength: 4 }), fc.array(fc.nat(), { maxLength: 2 }), async (which, offer, frames, bits) => {
        const outcome = await fuzzConnection(servers[which]!.address().port, offer, (deflate) => [flip(Buffer.concat(frames.map((f) => encode(f, deflate))), bits)]);
        // A malformed offer is refused (400); any other is accepted, with deflate or without.
        expect([101, 400]).toContain(outcome.status);
        if (servers[which]!.config.deflate === null) expect(outcome.deflate).toBe(false);
        expectWellEnded(outcome);
      }),
      { numRuns: 150 },
    );
    await stillServing();
  });

  it('a well-formed conversation under the same harness is echoed and closed cleanly (the harness sees real echoes)', async () => {
    const payload = randomBytes(100);
    const key = new Uint8Array(randomBytes(4));
    const frames: FrameSpec[] = [
      { opcode: 0x2, fin: true, payload, compress: true, rsv: null, rawOpcode: null, declared: null, key },
      { opcode: 0x8, fin: true, payload: new Uint8Array([0x03, 0xe8]), compress: false, rsv: null, rawOpcode: null, declared: null, key },
    ];
    for (const s of servers) {
      const outcome = await fuzzConnection(s.address().port, 'permessage-deflate; client_max_window_bits', (deflate) => frames.map((f) => encode(f, deflate)));
      expect(outcome).toEqual({ status: 101, deflate: s.config.deflate !== null, closeCode: 1000, problem: null });
    }
  });
});
