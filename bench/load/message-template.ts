/**
 * MessageTemplate: the bytes every generated message is made of, and the check every received
 * message must pass. A message is the template with fixed-width hex fields stamped in: a
 * sequence number (8 digits), the send time in monotonic microseconds (12 digits) and a 16-bit
 * check of both (4 digits), so a corrupted digit is caught even where the receiver cannot know
 * the send time (a broadcast). Hex keeps text and JSON valid UTF-8; fixed positions make
 * stamping and checking a few byte writes and three memcmp calls, whatever the size.
 *
 *   text, binary: "SSSSSSSS TTTTTTTTTTTTCCCC " + filler
 *   json:         {"s":"SSSSSSSS","t":"TTTTTTTTTTTTCCCC","d":"<filler>"}
 *
 * The filler is words for text and JSON (about 2.5:1 at zlib level 1, like chat or API payloads) and
 * seeded pseudo-random bytes for binary (incompressible). Both are the same in every thread.
 */

export type MessageKind = 'text' | 'binary' | 'json';

/** What check() found; anything but Ok is an error, never a data point. */
export const Verdict = {
  Ok: 0,
  WrongType: 1,
  WrongLength: 2,
  BadSequence: 3,
  BadTimestamp: 4,
  WrongContent: 5,
} as const;
export type Verdict = (typeof Verdict)[keyof typeof Verdict];

export const VERDICT_TEXT: Readonly<Record<Verdict, string>> = {
  0: 'ok',
  1: 'wrong message type (text/binary)',
  2: 'wrong length',
  3: 'sequence field is not hex',
  4: 'timestamp field is not hex or fails its check digits',
  5: 'content differs from what was sent',
};

const SEQ_DIGITS = 8;
const TIME_DIGITS = 12;
const CHECK_DIGITS = 4;

/** A 16-bit mix of the sequence number and the time, written after the time. */
function checkOf(seq: number, micros: number): number {
  const low = micros % 0x1000000;
  const high = Math.floor(micros / 0x1000000);
  let h = Math.imul(seq ^ 0x5bd1e995, 0x9e3779b1) ^ Math.imul(low, 0x85ebca6b) ^ Math.imul(high, 0xc2b2ae35);
  h ^= h >>> 16;
  h = Math.imul(h, 0x7feb352d);
  h ^= h >>> 15;
  return h & 0xffff;
}
const HEX = Buffer.from('0123456789abcdef', 'latin1');
const HEX_VALUE = new Int8Array(256).fill(-1);
for (let i = 0; i < 16; i++) HEX_VALUE[HEX[i]!] = i;

const WORDS = (
  'the a of and to in is you that it he was for on are as with his they at be this have from or one had by word but not what ' +
  'all were we when your can said there use an each which she do how their if will up other about out many then them these so ' +
  'some her would make like him into time has look two more write go see number no way could people my than first water been ' +
  'call who oil its now find long down day did get come made may part user message room status online offline typing'
).split(' ');

function fillWords(target: Buffer, start: number, end: number): void {
  let seed = 0x2545f491;
  let at = start;
  while (at < end) {
    seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
    const word = WORDS[(seed >>> 8) % WORDS.length]!;
    for (let i = 0; i < word.length && at < end; i++) target[at++] = word.charCodeAt(i);
    if (at < end) target[at++] = 0x20;
  }
}

function fillRandom(target: Buffer, start: number, end: number): void {
  let x = 0x9e3779b9;
  for (let at = start; at < end; at++) {
    // xorshift32: seeded, so every thread builds the same bytes.
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    target[at] = x & 0xff;
  }
}

export class MessageTemplate {
  readonly kind: MessageKind;
  readonly size: number;
  readonly binary: boolean;
  readonly bytes: Buffer;
  readonly seqOffset: number;
  readonly timeOffset: number;
  /** Fields of the last message check() accepted. */
  seq = 0;
  micros = 0;

  static minimumSize(kind: MessageKind): number {
    return kind === 'json' ? 46 : 26;
  }

