import { createHash } from 'node:crypto';
import fc from 'fast-check';
import * as ws from 'ws';
import { describe, expect, it } from 'vitest';
import { ProtocolError } from '../src/shared/errors.ts';
import type { ProtocolErrorCode } from '../src/shared/errors.ts';
import { encodeFrame } from '../src/shared/frame-encoder.ts';
import { FRAGMENT_OVERHEAD, FrameParser } from '../src/shared/frame-parser.ts';
import type { FrameParserOptions, Role } from '../src/shared/frame-parser.ts';
import { Opcode } from '../src/shared/opcodes.ts';
import { frameFor } from './support/frames.ts';

const hex = (s: string): Buffer => Buffer.from(s.replace(/\s+/g, ''), 'hex');

interface FrameEvent {
  opcode: number;
  fin: boolean;
  compressed: boolean;
  payload: Buffer;
}

/** A parser whose frames (payloads copied: the parser may hand out views) and errors are recorded. */
function harness(options: Partial<FrameParserOptions> & { role: Role }) {
  const frames: FrameEvent[] = [];
  const errors: ProtocolError[] = [];
  const events: (FrameEvent | ProtocolError)[] = [];
  let onFrame: ((frame: FrameEvent) => void) | null = null;
  const parser = new FrameParser(
    {
      onFrame(opcode, fin, compressed, payload) {
        const frame = { opcode, fin, compressed, payload: Buffer.from(payload) };
        frames.push(frame);
        events.push(frame);
        onFrame?.(frame);
      },
      onError(error) {
        expect(error).toBeInstanceOf(ProtocolError);
        errors.push(error);
        events.push(error);
      },
    },
    { maxMessageSize: 64 * 1024 * 1024, rsv1Allowed: false, ...options },
  );
  return {
    parser,
    frames,
    errors,
    events,
    set onFrame(fn: (frame: FrameEvent) => void) {
      onFrame = fn;
    },
  };
}


function expectError(h: ReturnType<typeof harness>, code: ProtocolErrorCode, closeCode: number): void {
  expect(h.errors).toHaveLength(1);
  expect(h.errors[0]!.code).toBe(code);
  expect(h.errors[0]!.closeCode).toBe(closeCode);
  expect(h.parser.stopped).toBe(true);
}

const summary = (frames: FrameEvent[]) => frames.map((f) => [f.opcode, f.fin, f.compressed, f.payload.toString('hex')]);
/** Cheap to compare, for runs over hundreds of split points. */
const digest = (frames: FrameEvent[]) =>
  frames.map((f) => `${f.opcode} ${f.fin} ${f.compressed} ${f.payload.length} ${createHash('sha1').update(f.payload).digest('hex')}`);

describe('FrameParser: RFC 6455 §5.7 examples', () => {
  it('single-frame unmasked text (client role)', () => {
    const h = harness({ role: 'client' });
    h.parser.push(hex('81 05 48 65 6c 6c 6f'));
    expect(h.frames).toEqual([{ opcode: Opcode.Text, fin: true, compressed: false, payload: Buffer.from('Hello') }]);
    expect(h.errors).toEqual([]);
  });

  it('single-frame masked text (server role)', () => {
    const h = harness({ role: 'server' });
    h.parser.push(hex('81 85 37 fa 21 3d 7f 9f 4d 51 58'));
    expect(h.frames).toEqual([{ opcode: Opcode.Text, fin: true, compressed: false, payload: Buffer.from('Hello') }]);
  });

  it('fragmented unmasked text', () => {
    const h = harness({ role: 'client' });
    h.parser.push(hex('01 03 48 65 6c'));
    h.parser.push(hex('80 02 6c 6f'));
    expect(summary(h.frames)).toEqual([
      [Opcode.Text, false, false, Buffer.from('Hel').toString('hex')],
      [Opcode.Continuation, true, false, Buffer.from('lo').toString('hex')],
    ]);
  });

  it('unmasked ping (client role) and masked pong (server role)', () => {
    const c = harness({ role: 'client' });
    c.parser.push(hex('89 05 48 65 6c 6c 6f'));
    expect(c.frames).toEqual([{ opcode: Opcode.Ping, fin: true, compressed: false, payload: Buffer.from('Hello') }]);
    const s = harness({ role: 'server' });
    s.parser.push(hex('8a 85 37 fa 21 3d 7f 9f 4d 51 58'));
    expect(s.frames).toEqual([{ opcode: Opcode.Pong, fin: true, compressed: false, payload: Buffer.from('Hello') }]);
  });

  it('256 bytes and 64 KiB of binary with 16- and 64-bit lengths', () => {
    const small = Buffer.alloc(256, 7);
    const big = Buffer.alloc(65536, 9);
    const h = harness({ role: 'client' });
    h.parser.push(Buffer.concat([hex('82 7e 01 00'), small, hex('82 7f 00 00 00 00 00 01 00 00'), big]));
    expect(h.frames).toEqual([
      { opcode: Opcode.Binary, fin: true, compressed: false, payload: small },
      { opcode: Opcode.Binary, fin: true, compressed: false, payload: big },
    ]);
  });
});

