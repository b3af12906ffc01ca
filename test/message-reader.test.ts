import { setImmediate as nextMacrotask } from 'node:timers/promises';
import { constants, deflateRawSync, inflateRawSync } from 'node:zlib';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ProtocolError } from '../src/shared/errors.ts';
import { encodeFrame } from '../src/shared/frame-encoder.ts';
import type { Role } from '../src/shared/frame-parser.ts';
import { MessageReader } from '../src/shared/message-reader.ts';
import type { MessageInflater, MessageReaderOptions } from '../src/shared/message-reader.ts';
import { Opcode } from '../src/shared/opcodes.ts';
import { frameFor, keys } from './support/frames.ts';

const hex = (s: string): Buffer => Buffer.from(s.replace(/\s+/g, ''), 'hex');
const TAIL = Buffer.from([0x00, 0x00, 0xff, 0xff]);

/** RFC 7692 §7.2.1: a message deflated with a sync flush, its 00 00 FF FF tail removed. */
function deflateMessage(data: Uint8Array): Buffer {
  const out = deflateRawSync(data, { finishFlush: constants.Z_SYNC_FLUSH });
  expect(out.subarray(-4)).toEqual(TAIL);
  return out.subarray(0, -4);
}

/**
 * A stand-in for the permessage-deflate inflater, built on inflateRawSync: each frame is
 * inflated with everything before it, and only the bytes it adds are handed back, so a
 * character can be split between the pieces of one message as with a streaming inflater.
 */
class FakeInflater implements MessageInflater {
  readonly mode: 'sync' | 'async';
  readonly maxSize: number;
  /** Calls in progress (async) and the frames seen, for assertions. */
  pending = 0;
  calls = 0;
  #input: Buffer[] = [];
  #returned = 0;

  constructor(mode: 'sync' | 'async', maxSize = Number.POSITIVE_INFINITY) {
    this.mode = mode;
    this.maxSize = maxSize;
  }

  get synchronous(): boolean {
    return this.mode === 'sync';
  }

