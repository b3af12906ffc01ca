import { randomBytes } from 'node:crypto';
import { constants, inflateRawSync } from 'node:zlib';
import { afterEach, describe, expect, it } from 'vitest';
import { SYNC_COMPRESS_LIMIT, messageCompression } from '../src/shared/message-compression.ts';
import type { MessageCompression } from '../src/shared/message-compression.ts';
import { MessageEncoder } from '../src/shared/message-encoder.ts';
import type { EncoderOps, FrameTarget } from '../src/shared/message-encoder.ts';
import { Opcode } from '../src/shared/opcodes.ts';
import { PerMessageDeflate } from '../src/shared/permessage-deflate.ts';
import type { DeflateParams } from '../src/shared/permessage-deflate.ts';
import { Counter } from '../src/shared/worker-counters.ts';

interface Framed {
  readonly opcode: Opcode;
  readonly payload: Buffer;
  readonly fin: boolean;
  readonly rsv1: boolean;
}

/** Where frames go, recorded (a copy: the encoder may hand out a view). */
class Target implements FrameTarget {
  readonly frames: Framed[] = [];
  frame(opcode: Opcode, payload: Uint8Array, fin: boolean, rsv1: boolean): void {
    this.frames.push({ opcode, payload: Buffer.from(payload), fin, rsv1 });
  }
}

/** The connection the encoder works for: whether it still takes data, and the completions it hears. */
class Owner {
  acceptsData = true;
  readonly completions: { error: Error | null; framesSoFar: number; busy: boolean }[] = [];
  encoder: MessageEncoder<Owner> | null = null;
  target: Target | null = null;
}

const ops: EncoderOps<Owner> = {
  acceptsData: (owner) => owner.acceptsData,
  compressed(owner, error) {
    owner.completions.push({ error, framesSoFar: owner.target!.frames.length, busy: owner.encoder!.busy });
  },
};

const params = (serverNoContextTakeover: boolean): DeflateParams => ({
  serverNoContextTakeover,
  clientNoContextTakeover: false,
  serverMaxWindowBits: 15,
  clientMaxWindowBits: 15,
});

/** Codecs made by a test, closed after it. */
const codecs: PerMessageDeflate[] = [];
afterEach(() => {
  for (const codec of codecs.splice(0)) codec.close();
});

/**
 * A server-side encoder over the real codec, on the older split unless `onThread` (then every
 * message compresses on the thread); `noContext` decides whether compressSync exists there.
 */
function setup(noContext: boolean, counters: Float64Array | null = new Float64Array(32), onThread = false) {
  const codec = new PerMessageDeflate('server', params(noContext), { maxMessageSize: 1 << 24, onThread });
  codecs.push(codec);
  const compression = messageCompression(codec);
  return fromCompression(compression, counters, codec);
}

function fromCompression(compression: MessageCompression, counters: Float64Array | null = new Float64Array(32), codec: PerMessageDeflate | null = null) {
  const owner = new Owner();
  const target = new Target();
  const encoder = new MessageEncoder(target, compression, ops, owner, counters);
  owner.encoder = encoder;
  owner.target = target;
  return { owner, target, encoder, counters, compression, codec };
}

/** RFC 7692 §7.2.2: a message inflates with the 00 00 FF FF tail put back. */
const inflate = (payload: Buffer): Buffer =>
  inflateRawSync(Buffer.concat([payload, Buffer.from([0, 0, 0xff, 0xff])]), { finishFlush: constants.Z_SYNC_FLUSH });

/** Waits until the owner heard `n` completions. */
async function completions(owner: Owner, n: number): Promise<void> {
  for (let i = 0; i < 200 && owner.completions.length < n; i++) await new Promise((resolve) => setTimeout(resolve, 1));
  expect(owner.completions).toHaveLength(n);
}

const text = (size: number, seed = 'abcdefghij'): Buffer => Buffer.from(seed.repeat(Math.ceil(size / seed.length)).slice(0, size));

