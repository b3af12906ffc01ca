/**
 * Fuzzes a live shardws server for a given time. Many connections at once send random bytes,
 * valid frames with flipped bits, random RSV bits, opcodes and lengths, split at random points,
 * compressed frames when deflate was negotiated, and upgrade requests with random extension
 * offers or mutated headers. The server runs in a process of its own (the demo app's /echo).
 * Reports connections, frames sent, the close codes the server answered with, crashes (worker
 * restarts), hangs (a probe client that must keep echoing within a deadline) and the server's
 * memory (RSS start/end/max).
 *
 *   npm run fuzz -- --seconds 120 [--workers 2] [--deflate[=dedicated]] [--connections 24] [--seed 1]
 *
 * Exits with 1 when a worker crashed, the probe missed its deadline, a connection never ended or
 * the server sent a malformed frame.
 */
import { connect } from 'node:net';
import type { Socket } from 'node:net';
import { parseArgs } from 'node:util';
import { constants, deflateRawSync } from 'node:zlib';
import { startProbe } from './lib/probe.ts';
import { ServerProcess } from './lib/server-process.ts';
import type { ServerSample } from './lib/server-process.ts';
import { numberOption } from './lib/options.ts';

const USAGE = 'usage: npm run fuzz -- [--seconds 60] [--workers 2] [--deflate[=shared|dedicated]] [--connections 24] [--seed N] [--max-payload 65536] [--probe-deadline 2000]';

function options(): { seconds: number; workers: number; deflate: 'shared' | 'dedicated' | null; connections: number; seed: number; maxPayload: number; probeDeadline: number } {
  // `--deflate` alone means shared mode.
  const argv = process.argv.slice(2).map((arg) => (arg === '--deflate' ? '--deflate=shared' : arg));
  const { values } = parseArgs({
    args: argv,
    options: {
      seconds: { type: 'string', default: '60' },
      workers: { type: 'string', default: '2' },
      deflate: { type: 'string' },
      connections: { type: 'string', default: '24' },
      seed: { type: 'string', default: String(Date.now() % 1_000_000) },
      'max-payload': { type: 'string', default: String(64 * 1024) },
      'probe-deadline': { type: 'string', default: '2000' },
      help: { type: 'boolean', default: false },
    },
  });
  if (values.help) {
    console.log(USAGE);
    process.exit(0);
  }
  const number = (name: string, text: string, min: number): number => numberOption('fuzz', USAGE, name, text, min);
  if (values.deflate !== undefined && values.deflate !== 'shared' && values.deflate !== 'dedicated') {
    console.error(`fuzz: --deflate must be shared or dedicated, got ${values.deflate}\n${USAGE}`);
    process.exit(2);
  }
  return {
    seconds: number('seconds', values.seconds, 1),
    workers: number('workers', values.workers, 1),
    deflate: (values.deflate as 'shared' | 'dedicated' | undefined) ?? null,
    connections: number('connections', values.connections, 1),
    seed: number('seed', values.seed, 0),
    maxPayload: number('max-payload', values['max-payload'], 1),
    probeDeadline: number('probe-deadline', values['probe-deadline'], 100),
  };
}

// ---- randomness -------------------------------------------------------------------------