  decompress(data: Buffer, fin: boolean, callback: (error: ProtocolError | null, data?: Buffer) => void): void {
    this.calls++;
    // The payload may be a view of a socket chunk, valid only during this call: copy it.
    this.#input.push(Buffer.from(data));
    const run = () => {
      this.pending--;
      let all: Buffer;
      try {
        all = inflateRawSync(Buffer.concat(fin ? [...this.#input, TAIL] : this.#input), { finishFlush: constants.Z_SYNC_FLUSH });
      } catch {
        this.#reset();
        return callback(new ProtocolError('WS_ERR_INVALID_COMPRESSED_DATA', 1007, 'corrupt deflate data'));
      }
      if (all.length > this.maxSize) {
        this.#reset();
        return callback(new ProtocolError('WS_ERR_MESSAGE_TOO_BIG', 1009, 'inflated message too big'));
      }
      const piece = all.subarray(this.#returned);
      this.#returned = all.length;
      if (fin) this.#reset();
      callback(null, piece);
    };
    this.pending++;
    if (this.mode === 'sync') run();
    else setImmediate(run);
  }

  #reset(): void {
    this.#input = [];
    this.#returned = 0;
  }
}

type Event =
  | ['message', boolean, string]
  | ['ping', string]
  | ['pong', string]
  | ['close', number, string]
  | ['error', string, number]
  | ['pressure', boolean];

function harness(options: Partial<MessageReaderOptions> & { role: Role }) {
  const events: Event[] = [];
  const messages: { data: Buffer; isBinary: boolean }[] = [];
  let onMessage: (() => void) | null = null;
  const reader = new MessageReader<null>(
    {
      message(_, data, isBinary) {
        messages.push({ data: Buffer.from(data), isBinary });
        events.push(['message', isBinary, isBinary ? data.toString('hex') : data.toString('utf8')]);
        onMessage?.();
      },
      ping: (_, payload) => events.push(['ping', payload.toString()]),
      pong: (_, payload) => events.push(['pong', payload.toString()]),
      close: (_, code, reason) => events.push(['close', code, reason]),
      error(_, error) {
        expect(error).toBeInstanceOf(ProtocolError);
        events.push(['error', error.code, error.closeCode]);
      },
      readPressure: (_, stop) => events.push(['pressure', stop]),
      caughtUp() {},
    },
    null,
    { maxMessageSize: 16 * 1024 * 1024, inflater: null, ...options },
  );
  return {
    reader,
    events,
    messages,
    errors: () => events.filter((e) => e[0] === 'error'),
    set onMessage(fn: () => void) {
      onMessage = fn;
    },
  };
}

const f = frameFor('server');

describe('MessageReader: validateUtf8 off (skipUtf8Validation)', () => {
  it('hands invalid text and close reasons to the app unchecked, whole, fragmented or inflated', () => {
    const h = harness({ role: 'server', validateUtf8: false, inflater: new FakeInflater('sync') });
    const bad = Buffer.from([0x61, 0xff, 0xfe, 0x62]);
    h.reader.push(f(Opcode.Text, bad));
    h.reader.push(Buffer.concat([f(Opcode.Text, bad.subarray(0, 2), { fin: false }), f(Opcode.Continuation, bad.subarray(2))]));
    h.reader.push(f(Opcode.Text, deflateMessage(bad), { rsv1: true }));
    expect(h.messages.map((m) => m.data)).toEqual([bad, bad, bad]);
    h.reader.push(f(Opcode.Close, Buffer.concat([Buffer.from([0x03, 0xe8]), bad])));
    expect(h.errors()).toEqual([]);
    expect(h.events.at(-1)).toEqual(['close', 1000, 'a\ufffd\ufffdb']);
  });

  it('still checks them by default (1007)', () => {
    const h = harness({ role: 'server' });
    h.reader.push(f(Opcode.Text, Buffer.from([0x61, 0xff])));
    expect(h.errors()).toEqual([['error', 'WS_ERR_INVALID_UTF8', 1007]]);
  });

  it('passes maxFrameSize and maxFragments to the parser', () => {
    const h = harness({ role: 'server', maxFrameSize: 4 });
    h.reader.push(f(Opcode.Binary, Buffer.alloc(5)));
    expect(h.errors()).toEqual([['error', 'WS_ERR_FRAME_TOO_BIG', 1009]]);
    const g = harness({ role: 'server', maxFragments: 1 });
    g.reader.push(Buffer.concat([f(Opcode.Text, 'a', { fin: false }), f(Opcode.Continuation, 'b')]));
    expect(g.errors()).toEqual([['error', 'WS_ERR_TOO_MANY_FRAGMENTS', 1009]]);
  });
});

describe('MessageReader: data messages', () => {
  it('delivers text and binary messages with their type', () => {
    const h = harness({ role: 'server' });
    h.reader.push(Buffer.concat([f(Opcode.Text, 'héllo'), f(Opcode.Binary, hex('00ff10'))]));
    expect(h.events).toEqual([
      ['message', false, 'héllo'],
      ['message', true, '00ff10'],
    ]);
  });

  it('reads RFC 6455 §5.7 examples as a client', () => {
    const h = harness({ role: 'client' });
    h.reader.push(hex('81 05 48 65 6c 6c 6f 01 03 48 65 6c 89 05 48 65 6c 6c 6f 80 02 6c 6f'));
    expect(h.events).toEqual([
      ['message', false, 'Hello'],
      ['ping', 'Hello'],
      ['message', false, 'Hello'],
    ]);
  });

  it('delivers empty messages, single-frame and fragmented', () => {
    const h = harness({ role: 'server' });
    h.reader.push(
      Buffer.concat([
        f(Opcode.Text, ''),
        f(Opcode.Binary, ''),
        f(Opcode.Text, '', { fin: false }),
        f(Opcode.Continuation, ''),
        f(Opcode.Binary, '', { fin: false }),
        f(Opcode.Continuation, '', { fin: false }),
        f(Opcode.Continuation, ''),
      ]),
    );
    expect(h.events).toEqual([
      ['message', false, ''],
      ['message', true, ''],
      ['message', false, ''],
      ['message', true, ''],
    ]);
    expect(h.messages.every((m) => m.data.length === 0)).toBe(true);
  });

  it('assembles fragments, including empty ones, into exactly the message bytes', () => {
    const h = harness({ role: 'server' });
    h.reader.push(
      Buffer.concat([
        f(Opcode.Binary, '', { fin: false }),
        f(Opcode.Continuation, 'ab', { fin: false }),
        f(Opcode.Continuation, '', { fin: false }),
        f(Opcode.Continuation, Buffer.alloc(3000, 0x63), { fin: false }),
        f(Opcode.Continuation, 'd'),
        f(Opcode.Binary, 'next'),
      ]),
    );
    expect(h.messages).toHaveLength(2);
    expect(h.messages[0]!.data).toEqual(Buffer.concat([Buffer.from('ab'), Buffer.alloc(3000, 0x63), Buffer.from('d')]));
    expect(h.messages[1]!.data.toString()).toBe('next');
  });

  it('hands out a first fragment kept as is when the rest is empty', () => {
    const h = harness({ role: 'server' });
    h.reader.push(Buffer.concat([f(Opcode.Text, 'only', { fin: false }), f(Opcode.Continuation, '')]));
    expect(h.events).toEqual([['message', false, 'only']]);
  });

  it('delivers control frames interleaved in a fragmented message, in order', () => {
    const h = harness({ role: 'server' });
    h.reader.push(
      Buffer.concat([
        f(Opcode.Text, 'a', { fin: false }),
        f(Opcode.Ping, '1'),
        f(Opcode.Continuation, 'b', { fin: false }),
        f(Opcode.Pong, '2'),
        f(Opcode.Continuation, 'c'),
      ]),
    );
    expect(h.events).toEqual([
      ['ping', '1'],
      ['pong', '2'],
      ['message', false, 'abc'],
    ]);
  });
});

describe('MessageReader: UTF-8 (RFC 6455 §8.1)', () => {
  it('fails a fragmented text with invalid UTF-8 in its first fragment before the final one arrives', () => {
    const h = harness({ role: 'server' });
    h.reader.push(f(Opcode.Text, Buffer.from([0x61, 0xc0, 0x80]), { fin: false }));
    expect(h.events).toEqual([['error', 'WS_ERR_INVALID_UTF8', 1007]]);
    h.reader.push(f(Opcode.Continuation, 'rest'));
    expect(h.events).toHaveLength(1);
  });

  it('fails at a bad byte in a middle fragment', () => {
    const h = harness({ role: 'server' });
    h.reader.push(f(Opcode.Text, 'ok', { fin: false }));
    h.reader.push(f(Opcode.Continuation, Buffer.from([0xed, 0xa0]), { fin: false }));
    expect(h.events).toEqual([['error', 'WS_ERR_INVALID_UTF8', 1007]]);
  });

  it('accepts valid text split mid-character across fragments, at every split', () => {
    const text = Buffer.from('a€😀é');
    for (let a = 0; a <= text.length; a++) {
      for (let b = a; b <= text.length; b++) {
        const h = harness({ role: 'server' });
        h.reader.push(
          Buffer.concat([
            f(Opcode.Text, text.subarray(0, a), { fin: false }),
            f(Opcode.Continuation, text.subarray(a, b), { fin: false }),
            f(Opcode.Continuation, text.subarray(b)),
          ]),
        );
        expect(h.events).toEqual([['message', false, 'a€😀é']]);
      }
    }
  });

  it('refuses a fragmented text that ends inside a character', () => {
    const h = harness({ role: 'server' });
    h.reader.push(Buffer.concat([f(Opcode.Text, 'ok', { fin: false }), f(Opcode.Continuation, Buffer.from([0xe2, 0x82]))]));
    expect(h.events).toEqual([['error', 'WS_ERR_INVALID_UTF8', 1007]]);
  });

  it('refuses a single-frame text with invalid UTF-8, and a truncated character', () => {
    for (const bad of [[0xff], [0x61, 0xe2, 0x82], [0xf4, 0x90, 0x80, 0x80]]) {
      const h = harness({ role: 'server' });
      h.reader.push(f(Opcode.Text, Buffer.from(bad)));
      expect(h.events).toEqual([['error', 'WS_ERR_INVALID_UTF8', 1007]]);
    }
  });

  it('does not check binary messages', () => {
    const h = harness({ role: 'server' });
    h.reader.push(Buffer.concat([f(Opcode.Binary, Buffer.from([0xff]), { fin: false }), f(Opcode.Continuation, Buffer.from([0xc0]))]));
    expect(h.events).toEqual([['message', true, 'ffc0']]);
  });

  it('starts each text message with a fresh validator', () => {
    const h = harness({ role: 'server' });
    h.reader.push(Buffer.concat([f(Opcode.Text, 'a', { fin: false }), f(Opcode.Continuation, 'b'), f(Opcode.Text, Buffer.from([0x80]), { fin: false })]));
    expect(h.events).toEqual([
      ['message', false, 'ab'],
      ['error', 'WS_ERR_INVALID_UTF8', 1007],
    ]);
  });
});

describe('MessageReader: close frames', () => {
  it('reports the code and reason', () => {
    const h = harness({ role: 'server' });
    h.reader.push(f(Opcode.Close, Buffer.concat([hex('0fa0'), Buffer.from('bye ✓')])));
    expect(h.events).toEqual([['close', 4000, 'bye ✓']]);
  });

  it('reports 1005 for an empty close frame', () => {
    const h = harness({ role: 'client' });
    h.reader.push(hex('88 00'));
    expect(h.events).toEqual([['close', 1005, '']]);
  });

  it('fails on an invalid close frame', () => {
    const cases: [Buffer, string, number][] = [
      [hex('03'), 'WS_ERR_INVALID_CLOSE_PAYLOAD', 1002],
      [hex('03ed'), 'WS_ERR_INVALID_CLOSE_CODE', 1002],
      [hex('0bb7'), 'WS_ERR_INVALID_CLOSE_CODE', 1002],
      [hex('03e8 ff'), 'WS_ERR_INVALID_UTF8', 1007],
    ];
    for (const [payload, code, closeCode] of cases) {
      const h = harness({ role: 'server' });
      h.reader.push(Buffer.concat([f(Opcode.Close, payload), f(Opcode.Text, 'after')]));
      expect(h.events).toEqual([['error', code, closeCode]]);
    }
  });

  it('ignores everything after a close frame', () => {
    const h = harness({ role: 'server' });
    h.reader.push(Buffer.concat([f(Opcode.Text, 'before'), f(Opcode.Close, hex('03e8')), f(Opcode.Text, 'after'), hex('ff ff')]));
    h.reader.push(f(Opcode.Ping, 'later'));
    expect(h.events).toEqual([
      ['message', false, 'before'],
      ['close', 1000, ''],
    ]);
  });

  it('drops a half-assembled message when a close frame arrives in the middle', () => {
    const h = harness({ role: 'server' });
    h.reader.push(Buffer.concat([f(Opcode.Text, 'part', { fin: false }), f(Opcode.Close, hex('03e9')), f(Opcode.Continuation, 'end')]));
    expect(h.events).toEqual([['close', 1001, '']]);
  });
});

describe('MessageReader: limits and errors', () => {
  it('fails a message over the limit with 1009', () => {
    const h = harness({ role: 'server', maxMessageSize: 100 });
    h.reader.push(f(Opcode.Binary, Buffer.alloc(101)));
    expect(h.events).toEqual([['error', 'WS_ERR_FRAME_TOO_BIG', 1009]]);

    const g = harness({ role: 'server', maxMessageSize: 100 });
    g.reader.push(Buffer.concat([f(Opcode.Binary, Buffer.alloc(60), { fin: false }), f(Opcode.Continuation, Buffer.alloc(60))]));
    expect(g.events).toEqual([['error', 'WS_ERR_MESSAGE_TOO_BIG', 1009]]);

    const ok = harness({ role: 'server', maxMessageSize: 100 });
    ok.reader.push(f(Opcode.Binary, Buffer.alloc(100)));
    expect(ok.messages[0]!.data).toHaveLength(100);
  });

  it('refuses RSV1 when no extension was negotiated', () => {
    const h = harness({ role: 'server' });
    h.reader.push(f(Opcode.Text, 'x', { rsv1: true }));
    expect(h.events).toEqual([['error', 'WS_ERR_UNEXPECTED_RSV', 1002]]);
  });

  it('reports protocol errors once and delivers nothing after them', () => {
    const h = harness({ role: 'server' });
    h.reader.push(Buffer.concat([f(Opcode.Text, 'ok'), f(Opcode.Continuation, 'bad'), f(Opcode.Text, 'lost')]));
    h.reader.push(f(Opcode.Text, 'lost too'));
    h.reader.push(hex('ff ff ff'));
    expect(h.events).toEqual([
      ['message', false, 'ok'],
      ['error', 'WS_ERR_UNEXPECTED_CONTINUATION', 1002],
    ]);
  });

  it('stop() drops everything from then on', () => {
    const h = harness({ role: 'server' });
    h.onMessage = () => h.reader.stop();
    h.reader.push(Buffer.concat([f(Opcode.Text, 'one'), f(Opcode.Text, 'two')]));
    h.reader.push(f(Opcode.Text, 'three'));
    expect(h.events).toEqual([['message', false, 'one']]);
  });
});

describe('MessageReader: property tests', () => {
  interface Message {
    binary: boolean;
    data: Buffer;
  }
  const size = fc.oneof(fc.integer({ min: 0, max: 200 }), fc.constantFrom(0, 125, 126, 65535, 65536), fc.integer({ min: 0, max: 70_000 }));
  const message: fc.Arbitrary<Message> = fc.oneof(
    size.chain((n) =>
      fc.integer({ min: 0, max: 255 }).map((seed) => {
        const data = Buffer.alloc(n);
        for (let i = 0; i < n; i++) data[i] = (seed + i * 13) & 0xff;
        return { binary: true, data };
      }),
    ),
    fc.tuple(fc.string({ unit: 'grapheme', maxLength: 60 }), fc.integer({ min: 0, max: 1200 })).map(([s, repeat]) => ({
      binary: false,
      data: Buffer.from(s.repeat(s.length ? Math.max(1, Math.floor(repeat / s.length)) : 1)),
    })),
    fc.constantFrom(125, 126, 65535, 65536).map((n) => ({ binary: false, data: Buffer.alloc(n, 0x61) })),
  );

  /** Cuts into 1-4 fragments at random byte positions (text too: mid-character on purpose). */
  const fragmented = message.chain((m) =>
    fc
      .uniqueArray(fc.integer({ min: 0, max: m.data.length }), { maxLength: 3 })
      .map((cuts) => ({ ...m, cuts: cuts.sort((a, b) => a - b) })),
  );

  const encode = (messages: (Message & { cuts: number[] })[], pings: boolean[]): Buffer => {
    const frames: Buffer[] = [];
    messages.forEach((m, k) => {
      const bounds = [0, ...m.cuts, m.data.length];
      for (let i = 0; i + 1 < bounds.length; i++) {
        const opcode = i === 0 ? (m.binary ? Opcode.Binary : Opcode.Text) : Opcode.Continuation;
        frames.push(f(opcode, m.data.subarray(bounds[i], bounds[i + 1]), { fin: i + 2 === bounds.length }));
        if (pings[k] && i === 0) frames.push(f(Opcode.Ping, String(k)));
      }
    });
    return Buffer.concat(frames);
  };

  it('random messages, randomly fragmented and split, come out the same', () => {
    fc.assert(
      fc.property(
        fc.array(fragmented, { maxLength: 6 }),
        fc.array(fc.boolean(), { minLength: 6, maxLength: 6 }),
        fc.uniqueArray(fc.nat(), { maxLength: 6 }),
        (messages, pings, rawCuts) => {
          const wire = encode(messages, pings);
          const cuts = rawCuts.map((c) => (wire.length ? c % wire.length : 0)).sort((a, b) => a - b);
          const h = harness({ role: 'server', maxMessageSize: 1024 * 1024 });
          let start = 0;
          for (const cut of [...cuts, wire.length]) {
            h.reader.push(wire.subarray(start, cut));
            start = cut;
          }
          expect(h.errors()).toEqual([]);
          expect(h.messages.map((m) => m.isBinary)).toEqual(messages.map((m) => m.binary));
          h.messages.forEach((m, i) => expect(m.data.equals(messages[i]!.data)).toBe(true));
          expect(h.events.filter((e) => e[0] === 'ping').map((e) => e[1])).toEqual(
            pings.flatMap((p, k) => (p && k < messages.length ? [String(k)] : [])),
          );
        },
      ),
      { numRuns: 120 },
    );
  });

  it('the same through one reused read buffer (transient pushes), overwritten after every read', () => {
    fc.assert(
      fc.property(
        fc.array(fragmented, { maxLength: 6 }),
        fc.array(fc.boolean(), { minLength: 6, maxLength: 6 }),
        fc.uniqueArray(fc.nat(), { maxLength: 6 }),
        (messages, pings, rawCuts) => {
          const wire = encode(messages, pings);
          const cuts = rawCuts.map((c) => (wire.length ? c % wire.length : 0)).sort((a, b) => a - b);
          const h = harness({ role: 'server', maxMessageSize: 1024 * 1024 });
          const readBuffer = Buffer.alloc(wire.length + 1);
          let start = 0;
          for (const cut of [...cuts, wire.length]) {
            const n = wire.copy(readBuffer, 0, start, cut);
            h.reader.push(readBuffer.subarray(0, n), true);
            // The next read lands in the same memory: whatever the reader kept must be its own.
            readBuffer.fill(0xee);
            start = cut;
          }
          expect(h.errors()).toEqual([]);
          expect(h.messages.map((m) => m.isBinary)).toEqual(messages.map((m) => m.binary));
          h.messages.forEach((m, i) => expect(m.data.equals(messages[i]!.data)).toBe(true));
        },
      ),
      { numRuns: 120 },
    );
  });

  it('random bytes never throw: errors come only through onError, once', () => {
    fc.assert(
      fc.property(
        fc.constantFrom<Role>('client', 'server'),
        fc.array(fc.uint8Array({ maxLength: 50 }), { maxLength: 8 }),
        (role, chunks) => {
          const h = harness({ role, maxMessageSize: 2000, inflater: new FakeInflater('sync', 2000) });
          for (const chunk of chunks) h.reader.push(Buffer.from(chunk));
          const errors = h.errors();
          expect(errors.length).toBeLessThanOrEqual(1);
          if (errors.length === 1) expect(h.events.at(-1)).toBe(errors[0]);
        },
      ),
      { numRuns: 1500 },
    );
  });

  it('random valid-looking frames never throw either', () => {
    const frame = fc
      .record({
        opcode: fc.constantFrom(0, 1, 2, 8, 9, 10, 3, 11),
        fin: fc.boolean(),
        rsv1: fc.boolean(),
        payload: fc.oneof(fc.uint8Array({ maxLength: 130 }), fc.string({ maxLength: 40 }).map((s) => new Uint8Array(Buffer.from(s)))),
      })
      .map(({ opcode, fin, rsv1, payload }) => encodeFrame(opcode as Opcode, payload, { fin, rsv1, maskKeys: keys }));
    fc.assert(
      fc.property(fc.array(frame, { maxLength: 8 }), fc.boolean(), (frames, withInflater) => {
        const h = harness({ role: 'server', maxMessageSize: 300, inflater: withInflater ? new FakeInflater('sync', 300) : null });
        h.reader.push(Buffer.concat(frames));
        const errors = h.errors();
        expect(errors.length).toBeLessThanOrEqual(1);
        if (errors.length === 1) expect(h.events.at(-1)).toBe(errors[0]);
      }),
      { numRuns: 1500 },
    );
  });
});

describe('MessageReader: compressed messages (RFC 7692)', () => {
  for (const mode of ['sync', 'async'] as const) {
    describe(`${mode} inflater`, () => {
      const settle = async (inflater: FakeInflater) => {
        for (let i = 0; i < 1000 && inflater.pending > 0; i++) await nextMacrotask();
        expect(inflater.pending).toBe(0);
      };

      it('inflates single-frame text and binary messages', async () => {
        const inflater = new FakeInflater(mode);
        const h = harness({ role: 'server', inflater });
        const text = 'compress me, compress me, compress me ✓';
        const binary = Buffer.alloc(5000, 7);
        h.reader.push(
          Buffer.concat([
            f(Opcode.Text, deflateMessage(Buffer.from(text)), { rsv1: true }),
            f(Opcode.Binary, deflateMessage(binary), { rsv1: true }),
          ]),
        );
        await settle(inflater);
        expect(h.events).toEqual([
          ['message', false, text],
          ['message', true, binary.toString('hex')],
        ]);
      });

      it('inflates a fragmented message, text split mid-character between inflated pieces', async () => {
        const inflater = new FakeInflater(mode);
        const h = harness({ role: 'server', inflater });
        const text = Buffer.from('€😀é'.repeat(300));
        const body = deflateMessage(text);
        const cuts = [0, 3, 10, Math.floor(body.length / 2), body.length - 1, body.length];
        const frames = cuts.slice(0, -1).map((c, i) =>
          f(i === 0 ? Opcode.Text : Opcode.Continuation, body.subarray(c, cuts[i + 1]), { rsv1: i === 0, fin: i === cuts.length - 2 }),
        );
        h.reader.push(Buffer.concat(frames));
        await settle(inflater);
        expect(h.events).toEqual([['message', false, text.toString()]]);
        expect(inflater.calls).toBe(5);
      });

      it('inflates an empty compressed message', async () => {
        const inflater = new FakeInflater(mode);
        const h = harness({ role: 'server', inflater });
        h.reader.push(Buffer.concat([f(Opcode.Text, deflateMessage(Buffer.alloc(0)), { rsv1: true }), f(Opcode.Binary, hex('00'), { rsv1: true })]));
        await settle(inflater);
        expect(h.events).toEqual([
          ['message', false, ''],
          ['message', true, ''],
        ]);
      });

      it('keeps order across compressed, uncompressed and control frames arriving while inflating', async () => {
        const inflater = new FakeInflater(mode);
        const h = harness({ role: 'server', inflater });
        const c1 = deflateMessage(Buffer.from('first '.repeat(100)));
        h.reader.push(f(Opcode.Text, c1.subarray(0, 5), { rsv1: true, fin: false }));
        h.reader.push(f(Opcode.Ping, 'p1'));
        h.reader.push(f(Opcode.Continuation, c1.subarray(5)));
        h.reader.push(f(Opcode.Text, 'plain'));
        h.reader.push(Buffer.concat([f(Opcode.Binary, deflateMessage(hex('0102')), { rsv1: true }), f(Opcode.Pong, 'p2')]));
        h.reader.push(f(Opcode.Close, hex('03e8')));
        await settle(inflater);
        expect(h.events).toEqual([
          ['ping', 'p1'],
          ['message', false, 'first '.repeat(100)],
          ['message', false, 'plain'],
          ['message', true, '0102'],
          ['pong', 'p2'],
          ['close', 1000, ''],
        ]);
      });

      it('fails with 1007 on compressed text that inflates to invalid UTF-8', async () => {
        const inflater = new FakeInflater(mode);
        const h = harness({ role: 'server', inflater });
        h.reader.push(Buffer.concat([f(Opcode.Text, deflateMessage(Buffer.from([0x61, 0xff])), { rsv1: true }), f(Opcode.Text, 'never')]));
        await settle(inflater);
        expect(h.events).toEqual([['error', 'WS_ERR_INVALID_UTF8', 1007]]);
      });

      it('fails with 1007 on compressed text that ends inside a character', async () => {
        const inflater = new FakeInflater(mode);
        const h = harness({ role: 'server', inflater });
        h.reader.push(f(Opcode.Text, deflateMessage(Buffer.from([0x61, 0xe2, 0x82])), { rsv1: true }));
        await settle(inflater);
        expect(h.events).toEqual([['error', 'WS_ERR_INVALID_UTF8', 1007]]);
      });

      it('passes on the inflater errors (corrupt data, too big) once', async () => {
        const corrupt = new FakeInflater(mode);
        const h = harness({ role: 'server', inflater: corrupt });
        h.reader.push(Buffer.concat([f(Opcode.Binary, hex('ff ff ff'), { rsv1: true }), f(Opcode.Text, 'never')]));
        await settle(corrupt);
        expect(h.events).toEqual([['error', 'WS_ERR_INVALID_COMPRESSED_DATA', 1007]]);

        const small = new FakeInflater(mode, 1000);
        const g = harness({ role: 'server', inflater: small, maxMessageSize: 1000 });
        g.reader.push(Buffer.concat([f(Opcode.Binary, deflateMessage(Buffer.alloc(1001)), { rsv1: true }), f(Opcode.Text, 'never')]));
        await settle(small);
        expect(g.events).toEqual([['error', 'WS_ERR_MESSAGE_TOO_BIG', 1009]]);
      });

      it('enforces the limit on the assembled inflated message', async () => {
        // An inflater that does not check sizes itself: the reader still refuses past the limit.
        const inflater = new FakeInflater(mode);
        const h = harness({ role: 'server', inflater, maxMessageSize: 1000 });
        const body = deflateMessage(Buffer.alloc(1500, 0x61));
        h.reader.push(Buffer.concat([f(Opcode.Text, body, { rsv1: true }), f(Opcode.Text, 'never')]));
        await settle(inflater);
        expect(h.events).toEqual([['error', 'WS_ERR_MESSAGE_TOO_BIG', 1009]]);
      });

      it('stop() while inflating delivers nothing more', async () => {
        const inflater = new FakeInflater(mode);
        const h = harness({ role: 'server', inflater });
        h.onMessage = () => h.reader.stop();
        h.reader.push(
          Buffer.concat([
            f(Opcode.Text, deflateMessage(Buffer.from('one')), { rsv1: true }),
            f(Opcode.Text, deflateMessage(Buffer.from('two')), { rsv1: true }),
            f(Opcode.Text, 'three'),
          ]),
        );
        await settle(inflater);
        expect(h.events).toEqual([['message', false, 'one']]);
      });
    });
  }

  describe('async inflater: back-pressure', () => {
    const settle = async (inflater: FakeInflater) => {
      for (let i = 0; i < 1000 && inflater.pending > 0; i++) await nextMacrotask();
    };

    it('stop() from outside while a frame inflates: the result is dropped', async () => {
      const inflater = new FakeInflater('async');
      const h = harness({ role: 'server', inflater });
      h.reader.push(Buffer.concat([f(Opcode.Text, deflateMessage(Buffer.from('late')), { rsv1: true }), f(Opcode.Text, 'next')]));
      h.reader.stop();
      await settle(inflater);
      expect(h.events).toEqual([]);

      // The same for an inflater that fails after the stop: no error is reported either.
      const corrupt = new FakeInflater('async');
      const g = harness({ role: 'server', inflater: corrupt });
      g.reader.push(f(Opcode.Binary, hex('ff ff ff'), { rsv1: true }));
      g.reader.stop();
      await settle(corrupt);
      expect(g.events).toEqual([]);
    });

    it('reports inflating while a frame is being inflated', async () => {
      const inflater = new FakeInflater('async');
      const h = harness({ role: 'server', inflater });
      expect(h.reader.inflating).toBe(false);
      h.reader.push(f(Opcode.Text, deflateMessage(Buffer.from('x')), { rsv1: true }));
      expect(h.reader.inflating).toBe(true);
      await settle(inflater);
      expect(h.reader.inflating).toBe(false);
    });

    it('asks to stop reading when more than readHighWaterMark bytes pile up, and to go on after', async () => {
      const inflater = new FakeInflater('async');
      const h = harness({ role: 'server', inflater, readHighWaterMark: 1000 });
      const compressed = (i: number) => f(Opcode.Binary, deflateMessage(Buffer.alloc(100, i)), { rsv1: true });
      h.reader.push(compressed(1));
      expect(h.events).toEqual([]);
      h.reader.push(compressed(2));
      h.reader.push(Buffer.alloc(0));
      expect(h.events).toEqual([]);
      // More than 1000 bytes buffered behind the inflating frame.
      h.reader.push(f(Opcode.Binary, Buffer.alloc(1200, 3)));
      expect(h.events).toEqual([['pressure', true]]);
      h.reader.push(f(Opcode.Binary, Buffer.alloc(10, 4)));
      expect(h.events).toEqual([['pressure', true]]);
      await settle(inflater);
      const brief = (e: Event) => (e[0] === 'message' ? `message ${e[2].slice(0, 2)}` : e.join(' '));
      expect(h.events.map(brief)).toEqual(['pressure true', 'message 01', 'message 02', 'message 03', 'message 04', 'pressure false']);
    });

    it('lets reading go on once the piled-up bytes are parsed, even if no compressed frame follows', async () => {
      const inflater = new FakeInflater('async');
      const h = harness({ role: 'server', inflater, readHighWaterMark: 1000 });
      h.reader.push(f(Opcode.Binary, deflateMessage(Buffer.alloc(100, 1)), { rsv1: true }));
      h.reader.push(Buffer.concat([f(Opcode.Binary, Buffer.alloc(800, 2)), f(Opcode.Ping, 'p'), f(Opcode.Binary, Buffer.alloc(400, 3))]));
      expect(h.events).toEqual([['pressure', true]]);
      await settle(inflater);
      // Everything was parsed: reading must be allowed again, or the connection stalls for good.
      expect(h.events.filter((e) => e[0] === 'pressure')).toEqual([
        ['pressure', true],
        ['pressure', false],
      ]);
      expect(h.events.filter((e) => e[0] !== 'pressure').map((e) => e[0])).toEqual(['message', 'message', 'ping', 'message']);
    });

    it('lets reading go on when a large frame is only partly received', async () => {
      const inflater = new FakeInflater('async');
      const h = harness({ role: 'server', inflater, readHighWaterMark: 1000 });
      h.reader.push(f(Opcode.Binary, deflateMessage(Buffer.alloc(100, 1)), { rsv1: true }));
      const big = f(Opcode.Binary, Buffer.alloc(5000, 2));
      h.reader.push(big.subarray(0, 3000));
      expect(h.events).toEqual([['pressure', true]]);
      await settle(inflater);
      // The rest of the frame can only come if reading resumes.
      expect(h.events.at(-1)).toEqual(['pressure', false]);
      h.reader.push(big.subarray(3000));
      expect(h.messages.map((m) => m.data.length)).toEqual([100, 5000]);
    });

    it('keeps reading stopped while the next compressed frame has too much queued behind it', async () => {
      const inflater = new FakeInflater('async');
      const h = harness({ role: 'server', inflater, readHighWaterMark: 1000 });
      h.reader.push(f(Opcode.Binary, deflateMessage(Buffer.alloc(10, 1)), { rsv1: true }));
      h.reader.push(f(Opcode.Binary, deflateMessage(Buffer.alloc(10, 2)), { rsv1: true }));
      h.reader.push(f(Opcode.Binary, Buffer.alloc(1500, 3)));
      expect(h.events).toEqual([['pressure', true]]);
      // First inflation done: the second compressed frame inflates with 1500+ bytes still queued.
      await nextMacrotask();
      expect(h.messages).toHaveLength(1);
      expect(h.events.filter((e) => e[0] === 'pressure')).toEqual([['pressure', true]]);
      await settle(inflater);
      expect(h.messages.map((m) => m.data.length)).toEqual([10, 10, 1500]);
      expect(h.events.at(-1)).toEqual(['pressure', false]);
    });
  });
});

describe('fail-fast UTF-8 inside one frame that arrives in pieces', () => {
  it('fails with 1007 as soon as the bad byte arrives, before the rest of the frame (Autobahn 6.4.3)', async () => {
    const { MessageReader } = await import('../src/shared/message-reader.ts');
    const { encodeFrame } = await import('../src/shared/frame-encoder.ts');
    const { MaskKeySource } = await import('../src/shared/mask.ts');
    const errors: number[] = [];
    const messages: Buffer[] = [];
    const reader = new MessageReader<null>(
      {
        message: (_, data) => messages.push(data),
        ping: () => {},
        pong: () => {},
        close: () => {},
        error: (_, error) => errors.push(error.closeCode),
        readPressure: () => {},
        caughtUp: () => {},
      },
      null,
      { role: 'server', maxMessageSize: 1 << 20, inflater: null },
    );
    const payload = Buffer.concat([Buffer.from('κόσμε'), Buffer.from([0xf4, 0x90, 0x80, 0x80]), Buffer.from('edited')]);
    const frame = encodeFrame(0x1, payload, { maskKeys: new MaskKeySource() });
    const header = 6;
    reader.push(frame.subarray(0, header + 10)); // 'κόσμε': valid so far
    expect(errors).toEqual([]);
    reader.push(frame.subarray(header + 10, header + 11)); // 0xf4 alone could still start a character
    expect(errors).toEqual([]);
    reader.push(frame.subarray(header + 11, header + 12)); // 0x90 after 0xf4 is above U+10FFFF
    expect(errors).toEqual([1007]);
    reader.push(frame.subarray(header + 12));
    expect(messages).toEqual([]);
  });

  it('delivers a valid text frame split at every byte unchanged', async () => {
    const { MessageReader } = await import('../src/shared/message-reader.ts');
    const { encodeFrame } = await import('../src/shared/frame-encoder.ts');
    const { MaskKeySource } = await import('../src/shared/mask.ts');
    const text = 'ascii, Ελληνικά, 中文, emoji 😀 '.repeat(40);
    const frame = encodeFrame(0x1, Buffer.from(text), { maskKeys: new MaskKeySource() });
    for (const step of [1, 2, 3, 5, 7, 64]) {
      const got: string[] = [];
      const reader = new MessageReader<null>(
        {
          message: (_, data) => got.push(data.toString()),
          ping: () => {},
          pong: () => {},
          close: () => {},
          error: (_, e) => got.push(`error ${e.code}`),
          readPressure: () => {},
          caughtUp: () => {},
        },
        null,
        { role: 'server', maxMessageSize: 1 << 20, inflater: null },
      );
      const copy = Buffer.from(frame);
      for (let i = 0; i < copy.length; i += step) reader.push(copy.subarray(i, i + step));
      expect(got).toEqual([text]);
    }
  });
});
