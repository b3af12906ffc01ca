import type { MaskKeySource } from './mask.ts';
import { maskInto } from './mask.ts';
import type { Opcode } from './opcodes.ts';

/** Header size for a payload of `length` bytes (RFC 6455 §5.2: 7-, 16- or 64-bit length). */
export function frameHeaderSize(length: number, masked: boolean): number {
  return (length < 126 ? 2 : length < 0x10000 ? 4 : 10) + (masked ? 4 : 0);
}

/**
 * Writes a frame header at `target[offset]` and returns its size. With `maskKeys`, the header
 * ends with a fresh mask key (RFC 6455 §5.3), left at `target[offset + size - 4]` for the
 * caller to mask the payload with.
 */
export function writeFrameHeader(
  target: Uint8Array,
  offset: number,
  opcode: Opcode,
  fin: boolean,
  rsv1: boolean,
  length: number,
  maskKeys: MaskKeySource | null,
): number {
  target[offset] = (fin ? 0x80 : 0) | (rsv1 ? 0x40 : 0) | opcode;
  const maskBit = maskKeys ? 0x80 : 0;
  let at = offset + 2;
  if (length < 126) {
    target[offset + 1] = maskBit | length;
  } else if (length < 0x10000) {
    target[offset + 1] = maskBit | 126;
    target[offset + 2] = length >>> 8;
    target[offset + 3] = length & 0xff;
    at = offset + 4;
  } else {
    target[offset + 1] = maskBit | 127;
    const high = Math.floor(length / 0x100000000);
    const low = length >>> 0;
    target[offset + 2] = 0;
    target[offset + 3] = 0;
    target[offset + 4] = (high >>> 8) & 0xff;
    target[offset + 5] = high & 0xff;
    target[offset + 6] = low >>> 24;
    target[offset + 7] = (low >>> 16) & 0xff;
    target[offset + 8] = (low >>> 8) & 0xff;
    target[offset + 9] = low & 0xff;
    at = offset + 10;
  }
  if (maskKeys) {
    maskKeys.writeKey(target, at);
    at += 4;
  }
  return at - offset;
}

export interface EncodeOptions {
  readonly fin?: boolean;
  readonly rsv1?: boolean;
  /** Present for client frames, which are masked (RFC 6455 §5.3). */
  readonly maskKeys?: MaskKeySource | null;
}

/**
 * Encodes a whole frame into one new buffer. Used for frames built once and written many times
 * (a broadcast) and for control frames; per-connection data goes through FrameWriter instead,
 * which avoids copying large payloads.
 */
export function encodeFrame(opcode: Opcode, payload: Uint8Array, options: EncodeOptions = {}): Buffer {
  const maskKeys = options.maskKeys ?? null;
  const headerSize = frameHeaderSize(payload.length, maskKeys !== null);
  const frame = Buffer.allocUnsafe(headerSize + payload.length);
  writeFrameHeader(frame, 0, opcode, options.fin ?? true, options.rsv1 ?? false, payload.length, maskKeys);
  if (maskKeys) maskInto(payload, frame, headerSize - 4, frame, headerSize);
  else frame.set(payload, headerSize);
  return frame;
}