describe('FrameParser: incremental input', () => {
  for (const role of ['client', 'server'] as const) {
    const f = frameFor(role);
    const stream = Buffer.concat([
      f(Opcode.Text, 'Hello'),
      f(Opcode.Binary, Buffer.alloc(0)),
      f(Opcode.Binary, Buffer.alloc(300, 1), { fin: false }),
      f(Opcode.Ping, 'ping!'),
      f(Opcode.Continuation, Buffer.alloc(70_000, 2)),
      f(Opcode.Pong, ''),
      f(Opcode.Close, hex('03e8')),
    ]);
    // Copies everywhere: the server role unmasks in place, in the pushed chunk.
    const reference = harness({ role });
    reference.parser.push(Buffer.from(stream));

    it(`${role}: the same frames whatever byte the stream is split at`, () => {
      expect(reference.frames).toHaveLength(7);
      expect(reference.errors).toEqual([]);
      for (let at = 0; at <= stream.length; at++) {
        // Skip most split points inside the long payload: they all take the same path.
        if (at > 400 && at < stream.length - 200 && at % 997 !== 0) continue;
        const h = harness({ role });
        h.parser.push(Buffer.from(stream.subarray(0, at)));
        h.parser.push(Buffer.from(stream.subarray(at)));
        expect(digest(h.frames)).toEqual(digest(reference.frames));
        expect(h.errors).toEqual([]);
        expect(h.parser.bufferedBytes).toBe(0);
      }
    });

    it(`${role}: the same frames when fed one byte at a time (headers split at every byte)`, () => {
      const h = harness({ role });
      for (let i = 0; i < stream.length; i++) h.parser.push(Buffer.from(stream.subarray(i, i + 1)));
      expect(digest(h.frames)).toEqual(digest(reference.frames));
    });
  }

  it('assembles a frame that trickles in as 600,000 one-byte reads in linear time', () => {
    const length = 600_000;
    const payload = Buffer.alloc(length);
    for (let i = 0; i < length; i++) payload[i] = i & 0xff;
    const stream = encodeFrame(Opcode.Binary, payload);
    const h = harness({ role: 'client' });
    const started = performance.now();
    for (let i = 0; i < stream.length; i++) h.parser.push(stream.subarray(i, i + 1));
    // Linear: ~0.1 s. One shift() per chunk made it quadratic: ~18 s at this length, far past a
    // bound that leaves a loaded machine room (~4.7 s at 300,000 reads would not be).
    expect(performance.now() - started).toBeLessThan(5000);
    expect(h.frames).toHaveLength(1);
    expect(h.frames[0]!.payload.equals(payload)).toBe(true);
    expect(h.parser.bufferedBytes).toBe(0);
  });

  it('keeps the rest of a chunk that a copied payload ended in', () => {
    const f = frameFor('server');
    const stream = Buffer.concat([f(Opcode.Binary, Buffer.alloc(1000, 1)), f(Opcode.Text, 'next'), f(Opcode.Text, 'last')]);
    for (const cut of [3, 500, 1005, 1006, 1007]) {
      const h = harness({ role: 'server' });
      const copy = Buffer.from(stream);
      // Three pieces: the payload is copied out of the first two, the third starts mid-frame.
      h.parser.push(copy.subarray(0, cut));
      h.parser.push(copy.subarray(cut, 1008));
      h.parser.push(copy.subarray(1008));
      expect(h.frames.map((x) => x.payload.length)).toEqual([1000, 4, 4]);
      expect(h.frames.slice(1).map((x) => x.payload.toString())).toEqual(['next', 'last']);
      expect(h.parser.bufferedBytes).toBe(0);
    }
  });

  it('parses many frames from one chunk', () => {
    const f = frameFor('server');
    const chunk = Buffer.concat(Array.from({ length: 2000 }, (_, i) => f(i % 2 ? Opcode.Binary : Opcode.Text, String(i))));
    const h = harness({ role: 'server' });
    h.parser.push(chunk);
    expect(h.frames.map((x) => x.payload.toString())).toEqual(Array.from({ length: 2000 }, (_, i) => String(i)));
    expect(h.parser.bufferedBytes).toBe(0);
  });

  it('counts buffered bytes of an incomplete frame', () => {
    const h = harness({ role: 'client' });
    h.parser.push(hex('82 7e 01 00 aa bb'));
    expect(h.parser.bufferedBytes).toBe(2);
    expect(h.frames).toEqual([]);
    h.parser.push(Buffer.alloc(254));
    expect(h.parser.bufferedBytes).toBe(0);
    expect(h.frames).toHaveLength(1);
  });

  it('ignores empty chunks', () => {
    const h = harness({ role: 'client' });
    h.parser.push(Buffer.alloc(0));
    h.parser.push(hex('81'));
    h.parser.push(Buffer.alloc(0));
    h.parser.push(hex('00'));
    expect(h.frames).toEqual([{ opcode: Opcode.Text, fin: true, compressed: false, payload: Buffer.alloc(0) }]);
  });
});

