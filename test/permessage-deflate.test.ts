import { describe, it, expect } from 'vitest';
import fc from 'fast-check';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { constants, deflateRawSync } from 'node:zlib';
import { HandshakeError, ProtocolError } from '../src/shared/errors.ts';
import { parseExtensionHeader } from '../src/shared/extension-header.ts';
import {
  DEFAULT_THRESHOLD,
  PerMessageDeflate,
  acceptDeflateOffer,
  acceptDeflateResponse,
  buildDeflateOffer,
  deflateMessageShared,
} from '../src/shared/permessage-deflate.ts';
import type {
  DeflateOfferOptions,
  DeflateOptions,
  DeflateParams,
  WindowBits,
} from '../src/shared/permessage-deflate.ts';

// --- helpers ------------------------------------------------------------------------------------

const ALL_BITS: readonly WindowBits[] = [8, 9, 10, 11, 12, 13, 14, 15];
const hex = (s: string): Buffer => Buffer.from(s.replace(/ /g, ''), 'hex');
const HELLO = Buffer.from('Hello');

const params = (p: Partial<DeflateParams> = {}): DeflateParams => ({
  serverNoContextTakeover: false,
  clientNoContextTakeover: false,
  serverMaxWindowBits: 15,
  clientMaxWindowBits: 15,
  ...p,
});

/** Every negotiable parameter combination (2 × 2 × 8 × 8). */
const ALL_PARAMS: DeflateParams[] = [];
for (const serverNoContextTakeover of [false, true])
  for (const clientNoContextTakeover of [false, true])
    for (const serverMaxWindowBits of ALL_BITS)
      for (const clientMaxWindowBits of ALL_BITS)
        ALL_PARAMS.push({ serverNoContextTakeover, clientNoContextTakeover, serverMaxWindowBits, clientMaxWindowBits });

const compress = (c: PerMessageDeflate, data: Buffer): Promise<Buffer> =>
  new Promise((resolve, reject) => c.compress(data, (err, out) => (err ? reject(err) : resolve(out!))));

const decompress = (c: PerMessageDeflate, data: Buffer, fin: boolean): Promise<Buffer> =>
  new Promise((resolve, reject) => c.decompress(data, fin, (err, out) => (err ? reject(err) : resolve(out!))));

/** Feeds a message's frames without waiting between them and joins the per-frame output. */
async function decompressFrames(c: PerMessageDeflate, frames: readonly Buffer[]): Promise<Buffer> {
  const parts = frames.map((f, i) => decompress(c, f, i === frames.length - 1));
  return Buffer.concat(await Promise.all(parts));
}

const settle = <T>(p: Promise<T>): Promise<{ ok: T } | { err: unknown }> =>
  p.then(
    (ok) => ({ ok }),
    (err: unknown) => ({ err }),
  );

/** Splits `data` into frames at the given cut points (empty frames allowed). */
function split(data: Buffer, cuts: readonly number[]): Buffer[] {
  const points = cuts.map((c) => c % (data.length + 1)).sort((a, b) => a - b);
  const frames: Buffer[] = [];
  let start = 0;
  for (const p of points) {
    frames.push(data.subarray(start, p));
    start = p;
  }
  frames.push(data.subarray(start));
  return frames;
}

const expectProtocolError = (err: unknown, code: string, closeCode: number): void => {
  expect(err).toBeInstanceOf(ProtocolError);
  expect((err as ProtocolError).code).toBe(code);
  expect((err as ProtocolError).closeCode).toBe(closeCode);
};

const expect400 = (fn: () => unknown, message?: RegExp): void => {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(HandshakeError);
    expect((err as HandshakeError).status).toBe(400);
    if (message) expect((err as HandshakeError).message).toMatch(message);
    return;
  }
  expect.fail('expected a HandshakeError(400)');
};

/**
 * A small RFC 1951 decoder (after zlib's puff.c) that also reports the farthest back-reference,
 * so window limits can be checked on real zlib output: zlib's own inflater does not notice a
 * too-far reference into output produced in the same call.
 */
function inflateWithMaxDistance(data: Uint8Array): { out: Buffer; maxDistance: number } {
  let pos = 0;
  let bitBuf = 0;
  let bitCnt = 0;
  const bits = (n: number): number => {
    while (bitCnt < n) {
      if (pos >= data.length) throw new Error('unexpected end of deflate data');
      bitBuf |= data[pos++]! << bitCnt;
      bitCnt += 8;
    }
    const v = bitBuf & ((1 << n) - 1);
    bitBuf >>>= n;
    bitCnt -= n;
    return v;
  };
  let out = new Uint8Array(1 << 16);
  let outLen = 0;
  const put = (b: number): void => {
    if (outLen === out.length) {
      const grown = new Uint8Array(out.length * 2);
      grown.set(out);
      out = grown;
    }
    out[outLen++] = b;
  };
  interface Huffman {
    count: number[];
    symbol: number[];
  }
  const build = (lengths: readonly number[]): Huffman => {
    const count = new Array<number>(16).fill(0);
    for (const l of lengths) count[l]!++;
    count[0] = 0;
    const offs = new Array<number>(16).fill(0);
    for (let len = 1; len < 15; len++) offs[len + 1] = offs[len]! + count[len]!;
    const symbol: number[] = [];
    lengths.forEach((l, sym) => {
      if (l !== 0) symbol[offs[l]!++] = sym;
    });
    return { count, symbol };
  };
  const decode = (h: Huffman): number => {
    let code = 0;
    let first = 0;
    let index = 0;
    for (let len = 1; len <= 15; len++) {
      code |= bits(1);
      const count = h.count[len]!;
      if (code - count < first) return h.symbol[index + (code - first)]!;
      index += count;
      first = (first + count) << 1;
      code <<= 1;
    }
    throw new Error('bad Huffman code');
  };
  const LBASE = [3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 15, 17, 19, 23, 27, 31, 35, 43, 51, 59, 67, 83, 99, 115, 131, 163, 195, 227, 258];
  const LEXT = [0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0];
  const DBASE = [
    1, 2, 3, 4, 5, 7, 9, 13, 17, 25, 33, 49, 65, 97, 129, 193, 257, 385, 513, 769, 1025, 1537, 2049, 3073, 4097, 6145,
    8193, 12289, 16385, 24577,
  ];
  const DEXT = [0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13];
  const fixedLit = build([...Array<number>(144).fill(8), ...Array<number>(112).fill(9), ...Array<number>(24).fill(7), ...Array<number>(8).fill(8)]);
  const fixedDist = build(Array<number>(30).fill(5));
  let maxDistance = 0;

  // Our streams are sync-flushed messages: they end at a block boundary, never with BFINAL.
  while (pos < data.length) {
    const last = bits(1);
    const type = bits(2);
    if (type === 0) {
      bitBuf = 0;
      bitCnt = 0;
      const len = data[pos]! | (data[pos + 1]! << 8);
      const nlen = data[pos + 2]! | (data[pos + 3]! << 8);
      if (len !== (~nlen & 0xffff)) throw new Error('bad stored length');
      pos += 4;
      for (let i = 0; i < len; i++) put(data[pos++]!);
    } else {
      let lit = fixedLit;
      let dist = fixedDist;
      if (type === 2) {
        const nlen = bits(5) + 257;
        const ndist = bits(5) + 1;
        const ncode = bits(4) + 4;
        const order = [16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15];
        const codeLengths = new Array<number>(19).fill(0);
        for (let i = 0; i < ncode; i++) codeLengths[order[i]!] = bits(3);
        const lencode = build(codeLengths);
        const lengths: number[] = [];
        while (lengths.length < nlen + ndist) {
          const sym = decode(lencode);
          if (sym < 16) lengths.push(sym);
          else if (sym === 16) {
            const prev = lengths[lengths.length - 1]!;
            for (let n = 3 + bits(2); n > 0; n--) lengths.push(prev);
          } else if (sym === 17) for (let n = 3 + bits(3); n > 0; n--) lengths.push(0);
          else for (let n = 11 + bits(7); n > 0; n--) lengths.push(0);
        }
        lit = build(lengths.slice(0, nlen));
        dist = build(lengths.slice(nlen));
      } else if (type !== 1) throw new Error('bad block type');
      for (;;) {
        const sym = decode(lit);
        if (sym < 256) put(sym);
        else if (sym === 256) break;
        else {
          const li = sym - 257;
          const len = LBASE[li]! + bits(LEXT[li]!);
          const di = decode(dist);
          const d = DBASE[di]! + bits(DEXT[di]!);
          if (d > outLen) throw new Error('distance before start of stream');
          maxDistance = Math.max(maxDistance, d);
          for (let i = 0; i < len; i++) put(out[outLen - d]!);
        }
      }
    }
    if (last) break;
  }
  return { out: Buffer.from(out.subarray(0, outLen)), maxDistance };
}

