import { EventEmitter } from 'node:events';
import * as ws from 'ws';
import { describe, expect, it } from 'vitest';
import { encodeFrame, frameHeaderSize, writeFrameHeader } from '../src/shared/frame-encoder.ts';
import { FrameParser } from '../src/shared/frame-parser.ts';
import type { Role } from '../src/shared/frame-parser.ts';
import { MaskKeySource, unmask } from '../src/shared/mask.ts';
import { Opcode } from '../src/shared/opcodes.ts';

const hex = (s: string): Buffer => Buffer.from(s.replace(/\s+/g, ''), 'hex');

/** Always hands out the RFC 6455 §5.7 example key. */
class FixedKeys extends MaskKeySource {
  override writeKey(target: Uint8Array, offset: number): void {
    target.set([0x37, 0xfa, 0x21, 0x3d], offset);
  }
}

/** ws 8's Receiver (not in @types/ws): a Writable that emits what it parses. */
interface WsReceiver extends EventEmitter {
  write(chunk: Buffer): boolean;
}
const { Receiver } = ws as unknown as {
  Receiver: new (options: { isServer: boolean; maxPayload: number }) => WsReceiver;
};

interface Parsed {
  opcode: number;
  fin: boolean;
  compressed: boolean;
  payload: Buffer;
}

function parseAll(bytes: Buffer, role: Role): Parsed[] {
  const frames: Parsed[] = [];
  const parser = new FrameParser(
    {
      onFrame: (opcode, fin, compressed, payload) => frames.push({ opcode, fin, compressed, payload: Buffer.from(payload) }),
      onError: (error) => {
        throw error;
      },
    },
    { role, maxMessageSize: 64 * 1024 * 1024, rsv1Allowed: true },
  );
  parser.push(bytes);
  expect(parser.bufferedBytes).toBe(0);
  return frames;
}

describe('frameHeaderSize', () => {
  it('picks the 7-, 16- or 64-bit length form at its boundaries', () => {
    expect(frameHeaderSize(0, false)).toBe(2);
    expect(frameHeaderSize(125, false)).toBe(2);
    expect(frameHeaderSize(126, false)).toBe(4);
    expect(frameHeaderSize(65535, false)).toBe(4);
    expect(frameHeaderSize(65536, false)).toBe(10);
    expect(frameHeaderSize(2 ** 40, false)).toBe(10);
    expect(frameHeaderSize(0, true)).toBe(6);
    expect(frameHeaderSize(126, true)).toBe(8);
    expect(frameHeaderSize(65536, true)).toBe(14);
  });
});

describe('writeFrameHeader', () => {
  it('writes at the offset and returns the header size', () => {
    const target = Buffer.alloc(20, 0xee);
    expect(writeFrameHeader(target, 3, Opcode.Binary, true, false, 5, null)).toBe(2);
    expect(target.subarray(0, 3)).toEqual(hex('eeeeee'));
    expect(target.subarray(3, 5)).toEqual(hex('8205'));
    expect(target[5]).toBe(0xee);
  });

  it('encodes FIN, RSV1 and the opcode in the first byte', () => {
    const target = Buffer.alloc(2);
    writeFrameHeader(target, 0, Opcode.Text, false, true, 0, null);
    expect(target[0]).toBe(0x41);
    writeFrameHeader(target, 0, Opcode.Continuation, true, false, 0, null);
    expect(target[0]).toBe(0x80);
    writeFrameHeader(target, 0, Opcode.Close, true, false, 0, null);
    expect(target[0]).toBe(0x88);
  });

  it('writes 16-bit lengths big-endian', () => {
    const target = Buffer.alloc(4);
    expect(writeFrameHeader(target, 0, Opcode.Binary, true, false, 0x1234, null)).toBe(4);
    expect(target).toEqual(hex('827e1234'));
    writeFrameHeader(target, 0, Opcode.Binary, true, false, 65535, null);
    expect(target).toEqual(hex('827effff'));
  });

  it('writes 64-bit lengths past 2^32 exactly', () => {
    const target = Buffer.alloc(10);
    expect(writeFrameHeader(target, 0, Opcode.Binary, true, false, 2 ** 32 + 0x01020304, null)).toBe(10);
    expect(target).toEqual(hex('827f 0000 0001 01020304'));
    writeFrameHeader(target, 0, Opcode.Binary, true, false, 0xabcd_1234_5678, null);
    expect(target).toEqual(hex('827f 0000 abcd 12345678'));
    writeFrameHeader(target, 0, Opcode.Binary, true, false, 65536, null);
    expect(target).toEqual(hex('827f 0000 0000 00010000'));
  });

  it('sets the mask bit and appends a key from the source', () => {
    const target = Buffer.alloc(8);
    expect(writeFrameHeader(target, 0, Opcode.Pong, true, false, 5, new FixedKeys())).toBe(6);
    expect(target.subarray(0, 6)).toEqual(hex('8a85 37fa213d'));
    expect(writeFrameHeader(target, 0, Opcode.Binary, true, false, 300, new FixedKeys())).toBe(8);
    expect(target).toEqual(hex('82fe012c 37fa213d'));
  });
});