/** xorshift32: fast, seeded, reproducible structure (payload bytes come from a seeded pool). */
class Random {
  #state: number;
  constructor(seed: number) {
    this.#state = seed >>> 0 || 0x9e3779b9;
  }
  next(): number {
    let x = this.#state;
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return (this.#state = x >>> 0);
  }
  below(n: number): number {
    return this.next() % n;
  }
  chance(p: number): boolean {
    return this.next() / 0x100000000 < p;
  }
  pick<T>(items: readonly T[]): T {
    return items[this.below(items.length)]!;
  }
}

const POOL_SIZE = 1 << 20;
let bytePool = Buffer.alloc(0);
let asciiPool = Buffer.alloc(0);

function fillPools(random: Random): void {
  bytePool = Buffer.allocUnsafe(POOL_SIZE);
  for (let i = 0; i < POOL_SIZE; i += 4) bytePool.writeUInt32LE(random.next(), i);
  asciiPool = Buffer.from(bytePool.map((b) => 0x20 + (b % 0x5f)));
}

/** `n` pseudo-random bytes (a view into the pool: copy before changing). */
function randomBytes(random: Random, n: number): Buffer {
  const start = random.below(POOL_SIZE - n);
  return bytePool.subarray(start, start + n);
}

/** A payload size: mostly small, sometimes near the header boundaries and the limit. */
function payloadSize(random: Random, maxPayload: number): number {
  const roll = random.below(100);
  if (roll < 70) return random.below(126);
  if (roll < 90) return 126 + random.below(2048);
  if (roll < 97) return random.pick([65_535, 65_536, 65_537, 16_384]);
  return Math.min(POOL_SIZE - 1, maxPayload + random.below(3) - 1);
}

const MULTIBYTE = Buffer.from('héllo wörld ✓ 𝄞 ');

// ---- frames -----------------------------------------------------------------------------

/** A masked client frame (RFC 6455 §5.2); `declared` overrides the length field, `rsv` the RSV bits. */
function frame(random: Random, opcode: number, payload: Buffer, fin = true, rsv = 0, declared = payload.length): Buffer {
  const headerSize = declared < 126 ? 2 : declared < 65536 ? 4 : 10;
  const out = Buffer.allocUnsafe(headerSize + 4 + payload.length);
  out[0] = (fin ? 0x80 : 0) | (rsv << 4) | opcode;
  if (declared < 126) out[1] = 0x80 | declared;
  else if (declared < 65536) {
    out[1] = 0x80 | 126;
    out.writeUInt16BE(declared, 2);
  } else {
    out[1] = 0x80 | 127;
    out.writeBigUInt64BE(BigInt(declared), 2);
  }
  const key = random.next();
  out.writeUInt32BE(key, headerSize);
  const k = [key >>> 24, (key >>> 16) & 0xff, (key >>> 8) & 0xff, key & 0xff];
  const at = headerSize + 4;
  for (let i = 0; i < payload.length; i++) out[at + i] = payload[i]! ^ k[i & 3]!;
  return out;
}

interface Stream {
  readonly deflate: boolean;
  readonly maxPayload: number;
  /** Chance that a frame is mutated. */
  readonly mutation: number;
}

/** Deflated payloads made once (compressing per frame would make the fuzzer the bottleneck). */
const compressedCache: Buffer[] = [];

function compressedPayload(random: Random): Buffer {
  if (compressedCache.length < 64 || random.chance(0.01)) {
    const plain = random.chance(0.5) ? asciiPool.subarray(0, random.below(20_000)) : randomBytes(random, random.below(4096));
    compressedCache.push(deflateRawSync(plain, { finishFlush: constants.Z_SYNC_FLUSH }).subarray(0, -4));
    if (compressedCache.length > 256) compressedCache.shift();
    return compressedCache.at(-1)!;
  }
  return random.pick(compressedCache);
}

/** One valid message or control frame (a fragmented message is several frames). */
function validFrames(random: Random, stream: Stream): Buffer[] {
  const roll = random.below(100);
  if (roll < 30) {
    const size = payloadSize(random, stream.maxPayload);
    const start = random.below(POOL_SIZE - size);
    const text = random.chance(0.2) ? MULTIBYTE : asciiPool.subarray(start, start + size);
    return [frame(random, 0x1, text)];
  }
  if (roll < 55) return [frame(random, 0x2, randomBytes(random, payloadSize(random, stream.maxPayload)))];
  if (roll < 70 && stream.deflate) return [frame(random, random.chance(0.5) ? 0x1 : 0x2, compressedPayload(random), true, 0x4)];
  if (roll < 80) {
    // A fragmented message, sometimes with a ping between its fragments (§5.4).
    const parts = 2 + random.below(5);
    const out: Buffer[] = [];
    for (let i = 0; i < parts; i++) {
      out.push(frame(random, i === 0 ? 0x2 : 0x0, randomBytes(random, random.below(200)), i === parts - 1));
      if (random.chance(0.2)) out.push(frame(random, 0x9, randomBytes(random, random.below(126))));
    }
    return out;
  }
  if (roll < 90) return [frame(random, 0x9, randomBytes(random, random.below(126)))];
  return [frame(random, 0xa, randomBytes(random, random.below(126)))];
}

/** A valid frame broken one way: bit flips, RSV bits, opcode, declared length, truncation, garbage. */
function mutate(random: Random, bytes: Buffer): Buffer {
  const out = Buffer.from(bytes);
  switch (random.below(6)) {
    case 0: {
      const flips = 1 + random.below(4);
      for (let i = 0; i < flips; i++) {
        const bit = random.below(Math.min(out.length, 64) * 8);
        out[bit >> 3] = out[bit >> 3]! ^ (1 << (bit & 7));
      }
      return out;
    }
    case 1:
      out[0] = (out[0]! & 0x8f) | (random.below(8) << 4);
      return out;
    case 2:
      out[0] = (out[0]! & 0xf0) | random.below(16);
      return out;
    case 3: {
      // A declared length that disagrees with the payload (or is absurd): a new length field
      // in front of the frame's mask key and payload.
      const length7 = out[1]! & 0x7f;
      const rest = out.subarray(length7 === 126 ? 4 : length7 === 127 ? 10 : 2);
      const lengths = [0, 125, 126, 127, 65_535, 65_536, 2 ** 31, 2 ** 53 - 1];
      const declared = random.chance(0.5) ? random.pick(lengths) : random.below(1 << 20);
      const head = Buffer.alloc(declared < 126 ? 2 : declared < 65536 ? 4 : 10);
      head[0] = out[0]!;
      if (declared < 126) head[1] = 0x80 | declared;
      else if (declared < 65536) {
        head[1] = 0x80 | 126;
        head.writeUInt16BE(declared, 2);
      } else {
        head[1] = 0x80 | 127;
        head.writeBigUInt64BE(BigInt(declared), 2);
      }
      return Buffer.concat([head, rest]);
    }
    case 4:
      return out.subarray(0, random.below(out.length));
    default:
      return Buffer.concat([out, randomBytes(random, 1 + random.below(64))]);
  }
}

function nextBatch(random: Random, stream: Stream, count: number): Buffer[] {
  const out: Buffer[] = [];
  for (let i = 0; i < count; i++) {
    for (const f of validFrames(random, stream)) out.push(random.chance(stream.mutation) ? mutate(random, f) : f);
  }
  return out;
}

/** Cuts the bytes into 1-8 pieces at random points. */
function split(random: Random, bytes: Buffer): Buffer[] {
  const pieces = 1 + random.below(8);
  if (pieces === 1 || bytes.length < 2) return [bytes];
  const cuts = Array.from({ length: pieces - 1 }, () => 1 + random.below(bytes.length - 1)).sort((a, b) => a - b);
  const out: Buffer[] = [];
  let from = 0;
  for (const cut of cuts) {
    if (cut > from) out.push(bytes.subarray(from, cut));
    from = Math.max(from, cut);
  }
  out.push(bytes.subarray(from));
  return out;
}

// ---- handshakes ---------------------------------------------------------------------------

const OFFER_PARAMS = ['client_max_window_bits', 'server_no_context_takeover', 'client_no_context_takeover', 'server_max_window_bits=10', 'client_max_window_bits=15', 'server_max_window_bits=7', 'client_max_window_bits=16', 'x=1', 'client_max_window_bits="9"', '', ';;'];

function extensionOffer(random: Random): string | null {
  const roll = random.below(10);
  if (roll < 3) return null;
  if (roll < 9) {
    const offers = Array.from({ length: 1 + random.below(3) }, () => {
      const name = random.chance(0.8) ? 'permessage-deflate' : random.pick(['x-webkit-deflate-frame', 'foo', 'permessage-deflate ']);
      const params = Array.from({ length: random.below(4) }, () => random.pick(OFFER_PARAMS));
      return [name, ...params].join('; ');
    });
    return offers.join(random.chance(0.9) ? ', ' : ',,');
  }
  return asciiPool.subarray(random.below(1000), random.below(1000) + 1 + random.below(200)).toString('latin1');
}

function upgradeRequest(random: Random, offer: string | null): string {
  const key = randomBytes(random, 16).toString('base64');
  const headers = ['Host: 127.0.0.1', 'Upgrade: websocket', 'Connection: Upgrade', `Sec-WebSocket-Key: ${key}`, 'Sec-WebSocket-Version: 13'];
  if (offer !== null) headers.push(`Sec-WebSocket-Extensions: ${offer}`);
  return `GET /echo HTTP/1.1\r\n${headers.join('\r\n')}\r\n\r\n`;
}

/** A request broken one way: bit flips, a header dropped or doubled, a wrong version or method. */
function mutateRequest(random: Random, request: string): string {
  const lines = request.slice(0, -4).split('\r\n');
  switch (random.below(5)) {
    case 0: {
      const bytes = Buffer.from(request, 'latin1');
      for (let i = 0; i < 1 + random.below(3); i++) {
        const bit = random.below(bytes.length * 8);
        bytes[bit >> 3] = bytes[bit >> 3]! ^ (1 << (bit & 7));
      }
      return bytes.toString('latin1');
    }
    case 1:
      lines.splice(1 + random.below(lines.length - 1), 1);
      break;
    case 2:
      lines.push(lines[1 + random.below(lines.length - 1)]!);
      break;
    case 3:
      lines[lines.length - 1] = `Sec-WebSocket-Version: ${random.pick(['8', '14', '', '13, 8', 'abc'])}`;
      break;
    default:
      lines[0] = `${random.pick(['POST', 'PUT', 'GET', 'HEAD'])} ${random.pick(['/echo', '/', '*', '/x'.repeat(500)])} ${random.pick(['HTTP/1.1', 'HTTP/1.0', 'HTTP/2'])}`;
  }
  return `${lines.join('\r\n')}\r\n\r\n`;
}

// ---- what the server sends back ------------------------------------------------------------

const VALID_CLOSE = (code: number): boolean => (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014) || (code >= 3000 && code <= 4999);

/** Reads server frames header by header (payloads are skipped) and checks each one. */
class ServerFrames {
  frames = 0;
  closeCode: number | null = null;
  problem: string | null = null;
  readonly #deflate: boolean;
  #pending = Buffer.alloc(0);
  #skip = 0;

