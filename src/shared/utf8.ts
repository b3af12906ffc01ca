import { isUtf8 } from 'node:buffer';

/**
 * Utf8Validator checks UTF-8 incrementally across frames and TCP chunks and fails at the first
 * byte that cannot begin or continue a well-formed sequence (Unicode Table 3-7), so a fragmented
 * text message with a bad byte in its first fragment is refused before the rest arrives
 * (RFC 6455 §8.1: fail the connection as soon as invalid data is seen).
 *
 * Long runs go through `buffer.isUtf8` (native, SIMD); the state machine only handles the few
 * bytes of a character split across two writes.
 */
const NATIVE_MIN = 64;

export class Utf8Validator {
  /** Continuation bytes still expected for the current character. */
  #need = 0;
  /** Allowed range of the next continuation byte (narrower after E0, ED, F0, F4). */
  #lo = 0x80;
  #hi = 0xbf;

  /** True when everything written so far ends on a character boundary. */
  get complete(): boolean {
    return this.#need === 0;
  }

  reset(): void {
    this.#need = 0;
    this.#lo = 0x80;
    this.#hi = 0xbf;
  }

  /** Feeds bytes; returns false as soon as an invalid byte is seen. */
  write(buf: Uint8Array): boolean {
    const len = buf.length;
    let i = 0;
    // Finish a character left open by the previous write.
    while (this.#need > 0 && i < len) {
      if (!this.#step(buf[i]!)) return false;
      i++;
    }
    if (len - i >= NATIVE_MIN) {
      const cut = openTailStart(buf, i);
      if (!isUtf8(cut === len && i === 0 ? buf : buf.subarray(i, cut))) return false;
      i = cut;
    }
    for (; i < len; i++) {
      const b = buf[i]!;
      if (this.#need === 0 && b < 0x80) continue;
      if (!this.#step(b)) return false;
    }
    return true;
  }

  #step(b: number): boolean {
    if (this.#need > 0) {
      if (b < this.#lo || b > this.#hi) return false;
      this.#need--;
      this.#lo = 0x80;
      this.#hi = 0xbf;
      return true;
    }
    if (b < 0x80) return true;
    if (b < 0xc2) return false; // continuation byte without a lead, or overlong C0/C1
    if (b < 0xe0) {
      this.#need = 1;
    } else if (b < 0xf0) {
      this.#need = 2;
      if (b === 0xe0) this.#lo = 0xa0; // overlong
      else if (b === 0xed) this.#hi = 0x9f; // UTF-16 surrogates
    } else if (b < 0xf5) {
      this.#need = 3;
      if (b === 0xf0) this.#lo = 0x90; // overlong
      else if (b === 0xf4) this.#hi = 0x8f; // above U+10FFFF
    } else {
      return false;
    }
    return true;
  }
}

/**
 * Index where an incomplete character at the end of `buf` begins (or `buf.length` when the
 * buffer ends on a boundary), looking back at most 3 bytes from the end, not before `from`.
 */
function openTailStart(buf: Uint8Array, from: number): number {
  const len = buf.length;
  const stop = Math.max(from, len - 3);
  for (let j = len - 1; j >= stop; j--) {
    const b = buf[j]!;
    if ((b & 0xc0) === 0x80) continue; // continuation: keep looking for its lead
    const size = b >= 0xf0 ? 4 : b >= 0xe0 ? 3 : b >= 0xc0 ? 2 : 1;
    return j + size > len ? j : len;
  }
  return len;
}

/** Whole-buffer check, for messages that arrived in one piece. */
export const isValidUtf8 = (buf: Uint8Array): boolean => isUtf8(buf);