describe('FrameParser: lengths', () => {
  it('refuses a 64-bit length with its top bit set (1002)', () => {
    for (const role of ['client', 'server'] as const) {
      const h = harness({ role });
      h.parser.push(hex(`82 ${role === 'server' ? 'ff' : '7f'} 80 00 00 00 00 00 00 05`));
      expectError(h, 'WS_ERR_INVALID_LENGTH', 1002);
    }
  });

  it('refuses a declared length of 2^63-1 with 1009 without allocating it', () => {
    const before = process.memoryUsage().arrayBuffers;
    // Even with no limit at all: a length past 2^53 is beyond every limit.
    for (const maxMessageSize of [16 * 1024 * 1024, Number.MAX_SAFE_INTEGER, Number.POSITIVE_INFINITY]) {
      const h = harness({ role: 'server', maxMessageSize });
      h.parser.push(hex('82 ff 7f ff ff ff ff ff ff ff 01 02 03 04'));
      expectError(h, 'WS_ERR_FRAME_TOO_BIG', 1009);
      // Payload bytes after the header are not waited for nor kept.
      h.parser.push(Buffer.alloc(1024));
      expect(h.parser.bufferedBytes).toBe(0);
    }
    expect(process.memoryUsage().arrayBuffers - before).toBeLessThan(1024 * 1024);
  });

  it('refuses an oversized frame as soon as its header is read, before its payload arrives', () => {
    const h = harness({ role: 'client', maxMessageSize: 1000 });
    h.parser.push(hex('82 7f 00 00 00 01 00 00 00 00')); // 4 GiB
    expectError(h, 'WS_ERR_FRAME_TOO_BIG', 1009);
    const g = harness({ role: 'client', maxMessageSize: 1000 });
    g.parser.push(hex('82 7e 03 e9')); // 1001
    expectError(g, 'WS_ERR_FRAME_TOO_BIG', 1009);
  });

  it('accepts a frame of exactly the limit', () => {
    const h = harness({ role: 'server', maxMessageSize: 1000 });
    h.parser.push(frameFor('server')(Opcode.Binary, Buffer.alloc(1000)));
    expect(h.frames).toHaveLength(1);
    expect(h.errors).toEqual([]);
  });

  it('decodes a 64-bit length above 2^32 exactly (and waits for the payload)', () => {
    const h = harness({ role: 'client', maxMessageSize: Number.MAX_SAFE_INTEGER });
    h.parser.push(hex('82 7f 00 00 00 01 00 00 00 05'));
    expect(h.errors).toEqual([]);
    expect(h.frames).toEqual([]);
  });
});

describe('FrameParser: maxFrameSize and maxFragments', () => {
  const f = frameFor('server');

  it('refuses a data frame over maxFrameSize (1009) at its header, while whole messages of smaller frames pass', () => {
    const h = harness({ role: 'server', maxMessageSize: 10_000, maxFrameSize: 100 });
    h.parser.push(Buffer.concat([f(Opcode.Text, 'a'.repeat(100), { fin: false }), f(Opcode.Continuation, 'b'.repeat(100))]));
    expect(h.frames.map((frame) => frame.payload.length)).toEqual([100, 100]);
    h.parser.push(f(Opcode.Binary, Buffer.alloc(101)).subarray(0, 4)); // the header only
    expectError(h, 'WS_ERR_FRAME_TOO_BIG', 1009);
    expect(h.errors[0]!.message).toBe('frame payload of 101 bytes exceeds the frame limit of 100');
  });

  it('leaves control frames to their own limit of 125', () => {
    const h = harness({ role: 'server', maxFrameSize: 10 });
    h.parser.push(f(Opcode.Ping, 'x'.repeat(125)));
    expect(h.errors).toEqual([]);
    expect(h.frames).toHaveLength(1);
  });

  it('refuses a message in more frames than maxFragments (1009), counting the first', () => {
    const h = harness({ role: 'server', maxFragments: 3 });
    const message = (frames: number) =>
      Buffer.concat(Array.from({ length: frames }, (_, i) => f(i === 0 ? Opcode.Text : Opcode.Continuation, 'x', { fin: i === frames - 1 })));
    h.parser.push(message(3));
    h.parser.push(message(1));
    h.parser.push(message(2));
    expect(h.errors).toEqual([]);
    expect(h.frames).toHaveLength(6);
    h.parser.push(message(4));
    expectError(h, 'WS_ERR_TOO_MANY_FRAGMENTS', 1009);
    expect(h.frames).toHaveLength(9); // the fourth frame is refused at its header
  });

  it('does not count control frames between fragments', () => {
    const h = harness({ role: 'server', maxFragments: 2 });
    h.parser.push(Buffer.concat([f(Opcode.Text, 'a', { fin: false }), f(Opcode.Ping, ''), f(Opcode.Ping, ''), f(Opcode.Continuation, 'b')]));
    expect(h.errors).toEqual([]);
  });

  it('shows no partial text without partialText (nothing checks it)', () => {
    const seen: number[] = [];
    const parser = new FrameParser(
      { onFrame: () => {}, onPartialText: (bytes) => seen.push(bytes.length), onError: () => {} },
      { role: 'server', maxMessageSize: 1 << 20, rsv1Allowed: false, partialText: false },
    );
    const frame = f(Opcode.Text, 'x'.repeat(1000));
    parser.push(frame.subarray(0, 500));
    parser.push(frame.subarray(500));
    expect(seen).toEqual([]);
  });
});

