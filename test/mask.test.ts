import { randomBytes, randomFillSync } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { MaskKeySource, maskInto, unmask } from '../src/shared/mask.ts';

/** The RFC 6455 §5.3 definition, one byte at a time: the reference every fast path must match. */
function naiveMask(data: Uint8Array, key: Uint8Array, keyOffset = 0): Buffer {
  const out = Buffer.alloc(data.length);
  for (let i = 0; i < data.length; i++) out[i] = data[i]! ^ key[keyOffset + (i % 4)]!;
  return out;
}

/** `length` random bytes at byteOffset ≡ `align` (mod 4), inside a bigger buffer with guard bytes. */
function placed(length: number, align: number): { whole: Buffer; view: Buffer } {
  const whole = randomFillSync(Buffer.alloc(length + 16)); // Buffer.alloc: own ArrayBuffer, byteOffset 0
  const view = whole.subarray(4 + align, 4 + align + length);
  return { whole, view };
}

const KEY = Uint8Array.from([0x37, 0xfa, 0x21, 0x3d]);

describe('unmask', () => {
  it('masks "Hello" with the RFC 6455 §5.7 key', () => {
    const data = Buffer.from('Hello');
    unmask(data, KEY);
    expect(data).toEqual(Buffer.from([0x7f, 0x9f, 0x4d, 0x51, 0x58]));
    unmask(data, KEY);
    expect(data.toString()).toBe('Hello');
  });

  it('matches the byte loop and round-trips for lengths 0..300 at every alignment', () => {
    const key = randomBytes(4);
    for (let length = 0; length <= 300; length++) {
      for (let align = 0; align < 4; align++) {
        const { whole, view } = placed(length, align);
        expect(view.byteOffset & 3).toBe(align);
        const original = Buffer.from(whole);
        const expected = naiveMask(view, key);
        unmask(view, key);
        expect(view).toEqual(expected);
        unmask(view, key);
        // Round trip, and not one byte outside the view touched.
        expect(whole).toEqual(original);
      }
    }
  });

  it('matches the byte loop and round-trips for 16 B to 1 MiB at every alignment', () => {
    const key = randomBytes(4);
    for (let length = 16; length <= 1024 * 1024; length *= 4) {
      for (const extra of [0, 1, 3]) {
        for (let align = 0; align < 4; align++) {
          const { whole, view } = placed(length + extra, align);
          const original = Buffer.from(whole);
          const expected = naiveMask(view, key);
          unmask(view, key);
          expect(view.equals(expected)).toBe(true);
          unmask(view, key);
          expect(whole.equals(original)).toBe(true);
        }
      }
    }
  });

  it('uses the key at keyOffset', () => {
    const keyHolder = Buffer.concat([randomBytes(3), Buffer.from(KEY), randomBytes(5)]);
    for (const length of [5, 31, 32, 100]) {
      for (let align = 0; align < 4; align++) {
        const { view } = placed(length, align);
        const expected = naiveMask(view, KEY);
        unmask(view, keyHolder, 3);
        expect(view).toEqual(expected);
      }
    }
  });
});

describe('maskInto', () => {
  it('matches the byte loop for every pair of src/dst alignments, leaving src untouched', () => {
    const key = randomBytes(4);
    for (const length of [0, 1, 7, 31, 32, 33, 64, 255, 1000, 4099]) {
      for (let srcAlign = 0; srcAlign < 4; srcAlign++) {
        for (let dstAlign = 0; dstAlign < 4; dstAlign++) {
          const { view: src } = placed(length, srcAlign);
          const srcCopy = Buffer.from(src);
          const dst = Buffer.alloc(length + 16, 0xee);
          const dstOffset = 4 + dstAlign;
          maskInto(src, key, 0, dst, dstOffset);
          expect(src).toEqual(srcCopy);
          expect(dst.subarray(dstOffset, dstOffset + length)).toEqual(naiveMask(src, key));
          // Guard bytes on both sides stay as they were.
          expect(dst.subarray(0, dstOffset).every((b) => b === 0xee)).toBe(true);
          expect(dst.subarray(dstOffset + length).every((b) => b === 0xee)).toBe(true);
        }
      }
    }
  });

  it('honours dst.byteOffset when dst is itself a view', () => {
    const key = randomBytes(4);
    const src = randomBytes(200);
    for (let viewAlign = 0; viewAlign < 4; viewAlign++) {
      for (let dstOffset = 0; dstOffset < 4; dstOffset++) {
        const dst = Buffer.alloc(300).subarray(viewAlign + 8);
        maskInto(src, key, 0, dst, dstOffset);
        expect(dst.subarray(dstOffset, dstOffset + 200)).toEqual(naiveMask(src, key));
      }
    }
  });

  it('reads the key at keyOffset, also when the key lives in dst (as frame headers do)', () => {
    for (const length of [10, 64, 1001]) {
      const src = randomBytes(length);
      const frame = Buffer.alloc(14 + length);
      frame.set(KEY, 10);
      maskInto(src, frame, 10, frame, 14);
      expect(frame.subarray(10, 14)).toEqual(Buffer.from(KEY));
      expect(frame.subarray(14)).toEqual(naiveMask(src, KEY));
    }
  });

  it('round-trips with unmask', () => {
    const key = randomBytes(4);
    const src = randomBytes(5000);
    const dst = Buffer.alloc(5003);
    maskInto(src, key, 0, dst, 3);
    const back = dst.subarray(3);
    unmask(back, key);
    expect(back).toEqual(src);
  });
});

describe('MaskKeySource', () => {
  it('writes 4 bytes at the offset and nothing else', () => {
    const source = new MaskKeySource();
    const target = Buffer.alloc(12, 0xaa);
    source.writeKey(target, 5);
    expect(target.subarray(0, 5).every((b) => b === 0xaa)).toBe(true);
    expect(target.subarray(9).every((b) => b === 0xaa)).toBe(true);
  });

  it('hands out keys that differ', () => {
    const source = new MaskKeySource();
    const seen = new Set<number>();
    const key = Buffer.alloc(4);
    for (let i = 0; i < 10_000; i++) {
      source.writeKey(key, 0);
      seen.add(key.readUInt32BE(0));
    }
    // 10,000 random 32-bit keys collide with probability ~1%; allow a couple.
    expect(seen.size).toBeGreaterThanOrEqual(9_998);
  });

  it('refills its pool when it runs out instead of repeating keys', () => {
    const poolSize = 64;
    const source = new MaskKeySource(poolSize);
    const key = Buffer.alloc(4);
    const keys: string[] = [];
    for (let i = 0; i < (poolSize / 4) * 5 + 3; i++) {
      source.writeKey(key, 0);
      keys.push(key.toString('hex'));
    }
    const blocks = [0, 1, 2, 3].map((b) => keys.slice(b * 16, b * 16 + 16).join(''));
    expect(new Set(blocks).size).toBe(4);
    expect(new Set(keys).size).toBeGreaterThanOrEqual(keys.length - 1);
  });

  it('rounds a pool size that is not a multiple of 4 down so keys never straddle a refill', () => {
    const source = new MaskKeySource(10);
    const key = Buffer.alloc(4);
    const keys = new Set<string>();
    for (let i = 0; i < 50; i++) {
      source.writeKey(key, 0);
      keys.add(key.toString('hex'));
    }
    expect(keys.size).toBeGreaterThanOrEqual(48);
  });
});