/** Text whose repeats sit at distances up to ~30 KB, so every window size has matches to find. */
function windowProbe(seed: number): Buffer {
  const block = (n: number, s: number): Buffer => {
    const b = Buffer.alloc(n);
    let x = s;
    for (let i = 0; i < n; i++) {
      x = (x * 1103515245 + 12345) >>> 0;
      b[i] = 97 + ((x >>> 16) % 26);
    }
    return b;
  };
  const parts: Buffer[] = [];
  for (const period of [40, 120, 200, 300, 700, 1500, 3000, 6000, 12000, 24000]) {
    const b = block(period, seed + period);
    parts.push(b, b);
  }
  return Buffer.concat(parts);
}

// ws's own permessage-deflate, loaded by path (its package exports only ".").
const require = createRequire(import.meta.url);
const wsDir = dirname(require.resolve('ws'));
interface WsPerMessageDeflate {
  params: Record<string, unknown> | null;
  offer(): Record<string, unknown>;
  accept(configurations: unknown[]): Record<string, unknown>;
  compress(data: Buffer, fin: boolean, cb: (err: Error | null, out: Buffer) => void): void;
  decompress(data: Buffer, fin: boolean, cb: (err: Error | null, out: Buffer) => void): void;
  cleanup(): void;
}
const WsPerMessageDeflate = require(join(wsDir, 'lib/permessage-deflate.js')) as new (
  opts: Record<string, unknown>,
) => WsPerMessageDeflate;
const wsExtension = require(join(wsDir, 'lib/extension.js')) as {
  parse(header: string): Record<string, unknown[]>;
  format(extensions: Record<string, unknown>): string;
};
const wsCompress = (w: WsPerMessageDeflate, data: Buffer): Promise<Buffer> =>
  new Promise((resolve, reject) => w.compress(data, true, (err, out) => (err ? reject(err) : resolve(out))));
const wsDecompress = (w: WsPerMessageDeflate, data: Buffer): Promise<Buffer> =>
  new Promise((resolve, reject) => w.decompress(data, true, (err, out) => (err ? reject(err) : resolve(out))));

// --- RFC 7692 §7.2.3 examples -------------------------------------------------------------------

describe('RFC 7692 §7.2.3 examples', () => {
  it('§7.2.3.1: "Hello" compresses to f2 48 cd c9 c9 07 00 and back', async () => {
    const server = new PerMessageDeflate('server', params(), { maxMessageSize: 1024 });
    const client = new PerMessageDeflate('client', params(), { maxMessageSize: 1024 });
    expect(await compress(server, HELLO)).toEqual(hex('f2 48 cd c9 c9 07 00'));
    expect(await decompress(client, hex('f2 48 cd c9 c9 07 00'), true)).toEqual(HELLO);
    expect(deflateMessageShared(HELLO, 15)).toEqual(hex('f2 48 cd c9 c9 07 00'));
    server.close();
    client.close();
  });

  it('§7.2.3.1: the message may arrive in fragments', async () => {
    const client = new PerMessageDeflate('client', params(), { maxMessageSize: 1024 });
    const chunks = await Promise.all([
      decompress(client, hex('f2 48 cd'), false),
      decompress(client, hex('c9 c9 07 00'), true),
    ]);
    expect(Buffer.concat(chunks).toString()).toBe('Hello');
    client.close();
  });

  it('§7.2.3.2: with context takeover a second "Hello" is f2 00 11 00 00', async () => {
    const server = new PerMessageDeflate('server', params(), { maxMessageSize: 1024 });
    const client = new PerMessageDeflate('client', params(), { maxMessageSize: 1024 });
    const [first, second] = await Promise.all([compress(server, HELLO), compress(server, HELLO)]);
    expect(first).toEqual(hex('f2 48 cd c9 c9 07 00'));
    expect(second).toEqual(hex('f2 00 11 00 00'));
    expect(await decompress(client, first!, true)).toEqual(HELLO);
    expect(await decompress(client, second!, true)).toEqual(HELLO);
    server.close();
    client.close();
  });

  it('§7.2.3.2: without context takeover every "Hello" is f2 48 cd c9 c9 07 00', async () => {
    const p = params({ serverNoContextTakeover: true });
    const server = new PerMessageDeflate('server', p, { maxMessageSize: 1024 });
    const client = new PerMessageDeflate('client', p, { maxMessageSize: 1024 });
    const outs = await Promise.all([compress(server, HELLO), compress(server, HELLO), compress(server, HELLO)]);
    for (const out of outs) expect(out).toEqual(hex('f2 48 cd c9 c9 07 00'));
    expect(server.compressSync(HELLO)).toEqual(hex('f2 48 cd c9 c9 07 00'));
    for (const out of outs) expect(await decompress(client, out, true)).toEqual(HELLO);
    expect(client.decompressSync(outs[0]!)).toEqual(HELLO);
    server.close();
    client.close();
  });

  it('§7.2.3.3: a DEFLATE block with no compression', async () => {
    const vector = hex('00 05 00 fa ff 48 65 6c 6c 6f');
    const client = new PerMessageDeflate('client', params({ serverNoContextTakeover: true }), { maxMessageSize: 1024 });
    expect(await decompress(client, vector, true)).toEqual(HELLO);
    expect(client.decompressSync(vector)).toEqual(HELLO);
    // zlib level 0 emits that stored block, then its sync flush's empty block minus the trailer.
    const server = new PerMessageDeflate('server', params(), { maxMessageSize: 1024, level: 0 });
    const out = await compress(server, HELLO);
    expect(out).toEqual(Buffer.concat([vector, hex('00')]));
    expect(await decompress(client, out, true)).toEqual(HELLO);
    server.close();
    client.close();
  });

  it('§7.2.3.4: a DEFLATE block with BFINAL set, then the next message', async () => {
    const client = new PerMessageDeflate('client', params(), { maxMessageSize: 1024 });
    expect(await decompress(client, hex('f3 48 cd c9 c9 07 00 00'), true)).toEqual(HELLO);
    // The stream ended, so the next message starts a new one.
    expect(await decompress(client, hex('f2 48 cd c9 c9 07 00'), true)).toEqual(HELLO);
    // BFINAL in a first fragment: what follows it in the message is ignored.
    const parts = await Promise.all([
      decompress(client, hex('f3 48 cd c9 c9 07 00'), false),
      decompress(client, hex('00 01 02'), true),
    ]);
    expect(Buffer.concat(parts)).toEqual(HELLO);
    expect(await decompress(client, hex('f2 48 cd c9 c9 07 00'), true)).toEqual(HELLO);
    client.close();
  });

  it('§7.2.3.5: two DEFLATE blocks in one message', async () => {
    const client = new PerMessageDeflate('client', params(), { maxMessageSize: 1024 });
    expect(await decompress(client, hex('f2 48 05 00 00 00 ff ff ca c9 c9 07 00'), true)).toEqual(HELLO);
    client.close();
  });

  it('§7.2.3.6: an empty message is a single 0x00', async () => {
    const server = new PerMessageDeflate('server', params(), { maxMessageSize: 1024 });
    const client = new PerMessageDeflate('client', params(), { maxMessageSize: 1024 });
    expect(await compress(server, Buffer.alloc(0))).toEqual(hex('00'));
    expect(deflateMessageShared(Buffer.alloc(0), 15)).toEqual(hex('00'));
    expect(await decompress(client, hex('00'), true)).toEqual(Buffer.alloc(0));
    // Empty messages leave the shared window as it was.
    expect(await compress(server, HELLO)).toEqual(hex('f2 48 cd c9 c9 07 00'));
    expect(await compress(server, Buffer.alloc(0))).toEqual(hex('00'));
    expect(await compress(server, HELLO)).toEqual(hex('f2 00 11 00 00'));
    server.close();
    client.close();
  });
});

