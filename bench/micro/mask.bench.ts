/**
 * RFC 6455 §5.3 masking. Unmasking is an in-place XOR, so the timed calls simply toggle the same
 * buffer: no copies on either side. Short inputs are batched (see `batch`) so that one timed call
 * lasts well above the timer's resolution.
 *
 * Baselines: ws's exported `unmask`/`mask` (which call the bufferutil addon from 32/48 bytes up and
 * a JS byte loop below), the addon called directly, and ws's JS fallback as it runs without the
 * addon (a second copy of buffer-util.js loaded with WS_NO_BUFFER_UTIL=1).
 */
import { maskInto, unmask } from '../../src/shared/mask.ts';
import type { BenchCase, Subject } from './case.ts';
import { assertSameBytes } from './case.ts';
import { alignedCopy, randomBytes } from './fixtures.ts';
import type { WsBufferUtil } from './ws-internals.ts';
import { bufferUtil, bufferutilAddon, wsJs, wsMaskImpl } from './ws-internals.ts';

const KEY = Buffer.from([0x37, 0xfa, 0x21, 0x3d]);

const sizeName = (n: number): string => (n >= 1 << 20 ? `${n >> 20} MiB` : n >= 1024 ? `${n >> 10} KiB` : `${n} B`);
/** Calls per timed iteration: about 64 KiB of work, at least one call. */
const batchFor = (n: number): number => Math.max(1, Math.floor(65536 / n));

function unmaskSubject(label: string, buf: Buffer, batch: number, call: (buf: Buffer) => void): Subject {
  return {
    label,
    batch,
    fn: () => {
      for (let i = 0; i < batch; i++) call(buf);
    },
  };
}

function unmaskCases(size: number, byteOffset: number): BenchCase[] {
  const input = randomBytes(size, size);
  // Each subject gets its own buffer at the same alignment.
  const place = (): Buffer => alignedCopy(Buffer.concat([Buffer.alloc(byteOffset), input])).subarray(byteOffset);
  const batch = batchFor(size);
  const name = `unmask ${sizeName(size)}${byteOffset & 3 ? `, payload at offset ${byteOffset}` : ''}`;

  const ours = unmaskSubject('ours unmask', place(), batch, (b) => unmask(b, KEY));
  const baselines: [Subject, (b: Buffer) => void][] = [];
  const add = (label: string, impl: WsBufferUtil): void => {
    const call = (b: Buffer): void => impl.unmask(b, KEY);
    baselines.push([unmaskSubject(label, place(), batch, call), call]);
  };
  add(size < 32 ? 'ws unmask (JS below 32 B)' : `ws unmask (${wsMaskImpl})`, bufferUtil);
  if (size < 32 && bufferutilAddon !== null) add('bufferutil addon direct', bufferutilAddon);
  add('ws JS fallback', wsJs.bufferUtil);

  return baselines.map(([baseline, call]) => ({
    name,
    ours,
    baseline,
    bytes: size,
    verify() {
      const a = place();
      const b = place();
      unmask(a, KEY);
      call(b);
      assertSameBytes(`${name}: ${baseline.label}`, a, b);
    },
  }));
}

/** Client send: mask from the user's buffer into the outgoing one, the source left untouched. */
function maskIntoCase(size: number, srcOffset = 0): BenchCase {
  const src = alignedCopy(Buffer.concat([Buffer.alloc(srcOffset), randomBytes(size, size + 1)])).subarray(srcOffset);
  const batch = batchFor(size);
  const oursOut = alignedCopy(Buffer.alloc(size));
  const wsOut = alignedCopy(Buffer.alloc(size));
  const name = `mask into new buffer ${sizeName(size)} (client send)${srcOffset & 3 ? `, source at offset ${srcOffset}` : ''}`;
  return {
    name,
    ours: {
      label: 'ours maskInto',
      batch,
      fn: () => {
        for (let i = 0; i < batch; i++) maskInto(src, KEY, 0, oursOut, 0);
      },
    },
    baseline: {
      label: size < 48 ? 'ws mask (JS below 48 B)' : `ws mask (${wsMaskImpl})`,
      batch,
      fn: () => {
        for (let i = 0; i < batch; i++) bufferUtil.mask(src, KEY, wsOut, 0, size);
      },
    },
    bytes: size,
    verify() {
      maskInto(src, KEY, 0, oursOut, 0);
      bufferUtil.mask(src, KEY, wsOut, 0, size);
      assertSameBytes(name, oursOut, wsOut);
    },
  };
}

export const cases: BenchCase[] = [
  ...unmaskCases(16, 0),
  ...unmaskCases(1024, 0),
  ...unmaskCases(64 * 1024, 0),
  // After a 64-bit length header (2 + 8 + 4 bytes): not 4-byte aligned.
  ...unmaskCases(64 * 1024, 14),
  ...unmaskCases(1024 * 1024, 0),
  maskIntoCase(1024),
  maskIntoCase(64 * 1024),
  // A user's buffer need not be 4-byte aligned (a slice of a larger message, say).
  maskIntoCase(64 * 1024, 1),
];