describe('MessageEncoder: on the calling thread (our direction keeps no context)', () => {
  it('frames the compressed message at once, FIN and RSV1 set, and it inflates back to the input', () => {
    const { encoder, target, owner, compression } = setup(true);
    expect(compression.compressSync).not.toBeNull();
    const input = text(1000);
    expect(encoder.encode(Opcode.Text, input)).toBe(true);
    expect(encoder.busy).toBe(false);
    expect(target.frames).toHaveLength(1);
    const [frame] = target.frames;
    expect([frame!.opcode, frame!.fin, frame!.rsv1]).toEqual([Opcode.Text, true, true]);
    expect(frame!.payload.length).toBeLessThan(input.length);
    expect(inflate(frame!.payload)).toEqual(input);
    expect(owner.completions).toEqual([]);
  });

  it('keeps the opcode: binary stays binary', () => {
    const { encoder, target } = setup(true);
    const input = Buffer.alloc(500, 7);
    encoder.encode(Opcode.Binary, input);
    expect(target.frames[0]!.opcode).toBe(Opcode.Binary);
    expect(inflate(target.frames[0]!.payload)).toEqual(input);
  });

  it('each message stands alone: every frame inflates without the ones before it', () => {
    const { encoder, target } = setup(true);
    const inputs = [text(300), text(300), text(300, 'xyz')];
    for (const input of inputs) encoder.encode(Opcode.Text, input);
    expect(target.frames.map((f) => inflate(f.payload))).toEqual(inputs);
  });

  it('counts the bytes given to deflate and the bytes it produced', () => {
    const { encoder, target, counters } = setup(true);
    encoder.encode(Opcode.Text, text(1000));
    encoder.encode(Opcode.Text, text(2000));
    const out = target.frames.reduce((sum, f) => sum + f.payload.length, 0);
    expect(counters![Counter.DeflateBytesIn]).toBe(3000);
    expect(counters![Counter.DeflateBytesOut]).toBe(out);
  });

  it('works without counters (the client)', () => {
    const { encoder, target } = setup(true, null);
    expect(encoder.encode(Opcode.Text, text(400))).toBe(true);
    expect(target.frames).toHaveLength(1);
  });

  it(`up to ${SYNC_COMPRESS_LIMIT} bytes stays on the thread; one byte more goes to the pool`, async () => {
    const { encoder, target, owner } = setup(true);
    expect(encoder.encode(Opcode.Binary, Buffer.alloc(SYNC_COMPRESS_LIMIT, 1))).toBe(true);
    const large = Buffer.alloc(SYNC_COMPRESS_LIMIT + 1, 2);
    expect(encoder.encode(Opcode.Binary, large)).toBe(false);
    expect(encoder.busy).toBe(true);
    expect(target.frames).toHaveLength(1);
    await completions(owner, 1);
    expect(owner.completions[0]).toEqual({ error: null, framesSoFar: 2, busy: false });
    expect(target.frames[1]!.rsv1).toBe(true);
    expect(inflate(target.frames[1]!.payload)).toEqual(large);
  });
});

