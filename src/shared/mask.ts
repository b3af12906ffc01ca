import { randomFillSync } from 'node:crypto';

/**
 * RFC 6455 §5.3 masking: byte i of the payload is XORed with byte (i mod 4) of the key.
 * Masking and unmasking are the same operation. Long payloads go through a Uint32Array view so
 * that four bytes are XORed per step; short ones stay in a byte loop, where creating the view
 * would cost more than it saves.
 */
const WORD_PATH_MIN = 32;
const LITTLE_ENDIAN = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;

/** The 4 key bytes starting at key position `phase`, packed as one native-endian word. */
function keyWord(key: Uint8Array, keyOffset: number, phase: number): number {
  const b0 = key[keyOffset + (phase & 3)]!;
  const b1 = key[keyOffset + ((phase + 1) & 3)]!;
  const b2 = key[keyOffset + ((phase + 2) & 3)]!;
  const b3 = key[keyOffset + ((phase + 3) & 3)]!;
  return LITTLE_ENDIAN
    ? (b0 | (b1 << 8) | (b2 << 16) | (b3 << 24)) >>> 0
    : ((b0 << 24) | (b1 << 16) | (b2 << 8) | b3) >>> 0;
}

/** Unmasks (or masks) `buf` in place with the 4-byte key at `key[keyOffset..keyOffset+4]`. */
export function unmask(buf: Uint8Array, key: Uint8Array, keyOffset = 0): void {
  const len = buf.length;
  if (len < WORD_PATH_MIN) {
    for (let i = 0; i < len; i++) buf[i]! ^= key[keyOffset + (i & 3)]!;
    return;
  }
  // Uint32Array views need a 4-byte aligned start: do the misaligned head byte by byte.
  const head = (4 - (buf.byteOffset & 3)) & 3;
  let i = 0;
  for (; i < head; i++) buf[i]! ^= key[keyOffset + (i & 3)]!;
  const words = (len - head) >>> 2;
  const word = keyWord(key, keyOffset, head);
  const view = new Uint32Array(buf.buffer, buf.byteOffset + head, words);
  for (let w = 0; w < words; w++) view[w]! ^= word;
  i = head + (words << 2);
  for (; i < len; i++) buf[i]! ^= key[keyOffset + (i & 3)]!;
}

/** Writes `src` masked into `dst` at `dstOffset`, leaving `src` untouched (client sends). */
export function maskInto(src: Uint8Array, key: Uint8Array, keyOffset: number, dst: Uint8Array, dstOffset: number): void {
  const len = src.length;
  if (len < WORD_PATH_MIN || ((src.byteOffset - (dst.byteOffset + dstOffset)) & 3) !== 0) {
    for (let i = 0; i < len; i++) dst[dstOffset + i] = src[i]! ^ key[keyOffset + (i & 3)]!;
    return;
  }
  // Same alignment on both sides: copy then mask in place on words.
  dst.set(src, dstOffset);
  unmask(dst.subarray(dstOffset, dstOffset + len), key, keyOffset);
}

/**
 * MaskKeySource hands out client mask keys (RFC 6455 §5.3: unpredictable, from a strong
 * source) from a block of crypto-random bytes refilled in one call, so a client sending many
 * small frames makes one getrandom() per few thousand frames instead of one per frame.
 */
export class MaskKeySource {
  readonly #pool: Buffer;
  #offset: number;

  constructor(poolSize = 8192) {
    this.#pool = Buffer.allocUnsafe(poolSize - (poolSize & 3));
    this.#offset = this.#pool.length;
  }

  /** Copies the next 4-byte key into `target` at `offset`. */
  writeKey(target: Uint8Array, offset: number): void {
    if (this.#offset === this.#pool.length) {
      randomFillSync(this.#pool);
      this.#offset = 0;
    }
    const p = this.#pool;
    const o = this.#offset;
    target[offset] = p[o]!;
    target[offset + 1] = p[o + 1]!;
    target[offset + 2] = p[o + 2]!;
    target[offset + 3] = p[o + 3]!;
    this.#offset = o + 4;
  }
}
