import type { EventEmitter } from 'node:events';
import fc from 'fast-check';
import * as ws from 'ws';
import { describe, expect, it } from 'vitest';
import { encodeFrame } from '../src/shared/frame-encoder.ts';
import { FrameParser } from '../src/shared/frame-parser.ts';
import { ByteArena, COPY_THRESHOLD, FrameWriter } from '../src/shared/frame-writer.ts';
import { MaskKeySource } from '../src/shared/mask.ts';
import { Opcode } from '../src/shared/opcodes.ts';

interface FrameSpec {
  opcode: Opcode;
  fin: boolean;
  rsv1: boolean;
  payload: Buffer;
}

const sizes = fc.oneof(
  fc.integer({ min: 0, max: 300 }),
  fc.constantFrom(0, 125, 126, COPY_THRESHOLD - 1, COPY_THRESHOLD, COPY_THRESHOLD + 1, 65535, 65536),
  fc.integer({ min: 0, max: 70_000 }),
);

const frameSpec: fc.Arbitrary<FrameSpec> = fc
  .record({
    opcode: fc.constantFrom<Opcode>(Opcode.Text, Opcode.Binary, Opcode.Continuation, Opcode.Ping, Opcode.Close),
    fin: fc.boolean(),
    rsv1: fc.boolean(),
    size: sizes,
    seed: fc.integer({ min: 0, max: 255 }),
  })
  .map(({ opcode, fin, rsv1, size, seed }) => {
    const payload = Buffer.alloc(size);
    for (let i = 0; i < size; i++) payload[i] = (seed + i * 7) & 0xff;
    return { opcode, fin, rsv1, payload };
  });

/** A sequence of frames, with take() calls between some of them. */
const script = fc.array(fc.tuple(frameSpec, fc.boolean()), { maxLength: 12 });

/**
 * Reads masked frames back with a server-role FrameParser. The random frames break message rules
 * (a continuation first, a fragmented ping), so each frame is cut out by its header and parsed
 * alone as a final binary frame; its real first byte is checked here.
 */
function parseServer(bytes: Buffer): FrameSpec[] {
  const out: FrameSpec[] = [];
  let at = 0;
  while (at < bytes.length) {
    const b1 = bytes[at + 1]! & 0x7f;
    const length = b1 < 126 ? b1 : b1 === 126 ? bytes.readUInt16BE(at + 2) : Number(bytes.readBigUInt64BE(at + 2));
    const size = (b1 < 126 ? 2 : b1 === 126 ? 4 : 10) + 4 + length;
    const frame = Buffer.from(bytes.subarray(at, at + size));
    const rsv1 = (frame[0]! & 0x40) !== 0;
    const opcode = (frame[0]! & 0x0f) as Opcode;
    const fin = (frame[0]! & 0x80) !== 0;
    expect(frame[1]! & 0x80).toBe(0x80);
    frame[0] = 0x80 | Opcode.Binary;
    const one: FrameSpec[] = [];
    new FrameParser(
      {
        onFrame: (_op, _fin, _c, payload) => one.push({ opcode, fin, rsv1, payload: Buffer.from(payload) }),
        onError: (error) => {
          throw error;
        },
      },
      { role: 'server', maxMessageSize: 1 << 30, rsv1Allowed: false },
    ).push(frame);
    expect(one).toHaveLength(1);
    out.push(one[0]!);
    at += size;
  }
  return out;
}

const collect = (writer: FrameWriter): Buffer[] => writer.take() ?? [];

