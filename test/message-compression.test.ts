import { describe, it, expect, vi } from 'vitest';
import { randomBytes } from 'node:crypto';
import { ProtocolError } from '../src/shared/errors.ts';
import { SYNC_COMPRESS_LIMIT, SYNC_INFLATE_LIMIT, compressionWanted, messageCompression } from '../src/shared/message-compression.ts';
import { PerMessageDeflate, deflateMessageShared } from '../src/shared/permessage-deflate.ts';
import type { DeflateParams } from '../src/shared/permessage-deflate.ts';

const params = (overrides: Partial<DeflateParams> = {}): DeflateParams => ({
  serverNoContextTakeover: true,
  clientNoContextTakeover: true,
  serverMaxWindowBits: 15,
  clientMaxWindowBits: 15,
  ...overrides,
});

/** A codec on the older split (one-shot sync calls, zlib's pool): what most tests here pin down. */
const codec = (role: 'server' | 'client' = 'server', p: Partial<DeflateParams> = {}, threshold = 32, onThread = false): PerMessageDeflate =>
  new PerMessageDeflate(role, params(p), { maxMessageSize: 1 << 20, threshold, onThread });

/** Runs one decompress and tells whether its callback ran before the call returned. */
function decompress(compression: ReturnType<typeof messageCompression>, data: Buffer, fin: boolean) {
  let result: { error: ProtocolError | null; data?: Buffer } | null = null;
  const settled = new Promise<{ error: ProtocolError | null; data?: Buffer }>((resolve) =>
    compression.inflater.decompress(data, fin, (error, out) => {
      result = { error, data: out };
      resolve(result);
    }),
  );
  return { sync: result !== null, settled };
}

describe('compressionWanted', () => {
  it('compresses from the threshold up unless the sender says no', () => {
    expect(compressionWanted(128, 128, undefined)).toBe(true);
    expect(compressionWanted(128, 127, undefined)).toBe(false);
    expect(compressionWanted(0, 0, undefined)).toBe(true);
    expect(compressionWanted(0, 1000, false)).toBe(false);
    expect(compressionWanted(0, 1000, true)).toBe(true);
    // Asking for compression does not lift the threshold.
    expect(compressionWanted(128, 10, true)).toBe(false);
  });
});

describe('messageCompression inflater', () => {
  it('inflates a small single-frame message from a peer without context on this thread', async () => {
    const c = codec();
    const compression = messageCompression(c);
    const message = Buffer.from('hello hello hello hello');
    const run = decompress(compression, deflateMessageShared(message, 15), true);
    expect(run.sync).toBe(true);
    const { error, data } = await run.settled;
    expect(error).toBeNull();
    expect(data!.equals(message)).toBe(true);
    compression.close();
  });

  it('reports corrupt data of a sync inflate through the callback as 1007', async () => {
    const compression = messageCompression(codec());
    const run = decompress(compression, Buffer.from([0xff, 0xff, 0xff, 0xff]), true);
    expect(run.sync).toBe(true);
    const { error } = await run.settled;
    expect(error).toBeInstanceOf(ProtocolError);
    expect(error!.closeCode).toBe(1007);
    compression.close();
  });

  it('inflates on the thread pool above SYNC_INFLATE_LIMIT compressed bytes', async () => {
    const c = codec();
    const sync = vi.spyOn(c, 'decompressSync');
    const compression = messageCompression(c);
    // Random bytes do not compress: the frame stays above the limit.
    const big = randomBytes(SYNC_INFLATE_LIMIT + 100);
    const compressed = deflateMessageShared(big, 15);
    expect(compressed.length).toBeGreaterThan(SYNC_INFLATE_LIMIT);
    const run = decompress(compression, compressed, true);
    expect(run.sync).toBe(false);
    const { error, data } = await run.settled;
    expect(error).toBeNull();
    expect(data!.equals(big)).toBe(true);
    expect(sync).not.toHaveBeenCalled();
    compression.close();
  });

  it('takes the sync path up to exactly SYNC_INFLATE_LIMIT bytes', () => {
    const c = codec();
    const sync = vi.spyOn(c, 'decompressSync').mockReturnValue(Buffer.from('x'));
    const async = vi.spyOn(c, 'decompress').mockImplementation(() => {});
    const compression = messageCompression(c);
    compression.inflater.decompress(Buffer.alloc(SYNC_INFLATE_LIMIT), true, () => {});
    expect(sync).toHaveBeenCalledTimes(1);
    compression.inflater.decompress(Buffer.alloc(SYNC_INFLATE_LIMIT + 1), true, () => {});
    expect(async).toHaveBeenCalledTimes(1);
    expect(sync).toHaveBeenCalledTimes(1);
  });

  it('inflates every frame of a fragmented message on the thread pool, then goes back to sync', () => {
    const c = codec();
    const sync = vi.spyOn(c, 'decompressSync').mockReturnValue(Buffer.from('x'));
    const async = vi.spyOn(c, 'decompress').mockImplementation(() => {});
    const compression = messageCompression(c);
    compression.inflater.decompress(Buffer.alloc(10), false, () => {});
    compression.inflater.decompress(Buffer.alloc(10), false, () => {});
    // The last frame is small and final, but belongs to a message that began asynchronously.
    compression.inflater.decompress(Buffer.alloc(10), true, () => {});
    expect(async.mock.calls.map(([, fin]) => fin)).toEqual([false, false, true]);
    expect(sync).not.toHaveBeenCalled();
    compression.inflater.decompress(Buffer.alloc(10), true, () => {});
    expect(sync).toHaveBeenCalledTimes(1);
    expect(async).toHaveBeenCalledTimes(3);
  });

  it('inflates on the thread pool when the peer keeps context', async () => {
    const c = codec('server', { clientNoContextTakeover: false });
    const compression = messageCompression(c);
    const message = Buffer.from('context kept');
    const run = decompress(compression, deflateMessageShared(message, 15), true);
    expect(run.sync).toBe(false);
    const { data } = await run.settled;
    expect(data!.equals(message)).toBe(true);
    compression.close();
  });
});

