import { isUtf8 } from 'node:buffer';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { Utf8Validator, isValidUtf8 } from '../src/shared/utf8.ts';

/** Feeds `bytes` cut at `cuts`; the verdict is valid only if every write passes and it ends complete. */
function validateInPieces(bytes: Uint8Array, cuts: number[]): boolean {
  const v = new Utf8Validator();
  let start = 0;
  for (const cut of [...cuts, bytes.length]) {
    if (!v.write(bytes.subarray(start, cut))) return false;
    start = cut;
  }
  return v.complete;
}

const sortedCuts = (length: number) =>
  fc.uniqueArray(fc.integer({ min: 0, max: length }), { maxLength: 8 }).map((cuts) => cuts.sort((a, b) => a - b));

/** Byte strings that are mostly UTF-8 with some damage, so both verdicts are well exercised. */
const utf8ish = fc.oneof(
  fc.uint8Array({ maxLength: 200 }),
  fc.string({ unit: 'binary', maxLength: 120 }).map((s) => new Uint8Array(Buffer.from(s))),
  fc
    .tuple(
      fc.string({ unit: 'binary', maxLength: 120 }),
      fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0x80, max: 0xff })), { maxLength: 3 }),
    )
    .map(([s, damage]) => {
      const bytes = new Uint8Array(Buffer.from(s));
      for (const [at, byte] of damage) if (bytes.length > 0) bytes[at % bytes.length] = byte;
      return bytes;
    }),
  // Long runs: the native path, with a character cut open at the end.
  fc
    .tuple(fc.string({ unit: 'binary', minLength: 40, maxLength: 200 }), fc.integer({ min: 0, max: 3 }))
    .map(([s, drop]) => {
      const bytes = Buffer.from(s);
      return new Uint8Array(bytes.subarray(0, Math.max(0, bytes.length - drop)));
    }),
);