// --- negotiation --------------------------------------------------------------------------------

const offerOf = (header: string) => parseExtensionHeader(header);
const dedicated: DeflateOptions = { compressor: 'dedicated', decompressor: 'dedicated' };
const shared: DeflateOptions = { compressor: 'shared', decompressor: 'shared' };

describe('acceptDeflateOffer (server)', () => {
  it('accepts a bare offer with defaults', () => {
    const r = acceptDeflateOffer(offerOf('permessage-deflate'), dedicated);
    expect(r).toEqual({ params: params(), response: 'permessage-deflate' });
  });

  it('answers server_no_context_takeover for a shared compressor even when not asked', () => {
    const r = acceptDeflateOffer(offerOf('permessage-deflate; client_max_window_bits'), { compressor: 'shared', decompressor: 'dedicated' });
    expect(r!.params).toEqual(params({ serverNoContextTakeover: true }));
    expect(r!.response).toBe('permessage-deflate; server_no_context_takeover');
  });

  it('answers client_no_context_takeover for a shared decompressor even when not asked (§7.1.1.2)', () => {
    const r = acceptDeflateOffer(offerOf('permessage-deflate; client_max_window_bits'), { compressor: 'dedicated', decompressor: 'shared' });
    expect(r!.params).toEqual(params({ clientNoContextTakeover: true }));
    expect(r!.response).toBe('permessage-deflate; client_no_context_takeover');
    expect(acceptDeflateOffer(offerOf('permessage-deflate'), shared)).toEqual({
      params: params({ serverNoContextTakeover: true, clientNoContextTakeover: true }),
      response: 'permessage-deflate; server_no_context_takeover; client_no_context_takeover',
    });
  });

  it('honours a request for server_no_context_takeover with a dedicated compressor', () => {
    expect(acceptDeflateOffer(offerOf('permessage-deflate; server_no_context_takeover'), dedicated)).toEqual({
      params: params({ serverNoContextTakeover: true }),
      response: 'permessage-deflate; server_no_context_takeover',
    });
  });

  it('honours every requested window 8..15 in both directions', () => {
    for (const s of ALL_BITS) {
      for (const c of ALL_BITS) {
        const r = acceptDeflateOffer(
          offerOf(`permessage-deflate; server_max_window_bits=${s}; client_max_window_bits=${c}`),
          dedicated,
        );
        expect(r!.params).toEqual(params({ serverMaxWindowBits: s, clientMaxWindowBits: c }));
        expect(r!.response).toBe(
          `permessage-deflate; server_max_window_bits=${s}${c < 15 ? `; client_max_window_bits=${c}` : ''}`,
        );
      }
    }
  });

  it('lowers windows to its own limits but never raises them', () => {
    const opts: DeflateOptions = { ...dedicated, serverMaxWindowBits: 10, clientMaxWindowBits: 11 };
    expect(acceptDeflateOffer(offerOf('permessage-deflate; client_max_window_bits'), opts)).toEqual({
      params: params({ serverMaxWindowBits: 10, clientMaxWindowBits: 11 }),
      response: 'permessage-deflate; server_max_window_bits=10; client_max_window_bits=11',
    });
    expect(
      acceptDeflateOffer(offerOf('permessage-deflate; server_max_window_bits=9; client_max_window_bits=8'), opts)!.params,
    ).toEqual(params({ serverMaxWindowBits: 9, clientMaxWindowBits: 8 }));
  });

  it('asks a client it cannot limit (no client_max_window_bits, §7.1.2.2) for client_no_context_takeover instead', () => {
    const opts: DeflateOptions = { ...dedicated, clientMaxWindowBits: 10 };
    expect(acceptDeflateOffer(offerOf('permessage-deflate'), opts)).toEqual({
      params: params({ clientNoContextTakeover: true }),
      response: 'permessage-deflate; client_no_context_takeover',
    });
    expect(acceptDeflateOffer(offerOf('permessage-deflate; client_max_window_bits'), opts)).toEqual({
      params: params({ clientMaxWindowBits: 10 }),
      response: 'permessage-deflate; client_max_window_bits=10',
    });
    // A limit of 15 is no limit.
    expect(acceptDeflateOffer(offerOf('permessage-deflate'), { ...dedicated, clientMaxWindowBits: 15 })).toEqual({ params: params(), response: 'permessage-deflate' });
  });

  it('echoes client_no_context_takeover, and may impose it', () => {
    expect(acceptDeflateOffer(offerOf('permessage-deflate; client_no_context_takeover'), dedicated)).toEqual({
      params: params({ clientNoContextTakeover: true }),
      response: 'permessage-deflate; client_no_context_takeover',
    });
    expect(acceptDeflateOffer(offerOf('permessage-deflate'), { compressor: 'dedicated', decompressor: 'shared' })!.params)
      .toEqual(params({ clientNoContextTakeover: true }));
  });

  it('skips invalid offers and takes the first acceptable one', () => {
    const header = [
      'x-webkit-deflate-frame',
      'permessage-deflate; server_max_window_bits=16',
      'permessage-deflate; unknown_param',
      'permessage-deflate; server_max_window_bits=10; server_max_window_bits=10',
      'permessage-deflate; server_max_window_bits=11',
      'permessage-deflate; server_max_window_bits=12',
    ].join(', ');
    expect(acceptDeflateOffer(offerOf(header), dedicated)!.params.serverMaxWindowBits).toBe(11);
  });

  it('rejects bad values, duplicates and unknown params per offer', () => {
    const bad = [
      'server_max_window_bits',
      'server_max_window_bits=7',
      'server_max_window_bits=16',
      'server_max_window_bits=08',
      'server_max_window_bits=010',
      'server_max_window_bits=1e1',
      'server_max_window_bits=+9',
      'server_max_window_bits=9.0',
      'server_max_window_bits=0x9',
      'client_max_window_bits=7',
      'client_max_window_bits=16',
      'client_max_window_bits=08',
      'server_no_context_takeover=1',
      'client_no_context_takeover=true',
      'server_no_context_takeover; server_no_context_takeover',
      'client_max_window_bits; client_max_window_bits=10',
      'Server_No_Context_Takeover',
      '__proto__',
      'constructor=1',
      'toString',
    ];
    for (const p of bad) expect(acceptDeflateOffer(offerOf(`permessage-deflate; ${p}`), dedicated), p).toBeNull();
    // Quoted values are unquoted first (RFC 6455 §9.1), so "10" is fine.
    expect(acceptDeflateOffer(offerOf('permessage-deflate; server_max_window_bits="10"'), dedicated)!.params.serverMaxWindowBits).toBe(10);
  });

  it('ignores other extensions, including ones named __proto__', () => {
    expect(acceptDeflateOffer(offerOf('__proto__, constructor; a=1, foo'), dedicated)).toBeNull();
    expect(acceptDeflateOffer(offerOf('__proto__; server_max_window_bits=9, permessage-deflate'), dedicated)!.params).toEqual(params());
    expect(acceptDeflateOffer(offerOf('Permessage-Deflate'), dedicated)).toBeNull();
  });

  it('agrees with the client side for every offer and server setting (exhaustive)', () => {
    const offers: DeflateOfferOptions[] = [];
    for (const serverNoContextTakeover of [false, true])
      for (const clientNoContextTakeover of [false, true])
        for (const serverMaxWindowBits of [undefined, ...ALL_BITS])
          for (const clientMaxWindowBits of [undefined, true as const, ...ALL_BITS])
            offers.push({ serverNoContextTakeover, clientNoContextTakeover, serverMaxWindowBits, clientMaxWindowBits });
    const settings: DeflateOptions[] = [];
    for (const compressor of ['shared', 'dedicated'] as const)
      for (const decompressor of ['shared', 'dedicated'] as const)
        for (const serverMaxWindowBits of [undefined, 8, 12, 15] as const)
          for (const clientMaxWindowBits of [undefined, 8, 12, 15] as const)
            settings.push({ compressor, decompressor, serverMaxWindowBits, clientMaxWindowBits });

    for (const offered of offers) {
      const offerHeader = buildDeflateOffer(offered);
      for (const opts of settings) {
        const r = acceptDeflateOffer(parseExtensionHeader(offerHeader), opts);
        // Every offer is accepted: a client that cannot be limited is asked to drop context.
        expect(r).not.toBeNull();
        const p = r!.params;
        // The client reaches exactly the same parameters from the response.
        expect(acceptDeflateResponse(parseExtensionHeader(r!.response), offered)).toEqual(p);
        expect(p.serverNoContextTakeover).toBe(offered.serverNoContextTakeover || opts.compressor === 'shared');
        const unlimitable = (opts.clientMaxWindowBits ?? 15) < 15 && offered.clientMaxWindowBits === undefined;
        expect(p.clientNoContextTakeover).toBe(offered.clientNoContextTakeover || opts.decompressor === 'shared' || unlimitable);
        expect(p.serverMaxWindowBits).toBe(Math.min(offered.serverMaxWindowBits ?? 15, opts.serverMaxWindowBits ?? 15));
        const clientOffered = typeof offered.clientMaxWindowBits === 'number' ? offered.clientMaxWindowBits : 15;
        expect(p.clientMaxWindowBits).toBe(offered.clientMaxWindowBits === undefined ? 15 : Math.min(clientOffered, opts.clientMaxWindowBits ?? 15));
        // What the server holds per connection stays within its settings: a dedicated
        // decompressor's window, and a context only where the server keeps one.
        if (!p.clientNoContextTakeover) expect(p.clientMaxWindowBits).toBeLessThanOrEqual(opts.clientMaxWindowBits ?? 15);
        if (opts.decompressor === 'shared') expect(p.clientNoContextTakeover).toBe(true);
      }
    }
  });
});