describe('FrameWriter', () => {
  it('unmasked: its chunks concatenate to the encodeFrame() outputs, whatever the frames', () => {
    fc.assert(
      fc.property(script, fc.integer({ min: 16, max: 9000 }), (steps, arenaSize) => {
        const writer = new FrameWriter(new ByteArena(arenaSize), null);
        const chunks: Buffer[] = [];
        const expected: Buffer[] = [];
        let pending = 0;
        for (const [f, takeNow] of steps) {
          writer.frame(f.opcode, f.payload, f.fin, f.rsv1);
          const encoded = encodeFrame(f.opcode, f.payload, { fin: f.fin, rsv1: f.rsv1 });
          expected.push(encoded);
          pending += encoded.length;
          expect(writer.pendingBytes).toBe(pending);
          if (takeNow) {
            chunks.push(...collect(writer));
            pending = 0;
            expect(writer.pendingBytes).toBe(0);
          }
        }
        chunks.push(...collect(writer));
        expect(writer.take()).toBeNull();
        expect(Buffer.concat(chunks).equals(Buffer.concat(expected))).toBe(true);
      }),
      { numRuns: 150 },
    );
  });

  it('masked: a server-role parser reads back the same frames, and payloads stay untouched', () => {
    fc.assert(
      fc.property(script, fc.integer({ min: 16, max: 9000 }), (steps, arenaSize) => {
        const writer = new FrameWriter(new ByteArena(arenaSize), new MaskKeySource());
        const chunks: Buffer[] = [];
        for (const [f, takeNow] of steps) {
          const before = Buffer.from(f.payload);
          writer.frame(f.opcode, f.payload, f.fin, f.rsv1);
          expect(f.payload.equals(before)).toBe(true);
          if (takeNow) chunks.push(...collect(writer));
        }
        chunks.push(...collect(writer));
        const parsed = parseServer(Buffer.concat(chunks));
        expect(parsed.map((p) => [p.opcode, p.fin, p.rsv1, p.payload.length])).toEqual(
          steps.map(([f]) => [f.opcode, f.fin, f.rsv1, f.payload.length]),
        );
        parsed.forEach((p, i) => expect(p.payload.equals(steps[i]![0].payload)).toBe(true));
      }),
      { numRuns: 100 },
    );
  });

  it('keeps per-writer streams intact when two writers share one arena', () => {
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.integer({ min: 0, max: 1 }), frameSpec, fc.boolean()), { maxLength: 20 }),
        fc.integer({ min: 64, max: 5000 }),
        (steps, arenaSize) => {
          const arena = new ByteArena(arenaSize);
          const writers = [new FrameWriter(arena, null), new FrameWriter(arena, null)];
          const chunks: Buffer[][] = [[], []];
          const expected: Buffer[][] = [[], []];
          for (const [w, f, takeNow] of steps) {
            writers[w]!.frame(f.opcode, f.payload, f.fin, f.rsv1);
            expected[w]!.push(encodeFrame(f.opcode, f.payload, { fin: f.fin, rsv1: f.rsv1 }));
            if (takeNow) chunks[w]!.push(...collect(writers[w]!));
          }
          for (const w of [0, 1]) {
            chunks[w]!.push(...collect(writers[w]!));
            expect(Buffer.concat(chunks[w]!).equals(Buffer.concat(expected[w]!))).toBe(true);
          }
        },
      ),
      { numRuns: 150 },
    );
  });

  it('alternating writers on one arena, masked, read back correctly', () => {
    const arena = new ByteArena(1024);
    const keys = new MaskKeySource();
    const a = new FrameWriter(arena, keys);
    const b = new FrameWriter(arena, keys);
    for (let i = 0; i < 50; i++) {
      a.frame(Opcode.Text, Buffer.from(`a${i}`), true, false);
      b.frame(Opcode.Binary, Buffer.alloc(i * 10, i), true, false);
    }
    const pa = parseServer(Buffer.concat(a.take()!));
    const pb = parseServer(Buffer.concat(b.take()!));
    expect(pa.map((p) => p.payload.toString())).toEqual(Array.from({ length: 50 }, (_, i) => `a${i}`));
    expect(pb.map((p, i) => p.payload.equals(Buffer.alloc(i * 10, i)))).toEqual(Array(50).fill(true));
  });

  it('packs consecutive small frames into one chunk', () => {
    const writer = new FrameWriter(new ByteArena(), null);
    for (let i = 0; i < 20; i++) writer.frame(Opcode.Text, Buffer.from('hi'), true, false);
    const chunks = writer.take()!;
    expect(chunks).toHaveLength(1);
    expect(chunks[0]).toHaveLength(20 * 4);
  });

  it('passes a large payload through without copying it (server)', () => {
    const writer = new FrameWriter(new ByteArena(), null);
    const big = Buffer.alloc(COPY_THRESHOLD + 1, 1);
    const bigger = Buffer.alloc(100_000, 2);
    writer.frame(Opcode.Text, Buffer.from('x'), true, false);
    writer.frame(Opcode.Binary, big, true, false);
    writer.frame(Opcode.Binary, bigger, false, false);
    writer.frame(Opcode.Continuation, Buffer.from('y'), true, false);
    const chunks = writer.take()!;
    expect(chunks).toHaveLength(5);
    expect(chunks[0]).toEqual(Buffer.concat([encodeFrame(Opcode.Text, Buffer.from('x')), encodeFrame(Opcode.Binary, big).subarray(0, 4)]));
    expect(chunks[1]).toBe(big);
    expect(chunks[3]).toBe(bigger);
    expect(chunks[4]).toEqual(encodeFrame(Opcode.Continuation, Buffer.from('y')));
  });

  it('wraps a large Uint8Array payload as a Buffer over the same memory', () => {
    const writer = new FrameWriter(new ByteArena(), null);
    const backing = new ArrayBuffer(10_000);
    const payload = new Uint8Array(backing, 16, 5000).fill(3);
    writer.frame(Opcode.Binary, payload, true, false);
    const chunks = writer.take()!;
    const body = chunks[1]!;
    expect(Buffer.isBuffer(body)).toBe(true);
    expect(body.buffer).toBe(backing);
    expect(body.byteOffset).toBe(16);
    expect(body.length).toBe(5000);
  });

  it('copies (to mask) a large payload on a client, leaving the original untouched', () => {
    const writer = new FrameWriter(new ByteArena(), new MaskKeySource());
    const big = Buffer.alloc(10_000, 9);
    writer.frame(Opcode.Binary, big, true, false);
    const chunks = writer.take()!;
    expect(chunks).toHaveLength(1);
    expect(chunks[0]!.buffer).not.toBe(big.buffer);
    expect(big.every((b) => b === 9)).toBe(true);
    expect(parseServer(chunks[0]!)[0]!.payload.equals(big)).toBe(true);
  });

  it('on a client, a large frame after small ones is two chunks: the arena run, then the masked copy with its header', () => {
    const writer = new FrameWriter(new ByteArena(), new MaskKeySource());
    const big = Buffer.alloc(COPY_THRESHOLD + 1, 7);
    writer.frame(Opcode.Text, Buffer.from('a'), true, false);
    writer.frame(Opcode.Binary, big, true, false);
    writer.frame(Opcode.Text, Buffer.from('b'), true, false);
    const chunks = writer.take()!;
    expect(chunks.map((c) => c.length)).toEqual([2 + 4 + 1, 4 + 4 + big.length, 2 + 4 + 1]);
    const frames = parseServer(Buffer.concat(chunks));
    expect(frames.map((f) => f.payload.length)).toEqual([1, big.length, 1]);
    expect(frames[1]!.payload.equals(big)).toBe(true);
  });

  it('copies small payloads, so changing them afterwards does not change what is sent', () => {
    const writer = new FrameWriter(new ByteArena(), null);
    const small = Buffer.from('hello');
    writer.frame(Opcode.Text, small, true, false);
    small.write('HELLO');
    expect(Buffer.concat(writer.take()!).toString('latin1', 2)).toBe('hello');
  });

  it('starts a new arena block when the arena is exhausted, and never reuses handed-out bytes', () => {
    const arena = new ByteArena(64);
    const first = arena.buffer;
    const writer = new FrameWriter(arena, null);
    const payloads = Array.from({ length: 41 }, (_, i) => Buffer.alloc(i, i));
    const taken: Buffer[][] = [];
    const snapshots: Buffer[] = [];
    for (const p of payloads) {
      writer.frame(Opcode.Binary, p, true, false);
      if (p.length % 3 === 0) {
        const chunks = writer.take()!;
        taken.push(chunks);
        snapshots.push(Buffer.from(Buffer.concat(chunks)));
      }
    }
    expect(arena.buffer).not.toBe(first);
    const rest = writer.take() ?? [];
    taken.push(rest);
    snapshots.push(Buffer.from(Buffer.concat(rest)));
    // What was taken earlier still holds its bytes after the arena moved on.
    taken.forEach((chunks, i) => expect(Buffer.concat(chunks).equals(snapshots[i]!)).toBe(true));
    expect(Buffer.concat(snapshots).equals(Buffer.concat(payloads.map((p) => encodeFrame(Opcode.Binary, p))))).toBe(true);
  });

  it('handles an inline frame bigger than the arena block size', () => {
    const arena = new ByteArena(16);
    const writer = new FrameWriter(arena, null);
    const p = Buffer.alloc(COPY_THRESHOLD, 5);
    writer.frame(Opcode.Binary, Buffer.from('a'), true, false);
    writer.frame(Opcode.Binary, p, true, false);
    expect(Buffer.concat(writer.take()!)).toEqual(Buffer.concat([encodeFrame(Opcode.Binary, Buffer.from('a')), encodeFrame(Opcode.Binary, p)]));
  });

  it('ByteArena.ensure keeps the block when there is room and replaces it when not', () => {
    const arena = new ByteArena(100);
    const block = arena.buffer;
    arena.position = 90;
    arena.ensure(10);
    expect(arena.buffer).toBe(block);
    expect(arena.position).toBe(90);
    arena.ensure(11);
    expect(arena.buffer).not.toBe(block);
    expect(arena.buffer).toHaveLength(100);
    expect(arena.position).toBe(0);
    arena.ensure(500);
    expect(arena.buffer.length).toBeGreaterThanOrEqual(500);
  });

  it('raw(): copies small prepared frames, passes large ones through, in order with frames', () => {
    const writer = new FrameWriter(new ByteArena(), null);
    const small = encodeFrame(Opcode.Text, Buffer.from('broadcast'));
    const large = encodeFrame(Opcode.Binary, Buffer.alloc(5000, 4));
    writer.frame(Opcode.Ping, Buffer.alloc(0), true, false);
    writer.raw(small);
    writer.raw(large);
    writer.frame(Opcode.Pong, Buffer.alloc(0), true, false);
    expect(writer.pendingBytes).toBe(2 + small.length + large.length + 2);
    const chunks = writer.take()!;
    expect(chunks).toHaveLength(3);
    expect(chunks[1]).toBe(large);
    small.fill(0);
    expect(Buffer.concat(chunks)).toEqual(
      Buffer.concat([Buffer.from([0x89, 0]), encodeFrame(Opcode.Text, Buffer.from('broadcast')), large, Buffer.from([0x8a, 0])]),
    );
  });

  it('take() returns null when nothing is queued', () => {
    const writer = new FrameWriter(new ByteArena(), null);
    expect(writer.take()).toBeNull();
    expect(writer.pendingBytes).toBe(0);
  });
});