  constructor(kind: MessageKind, size: number) {
    const min = MessageTemplate.minimumSize(kind);
    if (!Number.isInteger(size) || size < min) throw new RangeError(`--size must be at least ${min} bytes for ${kind} messages`);
    this.kind = kind;
    this.size = size;
    this.binary = kind === 'binary';
    const bytes = Buffer.alloc(size);
    if (kind === 'json') {
      const head = '{"s":"00000000","t":"0000000000000000","d":"';
      bytes.write(head, 0, 'latin1');
      fillWords(bytes, head.length, size - 2);
      bytes.write('"}', size - 2, 'latin1');
      this.seqOffset = 6;
      this.timeOffset = 21;
    } else {
      bytes.write('00000000 0000000000000000 ', 0, 'latin1');
      if (kind === 'text') fillWords(bytes, 26, size);
      else fillRandom(bytes, 26, size);
      this.seqOffset = 0;
      this.timeOffset = 9;
    }
    this.bytes = bytes;
  }

  /** A private copy to stamp messages into. */
  scratch(): Buffer {
    return Buffer.from(this.bytes);
  }

  /** The byte ranges stamp() writes, [start, end) pairs, for patching prepared frames. */
  get fields(): readonly (readonly [number, number])[] {
    return [
      [this.seqOffset, this.seqOffset + SEQ_DIGITS],
      [this.timeOffset, this.timeOffset + TIME_DIGITS + CHECK_DIGITS],
    ];
  }

  /** Writes seq (32-bit) and micros (48-bit) into a copy of the template. */
  stamp(target: Buffer, seq: number, micros: number): void {
    let s = seq >>> 0;
    for (let i = this.seqOffset + SEQ_DIGITS - 1; i >= this.seqOffset; i--) {
      target[i] = HEX[s & 15]!;
      s >>>= 4;
    }
    // 48 bits as two 24-bit halves: integer shifts, no floating-point division per digit.
    const time = Math.floor(micros);
    let low = time % 0x1000000;
    let high = (time - low) / 0x1000000;
    const end = this.timeOffset + TIME_DIGITS;
    for (let i = end - 1; i >= end - 6; i--) {
      target[i] = HEX[low & 15]!;
      low >>>= 4;
    }
    for (let i = end - 7; i >= this.timeOffset; i--) {
      target[i] = HEX[high & 15]!;
      high >>>= 4;
    }
    let c = checkOf(seq >>> 0, time);
    for (let i = end + CHECK_DIGITS - 1; i >= end; i--) {
      target[i] = HEX[c & 15]!;
      c >>>= 4;
    }
  }

  /**
   * Whether data[start, end) equals the template's bytes there. Short runs compare in a loop:
   * a native Buffer.compare call costs more than comparing a few dozen bytes (it was a fifth of
   * the generator's time on 64-byte echoes).
   */
  #same(data: Buffer, start: number, end: number): boolean {
    if (end - start > 128) return data.compare(this.bytes, start, end, start, end) === 0;
    const bytes = this.bytes;
    for (let i = start; i < end; i++) if (data[i] !== bytes[i]) return false;
    return true;
  }

  /** Checks a received message against the template; on Ok, `seq` and `micros` hold its fields. */
  check(data: Buffer, isBinary: boolean): Verdict {
    if (isBinary !== this.binary) return Verdict.WrongType;
    if (data.length !== this.size) return Verdict.WrongLength;
    let seq = 0;
    for (let i = this.seqOffset, end = i + SEQ_DIGITS; i < end; i++) {
      const v = HEX_VALUE[data[i]!]!;
      if (v < 0) return Verdict.BadSequence;
      seq = seq * 16 + v;
    }
    let micros = 0;
    for (let i = this.timeOffset, end = i + TIME_DIGITS; i < end; i++) {
      const v = HEX_VALUE[data[i]!]!;
      if (v < 0) return Verdict.BadTimestamp;
      micros = micros * 16 + v;
    }
    let check = 0;
    for (let i = this.timeOffset + TIME_DIGITS, end = i + CHECK_DIGITS; i < end; i++) {
      const v = HEX_VALUE[data[i]!]!;
      if (v < 0) return Verdict.BadTimestamp;
      check = check * 16 + v;
    }
    if (check !== checkOf(seq, micros)) return Verdict.BadTimestamp;
    const seqEnd = this.seqOffset + SEQ_DIGITS;
    const timeEnd = this.timeOffset + TIME_DIGITS + CHECK_DIGITS;
    if (!this.#same(data, 0, this.seqOffset) || !this.#same(data, seqEnd, this.timeOffset) || !this.#same(data, timeEnd, this.size)) {
      return Verdict.WrongContent;
    }
    this.seq = seq;
    this.micros = micros;
    return Verdict.Ok;
  }
}