describe('buildDeflateOffer / acceptDeflateResponse (client)', () => {
  it('formats offers', () => {
    expect(buildDeflateOffer()).toBe('permessage-deflate');
    expect(buildDeflateOffer({ clientMaxWindowBits: true })).toBe('permessage-deflate; client_max_window_bits');
    expect(
      buildDeflateOffer({ serverNoContextTakeover: true, clientNoContextTakeover: true, serverMaxWindowBits: 8, clientMaxWindowBits: 9 }),
    ).toBe('permessage-deflate; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=8; client_max_window_bits=9');
    expect(() => buildDeflateOffer({ serverMaxWindowBits: 16 as WindowBits })).toThrow(RangeError);
    expect(() => buildDeflateOffer({ clientMaxWindowBits: 7 as WindowBits })).toThrow(RangeError);
  });

  it('reads valid responses', () => {
    const accept = (h: string, o: DeflateOfferOptions) => acceptDeflateResponse(parseExtensionHeader(h), o);
    expect(accept('permessage-deflate', {})).toEqual(params());
    expect(accept('permessage-deflate; server_no_context_takeover', {})).toEqual(params({ serverNoContextTakeover: true }));
    expect(accept('permessage-deflate; client_no_context_takeover', {})).toEqual(params({ clientNoContextTakeover: true }));
    expect(accept('permessage-deflate', { clientNoContextTakeover: true })).toEqual(params({ clientNoContextTakeover: true }));
    expect(accept('permessage-deflate; server_max_window_bits=9', {})).toEqual(params({ serverMaxWindowBits: 9 }));
    expect(accept('permessage-deflate; server_max_window_bits=8', { serverMaxWindowBits: 10 })).toEqual(params({ serverMaxWindowBits: 8 }));
    expect(accept('permessage-deflate; client_max_window_bits=8', { clientMaxWindowBits: true })).toEqual(params({ clientMaxWindowBits: 8 }));
    expect(accept('permessage-deflate', { clientMaxWindowBits: 10 })).toEqual(params({ clientMaxWindowBits: 10 }));
    expect(accept('permessage-deflate; client_max_window_bits=9', { clientMaxWindowBits: 10 })).toEqual(params({ clientMaxWindowBits: 9 }));
  });

  it('fails on invalid responses (§7.1)', () => {
    const cases: [string, DeflateOfferOptions, RegExp][] = [
      ['permessage-deflate; foo', {}, /unknown parameter foo/],
      ['permessage-deflate; __proto__', {}, /unknown parameter __proto__/],
      ['permessage-deflate; server_no_context_takeover; server_no_context_takeover', {}, /more than once/],
      ['permessage-deflate; server_max_window_bits=9; server_max_window_bits=9', {}, /more than once/],
      ['permessage-deflate; server_no_context_takeover=1', {}, /must not have a value/],
      ['permessage-deflate; server_max_window_bits', {}, /8 to 15/],
      ['permessage-deflate; server_max_window_bits=16', {}, /8 to 15/],
      ['permessage-deflate; server_max_window_bits=08', {}, /8 to 15/],
      ['permessage-deflate; server_max_window_bits=11', { serverMaxWindowBits: 10 }, /larger than offered/],
      ['permessage-deflate', { serverMaxWindowBits: 10 }, /server_max_window_bits missing/],
      ['permessage-deflate', { serverNoContextTakeover: true }, /server_no_context_takeover missing/],
      ['permessage-deflate; client_max_window_bits=10', {}, /not offered/],
      ['permessage-deflate; client_max_window_bits=11', { clientMaxWindowBits: 10 }, /larger than offered/],
      ['permessage-deflate; client_max_window_bits', { clientMaxWindowBits: true }, /8 to 15/],
      ['permessage-deflate, permessage-deflate', {}, /more than one/],
      ['permessage-deflate, foo', {}, /foo was not offered/],
      ['foo', {}, /foo was not offered/],
      ['__proto__', {}, /__proto__ was not offered/],
    ];
    for (const [header, offered, message] of cases) {
      expect400(() => acceptDeflateResponse(parseExtensionHeader(header), offered), message);
    }
    expect400(() => acceptDeflateResponse([], {}), /no permessage-deflate/);
  });
});

describe('PerMessageDeflate options', () => {
  it('rejects bad codec options', () => {
    expect(() => new PerMessageDeflate('server', params(), { maxMessageSize: -1 })).toThrow(RangeError);
    expect(() => new PerMessageDeflate('server', params(), { maxMessageSize: 1.5 })).toThrow(RangeError);
    expect(() => new PerMessageDeflate('server', params({ serverMaxWindowBits: 16 as WindowBits }), { maxMessageSize: 1 })).toThrow(RangeError);
  });
});