describe('FrameParser: masking (RFC 6455 §5.1)', () => {
  it('requires masked frames in the server role', () => {
    const h = harness({ role: 'server' });
    h.parser.push(hex('81 05 48 65 6c 6c 6f'));
    expectError(h, 'WS_ERR_MASK_REQUIRED', 1002);
    expect(h.frames).toEqual([]);
  });

  it('requires masked control frames in the server role', () => {
    const h = harness({ role: 'server' });
    h.parser.push(hex('89 00'));
    expectError(h, 'WS_ERR_MASK_REQUIRED', 1002);
  });

  it('forbids masked frames in the client role', () => {
    const h = harness({ role: 'client' });
    h.parser.push(hex('81 85 37 fa 21 3d 7f 9f 4d 51 58'));
    expectError(h, 'WS_ERR_UNEXPECTED_MASK', 1002);
    expect(h.frames).toEqual([]);
  });
});

describe('FrameParser: reserved bits', () => {
  for (const role of ['client', 'server'] as const) {
    const f = frameFor(role);
    const withBits = (frame: Buffer, bits: number): Buffer => {
      const copy = Buffer.from(frame);
      copy[0]! |= bits;
      return copy;
    };

    it(`${role}: allows RSV1 on a data message only when rsv1Allowed, and repeats it on continuations`, () => {
      const h = harness({ role, rsv1Allowed: true });
      h.parser.push(Buffer.concat([f(Opcode.Text, 'a', { rsv1: true, fin: false }), f(Opcode.Continuation, 'b'), f(Opcode.Binary, 'c')]));
      expect(h.frames.map((x) => [x.opcode, x.compressed])).toEqual([
        [Opcode.Text, true],
        [Opcode.Continuation, true],
        [Opcode.Binary, false],
      ]);
      expect(h.errors).toEqual([]);

      const g = harness({ role, rsv1Allowed: false });
      g.parser.push(f(Opcode.Binary, 'x', { rsv1: true }));
      expectError(g, 'WS_ERR_UNEXPECTED_RSV', 1002);
    });

    it(`${role}: rsv1Allowed can be turned on after construction`, () => {
      const h = harness({ role, rsv1Allowed: false });
      h.parser.rsv1Allowed = true;
      h.parser.push(f(Opcode.Binary, 'x', { rsv1: true }));
      expect(h.frames.map((x) => x.compressed)).toEqual([true]);
    });

    it(`${role}: refuses RSV1 on control frames even when rsv1Allowed`, () => {
      for (const opcode of [Opcode.Ping, Opcode.Pong, Opcode.Close]) {
        const h = harness({ role, rsv1Allowed: true });
        h.parser.push(withBits(f(opcode, ''), 0x40));
        expectError(h, 'WS_ERR_UNEXPECTED_RSV', 1002);
      }
    });

    it(`${role}: refuses RSV1 on a continuation frame even when rsv1Allowed`, () => {
      const h = harness({ role, rsv1Allowed: true });
      h.parser.push(Buffer.concat([f(Opcode.Text, 'a', { rsv1: true, fin: false }), f(Opcode.Continuation, 'b', { rsv1: true })]));
      expect(h.frames).toHaveLength(1);
      expectError(h, 'WS_ERR_UNEXPECTED_RSV', 1002);
    });

    it(`${role}: refuses RSV2 and RSV3 on every opcode, also with rsv1Allowed`, () => {
      for (const bits of [0x20, 0x10, 0x30, 0x70]) {
        for (const opcode of [Opcode.Text, Opcode.Binary, Opcode.Ping]) {
          const h = harness({ role, rsv1Allowed: true });
          h.parser.push(withBits(f(opcode, 'x'), bits));
          expectError(h, 'WS_ERR_UNEXPECTED_RSV', 1002);
          expect(h.frames).toEqual([]);
        }
      }
    });
  }
});

