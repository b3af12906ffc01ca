/**
 * --fast-mask: frames masked once and re-sent with only the sequence and time fields patched.
 *
 * RFC 6455 §5.3 wants a fresh, unpredictable masking key for every frame, so that a script in a
 * browser cannot choose the bytes an intermediary sees. A load generator is not a browser and
 * runs no untrusted code, so it may trade that requirement for speed: with --fast-mask each
 * connection picks one random key at connect time and reuses it for every frame, and a message
 * costs 20 masked byte writes instead of masking (and copying) the whole payload. Servers cannot
 * tell the difference and must not (they unmask whatever key arrives). Off by default: the
 * default path takes a fresh key per frame from MaskKeySource and masks through FrameWriter.
 */
import { randomBytes } from 'node:crypto';
import { encodeFrame } from '../../src/shared/frame-encoder.ts';
import { MaskKeySource } from '../../src/shared/mask.ts';
import { Opcode } from '../../src/shared/opcodes.ts';
import type { MessageTemplate } from './message-template.ts';

/** A MaskKeySource that always hands out the same key (only for --fast-mask). */
export class FixedMaskKey extends MaskKeySource {
  readonly key: Buffer;

  constructor(key: Buffer = randomBytes(4)) {
    super(4); // the base class's random pool is never used: keep it tiny
    this.key = key;
  }

  override writeKey(target: Uint8Array, offset: number): void {
    const key = this.key;
    target[offset] = key[0]!;
    target[offset + 1] = key[1]!;
    target[offset + 2] = key[2]!;
    target[offset + 3] = key[3]!;
  }
}

/**
 * PreparedFrame is one complete masked frame of the template. A connection keeps one per
 * message it may have in flight, and reuses a frame only after the message sent in it came back
 * (echo) or reached the probe (broadcast): by then the socket has long written its bytes.
 */
export class PreparedFrame {
  readonly bytes: Buffer;
  readonly #payloadAt: number;
  readonly #key: Buffer;
  readonly #fields: readonly (readonly [number, number])[];

  constructor(template: MessageTemplate, mask: FixedMaskKey) {
    this.bytes = encodeFrame(template.binary ? Opcode.Binary : Opcode.Text, template.bytes, { maskKeys: mask });
    this.#payloadAt = this.bytes.length - template.size;
    this.#key = mask.key;
    this.#fields = template.fields;
  }

  /** Copies the stamped fields of `message` (the template with stamp() applied) into the frame, masked. */
  patch(message: Buffer): void {
    const bytes = this.bytes;
    const at = this.#payloadAt;
    const key = this.#key;
    for (const [start, end] of this.#fields) {
      for (let i = start; i < end; i++) bytes[at + i] = message[i]! ^ key[i & 3]!;
    }
  }
}
