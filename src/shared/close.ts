import { ProtocolError } from './errors.ts';
import { isValidUtf8 } from './utf8.ts';

/** Close status codes of RFC 6455 §7.4.1 and the IANA registry. */
export const CloseCode = {
  Normal: 1000,
  GoingAway: 1001,
  ProtocolError: 1002,
  UnsupportedData: 1003,
  /** Never on the wire: "no status code was present" (§7.1.5). */
  NoStatus: 1005,
  /** Never on the wire: the connection closed without a close frame (§7.1.5). */
  Abnormal: 1006,
  InvalidPayload: 1007,
  PolicyViolation: 1008,
  MessageTooBig: 1009,
  MandatoryExtension: 1010,
  InternalError: 1011,
  ServiceRestart: 1012,
  TryAgainLater: 1013,
  BadGateway: 1014,
  /** Never on the wire: TLS handshake failure (§7.4.1). */
  TlsHandshake: 1015,
} as const;

/** RFC 6455 §7.4: a close reason fits in a control frame: 125 bytes less the 2-byte code. */
export const MAX_CLOSE_REASON_BYTES = 123;

/**
 * Whether `code` may appear in a close frame: 1000–1003 and 1007–1014 are defined by the RFC
 * and registry, 3000–3999 are registered for libraries and 4000–4999 are private. 1004–1006
 * and 1015 are reserved for local use and never sent.
 */
export function isValidCloseCode(code: number): boolean {
  return (
    (code >= 1000 && code <= 1003) ||
    (code >= 1007 && code <= 1014) ||
    (code >= 3000 && code <= 4999)
  );
}

export interface CloseInfo {
  /** 1005 when the peer's close frame had no payload. */
  readonly code: number;
  readonly reason: string;
}

const NO_STATUS: CloseInfo = { code: CloseCode.NoStatus, reason: '' };

/**
 * Decodes a received close payload (RFC 6455 §5.5.1): empty, or a valid code + UTF-8 reason
 * (`validateUtf8` false takes the reason unchecked, for peers trusted to send UTF-8).
 */
export function parseClosePayload(payload: Uint8Array, validateUtf8 = true): CloseInfo {
  if (payload.length === 0) return NO_STATUS;
  if (payload.length === 1) {
    throw new ProtocolError('WS_ERR_INVALID_CLOSE_PAYLOAD', 1002, 'close frame payload of 1 byte');
  }
  const code = (payload[0]! << 8) | payload[1]!;
  if (!isValidCloseCode(code)) {
    throw new ProtocolError('WS_ERR_INVALID_CLOSE_CODE', 1002, `invalid close code ${code}`);
  }
  const reasonBytes = payload.subarray(2);
  if (validateUtf8 && !isValidUtf8(reasonBytes)) {
    throw new ProtocolError('WS_ERR_INVALID_UTF8', 1007, 'close reason is not valid UTF-8');
  }
  return { code, reason: Buffer.from(reasonBytes.buffer, reasonBytes.byteOffset, reasonBytes.length).toString('utf8') };
}

/**
 * A reason that fits a close frame: as is when it does, else its first 120 bytes of UTF-8 cut
 * at a character boundary (RFC 6455 §5.5: a control frame carries at most 125 bytes, two of
 * them the code).
 */
export function fitCloseReason(reason: string): string {
  if (Buffer.byteLength(reason) <= MAX_CLOSE_REASON_BYTES) return reason;
  const bytes = Buffer.from(reason, 'utf8');
  let end = 120;
  // Back off continuation bytes (10xxxxxx) so no character is cut in half.
  while (end > 0 && (bytes[end]! & 0xc0) === 0x80) end--;
  return bytes.toString('utf8', 0, end);
}

/**
 * Encodes a close payload to send. No code means an empty payload (then a reason is an error,
 * §5.5.1). Every byte of the result is written, so no uninitialized memory reaches the wire.
 */
export function encodeClosePayload(code?: number, reason = ''): Buffer {
  if (code === undefined) {
    if (reason !== '') throw new TypeError('a close reason needs a close code');
    return Buffer.alloc(0);
  }
  if (!Number.isInteger(code) || !isValidCloseCode(code)) {
    throw new RangeError(`close code ${code} may not be sent (valid: 1000-1003, 1007-1014, 3000-4999)`);
  }
  const reasonLength = Buffer.byteLength(reason);
  if (reasonLength > MAX_CLOSE_REASON_BYTES) {
    throw new RangeError(`close reason is ${reasonLength} bytes; at most ${MAX_CLOSE_REASON_BYTES} fit in a close frame`);
  }
  const out = Buffer.allocUnsafe(2 + reasonLength);
  out.writeUInt16BE(code, 0);
  const written = out.write(reason, 2, 'utf8');
  if (written !== reasonLength) out.fill(0, 2 + written);
  return out;
}