describe('FrameParser: opcodes and control frames', () => {
  it('refuses each reserved opcode 0x3-0x7 and 0xB-0xF', () => {
    for (const opcode of [3, 4, 5, 6, 7, 0xb, 0xc, 0xd, 0xe, 0xf]) {
      for (const role of ['client', 'server'] as const) {
        const h = harness({ role });
        const frame = frameFor(role)(Opcode.Binary, 'x');
        frame[0] = 0x80 | opcode;
        h.parser.push(frame);
        expectError(h, 'WS_ERR_INVALID_OPCODE', 1002);
        expect(h.frames).toEqual([]);
      }
    }
  });

  it('accepts control frames of 125 bytes and refuses 126 (1002)', () => {
    for (const opcode of [Opcode.Ping, Opcode.Pong, Opcode.Close]) {
      const payload = Buffer.alloc(125, 0x61);
      if (opcode === Opcode.Close) payload.writeUInt16BE(1000, 0);
      const ok = harness({ role: 'server' });
      ok.parser.push(frameFor('server')(opcode, payload));
      expect(ok.frames).toHaveLength(1);
      expect(ok.errors).toEqual([]);

      const big = harness({ role: 'server' });
      big.parser.push(frameFor('server')(opcode, Buffer.alloc(126)));
      expectError(big, 'WS_ERR_CONTROL_TOO_BIG', 1002);
      // Also with a 64-bit length field that declares a small size.
      const big64 = harness({ role: 'client' });
      big64.parser.push(hex(`${(0x80 | opcode).toString(16)} 7f 00 00 00 00 00 00 00 05 68 65 6c 6c 6f`));
      expectError(big64, 'WS_ERR_CONTROL_TOO_BIG', 1002);
    }
  });

  it('refuses fragmented control frames', () => {
    for (const opcode of [Opcode.Ping, Opcode.Pong, Opcode.Close]) {
      const h = harness({ role: 'server' });
      h.parser.push(frameFor('server')(opcode, 'x', { fin: false }));
      expectError(h, 'WS_ERR_CONTROL_FRAGMENTED', 1002);
    }
  });

  it('refuses a continuation frame without a message to continue', () => {
    const f = frameFor('server');
    const h = harness({ role: 'server' });
    h.parser.push(f(Opcode.Continuation, 'x'));
    expectError(h, 'WS_ERR_UNEXPECTED_CONTINUATION', 1002);
    // Also right after a message that ended.
    const g = harness({ role: 'server' });
    g.parser.push(Buffer.concat([f(Opcode.Text, 'a', { fin: false }), f(Opcode.Continuation, 'b'), f(Opcode.Continuation, 'c')]));
    expect(g.frames).toHaveLength(2);
    expectError(g, 'WS_ERR_UNEXPECTED_CONTINUATION', 1002);
  });

  it('refuses a new data message inside a fragmented one', () => {
    const f = frameFor('server');
    for (const opcode of [Opcode.Text, Opcode.Binary]) {
      const h = harness({ role: 'server' });
      h.parser.push(Buffer.concat([f(Opcode.Binary, 'a', { fin: false }), f(Opcode.Continuation, 'b', { fin: false }), f(opcode, 'c')]));
      expect(h.frames).toHaveLength(2);
      expectError(h, 'WS_ERR_EXPECTED_CONTINUATION', 1002);
    }
  });

  it('delivers control frames interleaved in a fragmented message, in order', () => {
    const f = frameFor('server');
    const h = harness({ role: 'server', rsv1Allowed: true });
    h.parser.push(
      Buffer.concat([
        f(Opcode.Text, 'a', { fin: false, rsv1: true }),
        f(Opcode.Ping, '1'),
        f(Opcode.Continuation, 'b', { fin: false }),
        f(Opcode.Pong, '2'),
        f(Opcode.Ping, '3'),
        f(Opcode.Continuation, 'c'),
        f(Opcode.Close, hex('03e8')),
      ]),
    );
    expect(h.frames.map((x) => [x.opcode, x.fin, x.compressed, x.payload.toString('latin1')])).toEqual([
      [Opcode.Text, false, true, 'a'],
      [Opcode.Ping, true, false, '1'],
      [Opcode.Continuation, false, true, 'b'],
      [Opcode.Pong, true, false, '2'],
      [Opcode.Ping, true, false, '3'],
      [Opcode.Continuation, true, true, 'c'],
      [Opcode.Close, true, false, '\x03\xe8'],
    ]);
    expect(h.errors).toEqual([]);
  });
});