describe('encodeFrame: RFC 6455 §5.7 examples, byte for byte', () => {
  it('single-frame unmasked text "Hello"', () => {
    expect(encodeFrame(Opcode.Text, Buffer.from('Hello'))).toEqual(hex('81 05 48 65 6c 6c 6f'));
  });

  it('single-frame masked text "Hello"', () => {
    expect(encodeFrame(Opcode.Text, Buffer.from('Hello'), { maskKeys: new FixedKeys() })).toEqual(
      hex('81 85 37 fa 21 3d 7f 9f 4d 51 58'),
    );
  });

  it('fragmented unmasked text "Hel" + "lo"', () => {
    expect(encodeFrame(Opcode.Text, Buffer.from('Hel'), { fin: false })).toEqual(hex('01 03 48 65 6c'));
    expect(encodeFrame(Opcode.Continuation, Buffer.from('lo'))).toEqual(hex('80 02 6c 6f'));
  });

  it('unmasked ping and masked pong "Hello"', () => {
    expect(encodeFrame(Opcode.Ping, Buffer.from('Hello'))).toEqual(hex('89 05 48 65 6c 6c 6f'));
    expect(encodeFrame(Opcode.Pong, Buffer.from('Hello'), { maskKeys: new FixedKeys() })).toEqual(
      hex('8a 85 37 fa 21 3d 7f 9f 4d 51 58'),
    );
  });

  it('256 bytes of binary in one unmasked frame', () => {
    const payload = Buffer.alloc(256, 0x5a);
    expect(encodeFrame(Opcode.Binary, payload)).toEqual(Buffer.concat([hex('82 7e 01 00'), payload]));
  });

  it('64 KiB of binary in one unmasked frame', () => {
    const payload = Buffer.alloc(65536);
    for (let i = 0; i < payload.length; i++) payload[i] = i * 7;
    expect(encodeFrame(Opcode.Binary, payload)).toEqual(
      Buffer.concat([hex('82 7f 00 00 00 00 00 01 00 00'), payload]),
    );
  });
});