// --- codec --------------------------------------------------------------------------------------

describe('PerMessageDeflate codec', () => {
  const MESSAGES = [
    Buffer.from('{"type":"tick","symbol":"ACME","price":101.25}'.repeat(60)),
    randomBytes(2000),
    Buffer.alloc(0),
    windowProbe(1).subarray(0, 9000),
    Buffer.from('{"type":"tick","symbol":"ACME","price":101.25}'.repeat(60)),
  ];

  it('round-trips in both directions under every parameter combination, on zlib\'s pool and on the thread', async () => {
    for (const onThread of [false, true]) {
      for (const p of ALL_PARAMS) {
        const options = { maxMessageSize: 1 << 20, onThread };
        const server = new PerMessageDeflate('server', p, options);
        const client = new PerMessageDeflate('client', p, options);
        expect(server.onThread).toBe(onThread);
        for (const [from, to] of [
          [server, client],
          [client, server],
        ] as const) {
          const wire = await Promise.all(MESSAGES.map((m) => compress(from, m)));
          for (let i = 0; i < MESSAGES.length; i++) {
            const frames = split(wire[i]!, [wire[i]!.length >> 2, wire[i]!.length >> 1]);
            expect(await decompressFrames(to, frames)).toEqual(MESSAGES[i]);
          }
          const noContext = from === server ? p.serverNoContextTakeover : p.clientNoContextTakeover;
          expect(from.canCompressSync).toBe(onThread || noContext);
          if (to.canDecompressSync) {
            for (let i = 0; i < MESSAGES.length; i++) expect(to.decompressSync(wire[i]!)).toEqual(MESSAGES[i]);
          }
        }
        server.close();
        client.close();
        // The synchronous paths, on a fresh pair: with context takeover both sides must see the
        // same stream of messages from the start.
        const syncServer = new PerMessageDeflate('server', p, options);
        const syncClient = new PerMessageDeflate('client', p, options);
        for (const [from, to] of [
          [syncServer, syncClient],
          [syncClient, syncServer],
        ] as const) {
          if (!from.canCompressSync) continue;
          for (const m of MESSAGES) {
            const wire = from.compressSync(m);
            const frames = split(wire, [wire.length >> 1]);
            const back = to.onThread ? Buffer.concat(frames.map((f, i) => to.inflateFrame(f, i === frames.length - 1))) : await decompressFrames(to, frames);
            expect(back).toEqual(m);
          }
        }
        syncServer.close();
        syncClient.close();
      }
    }
  });

  it('round-trips random messages and fragmentations (property)', async () => {
    const bits = fc.constantFrom(...ALL_BITS);
    const payload = fc.oneof(
      fc.constant(Buffer.alloc(0)),
      fc.uint8Array({ maxLength: 4000 }).map((u) => Buffer.from(u)), // incompressible
      fc
        .tuple(fc.uint8Array({ minLength: 1, maxLength: 40 }), fc.integer({ min: 1, max: 20_000 }))
        .map(([u, n]) => Buffer.alloc(n, Buffer.from(u))), // highly compressible
      fc.string({ maxLength: 500 }).map((s) => Buffer.from(s.repeat(3))),
    );
    const message = fc.record({ data: payload, cuts: fc.array(fc.nat(), { maxLength: 4 }) });
    await fc.assert(
      fc.asyncProperty(
        fc.record({ serverNoContextTakeover: fc.boolean(), clientNoContextTakeover: fc.boolean(), serverMaxWindowBits: bits, clientMaxWindowBits: bits }),
        fc.constantFrom(0, 1, 6, 9),
        fc.constantFrom(1, 8, 9),
        fc.boolean(),
        fc.array(message, { minLength: 1, maxLength: 5 }),
        async (p, level, memLevel, serverSends, messages) => {
          const server = new PerMessageDeflate('server', p, { maxMessageSize: 1 << 20, level, memLevel });
          const client = new PerMessageDeflate('client', p, { maxMessageSize: 1 << 20, level, memLevel });
          const [from, to] = serverSends ? [server, client] : [client, server];
          try {
            const wire = await Promise.all(messages.map((m) => compress(from, m.data)));
            const inflated = await Promise.all(messages.map((m, i) => decompressFrames(to, split(wire[i]!, m.cuts))));
            inflated.forEach((out, i) => expect(out).toEqual(messages[i]!.data));
          } finally {
            server.close();
            client.close();
          }
        },
      ),
      { numRuns: 80 },
    );
  });

  it('completes queued calls in order and never calls back synchronously', async () => {
    const server = new PerMessageDeflate('server', params(), { maxMessageSize: 1 << 20 });
    const client = new PerMessageDeflate('client', params(), { maxMessageSize: 1 << 20 });
    const messages = Array.from({ length: 30 }, (_, i) => Buffer.from(`message ${i} `.repeat(i * 7)));
    let inCall = false;
    const order: number[] = [];
    const wire = await Promise.all(
      messages.map(
        (m, i) =>
          new Promise<Buffer>((resolve, reject) => {
            inCall = true;
            server.compress(m, (err, out) => {
              expect(inCall).toBe(false);
              order.push(i);
              if (err) reject(err);
              else resolve(out!);
            });
            inCall = false;
          }),
      ),
    );
    expect(order).toEqual(messages.map((_, i) => i));
    const outs = await Promise.all(wire.map((w) => decompress(client, w, true)));
    expect(outs).toEqual(messages);
    server.close();
    client.close();
  });

  it('fails corrupt data with 1007 and keeps failing until closed', async () => {
    const client = new PerMessageDeflate('client', params(), { maxMessageSize: 1 << 20 });
    const r = await settle(decompress(client, hex('ff ff ff ff'), true)); // BTYPE 11 is invalid
    expect('err' in r).toBe(true);
    if ('err' in r) expectProtocolError(r.err, 'WS_ERR_INVALID_COMPRESSED_DATA', 1007);
    const again = await settle(decompress(client, hex('f2 48 cd c9 c9 07 00'), true));
    if ('err' in again) expectProtocolError(again.err, 'WS_ERR_INVALID_COMPRESSED_DATA', 1007);
    else expect.fail('expected the error to stick');
    client.close();
    client.close();

    const sync = new PerMessageDeflate('client', params({ serverNoContextTakeover: true }), { maxMessageSize: 1 << 20 });
    try {
      sync.decompressSync(hex('ff ff ff ff'));
      expect.fail('expected a ProtocolError');
    } catch (err) {
      expectProtocolError(err, 'WS_ERR_INVALID_COMPRESSED_DATA', 1007);
    }
    sync.close();
  });

  it('fails a message past maxMessageSize with 1009, counting all its frames', async () => {
    const text = Buffer.from('abcdefgh'.repeat(1000)); // 8000 bytes
    const server = new PerMessageDeflate('server', params(), { maxMessageSize: 8000 });
    const wire = await compress(server, text);
    const exact = new PerMessageDeflate('client', params(), { maxMessageSize: 8000 });
    expect(await decompressFrames(exact, split(wire, [5, 10]))).toEqual(text);
    const small = new PerMessageDeflate('client', params(), { maxMessageSize: 7999 });
    const r = await settle(decompressFrames(small, split(wire, [5, 10])));
    if ('err' in r) expectProtocolError(r.err, 'WS_ERR_MESSAGE_TOO_BIG', 1009);
    else expect.fail('expected 1009');
    const none = new PerMessageDeflate('client', params({ serverNoContextTakeover: true }), { maxMessageSize: 0 });
    expect(none.decompressSync(hex('00'))).toEqual(Buffer.alloc(0));
    expect(() => none.decompressSync(hex('f2 48 cd c9 c9 07 00'))).toThrow(ProtocolError);
    for (const c of [server, exact, small, none]) c.close();
  });

  it('stops a decompression bomb (1 GiB of zeros in ~1 MiB) near the limit', async () => {
    // Deflate tops out near 1032:1, so 1 GiB needs ~1 MiB; built from 1024 sync-flushed 1 MiB runs.
    const run = deflateRawSync(Buffer.alloc(1 << 20), { level: 9, finishFlush: constants.Z_SYNC_FLUSH });
    const bomb = Buffer.concat(Array.from({ length: 1024 }, () => run));
    expect(bomb.length).toBeLessThan(1.1 * (1 << 20));
    const limit = 4 << 20;
    const before = process.memoryUsage();
    let peakArrayBuffers = before.arrayBuffers;
    const sample = setInterval(() => {
      peakArrayBuffers = Math.max(peakArrayBuffers, process.memoryUsage().arrayBuffers);
    }, 1);

    const p = params({ serverNoContextTakeover: true });
    const asyncCodec = new PerMessageDeflate('client', p, { maxMessageSize: limit });
    const r = await settle(decompress(asyncCodec, bomb, true));
    if ('err' in r) expectProtocolError(r.err, 'WS_ERR_MESSAGE_TOO_BIG', 1009);
    else expect.fail('expected 1009');

    // Spread over 64 KiB frames: the earlier frames deliver, the one that passes the limit fails.
    const framed = new PerMessageDeflate('client', p, { maxMessageSize: limit });
    const frames = split(bomb, Array.from({ length: 15 }, (_, i) => (i + 1) * 65536));
    const results = await Promise.all(frames.map((f, i) => settle(decompress(framed, f, i === frames.length - 1))));
    const delivered = results.flatMap((x) => ('ok' in x ? [x.ok.length] : []));
    expect(delivered.reduce((a, b) => a + b, 0)).toBeLessThanOrEqual(limit);
    const failed = results.find((x) => 'err' in x);
    if (failed && 'err' in failed) expectProtocolError(failed.err, 'WS_ERR_MESSAGE_TOO_BIG', 1009);
    else expect.fail('expected 1009');

    const syncCodec = new PerMessageDeflate('client', p, { maxMessageSize: limit });
    expect(() => syncCodec.decompressSync(bomb)).toThrow(expect.objectContaining({ code: 'WS_ERR_MESSAGE_TOO_BIG', closeCode: 1009 }));

    clearInterval(sample);
    const after = process.memoryUsage();
    // Generous bounds: inflating 1 GiB would show up as hundreds of MB.
    expect(peakArrayBuffers - before.arrayBuffers).toBeLessThan(64 << 20);
    expect(after.rss - before.rss).toBeLessThan(200 << 20);
    for (const c of [asyncCodec, framed, syncCodec]) c.close();
  });

  it('close() drops pending callbacks and frees the codec', async () => {
    const server = new PerMessageDeflate('server', params(), { maxMessageSize: 1 << 20 });
    let called = 0;
    server.compress(randomBytes(100_000), () => called++);
    server.compress(HELLO, () => called++);
    server.decompress(hex('f2 48 cd c9 c9 07 00'), true, () => called++);
    server.close();
    server.compress(HELLO, () => called++);
    server.decompress(HELLO, true, () => called++);
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(called).toBe(0);
  });

  it('refuses the one-shot sync paths when context takeover applies (zlib contexts off)', () => {
    const server = new PerMessageDeflate('server', params({ clientNoContextTakeover: true }), { maxMessageSize: 1024, onThread: false });
    expect(server.canCompressSync).toBe(false);
    expect(server.canDecompressSync).toBe(true);
    expect(() => server.compressSync(HELLO)).toThrow(/no_context_takeover/);
    const client = new PerMessageDeflate('client', params({ clientNoContextTakeover: true }), { maxMessageSize: 1024, onThread: false });
    expect(client.canCompressSync).toBe(true);
    expect(client.canDecompressSync).toBe(false);
    expect(() => client.decompressSync(hex('00'))).toThrow(/no_context_takeover/);
    expect(server.threshold).toBe(DEFAULT_THRESHOLD);
    server.close();
    client.close();
  });
});