describe('FrameParser: message size limit', () => {
  const f = frameFor('server');

  it('charges fragments by wire bytes plus FRAGMENT_OVERHEAD per extra fragment', () => {
    expect(FRAGMENT_OVERHEAD).toBe(8);
    // 300 + (300 + 8) + (100 + 8) = 716
    const frames = [f(Opcode.Binary, Buffer.alloc(300), { fin: false }), f(Opcode.Continuation, Buffer.alloc(300), { fin: false }), f(Opcode.Continuation, Buffer.alloc(100))];
    const ok = harness({ role: 'server', maxMessageSize: 716 });
    ok.parser.push(Buffer.concat(frames));
    expect(ok.frames).toHaveLength(3);
    expect(ok.errors).toEqual([]);

    const over = harness({ role: 'server', maxMessageSize: 715 });
    over.parser.push(Buffer.concat(frames));
    expect(over.frames).toHaveLength(2);
    expectError(over, 'WS_ERR_MESSAGE_TOO_BIG', 1009);
  });

  it('bounds a flood of empty fragments', () => {
    const limit = 10 * FRAGMENT_OVERHEAD;
    const h = harness({ role: 'server', maxMessageSize: limit });
    h.parser.push(f(Opcode.Text, '', { fin: false }));
    for (let i = 0; i < 10; i++) h.parser.push(f(Opcode.Continuation, '', { fin: false }));
    expect(h.errors).toEqual([]);
    h.parser.push(f(Opcode.Continuation, '', { fin: false }));
    expectError(h, 'WS_ERR_MESSAGE_TOO_BIG', 1009);
  });

  it('does not charge control frames, and starts each message at zero', () => {
    const h = harness({ role: 'server', maxMessageSize: 100 });
    h.parser.push(f(Opcode.Binary, Buffer.alloc(50), { fin: false }));
    for (let i = 0; i < 20; i++) h.parser.push(f(Opcode.Ping, Buffer.alloc(125)));
    h.parser.push(f(Opcode.Continuation, Buffer.alloc(42)));
    for (let i = 0; i < 5; i++) h.parser.push(f(Opcode.Binary, Buffer.alloc(100)));
    expect(h.errors).toEqual([]);
    expect(h.frames).toHaveLength(27);
  });

  it('refuses before buffering the payload of the fragment that passes the limit', () => {
    const h = harness({ role: 'client', maxMessageSize: 100 });
    h.parser.push(encodeFrame(Opcode.Binary, Buffer.alloc(60), { fin: false }));
    h.parser.push(hex('00 3c')); // continuation header of 60 bytes, no payload yet
    expectError(h, 'WS_ERR_MESSAGE_TOO_BIG', 1009);
  });

  it('gives a compressed message a little slack on its wire size', () => {
    const max = 16 * 1024;
    const slack = (max >>> 10) + 64;
    const ok = harness({ role: 'server', maxMessageSize: max, rsv1Allowed: true });
    ok.parser.push(f(Opcode.Binary, Buffer.alloc(max + slack), { rsv1: true }));
    expect(ok.errors).toEqual([]);
    expect(ok.frames).toHaveLength(1);

    const over = harness({ role: 'server', maxMessageSize: max, rsv1Allowed: true });
    over.parser.push(f(Opcode.Binary, Buffer.alloc(max + slack + 1), { rsv1: true }));
    expectError(over, 'WS_ERR_FRAME_TOO_BIG', 1009);

    const plain = harness({ role: 'server', maxMessageSize: max, rsv1Allowed: true });
    plain.parser.push(f(Opcode.Binary, Buffer.alloc(max + 1)));
    expectError(plain, 'WS_ERR_FRAME_TOO_BIG', 1009);
  });

  it('accepts a 4 MiB message in 65,537 fragments under a 16 MiB limit (Autobahn 9.3/9.4)', () => {
    const total = 4 * 1024 * 1024;
    const fragment = total / 65536; // 64 bytes
    const payload = Buffer.alloc(fragment, 0x61);
    const frames: Buffer[] = [f(Opcode.Text, payload, { fin: false })];
    for (let i = 1; i < 65536; i++) frames.push(f(Opcode.Continuation, payload, { fin: false }));
    frames.push(f(Opcode.Continuation, ''));
    expect(frames).toHaveLength(65537);
    const wire = Buffer.concat(frames);

    let count = 0;
    let bytes = 0;
    const errors: ProtocolError[] = [];
    const run = (maxMessageSize: number) => {
      count = bytes = 0;
      errors.length = 0;
      const parser = new FrameParser(
        {
          onFrame: (_op, _fin, _c, p) => {
            count++;
            bytes += p.length;
          },
          onError: (e) => errors.push(e),
        },
        { role: 'server', maxMessageSize, rsv1Allowed: false },
      );
      // 64 KiB reads, as from a socket.
      for (let at = 0; at < wire.length; at += 65536) parser.push(Buffer.from(wire.subarray(at, at + 65536)));
    };
    run(16 * 1024 * 1024);
    expect(errors).toEqual([]);
    expect(count).toBe(65537);
    expect(bytes).toBe(total);
    // The exact charge: 4 MiB + 65,536 × FRAGMENT_OVERHEAD.
    run(total + 65536 * FRAGMENT_OVERHEAD);
    expect(errors).toEqual([]);
    run(total + 65536 * FRAGMENT_OVERHEAD - 1);
    expect(errors.map((e) => e.code)).toEqual(['WS_ERR_MESSAGE_TOO_BIG']);
  });
});