describe('messageCompression sending side', () => {
  it('offers compressSync only when our direction keeps no context, with the codec’s threshold', () => {
    const shared = messageCompression(codec('server', {}, 77));
    expect(shared.threshold).toBe(77);
    expect(shared.syncLimit).toBe(SYNC_COMPRESS_LIMIT);
    const message = Buffer.from('abc'.repeat(100));
    expect(shared.compressSync!(message).equals(deflateMessageShared(message, 15))).toBe(true);
    expect(messageCompression(codec('server', { serverNoContextTakeover: false })).compressSync).toBeNull();
    // A client's direction is client_no_context_takeover.
    expect(messageCompression(codec('client', { clientNoContextTakeover: false })).compressSync).toBeNull();
    expect(messageCompression(codec('client', { serverNoContextTakeover: false })).compressSync).not.toBeNull();
  });

  it('close() closes the codec', () => {
    const c = codec();
    const close = vi.spyOn(c, 'close');
    messageCompression(c).close();
    expect(close).toHaveBeenCalledTimes(1);
  });
});

describe('window and afterSharedFrame', () => {
  it('reports our direction’s negotiated window, on either side', () => {
    expect(messageCompression(codec('server', { serverMaxWindowBits: 12, clientMaxWindowBits: 9 })).window).toBe(12);
    expect(messageCompression(codec('client', { serverMaxWindowBits: 12, clientMaxWindowBits: 9 })).window).toBe(9);
  });

  it('asks the codec to restart a kept context', () => {
    const c = codec('server', { serverNoContextTakeover: false }, 0, true);
    const restart = vi.spyOn(c, 'restartDeflate');
    messageCompression(c).afterSharedFrame();
    expect(restart).toHaveBeenCalledTimes(1);
    c.close();
  });
});

describe('messageCompression with zlib contexts on the thread', () => {
  it('inflates every frame synchronously, fragmented or not, with context kept or not', () => {
    for (const serverNoContextTakeover of [false, true]) {
      const server = codec('server', { serverNoContextTakeover }, 0, true);
      const client = messageCompression(codec('client', { serverNoContextTakeover }, 0, true));
      const text = Buffer.from('{"n":1,"text":"hello hello hello"}'.repeat(300));
      for (let round = 0; round < 3; round++) {
        const wire = server.compressSync(text);
        const half = wire.length >> 1;
        const got: Buffer[] = [];
        let calledBack = 0;
        for (const [frame, fin] of [[wire.subarray(0, half), false], [wire.subarray(half), true]] as const) {
          client.inflater.decompress(frame, fin, (error, data) => {
            expect(error).toBeNull();
            got.push(data!);
            calledBack++;
          });
          // Called back before decompress returns: nothing waits for zlib's pool.
          expect(calledBack).toBe(fin ? 2 : 1);
        }
        expect(Buffer.concat(got)).toEqual(text);
      }
      server.close();
      client.close();
    }
  });

  it('compresses synchronously in both context modes, at any size', () => {
    const kept = messageCompression(codec('server', { serverNoContextTakeover: false }, 0, true));
    const fresh = messageCompression(codec('server', {}, 0, true));
    for (const compression of [kept, fresh]) {
      expect(compression.compressSync).not.toBeNull();
      expect(compression.syncLimit).toBe(Infinity);
    }
    kept.close();
    fresh.close();
  });

  it('reports corrupt data and oversized messages through the callback, synchronously', () => {
    const client = messageCompression(new PerMessageDeflate('client', params({}), { maxMessageSize: 100, onThread: true }));
    const errors: number[] = [];
    client.inflater.decompress(deflateMessageShared(Buffer.alloc(1000, 0x61), 15), true, (error) => errors.push(error!.closeCode));
    expect(errors).toEqual([1009]);
    client.close();
    const other = messageCompression(new PerMessageDeflate('client', params({}), { maxMessageSize: 100, onThread: true }));
    other.inflater.decompress(Buffer.from([0xff, 0xff, 0xff]), true, (error) => errors.push(error!.closeCode));
    expect(errors).toEqual([1009, 1007]);
    other.close();
  });
});