// --- on the thread: zlib contexts kept between messages ----------------------------------------

describe('PerMessageDeflate on the thread (zlib contexts)', () => {
  const onThread = { maxMessageSize: 1 << 20, onThread: true };
  /** Inflates a message's frames on the thread, as the reader does. */
  const inflate = (c: PerMessageDeflate, frames: readonly Buffer[]): Buffer =>
    Buffer.concat(frames.map((f, i) => c.inflateFrame(f, i === frames.length - 1)));

  it('is the default wherever this Node allows it', () => {
    const codec = new PerMessageDeflate('server', params(), { maxMessageSize: 1024 });
    expect(codec.onThread).toBe(true);
    expect(codec.canCompressSync).toBe(true);
    codec.close();
  });

  it('§7.2.3.1: with context takeover the second "Hello" refers back to the first', () => {
    const server = new PerMessageDeflate('server', params(), onThread);
    const client = new PerMessageDeflate('client', params(), onThread);
    const first = server.compressSync(HELLO);
    const second = server.compressSync(HELLO);
    expect(first).toEqual(hex('f2 48 cd c9 c9 07 00'));
    expect(second).toEqual(hex('f2 00 11 00 00'));
    expect(inflate(client, [first])).toEqual(HELLO);
    expect(inflate(client, [second])).toEqual(HELLO);
    server.close();
    client.close();
  });

  it('§7.2.3.2–§7.2.3.6: the RFC examples inflate on the thread', () => {
    const client = new PerMessageDeflate('client', params(), onThread);
    expect(inflate(client, [hex('f3 48 cd c9 c9 07 00 00')])).toEqual(HELLO); // BFINAL set
    expect(inflate(client, [hex('f2 48 cd c9 c9 07 00')])).toEqual(HELLO); // a new stream after it
    expect(inflate(client, [hex('f3 48 cd c9 c9 07 00'), hex('00 01 02')])).toEqual(HELLO); // what follows BFINAL is ignored
    expect(inflate(client, [hex('f2 48 cd c9 c9 07 00')])).toEqual(HELLO);
    // A stored block, then the header of the empty block the sender's flush ended with (§7.2.1):
    // with context takeover the next message is read after it.
    expect(inflate(client, [hex('00 05 00 fa ff 48 65 6c 6c 6f 00')])).toEqual(HELLO);
    expect(inflate(client, [hex('f2 48 05 00 00 00 ff ff ca c9 c9 07 00')])).toEqual(HELLO); // two blocks
    expect(inflate(client, [hex('00')])).toEqual(Buffer.alloc(0)); // an empty message
    client.close();
    const server = new PerMessageDeflate('server', params(), onThread);
    expect(server.compressSync(Buffer.alloc(0))).toEqual(hex('00'));
    expect(server.compressSync(HELLO)).toEqual(hex('f2 48 cd c9 c9 07 00'));
    server.close();
  });

  it('inflates a fragmented message from a peer without context on a context of its own, then shares again', () => {
    const p = params({ clientNoContextTakeover: true, serverNoContextTakeover: true });
    const client = new PerMessageDeflate('client', p, onThread);
    const server = new PerMessageDeflate('server', p, onThread);
    const text = Buffer.from('{"type":"tick","symbol":"ACME","price":101.25}'.repeat(100));
    for (let round = 0; round < 3; round++) {
      const wire = client.compressSync(text);
      expect(inflate(server, split(wire, [7, wire.length >> 1]))).toEqual(text);
      expect(inflate(server, [wire])).toEqual(text);
    }
    client.close();
    server.close();
  });

  it('keeps messages of interleaved connections apart on the shared thread contexts', () => {
    const p = params({ clientNoContextTakeover: true, serverNoContextTakeover: true });
    const fragmented = [0, 1, 2].map(() => new PerMessageDeflate('server', p, onThread));
    const whole = [0, 1, 2].map(() => new PerMessageDeflate('server', p, onThread));
    const clients = [0, 1, 2].map(() => new PerMessageDeflate('client', p, onThread));
    const texts = [0, 1, 2].map((i) => Buffer.from(`connection ${i}: `.repeat(200 + i * 50)));
    const wires = clients.map((c, i) => c.compressSync(texts[i]!));
    // Frame 1 on three connections, whole messages on three others (the thread's shared
    // inflater), then frame 2 on the first three: a fragmented message has a context of its own.
    const halves = wires.map((w) => split(w, [w.length >> 1]));
    const firsts = fragmented.map((s, i) => s.inflateFrame(halves[i]![0]!, false));
    const wholes = whole.map((s, i) => s.inflateFrame(wires[(i + 1) % 3]!, true));
    const seconds = fragmented.map((s, i) => s.inflateFrame(halves[i]![1]!, true));
    for (let i = 0; i < 3; i++) {
      expect(Buffer.concat([firsts[i]!, seconds[i]!])).toEqual(texts[i]);
      expect(wholes[i]).toEqual(texts[(i + 1) % 3]);
    }
    for (const c of [...fragmented, ...whole, ...clients]) c.close();
  });

  it('fails corrupt data with 1007, and keeps failing, without breaking the shared inflater', () => {
    const p = params({ serverNoContextTakeover: true });
    const bad = new PerMessageDeflate('client', p, onThread);
    const good = new PerMessageDeflate('client', p, onThread);
    for (let i = 0; i < 2; i++) {
      try {
        bad.inflateFrame(hex('ff ff ff ff'), true);
        expect.fail('expected a ProtocolError');
      } catch (err) {
        expectProtocolError(err, 'WS_ERR_INVALID_COMPRESSED_DATA', 1007);
      }
    }
    expect(good.inflateFrame(hex('f2 48 cd c9 c9 07 00'), true)).toEqual(HELLO);
    bad.close();
    good.close();
  });

  it('fails a message past maxMessageSize with 1009, counting all its frames, and stops a bomb near the limit', () => {
    const text = Buffer.from('abcdefgh'.repeat(1000)); // 8000 bytes
    const server = new PerMessageDeflate('server', params(), onThread);
    const wire = server.compressSync(text);
    const exact = new PerMessageDeflate('client', params(), { maxMessageSize: 8000, onThread: true });
    expect(inflate(exact, split(wire, [5, 10]))).toEqual(text);
    const small = new PerMessageDeflate('client', params(), { maxMessageSize: 7999, onThread: true });
    expect(() => inflate(small, split(wire, [5, 10]))).toThrow(/exceeds 7999/);

    const run = deflateRawSync(Buffer.alloc(1 << 20), { level: 9, finishFlush: constants.Z_SYNC_FLUSH });
    const bomb = Buffer.concat(Array.from({ length: 1024 }, () => run)); // 1 GiB of zeros in ~1 MiB
    const limit = 4 << 20;
    const shared = new PerMessageDeflate('client', params({ serverNoContextTakeover: true }), { maxMessageSize: limit, onThread: true });
    const before = process.memoryUsage().arrayBuffers;
    try {
      shared.inflateFrame(bomb, true);
      expect.fail('expected 1009');
    } catch (err) {
      expectProtocolError(err, 'WS_ERR_MESSAGE_TOO_BIG', 1009);
    }
    // At most the limit and one 64 KiB chunk were ever produced.
    expect(process.memoryUsage().arrayBuffers - before).toBeLessThan(limit + 2 * 65536);
    // The thread's shared inflater is fine for the next connection.
    const next = new PerMessageDeflate('client', params({ serverNoContextTakeover: true }), onThread);
    expect(next.inflateFrame(hex('f2 48 cd c9 c9 07 00'), true)).toEqual(HELLO);
    for (const c of [server, exact, small, shared, next]) c.close();
  });

  it('compresses better with context takeover than without, as the peer inflates it', () => {
    const tick = Buffer.from('{"type":"tick","symbol":"ACME","price":101.25,"volume":3000}');
    const kept = new PerMessageDeflate('server', params(), onThread);
    const fresh = new PerMessageDeflate('server', params({ serverNoContextTakeover: true }), onThread);
    const peer = new PerMessageDeflate('client', params(), onThread);
    let keptBytes = 0;
    let freshBytes = 0;
    for (let i = 0; i < 20; i++) {
      const out = kept.compressSync(tick);
      keptBytes += out.length;
      freshBytes += fresh.compressSync(tick).length;
      expect(peer.inflateFrame(out, true)).toEqual(tick);
    }
    expect(keptBytes).toBeLessThan(freshBytes / 2);
    for (const c of [kept, fresh, peer]) c.close();
  });
});