describe('FrameParser: flow control', () => {
  const f = frameFor('client');
  const three = Buffer.concat([f(Opcode.Text, 'one'), f(Opcode.Text, 'two'), f(Opcode.Text, 'three')]);

  it('pause() inside onFrame holds the rest until resume()', () => {
    const h = harness({ role: 'client' });
    h.onFrame = () => h.parser.pause();
    h.parser.push(three);
    expect(h.frames.map((x) => x.payload.toString())).toEqual(['one']);
    expect(h.parser.paused).toBe(true);
    expect(h.parser.bufferedBytes).toBe(three.length - 5);
    h.parser.resume();
    expect(h.frames.map((x) => x.payload.toString())).toEqual(['one', 'two']);
    h.parser.resume();
    h.parser.resume();
    expect(h.frames.map((x) => x.payload.toString())).toEqual(['one', 'two', 'three']);
    expect(h.parser.bufferedBytes).toBe(0);
  });

  it('resume() called synchronously inside onFrame goes on with the same chunk', () => {
    const h = harness({ role: 'client' });
    h.onFrame = () => {
      h.parser.pause();
      h.parser.resume();
    };
    h.parser.push(three);
    expect(h.frames.map((x) => x.payload.toString())).toEqual(['one', 'two', 'three']);
    expect(h.parser.paused).toBe(false);
  });

  it('buffers data pushed while paused and parses it on resume', () => {
    const h = harness({ role: 'client' });
    h.parser.pause();
    h.parser.push(three.subarray(0, 7));
    h.parser.push(three.subarray(7));
    expect(h.frames).toEqual([]);
    expect(h.parser.bufferedBytes).toBe(three.length);
    h.parser.resume();
    expect(h.frames.map((x) => x.payload.toString())).toEqual(['one', 'two', 'three']);
    expect(h.parser.bufferedBytes).toBe(0);
  });

  it('resumes later from inside onFrame without re-entering', () => {
    const h = harness({ role: 'client' });
    const order: string[] = [];
    h.onFrame = (frame) => {
      order.push(`start ${frame.payload}`);
      if (frame.payload.toString() === 'one') {
        h.parser.pause();
        queueMicrotask(() => h.parser.resume());
      }
      order.push(`end ${frame.payload}`);
    };
    h.parser.push(three);
    return Promise.resolve().then(() => {
      expect(order).toEqual(['start one', 'end one', 'start two', 'end two', 'start three', 'end three']);
    });
  });

  it('parses a chunk pushed from inside onFrame after the current one, in order', () => {
    const h = harness({ role: 'client' });
    let pushed = false;
    h.onFrame = () => {
      if (!pushed) {
        pushed = true;
        h.parser.push(f(Opcode.Text, 'four'));
      }
    };
    h.parser.push(three);
    expect(h.frames.map((x) => x.payload.toString())).toEqual(['one', 'two', 'three', 'four']);
  });

  it('does not re-enter onFrame when a chunk is pushed from inside it', () => {
    const h = harness({ role: 'client' });
    const order: string[] = [];
    h.onFrame = (frame) => {
      order.push(`start ${frame.payload}`);
      if (frame.payload.toString() === 'one') h.parser.push(f(Opcode.Text, 'four'));
      order.push(`end ${frame.payload}`);
    };
    h.parser.push(three);
    expect(order).toEqual(['start one', 'end one', 'start two', 'end two', 'start three', 'end three', 'start four', 'end four']);
  });

  it('stop() discards everything after it', () => {
    const h = harness({ role: 'client' });
    h.onFrame = () => h.parser.stop();
    h.parser.push(three);
    expect(h.frames).toHaveLength(1);
    expect(h.parser.stopped).toBe(true);
    expect(h.parser.bufferedBytes).toBe(0);
    h.parser.push(three);
    h.parser.resume();
    expect(h.frames).toHaveLength(1);
    expect(h.errors).toEqual([]);
  });

  it('stop() while paused, then resume(), delivers nothing', () => {
    const h = harness({ role: 'client' });
    h.parser.pause();
    h.parser.push(three);
    h.parser.stop();
    h.parser.resume();
    expect(h.frames).toEqual([]);
  });
});

