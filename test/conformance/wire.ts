/**
 * The fuzzers' view of the wire: frames built with our encoder (any opcode, RSV bits, mask, or
 * none), and a deliberately separate, strict frame reader, so that what the peer under test sends
 * is not judged by the parser under test.
 */
import { isUtf8 } from 'node:buffer';
import { encodeFrame, frameHeaderSize, writeFrameHeader } from '../../src/shared/frame-encoder.ts';
import { MaskKeySource } from '../../src/shared/mask.ts';
import type { Opcode } from '../../src/shared/opcodes.ts';

const maskKeys = new MaskKeySource();

/** One frame with RSV bits `rsv` (RSV1 = 4); masked with a fresh key when `masked`. */
export function buildFrame(opcode: number, payload: Buffer, fin: boolean, rsv: number, masked: boolean): Buffer {
  const out = encodeFrame(opcode as Opcode, payload, { fin, maskKeys: masked ? maskKeys : null });
  out[0]! |= (rsv & 7) << 4;
  return out;
}

/**
 * FrameStream writes one frame's header now and its payload in later parts (Autobahn's
 * beginMessageFrame / sendMessageFrameData), masking each part at the right key offset.
 */
export class FrameStream {
  readonly #key: Buffer | null;
  #offset = 0;
  readonly header: Buffer;

  constructor(opcode: number, length: number, masked: boolean) {
    const header = Buffer.allocUnsafe(frameHeaderSize(length, masked));
    writeFrameHeader(header, 0, opcode as Opcode, true, false, length, masked ? maskKeys : null);
    this.header = header;
    this.#key = masked ? header.subarray(header.length - 4) : null;
  }

  part(data: Buffer): Buffer {
    const key = this.#key;
    if (key === null) return data;
    const out = Buffer.allocUnsafe(data.length);
    for (let i = 0; i < data.length; i++) out[i] = data[i]! ^ key[(this.#offset + i) & 3]!;
    this.#offset += data.length;
    return out;
  }
}

export interface WireFrame {
  readonly fin: boolean;
  readonly rsv: number;
  readonly opcode: number;
  readonly payload: Buffer;
}

/** The peer under test broke RFC 6455; `closeCode` is what the fuzzer fails the connection with. */
export class WireViolation extends Error {
  readonly closeCode: number;
  constructor(message: string, closeCode = 1002) {
    super(message);
    this.closeCode = closeCode;
  }
}

/**
 * FrameReader splits received bytes into frames and checks what a frame alone can break
 * (§5.2 reserved opcodes, §5.1 masking, §5.5 control frames). RSV bits and message sequencing
 * are left to the session, which knows whether an extension was negotiated.
 */
export class FrameReader {
  readonly #expectMasked: boolean;
  readonly #chunks: Buffer[] = [];
  #buffered = 0;

  constructor(expectMasked: boolean) {
    this.#expectMasked = expectMasked;
  }

  /** Frames completed by `chunk`; throws WireViolation at the first bad one. */
  push(chunk: Buffer): WireFrame[] {
    this.#chunks.push(chunk);
    this.#buffered += chunk.length;
    const frames: WireFrame[] = [];
    for (;;) {
      const frame = this.#next();
      if (frame === null) return frames;
      frames.push(frame);
    }
  }

  #next(): WireFrame | null {
    if (this.#buffered < 2) return null;
    const head = this.#peek(Math.min(this.#buffered, 14));
    const b0 = head[0]!;
    const b1 = head[1]!;
    const opcode = b0 & 0x0f;
    const masked = (b1 & 0x80) !== 0;
    let length = b1 & 0x7f;
    let offset = 2;
    if (length === 126) {
      if (head.length < 4) return null;
      length = head.readUInt16BE(2);
      offset = 4;
      if (length < 126) throw new WireViolation(`16-bit length ${length} is not minimal`);
    } else if (length === 127) {
      if (head.length < 10) return null;
      const big = head.readBigUInt64BE(2);
      if (big >= 1n << 63n) throw new WireViolation('64-bit length has its top bit set');
      if (big > BigInt(Number.MAX_SAFE_INTEGER)) throw new WireViolation('frame length beyond 2^53');
      length = Number(big);
      offset = 10;
      if (length < 0x10000) throw new WireViolation(`64-bit length ${length} is not minimal`);
    }
    if ((opcode >= 3 && opcode <= 7) || opcode >= 0xb) throw new WireViolation(`reserved opcode ${opcode}`);
    if (masked !== this.#expectMasked) throw new WireViolation(masked ? 'frame is masked' : 'frame is not masked');
    if (opcode >= 8) {
      if ((b0 & 0x80) === 0) throw new WireViolation('fragmented control frame');
      if (length > 125) throw new WireViolation('control frame over 125 bytes');
    }
    const keyAt = offset;
    if (masked) offset += 4;
    if (this.#buffered < offset + length) return null;
    const whole = this.#take(offset + length);
    const payload = Buffer.from(whole.subarray(offset));
    if (masked) for (let i = 0; i < payload.length; i++) payload[i]! ^= whole[keyAt + (i & 3)]!;
    return { fin: (b0 & 0x80) !== 0, rsv: (b0 >> 4) & 7, opcode, payload };
  }

  /** The first chunk, merged with the next ones until it holds `n` bytes. */
  #peek(n: number): Buffer {
    const chunks = this.#chunks;
    if (chunks[0]!.length >= n) return chunks[0]!;
    let have = 0;
    let count = 0;
    while (have < n) have += chunks[count++]!.length;
    const first = Buffer.concat(chunks.slice(0, count), have);
    chunks.splice(0, count, first);
    return first;
  }

  /** Removes `n` bytes; one concat of just the chunks they span. */
  #take(n: number): Buffer {
    let have = 0;
    let count = 0;
    while (have < n) have += this.#chunks[count++]!.length;
    const joined = count === 1 ? this.#chunks[0]! : Buffer.concat(this.#chunks.slice(0, count), have);
    this.#chunks.splice(0, count);
    if (have > n) this.#chunks.unshift(joined.subarray(n));
    this.#buffered -= n;
    return joined.subarray(0, n);
  }
}

/** Close codes a peer may put in a close frame (RFC 6455 §7.4, IANA registry). */
export const isSendableCloseCode = (code: number): boolean =>
  (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014) || (code >= 3000 && code <= 4999);

/** Decodes a received close payload; WireViolation when the peer under test sent a bad one. */
export function readClosePayload(payload: Buffer): { code: number | null; reason: string } {
  if (payload.length === 0) return { code: null, reason: '' };
  if (payload.length === 1) throw new WireViolation('close payload of 1 byte');
  const code = payload.readUInt16BE(0);
  if (!isSendableCloseCode(code)) throw new WireViolation(`close code ${code} may not be sent`);
  const reason = payload.subarray(2);
  if (!isUtf8(reason)) throw new WireViolation('close reason is not UTF-8', 1007);
  return { code, reason: reason.toString('utf8') };
}

/** Write sizes of the `chopped` delivery: 1, 2, 3 bytes over and over, larger past 8 KiB of a frame. */
export function* chopSizes(total: number): Generator<number> {
  let sent = 0;
  for (let i = 0; sent < total; i++) {
    const size = Math.min(total - sent, sent < 8192 ? (i % 3) + 1 : 1021);
    sent += size;
    yield size;
  }
}