describe('Utf8Validator', () => {
  it('agrees with buffer.isUtf8 on random byte strings split at random points', () => {
    fc.assert(
      fc.property(
        utf8ish.chain((bytes) => fc.tuple(fc.constant(bytes), sortedCuts(bytes.length))),
        ([bytes, cuts]) => {
          expect(validateInPieces(bytes, cuts)).toBe(isUtf8(bytes));
          expect(isValidUtf8(bytes)).toBe(isUtf8(bytes));
        },
      ),
      { numRuns: 1500 },
    );
  });

  it('agrees with buffer.isUtf8 when fed one byte at a time', () => {
    fc.assert(
      fc.property(utf8ish, (bytes) => {
        const cuts = Array.from({ length: Math.max(0, bytes.length - 1) }, (_, i) => i + 1);
        expect(validateInPieces(bytes, cuts)).toBe(isUtf8(bytes));
      }),
      { numRuns: 300 },
    );
  });

  // Unicode Table 3-7: every boundary of every well-formed byte sequence range.
  const wellFormed: [string, number[]][] = [
    ['U+0000', [0x00]],
    ['U+007F', [0x7f]],
    ['U+0080', [0xc2, 0x80]],
    ['U+07FF', [0xdf, 0xbf]],
    ['U+0800', [0xe0, 0xa0, 0x80]],
    ['U+0FFF', [0xe0, 0xbf, 0xbf]],
    ['U+1000', [0xe1, 0x80, 0x80]],
    ['U+CFFF', [0xec, 0xbf, 0xbf]],
    ['U+D000', [0xed, 0x80, 0x80]],
    ['U+D7FF', [0xed, 0x9f, 0xbf]],
    ['U+E000', [0xee, 0x80, 0x80]],
    ['U+FFFF', [0xef, 0xbf, 0xbf]],
    ['U+10000', [0xf0, 0x90, 0x80, 0x80]],
    ['U+3FFFF', [0xf0, 0xbf, 0xbf, 0xbf]],
    ['U+40000', [0xf1, 0x80, 0x80, 0x80]],
    ['U+FFFFF', [0xf3, 0xbf, 0xbf, 0xbf]],
    ['U+100000', [0xf4, 0x80, 0x80, 0x80]],
    ['U+10FFFF', [0xf4, 0x8f, 0xbf, 0xbf]],
  ];

  // Each is invalid at its last byte (so fail-fast must already say false there).
  const illFormed: [string, number[]][] = [
    ['lone continuation 80', [0x80]],
    ['lone continuation BF', [0xbf]],
    ['overlong C0', [0xc0]],
    ['overlong C1', [0xc1]],
    ['C2 then ASCII', [0xc2, 0x41]],
    ['C2 then C0', [0xc2, 0xc0]],
    ['overlong E0 80', [0xe0, 0x80]],
    ['overlong E0 9F', [0xe0, 0x9f]],
    ['E1 then 7F', [0xe1, 0x7f]],
    ['E1 then C0', [0xe1, 0xc0]],
    ['surrogate ED A0', [0xed, 0xa0]],
    ['surrogate ED BF', [0xed, 0xbf]],
    ['EE then C0', [0xee, 0xc0]],
    ['EF BF then 7F', [0xef, 0xbf, 0x7f]],
    ['overlong F0 80', [0xf0, 0x80]],
    ['overlong F0 8F', [0xf0, 0x8f]],
    ['F1 then C0', [0xf1, 0xc0]],
    ['F3 BF BF then 41', [0xf3, 0xbf, 0xbf, 0x41]],
    ['above U+10FFFF F4 90', [0xf4, 0x90]],
    ['above U+10FFFF F4 BF', [0xf4, 0xbf]],
    ['F5', [0xf5]],
    ['F7', [0xf7]],
    ['F8', [0xf8]],
    ['FC', [0xfc]],
    ['FE', [0xfe]],
    ['FF', [0xff]],
  ];

  it.each(wellFormed)('accepts %s whole, split at every byte, and inside a long run', (_, bytes) => {
    const buf = Uint8Array.from(bytes);
    expect(validateInPieces(buf, [])).toBe(true);
    for (let cut = 0; cut <= buf.length; cut++) expect(validateInPieces(buf, [cut])).toBe(true);
    expect(validateInPieces(buf, bytes.map((_, i) => i))).toBe(true);
    const long = Buffer.concat([Buffer.alloc(70, 0x61), buf, Buffer.alloc(70, 0x62)]);
    expect(validateInPieces(long, [])).toBe(true);
    // Just before the end of a long write: the character is left open and continued.
    for (let open = 1; open < buf.length; open++) {
      const head = Buffer.concat([Buffer.alloc(80, 0x61), buf.subarray(0, open)]);
      const v = new Utf8Validator();
      expect(v.write(head)).toBe(true);
      expect(v.complete).toBe(false);
      expect(v.write(buf.subarray(open))).toBe(true);
      expect(v.complete).toBe(true);
    }
  });

  it.each(illFormed)('rejects %s at its last byte, with nothing after it', (_, bytes) => {
    const buf = Uint8Array.from(bytes);
    expect(new Utf8Validator().write(buf)).toBe(false);
    // Byte by byte: the prefix is fine, the last byte fails.
    const v = new Utf8Validator();
    for (let i = 0; i < buf.length - 1; i++) expect(v.write(buf.subarray(i, i + 1))).toBe(true);
    expect(v.write(buf.subarray(buf.length - 1))).toBe(false);
    // After a long valid run on the native path, and with valid bytes after it.
    const long = Buffer.concat([Buffer.alloc(100, 0x61), buf]);
    expect(new Utf8Validator().write(long)).toBe(false);
    expect(new Utf8Validator().write(Buffer.concat([long, Buffer.alloc(100, 0x61)]))).toBe(false);
    // In a second write after a long first one.
    const w = new Utf8Validator();
    expect(w.write(Buffer.alloc(100, 0x61))).toBe(true);
    expect(w.write(buf)).toBe(false);
    expect(isValidUtf8(buf)).toBe(false);
  });

  it('rejects the first bytes of a bad sequence without waiting for more (fail-fast)', () => {
    // RFC 6455 §8.1: an invalid fragment must fail before the rest of the message arrives.
    for (const prefix of [[0xe0, 0x80], [0xed, 0xa0], [0xf0, 0x80], [0xf4, 0x90], [0xc0], [0xf5], [0x80]]) {
      const v = new Utf8Validator();
      expect(v.write(Uint8Array.from([0x61, ...prefix]))).toBe(false);
    }
    // A long write whose only bad bytes are a truncated-looking tail.
    expect(new Utf8Validator().write(Buffer.concat([Buffer.alloc(80, 0x61), Buffer.from([0xe0, 0x80])]))).toBe(false);
    expect(new Utf8Validator().write(Buffer.concat([Buffer.alloc(80, 0x61), Buffer.from([0xf4, 0x90])]))).toBe(false);
    expect(new Utf8Validator().write(Buffer.concat([Buffer.alloc(80, 0x61), Buffer.from([0xc1])]))).toBe(false);
    expect(new Utf8Validator().write(Buffer.concat([Buffer.alloc(80, 0x61), Buffer.from([0xf8])]))).toBe(false);
  });

  it('accepts a 4-byte character split across 4 writes, and is incomplete until the last', () => {
    const v = new Utf8Validator();
    const ch = Buffer.from('😀'); // F0 9F 98 80
    expect(ch).toHaveLength(4);
    for (let i = 0; i < 4; i++) {
      expect(v.complete).toBe(i === 0);
      expect(v.write(ch.subarray(i, i + 1))).toBe(true);
    }
    expect(v.complete).toBe(true);
  });

  it('continues a character left open at the end of a long (native-path) write', () => {
    const text = Buffer.from('a'.repeat(70) + 'é€😀' + 'b'.repeat(70) + '😀');
    for (let cut = 60; cut < text.length; cut++) {
      const v = new Utf8Validator();
      expect(v.write(text.subarray(0, cut))).toBe(true);
      expect(v.write(text.subarray(cut))).toBe(true);
      expect(v.complete).toBe(true);
    }
    // A long write that both finishes an open character and leaves another open.
    const v = new Utf8Validator();
    expect(v.write(Buffer.from([0xf0, 0x9f]))).toBe(true);
    expect(v.write(Buffer.concat([Buffer.from([0x98, 0x80]), Buffer.alloc(100, 0x61), Buffer.from([0xe2, 0x82])]))).toBe(true);
    expect(v.complete).toBe(false);
    expect(v.write(Buffer.from([0xac]))).toBe(true);
    expect(v.complete).toBe(true);
  });

  it('rejects an open character that a long write continues wrongly', () => {
    const v = new Utf8Validator();
    expect(v.write(Buffer.from([0xe2, 0x82]))).toBe(true);
    expect(v.write(Buffer.alloc(100, 0x61))).toBe(false);
  });

  it('rejects a long write whose last 3 bytes are stray continuations', () => {
    expect(new Utf8Validator().write(Buffer.concat([Buffer.alloc(80, 0x61), Buffer.from([0x80, 0x80, 0x80])]))).toBe(false);
    expect(new Utf8Validator().write(Buffer.concat([Buffer.alloc(80, 0x61), Buffer.from([0xc2, 0x80, 0x80])]))).toBe(false);
  });

  it('reports an unfinished character as incomplete, and reset() clears it', () => {
    const v = new Utf8Validator();
    expect(v.write(Buffer.from([0xe2, 0x82]))).toBe(true);
    expect(v.complete).toBe(false);
    v.reset();
    expect(v.complete).toBe(true);
    // The next byte is judged as a fresh start: a continuation now is invalid.
    expect(v.write(Buffer.from([0xac]))).toBe(false);
    v.reset();
    expect(v.write(Buffer.from('ok'))).toBe(true);
  });

  it('keeps the narrowed range for the second byte across writes (E0, ED, F0, F4)', () => {
    for (const [lead, bad, good] of [
      [0xe0, 0x9f, 0xa0],
      [0xed, 0xa0, 0x9f],
      [0xf0, 0x8f, 0x90],
      [0xf4, 0x90, 0x8f],
    ] as const) {
      const a = new Utf8Validator();
      expect(a.write(Uint8Array.of(lead))).toBe(true);
      expect(a.write(Uint8Array.of(bad))).toBe(false);
      const b = new Utf8Validator();
      expect(b.write(Uint8Array.of(lead))).toBe(true);
      expect(b.write(Uint8Array.of(good))).toBe(true);
      // The narrowing applies to the second byte only.
      expect(b.write(Uint8Array.of(0x80))).toBe(true);
    }
  });

  it('accepts empty writes in any state', () => {
    const v = new Utf8Validator();
    expect(v.write(new Uint8Array(0))).toBe(true);
    expect(v.write(Buffer.from([0xc3]))).toBe(true);
    expect(v.write(new Uint8Array(0))).toBe(true);
    expect(v.complete).toBe(false);
    expect(v.write(Buffer.from([0xa9]))).toBe(true);
    expect(v.complete).toBe(true);
  });
});