describe('FrameParser: errors', () => {
  it('delivers nothing after an error and reports it exactly once', () => {
    const f = frameFor('server');
    const h = harness({ role: 'server' });
    h.parser.push(Buffer.concat([f(Opcode.Text, 'ok'), hex('83 80 00 00 00 00'), f(Opcode.Text, 'after'), hex('81 05')]));
    expect(h.frames.map((x) => x.payload.toString())).toEqual(['ok']);
    expectError(h, 'WS_ERR_INVALID_OPCODE', 1002);
    h.parser.push(f(Opcode.Text, 'later'));
    h.parser.push(hex('f3 ff'));
    h.parser.resume();
    expect(h.events).toHaveLength(2);
  });

  it('never throws on random bytes: errors come only through onError, once, and end the stream', () => {
    fc.assert(
      fc.property(
        fc.constantFrom<Role>('client', 'server'),
        fc.boolean(),
        fc.array(fc.uint8Array({ maxLength: 40 }), { maxLength: 8 }),
        (role, rsv1Allowed, chunks) => {
          const h = harness({ role, rsv1Allowed, maxMessageSize: 1000 });
          for (const chunk of chunks) h.parser.push(Buffer.from(chunk));
          expect(h.errors.length).toBeLessThanOrEqual(1);
          if (h.errors.length === 1) {
            expect(h.events.at(-1)).toBe(h.errors[0]);
            expect([1002, 1009]).toContain(h.errors[0]!.closeCode);
            expect(h.parser.stopped).toBe(true);
          }
        },
      ),
      { numRuns: 2000 },
    );
  });

  it('never throws on random frame-shaped input', () => {
    const frameish = fc
      .record({
        b0: fc.integer({ min: 0, max: 255 }),
        masked: fc.boolean(),
        length: fc.oneof(fc.integer({ min: 0, max: 130 }), fc.constantFrom(126, 127, 65535, 65536)),
        body: fc.uint8Array({ maxLength: 140 }),
      })
      .map(({ b0, masked, length, body }) => {
        const header = Buffer.alloc(14);
        header[0] = b0;
        let at = 2;
        if (length < 126) {
          header[1] = length;
        } else if (length < 65536) {
          header[1] = 126;
          header.writeUInt16BE(length, 2);
          at = 4;
        } else {
          header[1] = 127;
          header.writeBigUInt64BE(BigInt(length), 2);
          at = 10;
        }
        if (masked) {
          header[1]! |= 0x80;
          at += 4;
        }
        return Buffer.concat([header.subarray(0, at), body]);
      });
    fc.assert(
      fc.property(fc.constantFrom<Role>('client', 'server'), fc.array(frameish, { maxLength: 6 }), fc.nat(), (role, frames, cut) => {
        const bytes = Buffer.concat(frames);
        const h = harness({ role, rsv1Allowed: true, maxMessageSize: 200 });
        const at = bytes.length ? cut % bytes.length : 0;
        h.parser.push(bytes.subarray(0, at));
        h.parser.push(bytes.subarray(at));
        expect(h.errors.length).toBeLessThanOrEqual(1);
        if (h.errors.length === 1) expect(h.events.at(-1)).toBe(h.errors[0]);
      }),
      { numRuns: 1000 },
    );
  });
});

describe('FrameParser interop: frames from ws 8 Sender', () => {
  interface SenderStatic {
    frame(data: Buffer, options: { fin: boolean; opcode: number; mask: boolean; readOnly: boolean; rsv1: boolean }): Buffer[];
  }
  const { Sender } = ws as unknown as { Sender: SenderStatic };

  for (const role of ['client', 'server'] as const) {
    it(`${role}: parses ${role === 'server' ? 'masked' : 'unmasked'} frames of every length form`, () => {
      const mask = role === 'server';
      const wire: Buffer[] = [];
      const expected: [number, boolean, Buffer][] = [];
      const add = (opcode: number, data: Buffer, fin = true) => {
        expected.push([opcode, fin, Buffer.from(data)]);
        wire.push(...Sender.frame(Buffer.from(data), { fin, opcode, mask, readOnly: false, rsv1: false }));
      };
      for (const length of [0, 1, 125, 126, 127, 65535, 65536, 150_000]) {
        const data = Buffer.alloc(length);
        for (let i = 0; i < length; i++) data[i] = (i * 17 + length) & 0xff;
        add(Opcode.Binary, data);
        add(Opcode.Text, Buffer.alloc(length, 0x61));
      }
      add(Opcode.Text, Buffer.from('Hel'), false);
      add(Opcode.Ping, Buffer.from('Hello'));
      add(Opcode.Continuation, Buffer.from('lo'));
      add(Opcode.Pong, Buffer.alloc(0));
      add(Opcode.Close, hex('03e8 627965'));

      const all = Buffer.concat(wire);
      const h = harness({ role });
      for (let at = 0; at < all.length; at += 4093) h.parser.push(all.subarray(at, at + 4093));
      expect(h.errors).toEqual([]);
      expect(h.frames.map((x) => [x.opcode, x.fin, x.payload])).toEqual(expected);
    });
  }

  it('server role refuses unmasked ws frames; client role refuses masked ones', () => {
    const unmasked = Buffer.concat(Sender.frame(Buffer.from('x'), { fin: true, opcode: 1, mask: false, readOnly: false, rsv1: false }));
    const masked = Buffer.concat(Sender.frame(Buffer.from('x'), { fin: true, opcode: 1, mask: true, readOnly: false, rsv1: false }));
    const s = harness({ role: 'server' });
    s.parser.push(unmasked);
    expectError(s, 'WS_ERR_MASK_REQUIRED', 1002);
    const c = harness({ role: 'client' });
    c.parser.push(masked);
    expectError(c, 'WS_ERR_UNEXPECTED_MASK', 1002);
  });
});