  constructor(deflate: boolean) {
    this.#deflate = deflate;
  }

  push(chunk: Buffer): void {
    if (this.problem !== null) return;
    if (this.#skip > 0) {
      const n = Math.min(this.#skip, chunk.length);
      this.#skip -= n;
      chunk = chunk.subarray(n);
    }
    let bytes = this.#pending.length > 0 ? Buffer.concat([this.#pending, chunk]) : chunk;
    while (bytes.length >= 2 && this.problem === null) {
      if (this.closeCode !== null) {
        this.problem = `${bytes.length} bytes after the close frame`;
        return;
      }
      const b0 = bytes[0]!;
      const b1 = bytes[1]!;
      const opcode = b0 & 0x0f;
      const length7 = b1 & 0x7f;
      const headerSize = length7 === 126 ? 4 : length7 === 127 ? 10 : 2;
      if (bytes.length < headerSize) break;
      const length = length7 === 126 ? bytes.readUInt16BE(2) : length7 === 127 ? Number(bytes.readBigUInt64BE(2)) : length7;
      if ((b1 & 0x80) !== 0) this.problem = 'a masked server frame';
      else if ((b0 & 0x30) !== 0 || ((b0 & 0x40) !== 0 && !(this.#deflate && (opcode === 1 || opcode === 2)))) this.problem = `reserved bits in 0x${b0.toString(16)}`;
      else if (![0, 1, 2, 8, 9, 10].includes(opcode)) this.problem = `opcode ${opcode}`;
      else if (opcode >= 8 && length > 125) this.problem = `a control frame of ${length} bytes`;
      if (this.problem !== null) return;
      if (opcode === 0x8) {
        if (bytes.length < headerSize + length) break;
        const payload = bytes.subarray(headerSize, headerSize + length);
        this.closeCode = length === 0 ? 1005 : length === 1 ? -1 : payload.readUInt16BE(0);
        if (length === 1 || (length >= 2 && !VALID_CLOSE(this.closeCode))) this.problem = `close code ${this.closeCode}`;
      }
      this.frames++;
      if (bytes.length >= headerSize + length) {
        bytes = bytes.subarray(headerSize + length);
      } else {
        this.#skip = headerSize + length - bytes.length;
        bytes = Buffer.alloc(0);
      }
    }
    this.#pending = Buffer.from(bytes);
  }
}

// ---- the run ------------------------------------------------------------------------------

interface Totals {
  connections: number;
  upgraded: number;
  refused: Map<number, number>;
  noResponse: number;
  framesSent: number;
  bytesSent: number;
  framesReceived: number;
  closeCodes: Map<string, number>;
  resets: number;
  stuck: number;
  anomalies: string[];
}

const totals: Totals = {
  connections: 0,
  upgraded: 0,
  refused: new Map(),
  noResponse: 0,
  framesSent: 0,
  bytesSent: 0,
  framesReceived: 0,
  closeCodes: new Map(),
  resets: 0,
  stuck: 0,
  anomalies: [],
};

const bump = <K>(map: Map<K, number>, key: K): void => {
  map.set(key, (map.get(key) ?? 0) + 1);
};

const tick = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

function closedWithin(socket: Socket, closed: () => boolean, ms: number): Promise<boolean> {
  if (closed()) return Promise.resolve(true);
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(false), ms);
    socket.once('close', () => {
      clearTimeout(timer);
      resolve(true);
    });
  });
}

async function fuzzConnection(random: Random, port: number, maxPayload: number, deadline: number): Promise<void> {
  totals.connections++;
  const socket = connect({ port, host: '127.0.0.1' });
  socket.setNoDelay(true);
  let head: Buffer | null = Buffer.alloc(0);
  let reader: ServerFrames | null = null;
  let closed = false;
  socket.on('error', () => {});
  socket.on('close', () => (closed = true));
  socket.on('data', (chunk: Buffer) => {
    if (reader !== null) reader.push(chunk);
    else head = Buffer.concat([head!, chunk]);
  });
  if (!(await new Promise<boolean>((resolve) => {
    socket.once('connect', () => resolve(true));
    socket.once('close', () => resolve(false));
  }))) {
    totals.noResponse++;
    return;
  }

  const style = random.below(100);
  const offer = extensionOffer(random);
  const request = style < 8 ? mutateRequest(random, upgradeRequest(random, offer)) : upgradeRequest(random, offer);
  for (const piece of split(random, Buffer.from(request, 'latin1'))) socket.write(piece);
  const answered = Date.now() + 5000;
  while (!head.includes('\r\n\r\n') && !closed && Date.now() < answered) await new Promise((resolve) => setTimeout(resolve, 1));
  const end = head.indexOf('\r\n\r\n');
  if (end < 0) {
    if (!closed) totals.noResponse++;
    socket.destroy();
    return;
  }
  const headText = head.subarray(0, end).toString('latin1');
  const status = Number(headText.split(' ')[1]);
  if (status !== 101) {
    bump(totals.refused, status);
    socket.end();
    if (!(await closedWithin(socket, () => closed, 10_000))) totals.stuck++;
    socket.destroy();
    return;
  }
  totals.upgraded++;
  const deflate = /\r\nsec-websocket-extensions: *permessage-deflate/i.test(headText);
  reader = new ServerFrames(deflate);
  const rest = head.subarray(end + 4);
  head = null;
  if (rest.length > 0) reader.push(rest);

  // The style decides how hostile the stream is.
  const stream: Stream = { deflate, maxPayload, mutation: style < 40 ? 0.002 : style < 75 ? 0.05 : 0.3 };
  const randomOnly = style >= 92;
  const budget = style < 40 ? 200 + random.below(5000) : 1 + random.below(300);
  let sent = 0;
  while (sent < budget && !closed && reader.closeCode === null && Date.now() < deadline) {
    const count = 1 + random.below(32);
    const frames = randomOnly ? [Buffer.from(randomBytes(random, 1 + random.below(512)))] : nextBatch(random, stream, count);
    const bytes = Buffer.concat(frames);
    for (const piece of split(random, bytes)) {
      if (closed) break;
      socket.write(piece);
      if (random.chance(0.1)) await tick();
    }
    sent += frames.length;
    totals.framesSent += frames.length;
    totals.bytesSent += bytes.length;
    if (socket.writableLength > 1 << 20) await new Promise((resolve) => (closed ? resolve(null) : socket.once('drain', resolve).once('close', resolve)));
    await tick();
  }

  if (!closed) {
    const ending = random.below(100);
    if (ending < 10) {
      socket.resetAndDestroy();
      totals.resets++;
      totals.framesReceived += reader.frames;
      return;
    }
    if (ending < 60) socket.write(frame(random, 0x8, Buffer.from([0x03, 0xe8, ...Buffer.from('bye')])));
    socket.end();
  }
  if (!(await closedWithin(socket, () => closed, 10_000))) {
    totals.stuck++;
    totals.anomalies.push(`a connection did not end within 10 s after our FIN (style ${style})`);
  }
  socket.destroy();
  totals.framesReceived += reader.frames;
  bump(totals.closeCodes, reader.closeCode === null ? 'TCP close, no close frame' : String(reader.closeCode));
  if (reader.problem !== null) totals.anomalies.push(`server sent ${reader.problem}`);
}

const mib = (bytes: number): string => `${(bytes / (1 << 20)).toFixed(1)} MiB`;
const thousands = (n: number): string => n.toLocaleString('en-US');

async function main(): Promise<void> {
  const opts = options();
  const random = new Random(opts.seed);
  fillPools(random);
  const server = await ServerProcess.start({
    workers: opts.workers,
    deflate: opts.deflate ?? false,
    maxPayloadLength: opts.maxPayload,
    sampleMs: 1000,
  });
  const first = await server.nextSample();
  console.log(
    `fuzz: ${opts.seconds} s against a live server (${opts.workers} workers, deflate ${opts.deflate ?? 'off'}, maxPayloadLength ${opts.maxPayload}), ` +
      `${opts.connections} connections at a time, seed ${opts.seed}`,
  );
  const probe = startProbe(`ws://127.0.0.1:${server.port}/echo`, opts.probeDeadline);
  const started = Date.now();
  const deadline = started + opts.seconds * 1000;
  let maxRss = first.rss;
  const report = setInterval(() => {
    const s = server.latest!;
    maxRss = Math.max(maxRss, s.rss);
    const elapsed = (Date.now() - started) / 1000;
    console.log(
      `t=${elapsed.toFixed(0).padStart(4)}s  connections ${thousands(totals.connections)}  frames sent ${thousands(totals.framesSent)} ` +
        `(${thousands(Math.round(totals.framesSent / elapsed))}/s)  restarts ${s.restarts}  hangs ${probe.latest().hangs}  rss ${mib(s.rss)}  fds ${s.fds ?? '-'}`,
    );
  }, 10_000);
  const sampleWatch = setInterval(() => (maxRss = Math.max(maxRss, server.latest?.rss ?? 0)), 1000);

  const lanes = Array.from({ length: opts.connections }, (_, lane) => {
    const laneRandom = new Random(opts.seed * 7919 + lane + 1);
    return (async () => {
      while (Date.now() < deadline) await fuzzConnection(laneRandom, server.port, opts.maxPayload, deadline);
    })();
  });
  await Promise.all(lanes);
  clearInterval(report);
  const elapsed = (Date.now() - started) / 1000;

  // Every fuzz connection has ended on our side: the server must let go of all of them.
  const probed = await probe.stop();
  const stopped = Date.now();
  let idle: ServerSample = await server.nextSample();
  while (idle.connections + idle.handshakes > 0 && Date.now() - stopped < 30_000) idle = await server.nextSample();
  const drainedIn = Date.now() - stopped;
  const leftOpen = idle.connections + idle.handshakes;
  if (leftOpen > 0) totals.anomalies.push(`${leftOpen} connections still open on the server 30 s after the last fuzz connection ended`);
  idle = await server.nextSample();
  clearInterval(sampleWatch);
  maxRss = Math.max(maxRss, ...server.samples.map((s) => s.rss));
  const final = await server.stop();
  const restarts = final?.restarts ?? idle.restarts;

  const codes = [...totals.closeCodes.entries()].sort((a, b) => b[1] - a[1]).map(([code, n]) => `${code}: ${thousands(n)}`);
  const refused = [...totals.refused.entries()].sort((a, b) => a[0] - b[0]).map(([status, n]) => `${status}: ${thousands(n)}`);
  const lines = [
    `fuzz summary (${elapsed.toFixed(0)} s, seed ${opts.seed}, ${opts.workers} workers, deflate ${opts.deflate ?? 'off'})`,
    `  connections        ${thousands(totals.connections)} (upgraded ${thousands(totals.upgraded)}, refused ${refused.join(', ') || 'none'}, no answer ${totals.noResponse}, reset by us ${thousands(totals.resets)})`,
    `  frames sent        ${thousands(totals.framesSent)} (${thousands(Math.round(totals.framesSent / elapsed))}/s, ${mib(totals.bytesSent)})`,
    `  frames received    ${thousands(totals.framesReceived)} (server: ${thousands(idle.messagesIn)} messages in, ${thousands(idle.messagesOut)} out)`,
    `  close codes seen   ${codes.join(', ')}`,
    `  crashes            ${restarts} worker restart(s)`,
    `  hangs              ${probed.hangs} (probe: ${thousands(probed.echoes)} echoes, slowest ${probed.maxLatency} ms, deadline ${opts.probeDeadline} ms, ${probed.reconnects} reconnects)`,
    `  stuck connections  ${totals.stuck}`,
    `  malformed frames   ${totals.anomalies.filter((a) => a.startsWith('server sent')).length}`,
    `  server RSS         start ${mib(first.rss)}, end ${mib(idle.rss)} (idle, after the run), max ${mib(maxRss)}`,
    `  server fds         start ${first.fds ?? '-'}, end ${idle.fds ?? '-'}; connections left ${leftOpen} (all gone ${(drainedIn / 1000).toFixed(1)} s after the run); pool ${idle.pool.pagesFree}/${idle.pool.pagesTotal} pages free`,
  ];
  console.log(lines.join('\n'));
  for (const anomaly of [...new Set(totals.anomalies)].slice(0, 20)) console.log(`  ! ${anomaly}`);
  for (const line of server.errors.slice(0, 20)) console.log(`  server error log: ${line}`);
  const failed = restarts > 0 || probed.hangs > 0 || totals.stuck > 0 || totals.anomalies.length > 0;
  process.exit(failed ? 1 : 0);
}

await main();
