import { randomFillSync } from 'node:crypto';
import { createRequire } from 'node:module';

/**
 * RFC 6455 §5.3 masking: byte i of the payload is XORed with byte (i mod 4) of the key.
 * Masking and unmasking are the same operation. In place, payloads from 32 bytes go through a
 * Uint32Array view, four bytes per step; from 512 bytes through a BigUint64Array view, eight
 * bytes per step (on V8 about twice the speed of 32-bit words there, but its BigInt key costs
 * more than it saves on short payloads); shorter ones stay in a byte loop, where creating a view
 * would cost more than it saves. From 8 KiB, the optional `bufferutil` addon (the one ws uses)
 * is faster still when installed. Masking into another buffer (a client's send) copies natively
 * and masks in place from 96 bytes; below, one unrolled loop does both.
 */
const WORD_PATH_MIN = 32;
/** Below this, maskInto copies and masks in one unrolled loop (measured faster up to ~96 bytes). */
const MASK_INTO_LOOP_MAX = 96;
const WIDE_PATH_MIN = 512;
const NATIVE_PATH_MIN = 8 * 1024;
const LITTLE_ENDIAN = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;

type NativeMask = (buffer: Uint8Array, mask: Uint8Array) => void;
const nativeUnmask: NativeMask | null = (() => {
  if (process.env.SHARDWS_NO_BUFFERUTIL) return null;
  try {
    const addon = createRequire(import.meta.url)('bufferutil') as { unmask?: NativeMask };
    return typeof addon.unmask === 'function' ? addon.unmask : null;
  } catch {
    return null;
  }
})();

/** Whether the native addon is in use (for benchmarks and diagnostics). */
export const usesNativeMask = nativeUnmask !== null;

/** The 4 key bytes starting at key position `phase`, as one native-endian 32-bit word. */
function keyWord(key: Uint8Array, keyOffset: number, phase: number): number {
  const b0 = key[keyOffset + (phase & 3)]!;
  const b1 = key[keyOffset + ((phase + 1) & 3)]!;
  const b2 = key[keyOffset + ((phase + 2) & 3)]!;
  const b3 = key[keyOffset + ((phase + 3) & 3)]!;
  return LITTLE_ENDIAN ? (b0 | (b1 << 8) | (b2 << 16) | (b3 << 24)) >>> 0 : ((b0 << 24) | (b1 << 16) | (b2 << 8) | b3) >>> 0;
}

/** Unmasks (or masks) `buf` in place with the 4-byte key at `key[keyOffset..keyOffset+4]`. */
export function unmask(buf: Uint8Array, key: Uint8Array, keyOffset = 0): void {
  const len = buf.length;
  if (len < WORD_PATH_MIN) {
    for (let i = 0; i < len; i++) buf[i]! ^= key[keyOffset + (i & 3)]!;
    return;
  }
  if (nativeUnmask !== null && len >= NATIVE_PATH_MIN) {
    nativeUnmask(buf, keyOffset === 0 && key.length === 4 ? key : key.subarray(keyOffset, keyOffset + 4));
    return;
  }
  // Typed-array views need an aligned start: do the misaligned head byte by byte.
  const wide = len >= WIDE_PATH_MIN;
  const align = wide ? 7 : 3;
  const head = (align + 1 - (buf.byteOffset & align)) & align;
  let i = 0;
  for (; i < head; i++) buf[i]! ^= key[keyOffset + (i & 3)]!;
  const word = keyWord(key, keyOffset, head);
  if (wide) {
    const words = (len - head) >>> 3;
    const wideWord = BigInt(word) * 0x100000001n; // the 32-bit word in both halves
    const view = new BigUint64Array(buf.buffer, buf.byteOffset + head, words);
    for (let w = 0; w < words; w++) view[w]! ^= wideWord;
    i = head + (words << 3);
  } else {
    const words = (len - head) >>> 2;
    const view = new Uint32Array(buf.buffer, buf.byteOffset + head, words);
    for (let w = 0; w < words; w++) view[w]! ^= word;
    i = head + (words << 2);
  }
  for (; i < len; i++) buf[i]! ^= key[keyOffset + (i & 3)]!;
}

/** Writes `src` masked into `dst` at `dstOffset`, leaving `src` untouched (client sends). */
export function maskInto(src: Uint8Array, key: Uint8Array, keyOffset: number, dst: Uint8Array, dstOffset: number): void {
  const len = src.length;
  if (len < MASK_INTO_LOOP_MAX) {
    // Four bytes a step with the key in locals: no view to create, which short frames (a chat
    // line, a game tick) cannot repay.
    const k0 = key[keyOffset]!, k1 = key[keyOffset + 1]!, k2 = key[keyOffset + 2]!, k3 = key[keyOffset + 3]!;
    let i = 0;
    for (; i + 4 <= len; i += 4) {
      dst[dstOffset + i] = src[i]! ^ k0;
      dst[dstOffset + i + 1] = src[i + 1]! ^ k1;
      dst[dstOffset + i + 2] = src[i + 2]! ^ k2;
      dst[dstOffset + i + 3] = src[i + 3]! ^ k3;
    }
    for (; i < len; i++) dst[dstOffset + i] = src[i]! ^ key[keyOffset + (i & 3)]!;
    return;
  }
  // A native copy then an in-place mask beats any byte loop, whatever the alignments. The key
  // is read before the copy: it may sit in `dst` right in front of the payload.
  const k0 = key[keyOffset]!, k1 = key[keyOffset + 1]!, k2 = key[keyOffset + 2]!, k3 = key[keyOffset + 3]!;
  dst.set(src, dstOffset);
  const keyCopy = KEY_SCRATCH;
  keyCopy[0] = k0;
  keyCopy[1] = k1;
  keyCopy[2] = k2;
  keyCopy[3] = k3;
  unmask(dst.subarray(dstOffset, dstOffset + len), keyCopy, 0);
}

const KEY_SCRATCH = new Uint8Array(4);

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
