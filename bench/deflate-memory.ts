/**
 * Memory per connection of each permessage-deflate setting: starts `shardws serve` (one
 * worker, the demo app's /echo) once per setting, opens N connections that each negotiate
 * permessage-deflate and exchange compressed messages both ways (so every zlib context the
 * setting keeps per connection exists), and reports the server's resident memory per
 * connection, and what that is above the same server without deflate.
 *
 *   node bench/deflate-memory.ts [--connections 2000] [--messages 3] [--ladder] [--only shared,dedicated]
 *
 * Linux only (reads /proc). Memory, not speed: a busy machine changes little, but run it alone
 * for figures to publish. MALLOC_ARENA_MAX=1 (docs/operations.md) makes RSS follow frees sooner;
 * set it in the environment to measure with it, it is passed on to the server.
 */
import { spawn } from 'node:child_process';
import { connect } from 'node:net';
import type { Socket } from 'node:net';
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { setTimeout as sleep } from 'node:timers/promises';
import { constants, deflateRawSync } from 'node:zlib';
import { residentKiB } from './load/proc-stats.ts';
import { freePort, stop, waitForPort } from './compare/processes.ts';

const CLI = fileURLToPath(new URL('../src/cli.ts', import.meta.url));

const { values } = parseArgs({
  options: {
    connections: { type: 'string', default: '2000' },
    messages: { type: 'string', default: '3' },
    size: { type: 'string', default: '4096' },
    ladder: { type: 'boolean', default: false },
    only: { type: 'string' },
    help: { type: 'boolean', short: 'h' },
  },
});
if (values.help) {
  console.log('node bench/deflate-memory.ts [--connections N] [--messages N] [--size BYTES] [--ladder] [--only NAME,NAME]');
  process.exit(0);
}
const CONNECTIONS = Number(values.connections);
const MESSAGES = Number(values.messages);
const SIZE = Number(values.size);

/** A setting: its name in the report and its `shardws serve` deflate flags (empty: deflate off). */
interface Setting {
  readonly name: string;
  readonly flags: readonly string[];
}

const PRESETS: readonly Setting[] = [
  { name: 'off', flags: [] },
  ...(['shared', 'dedicated', 'dedicated-compressor', 'dedicated-compressor-small'] as const).map((preset): Setting => ({ name: preset, flags: [`--deflate=${preset}`] })),
];

/**
 * uWebSockets' DEDICATED_COMPRESSOR_xKB (window bits, memLevel) with a shared decompressor, and
 * its DEDICATED_DECOMPRESSOR_xKB windows with a shared compressor.
 */
const LADDER: readonly Setting[] = [
  ...([[3, 9, 1], [4, 9, 2], [8, 10, 3], [16, 11, 4], [32, 12, 5], [64, 13, 6], [128, 14, 7], [256, 15, 8]] as const).map(
    ([kb, bits, mem]): Setting => ({
      name: `compressor ${kb}KB`,
      flags: ['--deflate=dedicated-compressor', `--deflate-server-max-window-bits=${bits}`, `--deflate-mem-level=${mem}`],
    }),
  ),
  ...([[0.5, 9], [1, 10], [2, 11], [4, 12], [8, 13], [16, 14], [32, 15]] as const).map(
    ([kb, bits]): Setting => ({
      name: `decompressor ${kb < 1 ? `${kb * 1024}B` : `${kb}KB`}`,
      flags: ['--deflate=shared', '--deflate-decompressor=dedicated', `--deflate-client-max-window-bits=${bits}`],
    }),
  ),
];

const only = values.only?.split(',');
const settings = [...PRESETS, ...(values.ladder ? LADDER : [])].filter((s) => only === undefined || s.name === 'off' || only.includes(s.name));

/** JSON that compresses about as chat or feed messages do. */
function json(size: number): Buffer {
  const records: string[] = [];
  let length = 2;
  for (let i = 0; length < size; i++) {
    const record = JSON.stringify({ id: i, user: `user-${(i * 7919) % 1000}`, online: i % 3 === 0, score: (i * 31) % 997 });
    records.push(record);
    length += record.length + 1;
  }
  return Buffer.from(`[${records.join(',')}]`).subarray(0, size);
}

const MESSAGE = json(SIZE);
/**
 * The client's message, compressed once without context at a 512-byte window: valid as any
 * message of any negotiated stream (it refers to nothing before it and to no more than any
 * client window allows), so every connection sends the same bytes.
 */
const COMPRESSED = (() => {
  const out = deflateRawSync(MESSAGE, { windowBits: 9, finishFlush: constants.Z_SYNC_FLUSH });
  return out.subarray(0, out.length - 4); // RFC 7692 §7.2.1
})();

function maskedFrame(payload: Buffer, rsv1: boolean): Buffer {
  const head = payload.length < 126 ? Buffer.from([0, 0x80 | payload.length]) : Buffer.from([0, 0x80 | 126, payload.length >> 8, payload.length & 0xff]);
  head[0] = 0x80 | (rsv1 ? 0x40 : 0) | 0x1;
  const key = randomBytes(4);
  const masked = Buffer.from(payload);
  for (let i = 0; i < masked.length; i++) masked[i]! ^= key[i & 3]!;
  return Buffer.concat([head, key, masked]);
}

