/**
 * ProtocolError is the one error type the protocol core throws. Its `code` is stable (tests and
 * logs match on it) and `closeCode` is the status the connection must be closed with
 * (RFC 6455 §7.4.1): 1002 protocol error, 1007 invalid payload data, 1009 message too big.
 */
export type CloseCodeForError = 1002 | 1007 | 1009 | 1011;

export type ProtocolErrorCode =
  | 'WS_ERR_UNEXPECTED_RSV'
  | 'WS_ERR_INVALID_OPCODE'
  | 'WS_ERR_MASK_REQUIRED'
  | 'WS_ERR_UNEXPECTED_MASK'
  | 'WS_ERR_INVALID_LENGTH'
  | 'WS_ERR_CONTROL_TOO_BIG'
  | 'WS_ERR_CONTROL_FRAGMENTED'
  | 'WS_ERR_UNEXPECTED_CONTINUATION'
  | 'WS_ERR_EXPECTED_CONTINUATION'
  | 'WS_ERR_INVALID_CLOSE_PAYLOAD'
  | 'WS_ERR_INVALID_CLOSE_CODE'
  | 'WS_ERR_INVALID_UTF8'
  | 'WS_ERR_INVALID_COMPRESSED_DATA'
  | 'WS_ERR_FRAME_TOO_BIG'
  | 'WS_ERR_MESSAGE_TOO_BIG'
  | 'WS_ERR_TOO_MANY_FRAGMENTS';

export class ProtocolError extends Error {
  readonly code: ProtocolErrorCode;
  readonly closeCode: CloseCodeForError;

  constructor(code: ProtocolErrorCode, closeCode: CloseCodeForError, message: string) {
    super(message);
    this.name = 'ProtocolError';
    this.code = code;
    this.closeCode = closeCode;
  }
}

export const isProtocolError = (err: unknown): err is ProtocolError => err instanceof ProtocolError;

/** HTTP statuses an upgrade can be refused with (502 and 504: a proxied upstream failed or was too slow). */
export type HandshakeStatus = 400 | 401 | 403 | 404 | 405 | 426 | 429 | 431 | 500 | 502 | 503 | 504;

/**
 * HandshakeError refuses an upgrade (server side) or rejects a 101 response (client side).
 * `status` is the HTTP status the server answers with; `headers` are added to that response
 * (426 carries `Sec-WebSocket-Version: 13`, RFC 6455 §4.4).
 */
export class HandshakeError extends Error {
  readonly status: HandshakeStatus;
  readonly headers: Readonly<Record<string, string>>;

  constructor(status: HandshakeStatus, message: string, headers: Readonly<Record<string, string>> = {}) {
    super(message);
    this.name = 'HandshakeError';
    this.status = status;
    this.headers = headers;
  }
}