describe('encodeFrame', () => {
  it('sets RSV1 when asked', () => {
    expect(encodeFrame(Opcode.Text, Buffer.from('x'), { rsv1: true })[0]).toBe(0xc1);
  });

  it('masks with a fresh key per frame and leaves the payload untouched', () => {
    const keys = new MaskKeySource();
    for (const length of [0, 1, 3, 4, 31, 32, 125, 126, 127, 1000, 65535, 65536, 70001]) {
      const payload = Buffer.alloc(length);
      for (let i = 0; i < length; i++) payload[i] = (i * 31) & 0xff;
      const original = Buffer.from(payload);
      const a = encodeFrame(Opcode.Binary, payload, { maskKeys: keys });
      const b = encodeFrame(Opcode.Binary, payload, { maskKeys: keys });
      expect(payload).toEqual(original);
      const headerSize = frameHeaderSize(length, true);
      expect(a).toHaveLength(headerSize + length);
      expect(a[1]! & 0x80).toBe(0x80);
      expect(a.subarray(headerSize - 4, headerSize)).not.toEqual(b.subarray(headerSize - 4, headerSize));
      const body = Buffer.from(a.subarray(headerSize));
      unmask(body, a.subarray(headerSize - 4, headerSize));
      expect(body).toEqual(original);
    }
  });

  it('encodes payloads that are views at odd offsets', () => {
    const backing = Buffer.alloc(5000);
    for (let i = 0; i < backing.length; i++) backing[i] = i & 0xff;
    for (let offset = 0; offset < 4; offset++) {
      const view = backing.subarray(offset + 1, offset + 1 + 3000);
      expect(parseAll(encodeFrame(Opcode.Binary, view, { maskKeys: new MaskKeySource() }), 'server')[0]!.payload).toEqual(view);
      expect(parseAll(encodeFrame(Opcode.Binary, new Uint8Array(view.buffer, view.byteOffset, view.length)), 'client')[0]!.payload).toEqual(view);
    }
  });

  it('round-trips through the FrameParser, masked and unmasked, at every length form', () => {
    for (const length of [0, 125, 126, 65535, 65536, 100_000]) {
      const payload = Buffer.alloc(length, 0x61);
      for (const role of ['client', 'server'] as const) {
        const maskKeys = role === 'server' ? new MaskKeySource() : null;
        const frames = parseAll(
          Buffer.concat([
            encodeFrame(Opcode.Text, payload, { fin: false, rsv1: true, maskKeys }),
            encodeFrame(Opcode.Ping, Buffer.from('p'), { maskKeys }),
            encodeFrame(Opcode.Continuation, payload, { maskKeys }),
          ]),
          role,
        );
        expect(frames.map((f) => [f.opcode, f.fin, f.compressed, f.payload.length])).toEqual([
          [Opcode.Text, false, true, length],
          [Opcode.Ping, true, false, 1],
          [Opcode.Continuation, true, true, length],
        ]);
        expect(frames[2]!.payload).toEqual(payload);
      }
    }
  });
});

describe('encodeFrame interop: parsed by ws 8 Receiver', () => {
  for (const isServer of [false, true]) {
    it(`${isServer ? 'masked frames, ws as server' : 'unmasked frames, ws as client'}`, () => {
      const receiver = new Receiver({ isServer, maxPayload: 0 });
      const got: unknown[] = [];
      receiver.on('message', (data: Buffer, isBinary: boolean) => got.push(['message', isBinary, Buffer.from(data)]));
      receiver.on('ping', (data: Buffer) => got.push(['ping', Buffer.from(data)]));
      receiver.on('pong', (data: Buffer) => got.push(['pong', Buffer.from(data)]));
      receiver.on('conclude', (code: number, reason: Buffer) => got.push(['close', code, reason.toString()]));
      receiver.on('error', (error: Error) => got.push(['error', error.message]));

      const maskKeys = isServer ? new MaskKeySource() : null;
      const expected: unknown[] = [];
      const frames: Buffer[] = [];
      for (const length of [0, 1, 125, 126, 65535, 65536, 200_000]) {
        const binary = Buffer.alloc(length);
        for (let i = 0; i < length; i++) binary[i] = (i * 13) & 0xff;
        frames.push(encodeFrame(Opcode.Binary, binary, { maskKeys }));
        expected.push(['message', true, binary]);
        const text = Buffer.from('é'.repeat(length >> 1) + 'a'.repeat(length & 1));
        frames.push(encodeFrame(Opcode.Text, text, { maskKeys }));
        expected.push(['message', false, text]);
      }
      frames.push(encodeFrame(Opcode.Text, Buffer.from('Hel'), { fin: false, maskKeys }));
      frames.push(encodeFrame(Opcode.Ping, Buffer.from('Hello'), { maskKeys }));
      frames.push(encodeFrame(Opcode.Continuation, Buffer.from('lo'), { maskKeys }));
      frames.push(encodeFrame(Opcode.Pong, Buffer.alloc(0), { maskKeys }));
      frames.push(encodeFrame(Opcode.Close, Buffer.from([0x03, 0xe8, 0x62, 0x79, 0x65]), { maskKeys }));
      expected.push(['ping', Buffer.from('Hello')], ['message', false, Buffer.from('Hello')], ['pong', Buffer.alloc(0)], ['close', 1000, 'bye']);

      const all = Buffer.concat(frames);
      // Split into uneven chunks so ws reassembles across writes.
      for (let at = 0; at < all.length; at += 9973) receiver.write(all.subarray(at, at + 9973));
      expect(got).toEqual(expected);
    });
  }
});
