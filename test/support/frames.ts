/** Frames as the peer of a receiving role sends them, for the parser and reader tests. */
import { encodeFrame } from '../../src/shared/frame-encoder.ts';
import type { Role } from '../../src/shared/frame-parser.ts';
import { MaskKeySource } from '../../src/shared/mask.ts';
import type { Opcode } from '../../src/shared/opcodes.ts';

/** Fresh masking keys for frames a client sends. */
export const keys = new MaskKeySource();

/** Frames a client would send (masked) or a server would send (unmasked), for the receiving role. */
export const frameFor =
  (role: Role) =>
  (opcode: Opcode, payload: Uint8Array | string, options: { fin?: boolean; rsv1?: boolean } = {}): Buffer =>
    encodeFrame(opcode, typeof payload === 'string' ? Buffer.from(payload) : payload, {
      ...options,
      maskKeys: role === 'server' ? keys : null,
    });
