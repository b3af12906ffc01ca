/**
 * Payloads for the permessage-deflate cases. Autobahn ships five files (Goethe's Faust as text,
 * a 512×512 bitmap, a PDF, a JSON and an HTML file); we generate data of the same kinds from a
 * seeded PRNG, so every run sends the same bytes. Text kinds are ASCII, so any slice is UTF-8.
 */

export interface CompressionData {
  readonly name: string;
  readonly description: string;
  /** Sent as binary (Autobahn sends the text of Faust as binary too). */
  readonly binary: boolean;
  readonly bytes: Buffer;
}

const SIZE = 512 * 1024;

/** xorshift32: small, deterministic, good enough to pick words and noise. */
function prng(seed: number): () => number {
  let s = seed >>> 0 || 1;
  return () => {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    return s / 0x100000000;
  };
}

function fill(make: (out: string[], next: () => number) => void, seed: number): Buffer {
  const next = prng(seed);
  const out: string[] = [];
  let length = 0;
  while (length < SIZE) {
    const before = out.length;
    make(out, next);
    for (let i = before; i < out.length; i++) length += Buffer.byteLength(out[i]!);
  }
  return Buffer.from(out.join('')).subarray(0, SIZE);
}

const GERMAN = (
  'Habe nun ach Philosophie Juristerei und Medizin und leider auch Theologie durchaus studiert mit heißem Bemühn ' +
  'da steh ich nun ich armer Tor und bin so klug als wie zuvor heiße Magister heiße Doktor gar und ziehe schon an die zehen Jahr ' +
  'herauf herab und quer und krumm meine Schüler an der Nase herum und sehe dass wir nichts wissen können das will mir schier das Herz verbrennen'
).split(' ');

function germanText(): Buffer {
  return fill((out, next) => {
    const words = 6 + Math.floor(next() * 10);
    const line: string[] = [];
    for (let i = 0; i < words; i++) line.push(GERMAN[Math.floor(next() * GERMAN.length)]!);
    out.push(`${line.join(' ')}${next() < 0.3 ? '!' : ','}\r\n`);
  }, 0x6f617573);
}

/** A 512×512 8-bit grayscale BMP: smooth gradients plus a little noise, as a photo compresses. */
function bitmap(): Buffer {
  const next = prng(0x1e4a);
  const width = 512;
  const headerSize = 14 + 40 + 256 * 4;
  const out = Buffer.alloc(Math.max(SIZE, headerSize + width * width));
  out.write('BM', 0, 'latin1');
  out.writeUInt32LE(headerSize + width * width, 2);
  out.writeUInt32LE(headerSize, 10);
  out.writeUInt32LE(40, 14);
  out.writeInt32LE(width, 18);
  out.writeInt32LE(width, 22);
  out.writeUInt16LE(1, 26);
  out.writeUInt16LE(8, 28);
  for (let i = 0; i < 256; i++) out.writeUInt32LE(i * 0x010101, 54 + i * 4);
  for (let y = 0; y < width; y++) {
    for (let x = 0; x < width; x++) {
      const base = 128 + 60 * Math.sin(x / 40) * Math.cos(y / 55) + 40 * Math.sin((x + y) / 90);
      out[headerSize + y * width + x] = Math.max(0, Math.min(255, Math.round(base + (next() - 0.5) * 12)));
    }
  }
  return out.subarray(0, SIZE);
}

/** PDF-like: ASCII object syntax around streams of incompressible bytes. */
function pdfLike(): Buffer {
  const next = prng(0x9df);
  const parts: Buffer[] = [Buffer.from('%PDF-1.4\n%\xe2\xe3\xcf\xd3\n', 'latin1')];
  let length = parts[0]!.length;
  for (let obj = 1; length < SIZE; obj++) {
    const streamLength = 200 + Math.floor(next() * 3000);
    const stream = Buffer.allocUnsafe(streamLength);
    for (let i = 0; i < streamLength; i++) stream[i] = Math.floor(next() * 256);
    const head = Buffer.from(`${obj} 0 obj\n<< /Length ${streamLength} /Filter /FlateDecode >>\nstream\n`);
    const tail = Buffer.from(`\nendstream\nendobj\n${obj + 1000} 0 obj\n<< /Type /Page /Parent 2 0 R /Resources << /Font << /F1 ${obj} 0 R >> >> >>\nendobj\n`);
    parts.push(head, stream, tail);
    length += head.length + streamLength + tail.length;
  }
  return Buffer.concat(parts).subarray(0, SIZE);
}

function json(): Buffer {
  return fill((out, next) => {
    const id = Math.floor(next() * 1e6);
    out.push(
      JSON.stringify({
        id,
        name: `user-${id.toString(36)}`,
        email: `user${id}@example.org`,
        active: next() < 0.5,
        score: Math.round(next() * 10000) / 100,
        tags: ['alpha', 'beta', 'gamma', 'delta'].filter(() => next() < 0.5),
        address: { street: `${Math.floor(next() * 200)} Main Street`, city: ['Berlin', 'Paris', 'Oslo', 'Lima'][Math.floor(next() * 4)] },
      }) + ',\n',
    );
  }, 0x15011);
}

function html(): Buffer {
  return fill((out, next) => {
    const n = Math.floor(next() * 1000);
    out.push(
      `<div class="item item-${n % 7}" id="item-${n}">\n  <h2><a href="/articles/${n}">Article ${n}</a></h2>\n` +
        `  <p class="summary">Lorem ipsum dolor sit amet, consectetur adipiscing elit ${n}. Sed do eiusmod tempor.</p>\n` +
        `  <ul>${'<li>entry</li>'.repeat(1 + (n % 4))}</ul>\n</div>\n`,
    );
  }, 0x47f1);
}

let cache: readonly CompressionData[] | null = null;

/** The five kinds, in Autobahn's 12.1–12.5 order. */
export function compressionData(): readonly CompressionData[] {
  cache ??= [
    { name: 'faust', description: 'German verse text (as binary)', binary: true, bytes: germanText() },
    { name: 'bitmap', description: '512×512 grayscale bitmap', binary: true, bytes: bitmap() },
    { name: 'pdf', description: 'PDF-like: markup around incompressible streams', binary: true, bytes: pdfLike() },
    { name: 'json', description: 'JSON records (text)', binary: false, bytes: json() },
    { name: 'html', description: 'HTML markup (text)', binary: false, bytes: html() },
  ];
  return cache;
}

/** `count` consecutive slices of `length` bytes, wrapping around the data (Autobahn's rolling pointer). */
export function* slices(data: Buffer, length: number, count: number, start = 0): Generator<Buffer> {
  let at = start % data.length;
  for (let i = 0; i < count; i++) {
    const end = at + length;
    yield end <= data.length ? data.subarray(at, end) : Buffer.concat([data.subarray(at), data.subarray(0, end - data.length)]);
    at = end % data.length;
  }
}