describe('FrameWriter interop: parsed by ws 8 Receiver', () => {
  interface WsReceiver extends EventEmitter {
    write(chunk: Buffer): boolean;
  }
  const { Receiver } = ws as unknown as {
    Receiver: new (options: { isServer: boolean; maxPayload: number }) => WsReceiver;
  };

  for (const isServer of [false, true]) {
    it(isServer ? 'masked (client writer)' : 'unmasked (server writer)', () => {
      const receiver = new Receiver({ isServer, maxPayload: 0 });
      const got: unknown[] = [];
      receiver.on('message', (data: Buffer, isBinary: boolean) => got.push([isBinary, Buffer.from(data)]));
      receiver.on('ping', (data: Buffer) => got.push(['ping', Buffer.from(data)]));
      receiver.on('error', (error: Error) => got.push(['error', error.message]));

      const writer = new FrameWriter(new ByteArena(4096), isServer ? new MaskKeySource() : null);
      const expected: unknown[] = [];
      for (const length of [0, 1, 125, 126, COPY_THRESHOLD, COPY_THRESHOLD + 1, 65535, 65536, 100_000]) {
        const data = Buffer.alloc(length);
        for (let i = 0; i < length; i++) data[i] = (i * 3) & 0xff;
        writer.frame(Opcode.Binary, data, true, false);
        expected.push([true, Buffer.from(data)]);
        // The same as text in three fragments with a ping between.
        const text = Buffer.alloc(length, 0x7a);
        const third = Math.floor(length / 3);
        writer.frame(Opcode.Text, text.subarray(0, third), false, false);
        writer.frame(Opcode.Ping, Buffer.from(String(length)), true, false);
        writer.frame(Opcode.Continuation, text.subarray(third, 2 * third), false, false);
        writer.frame(Opcode.Continuation, text.subarray(2 * third), true, false);
        expected.push(['ping', Buffer.from(String(length))], [false, text]);
        for (const chunk of writer.take()!) receiver.write(chunk);
      }
      expect(got).toEqual(expected);
    });
  }
});