// --- window sizes, 8 in particular --------------------------------------------------------------

describe('window sizes', () => {
  it('never references past the negotiated window, 8 included (checked by our own decoder)', async () => {
    const probe = windowProbe(7);
    for (const bits of ALL_BITS) {
      for (const noContext of [false, true]) {
        const p = params({ serverMaxWindowBits: bits, serverNoContextTakeover: noContext });
        const server = new PerMessageDeflate('server', p, { maxMessageSize: 1 << 20, level: 9 });
        // Two messages; with context takeover the second can reach back into the first.
        const wire = await Promise.all([compress(server, probe), compress(server, probe)]);
        const streams = noContext ? wire.map((w) => [w]) : [wire];
        for (const messages of streams) {
          const { out, maxDistance } = inflateWithMaxDistance(Buffer.concat(messages.flatMap((m) => [m, hex('00 00 ff ff')])));
          expect(out).toEqual(Buffer.concat(messages.map(() => probe)));
          expect(maxDistance).toBeLessThanOrEqual(1 << bits);
          // The window is actually used (zlib keeps matches within w_size - 262).
          expect(maxDistance).toBeGreaterThan(bits === 8 ? 128 : (1 << (bits - 1)) - 262);
        }
        const shared = deflateMessageShared(probe, bits, 9);
        expect(inflateWithMaxDistance(Buffer.concat([shared, hex('00 00 ff ff')])).maxDistance).toBeLessThanOrEqual(1 << bits);
        server.close();
      }
    }
  });

  it('inflates an 8-bit peer that reaches back exactly 256 bytes across messages', async () => {
    // Message 1: a stored block of 256 bytes. Message 2: a fixed-Huffman block copying
    // 10 bytes from distance 256 (RFC 1951 §3.2.6). Each ends with the header of the sync
    // flush's empty stored block, whose LEN/NLEN are the removed 00 00 ff ff.
    const history = Buffer.from(Array.from({ length: 256 }, (_, i) => (i * 7 + 3) & 0xff));
    const first = Buffer.concat([hex('00 00 01 ff fe'), history, hex('00')]);
    const w: number[] = [];
    let acc = 0;
    let n = 0;
    const put = (value: number, count: number): void => {
      acc |= value << n;
      n += count;
      while (n >= 8) {
        w.push(acc & 0xff);
        acc >>>= 8;
        n -= 8;
      }
    };
    const putCode = (code: number, count: number): void => {
      for (let i = count - 1; i >= 0; i--) put((code >> i) & 1, 1); // Huffman codes go MSB first
    };
    put(0, 1); // BFINAL 0
    put(1, 2); // BTYPE 01, fixed Huffman
    putCode(264 - 256, 7); // length 10
    putCode(15, 5); // distance code 15: 193..256
    put(63, 6); // + 63 = 256
    putCode(0, 7); // end of block
    put(0, 3); // the empty stored block's header; its LEN/NLEN are the removed trailer
    if (n > 0) w.push(acc);
    const second = Buffer.from(w);

    const p = params({ serverMaxWindowBits: 8 });
    const client = new PerMessageDeflate('client', p, { maxMessageSize: 1024 });
    expect(await decompress(client, first, true)).toEqual(history);
    expect(await decompress(client, second, true)).toEqual(history.subarray(0, 10));
    client.close();
    expect(inflateWithMaxDistance(Buffer.concat([first, hex('00 00 ff ff'), second, hex('00 00 ff ff')])).maxDistance).toBe(256);
  });
});

