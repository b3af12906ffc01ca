import { randomBytes } from 'node:crypto';
import { constants, deflateRawSync, inflateRawSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { OutputLimitError, ZlibContext, zlibContextSupported } from '../src/shared/zlib-context.ts';

const SYNC = { finishFlush: constants.Z_SYNC_FLUSH };
const json = (n: number): Buffer =>
  Buffer.from(JSON.stringify(Array.from({ length: n }, (_, i) => ({ id: i, user: `user${i % 17}`, text: `hello ${i}`, at: 1_700_000_000_000 + i * 37 }))));

describe('ZlibContext', () => {
  // If a Node release changes the internals the one-shot functions use, this fails here instead
  // of every server silently falling back to one zlib stream per message.
  it('drives zlib synchronously on this Node (the load-time probe passes)', () => {
    expect(zlibContextSupported).toBe(true);
    expect(ZlibContext.probe()).toBe(true);
    expect(ZlibContext.create('deflate', { windowBits: 15 })).not.toBeNull();
  });

  it('deflates exactly as deflateRawSync does, message after message with a reset between', () => {
    const deflate = ZlibContext.create('deflate', { windowBits: 15, level: 1, memLevel: 8 })!;
    for (const size of [1, 100, 4000, 70_000, 300_000]) {
      const input = json(Math.ceil(size / 60)).subarray(0, size);
      expect(deflate.process(input)).toEqual(deflateRawSync(input, { ...SYNC, windowBits: 15, level: 1, memLevel: 8 }));
      deflate.reset();
    }
    deflate.close();
  });

  it('inflates across many scratch chunks, and with a tail', () => {
    const input = randomBytes(200_000); // incompressible: output and input both span chunks
    const wire = deflateRawSync(input, SYNC);
    const inflate = ZlibContext.create('inflate', { windowBits: 15 })!;
    expect(inflate.process(wire)).toEqual(input);
    inflate.reset();
    const cut = wire.length - 10;
    expect(inflate.process(wire.subarray(0, cut), Infinity, wire.subarray(cut))).toEqual(input);
    inflate.close();
  });

  it('keeps context when not reset: a second message refers back to the first', () => {
    const deflate = ZlibContext.create('deflate', { windowBits: 15, level: 1 })!;
    const inflate = ZlibContext.create('inflate', { windowBits: 15 })!;
    const message = Buffer.from(randomBytes(3000).toString('base64'));
    const first = deflate.process(message);
    const second = deflate.process(message);
    expect(second.length).toBeLessThan(first.length / 10);
    expect(inflate.process(first)).toEqual(message);
    expect(inflate.process(second)).toEqual(message);
    // The same second message without the first is unreadable: it depends on the window.
    expect(() => inflateRawSync(second, SYNC)).toThrow();
    deflate.close();
    inflate.close();
  });

  it('throws OutputLimitError past the limit, having produced no more than one chunk more, and is usable after reset', () => {
    const bomb = deflateRawSync(Buffer.alloc(50 << 20), { ...SYNC, level: 9 }); // 50 MiB of zeros
    const inflate = ZlibContext.create('inflate', { windowBits: 15 })!;
    const before = process.memoryUsage().arrayBuffers;
    expect(() => inflate.process(bomb, 1 << 20)).toThrow(OutputLimitError);
    expect(process.memoryUsage().arrayBuffers - before).toBeLessThan((1 << 20) + 3 * 65536);
    inflate.reset();
    expect(inflate.process(deflateRawSync(Buffer.from('after'), SYNC)).toString()).toBe('after');
    inflate.close();
  });

  it('reports a zlib error, and refuses any further use (a closed handle must never be written)', () => {
    const inflate = ZlibContext.create('inflate', { windowBits: 15 })!;
    expect(() => inflate.process(Buffer.from([0xff, 0xff, 0xff, 0xff]))).toThrow(/invalid block type/);
    expect(inflate.failed).toBe(true);
    expect(() => inflate.process(Buffer.from([0x00]))).toThrow();
    inflate.reset(); // harmless on a failed context
    const closed = ZlibContext.create('deflate', { windowBits: 15 })!;
    closed.close();
    expect(() => closed.process(Buffer.from('x'))).toThrow(/closed/);
  });

  it('notices the end of a DEFLATE stream (a final block) and ignores the rest until reset', () => {
    const inflate = ZlibContext.create('inflate', { windowBits: 15 })!;
    const final = deflateRawSync(Buffer.from('Hello')); // Z_FINISH: BFINAL set
    expect(inflate.process(Buffer.concat([final, Buffer.from([0x01, 0x02])])).toString()).toBe('Hello');
    expect(inflate.ended).toBe(true);
    expect(inflate.process(Buffer.from([0x03])).length).toBe(0);
    inflate.reset();
    expect(inflate.ended).toBe(false);
    expect(inflate.process(deflateRawSync(Buffer.from('again'), SYNC)).toString()).toBe('again');
    inflate.close();
  });
});
