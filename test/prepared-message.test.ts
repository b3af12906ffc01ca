import { describe, expect, it } from 'vitest';
import { constants, inflateRawSync } from 'node:zlib';
import { encodeFrame } from '../src/shared/frame-encoder.ts';
import type { MessageCompression } from '../src/shared/message-compression.ts';
import { Opcode } from '../src/shared/opcodes.ts';
import { deflateMessageShared } from '../src/shared/permessage-deflate.ts';
import type { WindowBits } from '../src/shared/permessage-deflate.ts';
import { PreparedMessage } from '../src/shared/prepared-message.ts';
import { Counter } from '../src/shared/worker-counters.ts';

const DEFLATE = { level: 1, memLevel: 8 };
const negotiated = (window: WindowBits): MessageCompression => ({ window }) as MessageCompression;
const TEXT = Buffer.from('prepared once, sent many times. '.repeat(40));

/** The payload of an unmasked frame, inflated (RFC 7692 §7.2.2: the trailer goes back on). */
function inflateFrame(frame: Buffer): Buffer {
  const length7 = frame[1]! & 0x7f;
  const payload = frame.subarray(length7 < 126 ? 2 : length7 === 126 ? 4 : 10);
  return inflateRawSync(Buffer.concat([payload, Buffer.from([0, 0, 0xff, 0xff])]), { finishFlush: constants.Z_SYNC_FLUSH });
}

describe('PreparedMessage', () => {
  it('frames the message once; its payload and opcode read back from the frame', () => {
    for (const size of [0, 125, 126, 65535, 65536]) {
      const payload = Buffer.alloc(size, 7);
      const message = PreparedMessage.of(Opcode.Binary, payload, null);
      expect(message.plain).toEqual(encodeFrame(Opcode.Binary, payload));
      expect(message.payload).toEqual(payload);
      expect(message.binary).toBe(true);
    }
    expect(PreparedMessage.of(Opcode.Text, TEXT, null).opcode).toBe(Opcode.Text);
  });

  it('gives the plain frame to a connection without deflate and when it is not to be compressed', () => {
    const compressible = PreparedMessage.of(Opcode.Text, TEXT, DEFLATE);
    expect(compressible.frameFor(null)).toBe(compressible.plain);
    const plainOnly = PreparedMessage.of(Opcode.Text, TEXT, null);
    expect(plainOnly.compressible).toBe(false);
    expect(plainOnly.frameFor(negotiated(15))).toBe(plainOnly.plain);
    expect(() => plainOnly.compressedAt(15)).toThrow(/not to be compressed/);
  });

  it('compresses once per window, without context, and counts each compression', () => {
    const counters = new Float64Array(64);
    const message = PreparedMessage.of(Opcode.Text, TEXT, DEFLATE, counters);
    const wide = message.frameFor(negotiated(15));
    expect(message.frameFor(negotiated(15))).toBe(wide);
    expect(wide).toEqual(encodeFrame(Opcode.Text, deflateMessageShared(TEXT, 15), { rsv1: true }));
    const narrow = message.frameFor(negotiated(8));
    expect(narrow).toEqual(encodeFrame(Opcode.Text, deflateMessageShared(TEXT, 8), { rsv1: true }));
    for (const frame of [wide, narrow]) expect(inflateFrame(frame)).toEqual(TEXT);
    expect(counters[Counter.DeflateBytesIn]).toBe(2 * TEXT.length);
  });

  it("reuses another worker's compressed frame for its window and compresses the others itself", () => {
    const plain = encodeFrame(Opcode.Text, TEXT);
    const theirs = encodeFrame(Opcode.Text, deflateMessageShared(TEXT, 15), { rsv1: true });
    const message = PreparedMessage.fromFrames(plain, theirs, 15, DEFLATE);
    expect(message.frameFor(negotiated(15))).toBe(theirs);
    expect(inflateFrame(message.frameFor(negotiated(10)))).toEqual(TEXT);
    // Sent without a compressed frame: the publisher decided against compressing it.
    expect(PreparedMessage.fromFrames(plain, null, 15, DEFLATE).frameFor(negotiated(15))).toBe(plain);
  });
});