// --- interop with ws's PerMessageDeflate ---------------------------------------------------------

describe('interop with ws', () => {
  const texts = [
    Buffer.from('{"type":"tick","symbol":"ACME","price":101.25}'.repeat(40)),
    windowProbe(3),
    Buffer.from('{"type":"tick","symbol":"ACME","price":101.25}'.repeat(40)),
    Buffer.alloc(0),
    randomBytes(3000),
  ];

  async function exchange(ours: PerMessageDeflate, theirs: WsPerMessageDeflate): Promise<void> {
    for (const m of texts) expect(await wsDecompress(theirs, await compress(ours, m))).toEqual(m);
    for (const m of texts) expect(await decompress(ours, await wsCompress(theirs, m), true)).toEqual(m);
  }

  const wsOffers: Record<string, unknown>[] = [];
  // A ws client given clientNoContextTakeover: false refuses a server that asks for it (ws's
  // own rule, RFC 7692 lets the server ask), so `undefined`, ws's default, stands for "not offered".
  for (const serverNoContextTakeover of [false, true])
    for (const clientNoContextTakeover of [undefined, true])
      for (const bits of [undefined, 8, 9, 15])
        wsOffers.push({ serverNoContextTakeover, clientNoContextTakeover, serverMaxWindowBits: bits, clientMaxWindowBits: bits });

  it('our server with a ws client: negotiation and data both ways', async () => {
    for (const wsOptions of wsOffers) {
      for (const opts of [shared, dedicated, { compressor: 'dedicated', decompressor: 'shared' }, { compressor: 'shared', decompressor: 'dedicated', serverMaxWindowBits: 10, clientMaxWindowBits: 9 }] as const) {
        const wsClient = new WsPerMessageDeflate({ ...wsOptions, isServer: false });
        const offer = wsExtension.format({ 'permessage-deflate': wsClient.offer() });
        const r = acceptDeflateOffer(parseExtensionHeader(offer), opts);
        expect(r, offer).not.toBeNull();
        wsClient.accept(wsExtension.parse(r!.response)['permessage-deflate']!);
        const server = new PerMessageDeflate('server', r!.params, { maxMessageSize: 1 << 20 });
        await exchange(server, wsClient);
        server.close();
        wsClient.cleanup();
      }
    }
  });

  it('our client with a ws server: negotiation and data both ways', async () => {
    const ourOffers: DeflateOfferOptions[] = [];
    for (const serverNoContextTakeover of [false, true])
      for (const clientNoContextTakeover of [false, true])
        for (const bits of [undefined, 8, 9, 15] as const)
          ourOffers.push({ serverNoContextTakeover, clientNoContextTakeover, serverMaxWindowBits: bits, clientMaxWindowBits: bits ?? true });
    for (const offered of ourOffers) {
      const wsServer = new WsPerMessageDeflate({ isServer: true });
      const accepted = wsServer.accept(wsExtension.parse(buildDeflateOffer(offered))['permessage-deflate']!);
      const response = wsExtension.format({ 'permessage-deflate': [accepted] });
      const p = acceptDeflateResponse(parseExtensionHeader(response), offered);
      const client = new PerMessageDeflate('client', p, { maxMessageSize: 1 << 20 });
      await exchange(client, wsServer);
      client.close();
      wsServer.cleanup();
    }
  });
});

describe('compressFragmentSync (a message sent in fragments, RFC 7692 §6.1)', () => {
  const pieces = (text: string, cuts: readonly number[]): Buffer[] => split(Buffer.from(text), cuts);
  const TEXT = '{"token":"streamed","n":1} '.repeat(300);
  const CASES: readonly [string, readonly number[]][] = [
    ['two halves', [TEXT.length >> 1]],
    ['many pieces', [1, 2, 100, 101, 2000, 5000]],
    ['an empty first piece', [0]],
    ['an empty last piece', [TEXT.length]],
  ];

  // Our direction without context (on the thread, and on the older split's one-shot calls), and with it.
  const servers = [
    { name: 'no context, on the thread', p: params({ serverNoContextTakeover: true }), onThread: true },
    { name: 'no context, one-shot calls', p: params({ serverNoContextTakeover: true }), onThread: false },
    { name: 'context kept', p: params(), onThread: true },
    { name: 'context kept, window 9', p: params({ serverMaxWindowBits: 9 }), onThread: true },
  ];

  it.each(servers)('$name: each fragmented message inflates back, and so does a whole one after it, for us and for ws', async ({ p, onThread }) => {
    const server = new PerMessageDeflate('server', p, { maxMessageSize: 1 << 22, onThread });
    const ours = new PerMessageDeflate('client', p, { maxMessageSize: 1 << 22, onThread: true });
    const theirs = new WsPerMessageDeflate({ isServer: false, serverNoContextTakeover: p.serverNoContextTakeover, serverMaxWindowBits: p.serverMaxWindowBits });
    const response = `permessage-deflate${p.serverNoContextTakeover ? '; server_no_context_takeover' : ''}; server_max_window_bits=${p.serverMaxWindowBits}`;
    theirs.accept(wsExtension.parse(response)['permessage-deflate']!);
    const inflate = (payloads: readonly Buffer[]): string => Buffer.concat(payloads.map((payload, i) => ours.inflateFrame(payload, i === payloads.length - 1))).toString();
    for (const [, cuts] of CASES) {
      const fragments = pieces(TEXT, cuts);
      const payloads = fragments.map((piece, i) => server.compressFragmentSync(piece, i === fragments.length - 1));
      // Every piece but the last ends on a sync flush: the receiver inflates as it arrives.
      for (const payload of payloads.slice(0, -1)) if (payload.length > 0) expect(payload.subarray(-4)).toEqual(hex('0000ffff'));
      expect(inflate(payloads)).toBe(TEXT);
      expect((await wsDecompress(theirs, Buffer.concat(payloads))).toString()).toBe(TEXT);
      const whole = server.compressSync(Buffer.from('after the stream '.repeat(20)));
      expect(inflate([whole])).toBe('after the stream '.repeat(20));
      expect((await wsDecompress(theirs, whole)).toString()).toBe('after the stream '.repeat(20));
    }
    server.close();
    ours.close();
    theirs.cleanup();
  });

  it('makes an empty message of empty pieces the one byte 0x00 (§7.2.3.6)', async () => {
    for (const p of [params({ serverNoContextTakeover: true }), params()]) {
      const server = new PerMessageDeflate('server', p, { maxMessageSize: 1024 });
      expect(server.compressFragmentSync(Buffer.alloc(0), false)).toEqual(Buffer.alloc(0));
      expect(server.compressFragmentSync(Buffer.alloc(0), true)).toEqual(hex('00'));
      server.close();
    }
  });

  it('is not there where our direction keeps context on the older split (zlib pool)', () => {
    const server = new PerMessageDeflate('server', params(), { maxMessageSize: 1024, onThread: false });
    expect(server.canCompressSync).toBe(false);
    expect(() => server.compressFragmentSync(HELLO, true)).toThrow(/canCompressSync/);
    server.close();
  });
});