describe('MessageEncoder: on zlib’s pool (our direction keeps context)', () => {
  it('is busy until the compression completes, then frames it before telling the owner', async () => {
    const { encoder, target, owner, compression } = setup(false);
    expect(compression.compressSync).toBeNull();
    const input = text(200);
    expect(encoder.encode(Opcode.Text, input)).toBe(false);
    expect(encoder.busy).toBe(true);
    expect(target.frames).toEqual([]);
    await completions(owner, 1);
    // Not busy any more when the owner hears of it, and the frame is already out.
    expect(owner.completions[0]).toEqual({ error: null, framesSoFar: 1, busy: false });
    expect(encoder.busy).toBe(false);
    const [frame] = target.frames;
    expect([frame!.opcode, frame!.fin, frame!.rsv1]).toEqual([Opcode.Text, true, true]);
    expect(inflate(frame!.payload)).toEqual(input);
  });

  it('messages sent one after another keep their order and share context, as the peer inflates them', async () => {
    const { encoder, target, owner, counters } = setup(false);
    const inputs = [text(300, 'hello world '), text(300, 'hello world '), Buffer.from('{"n":3} hello world hello world hello world')];
    for (let i = 0; i < inputs.length; i++) {
      encoder.encode(i === 2 ? Opcode.Binary : Opcode.Text, inputs[i]!);
      await completions(owner, i + 1);
    }
    expect(target.frames.map((f) => f.opcode)).toEqual([Opcode.Text, Opcode.Text, Opcode.Binary]);
    // With context takeover the second copy compresses to almost nothing.
    expect(target.frames[1]!.payload.length).toBeLessThan(target.frames[0]!.payload.length / 2);
    const peer = new PerMessageDeflate('client', params(false), { maxMessageSize: 1 << 24, onThread: false });
    codecs.push(peer);
    const inflated: Buffer[] = [];
    for (const frame of target.frames) {
      inflated.push(await new Promise<Buffer>((resolve, reject) => peer.decompress(frame.payload, true, (error, data) => (error ? reject(error) : resolve(data!)))));
    }
    expect(inflated).toEqual(inputs);
    expect(counters![Counter.DeflateBytesIn]).toBe(inputs.reduce((sum, b) => sum + b.length, 0));
    expect(counters![Counter.DeflateBytesOut]).toBe(target.frames.reduce((sum, f) => sum + f.payload.length, 0));
  });

  it('discards the message when the owner no longer takes data (our close frame went out meanwhile)', async () => {
    const { encoder, target, owner, counters } = setup(false);
    encoder.encode(Opcode.Text, text(200));
    owner.acceptsData = false;
    await completions(owner, 1);
    expect(target.frames).toEqual([]);
    expect(owner.completions[0]!.error).toBeNull();
    expect(encoder.busy).toBe(false);
    expect(counters![Counter.DeflateBytesIn]).toBe(0);
  });

  it('reports a compression error to the owner, frames nothing, and is no longer busy', async () => {
    const failure = new Error('zlib gave up');
    const { encoder, target, owner } = fromCompression(fakeCompression((_data, callback) => setImmediate(() => callback(failure))));
    expect(encoder.encode(Opcode.Text, Buffer.from('x'))).toBe(false);
    await completions(owner, 1);
    expect(owner.completions[0]).toEqual({ error: failure, framesSoFar: 0, busy: false });
    expect(target.frames).toEqual([]);
  });

  it('a compression that yields nothing is an error too', async () => {
    const { encoder, target, owner } = fromCompression(fakeCompression((_data, callback) => setImmediate(() => callback(null))));
    encoder.encode(Opcode.Text, Buffer.from('x'));
    await completions(owner, 1);
    expect(owner.completions[0]!.error).toBeInstanceOf(Error);
    expect(owner.completions[0]!.error!.message).toMatch(/no output/);
    expect(target.frames).toEqual([]);
  });

  it('an empty message goes out as the one-byte empty block', async () => {
    const { encoder, target, owner } = setup(false);
    encoder.encode(Opcode.Text, Buffer.alloc(0));
    await completions(owner, 1);
    expect(target.frames[0]!.payload).toEqual(Buffer.from([0x00]));
    expect(inflate(target.frames[0]!.payload)).toEqual(Buffer.alloc(0));
  });
});

/** A MessageCompression with only the pool path, compressing as `compress` says. */
function fakeCompression(compress: MessageCompression['compress']): MessageCompression {
  return {
    inflater: { synchronous: false, decompress: () => undefined },
    threshold: 0,
    compressSync: null,
    syncLimit: SYNC_COMPRESS_LIMIT,
    compress,
    compressFragment: null,
    window: 15,
    afterSharedFrame: () => undefined,
    close: () => undefined,
  };
}

describe('MessageEncoder with zlib contexts on the thread', () => {
  it('frames every message at once, large ones and context-takeover ones included, never busy', () => {
    const { encoder, target } = setup(false, new Float64Array(32), true);
    const framed = target.frames;
    const peer = new PerMessageDeflate('client', params(false), { maxMessageSize: 1 << 24, onThread: true });
    codecs.push(peer);
    // Base64 of random bytes: it compresses only so far on its own, but a copy within the
    // window is one long match.
    const big = Buffer.from(randomBytes(15_000).toString('base64'));
    const messages = [big, Buffer.from('small'.repeat(40)), big, Buffer.alloc(200_000, 0x61)];
    for (const message of messages) {
      expect(encoder.encode(Opcode.Binary, message)).toBe(true);
      expect(encoder.busy).toBe(false);
    }
    expect(framed.map((f) => peer.inflateFrame(f.payload, true))).toEqual(messages);
    // Context kept: the third message refers back to the first and is a fraction of its size.
    expect(framed[2]!.payload.length).toBeLessThan(framed[0]!.payload.length / 4);
  });
});