/** Counts complete frames in what a socket receives (server frames are unmasked). */
class FrameCounter {
  #buffer: Buffer = Buffer.alloc(0);
  frames = 0;
  push(chunk: Buffer): void {
    this.#buffer = this.#buffer.length === 0 ? chunk : Buffer.concat([this.#buffer, chunk]);
    for (;;) {
      const b = this.#buffer;
      if (b.length < 2) return;
      let length = b[1]! & 0x7f;
      let offset = 2;
      if (length === 126) {
        if (b.length < 4) return;
        length = b.readUInt16BE(2);
        offset = 4;
      } else if (length === 127) {
        if (b.length < 10) return;
        length = Number(b.readBigUInt64BE(2));
        offset = 10;
      }
      if (b.length < offset + length) return;
      this.frames++;
      this.#buffer = b.subarray(offset + length);
    }
  }
}

/** One connection: handshake offering permessage-deflate, then MESSAGES compressed round trips. */
async function openConnection(port: number): Promise<{ socket: Socket; deflate: boolean }> {
  const socket = connect(port, '127.0.0.1');
  socket.setNoDelay(true);
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', resolve);
    socket.once('error', reject);
  });
  socket.on('error', () => {});
  socket.write(
    `GET /echo HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
      `Sec-WebSocket-Key: ${randomBytes(16).toString('base64')}\r\nSec-WebSocket-Version: 13\r\n` +
      `Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n\r\n`,
  );
  const counter = new FrameCounter();
  let head: Buffer | null = Buffer.alloc(0);
  let wanted = Infinity;
  let onFrames: (() => void) | null = null;
  const deflate = await new Promise<boolean>((resolve, reject) => {
    socket.on('data', (chunk: Buffer) => {
      if (head !== null) {
        head = Buffer.concat([head, chunk]);
        const end = head.indexOf('\r\n\r\n');
        if (end < 0) return;
        const text = head.subarray(0, end).toString('latin1');
        const rest = head.subarray(end + 4);
        head = null;
        if (!text.startsWith('HTTP/1.1 101')) return reject(new Error(text.split('\r\n')[0]));
        counter.push(rest);
        resolve(/sec-websocket-extensions: permessage-deflate/i.test(text));
        return;
      }
      counter.push(chunk);
      if (counter.frames >= wanted) onFrames?.();
    });
  });
  const frame = maskedFrame(deflate ? COMPRESSED : MESSAGE, deflate);
  await new Promise<void>((resolve) => {
    wanted = MESSAGES;
    onFrames = resolve;
    for (let i = 0; i < MESSAGES; i++) socket.write(frame);
  });
  return { socket, deflate };
}

interface Measured {
  readonly name: string;
  readonly perConnectionKiB: number;
  readonly deflate: boolean;
}

async function measure(setting: Setting): Promise<Measured> {
  const port = await freePort();
  const args = [CLI, 'serve', '--host', '127.0.0.1', '--port', String(port), '--workers', '1', '--log-level', 'warn', '--idle-timeout', '0'];
  args.push(...setting.flags);
  const child = spawn(process.execPath, args, { stdio: ['ignore', 'inherit', 'inherit'], env: process.env });
  try {
    await waitForPort(port, child);
    // A few connections first, so one-time costs (the worker's shared zlib contexts, code
    // compiled on first use) are in the baseline, not spread over the connections.
    const warm = await Promise.all(Array.from({ length: 20 }, () => openConnection(port)));
    await sleep(1500);
    const before = residentKiB([child.pid!])!;
    const sockets: Socket[] = [];
    let deflate = true;
    for (let i = 0; i < CONNECTIONS; i += 100) {
      const batch = await Promise.all(Array.from({ length: Math.min(100, CONNECTIONS - i) }, () => openConnection(port)));
      for (const c of batch) {
        sockets.push(c.socket);
        deflate &&= c.deflate;
      }
    }
    await sleep(3000);
    const after = residentKiB([child.pid!])!;
    for (const s of [...sockets, ...warm.map((w) => w.socket)]) s.destroy();
    return { name: setting.name, perConnectionKiB: (after - before) / CONNECTIONS, deflate: setting.flags.length === 0 || deflate };
  } finally {
    await stop(child);
  }
}

console.log(`deflate memory: ${CONNECTIONS} connections per setting, ${MESSAGES} compressed ${SIZE} B messages each way, 1 worker, MALLOC_ARENA_MAX=${process.env.MALLOC_ARENA_MAX ?? 'unset'}`);
const results: Measured[] = [];
for (const setting of settings) {
  const result = await measure(setting);
  results.push(result);
  console.log(`  ${setting.name}: ${result.perConnectionKiB.toFixed(1)} KiB per connection${result.deflate ? '' : ' (deflate NOT negotiated)'}`);
}
const off = results.find((r) => r.name === 'off')?.perConnectionKiB ?? 0;
console.log('\n| setting | RSS per connection | above deflate off |\n| --- | ---: | ---: |');
for (const r of results) console.log(`| ${r.name} | ${r.perConnectionKiB.toFixed(1)} KiB | ${r.name === 'off' ? '—' : `${(r.perConnectionKiB - off).toFixed(1)} KiB`} |`);
