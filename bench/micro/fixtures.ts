/**
 * Deterministic inputs for the microbenchmarks: the same bytes on every run and for both sides
 * of a row. Frames are built here by hand, not with our encoder, so a bug there cannot make both
 * sides of a parse row agree on a wrong input.
 */
import type { MessageEvents } from '../../src/shared/message-reader.ts';

/** A small xorshift PRNG: reproducible "random" bytes without crypto. */
export function prng(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return x;
  };
}

export function randomBytes(length: number, seed: number): Buffer {
  const next = prng(seed);
  const out = Buffer.allocUnsafe(length);
  for (let i = 0; i < length; i++) out[i] = next() & 0xff;
  return out;
}

/** A buffer at byte offset 0 of its own ArrayBuffer (Buffer.alloc may hand out a pool slice). */
export function alignedCopy(src: Uint8Array): Buffer {
  const out = Buffer.from(new ArrayBuffer(src.length));
  out.set(src);
  return out;
}

/**
 * `count` frames of `payload` each, masked as a client sends them (RFC 6455 §5.3), every frame
 * with its own key, back to back in one buffer.
 */
export function maskedFrames(payload: Uint8Array, count: number, opcode: number, seed = 1): Buffer {
  const len = payload.length;
  const header = (len < 126 ? 2 : len < 0x10000 ? 4 : 10) + 4;
  const out = Buffer.from(new ArrayBuffer((header + len) * count));
  const next = prng(seed);
  let at = 0;
  for (let f = 0; f < count; f++) {
    out[at] = 0x80 | opcode;
    if (len < 126) {
      out[at + 1] = 0x80 | len;
    } else if (len < 0x10000) {
      out[at + 1] = 0x80 | 126;
      out.writeUInt16BE(len, at + 2);
    } else {
      out[at + 1] = 0x80 | 127;
      out.writeBigUInt64BE(BigInt(len), at + 2);
    }
    const k = at + header - 4;
    out.writeUInt32BE(next(), k);
    const p = at + header;
    for (let i = 0; i < len; i++) out[p + i] = payload[i]! ^ out[k + (i & 3)]!;
    at = p + len;
  }
  return out;
}

/** Printable ASCII payload, as a chat or JSON message would carry. */
export function asciiText(length: number, seed: number): Buffer {
  const next = prng(seed);
  const out = Buffer.allocUnsafe(length);
  for (let i = 0; i < length; i++) out[i] = 0x20 + (next() % 95);
  return out;
}

const SAMPLES = [
  'The quick brown fox jumps over the lazy dog. ',
  'Съешь же ещё этих мягких французских булок, да выпей чаю. ',
  '我能吞下玻璃而不伤身体。敏捷的棕色狐狸跳过了懒狗。',
  '😀🚀🎉👍🏽🌍 ',
  'Ünïcödé façade — naïve café. ',
  'いろはにほへと ちりぬるを わかよたれそ つねならむ ',
];

/** About `size` bytes (never more) of UTF-8 mixing ASCII, Latin-1, Cyrillic, CJK and emoji. */
export function multilingualText(size: number): Buffer {
  let text = '';
  for (let i = 0; Buffer.byteLength(text) < size; i++) text += SAMPLES[i % SAMPLES.length];
  const bytes = Buffer.from(text);
  // Cut back to a character boundary at or below `size`.
  let end = size;
  while (end > 0 && (bytes[end]! & 0xc0) === 0x80) end--;
  return bytes.subarray(0, end);
}

/** A JSON document of about `size` bytes: an array of records, as an API or game state sends. */
export function jsonDocument(size: number, seed: number): Buffer {
  const next = prng(seed);
  const names = ['alice', 'bob', 'carol', 'dave', 'erin', 'frank', 'grace', 'heidi'];
  const records: unknown[] = [];
  let json = '[]';
  for (let id = 1; json.length < size; id++) {
    records.push({
      id,
      user: names[next() % names.length],
      ts: 1_700_000_000_000 + (next() % 86_400_000),
      x: (next() % 100_000) / 100,
      y: (next() % 100_000) / 100,
      tags: ['alpha', 'beta', 'gamma'].slice(0, 1 + (next() % 3)),
      online: (next() & 1) === 1,
    });
    json = JSON.stringify(records);
  }
  records.pop();
  return Buffer.from(JSON.stringify(records));
}

/** Reader events that hand each message to `keep` and throw on a protocol error (the inputs are valid). */
export function keepMessages<T>(keep: (target: T, data: Buffer) => void): MessageEvents<T> {
  return {
    message: (target, data) => keep(target, data),
    ping() {},
    pong() {},
    close() {},
    error(_, error) {
      throw error;
    },
    readPressure() {},
    caughtUp() {},
  };
}
