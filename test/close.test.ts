import { describe, expect, it } from 'vitest';
import {
  CloseCode,
  MAX_CLOSE_REASON_BYTES,
  encodeClosePayload,
  fitCloseReason,
  isValidCloseCode,
  parseClosePayload,
} from '../src/shared/close.ts';
import { ProtocolError } from '../src/shared/errors.ts';

const expectedValid = (code: number): boolean =>
  (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014) || (code >= 3000 && code <= 4999);

const payload = (code: number, reason: Uint8Array | string = ''): Buffer => {
  const r = typeof reason === 'string' ? Buffer.from(reason) : Buffer.from(reason);
  const out = Buffer.alloc(2 + r.length);
  out.writeUInt16BE(code, 0);
  r.copy(out, 2);
  return out;
};

function protocolError(fn: () => unknown): ProtocolError {
  try {
    fn();
  } catch (error) {
    expect(error).toBeInstanceOf(ProtocolError);
    return error as ProtocolError;
  }
  throw new Error('expected a ProtocolError');
}

describe('isValidCloseCode', () => {
  it('classifies every code 0..5000', () => {
    for (let code = 0; code <= 5000; code++) expect([code, isValidCloseCode(code)]).toEqual([code, expectedValid(code)]);
  });

  it('refuses the codes that are never on the wire', () => {
    for (const code of [CloseCode.NoStatus, CloseCode.Abnormal, CloseCode.TlsHandshake, 1004, 65535]) {
      expect(isValidCloseCode(code)).toBe(false);
    }
  });
});

describe('parseClosePayload', () => {
  it('reads an empty payload as 1005 with no reason', () => {
    expect(parseClosePayload(new Uint8Array(0))).toEqual({ code: 1005, reason: '' });
  });

  it('refuses a 1-byte payload with 1002', () => {
    const error = protocolError(() => parseClosePayload(Uint8Array.of(0x03)));
    expect(error.code).toBe('WS_ERR_INVALID_CLOSE_PAYLOAD');
    expect(error.closeCode).toBe(1002);
  });

  it('accepts every valid code and refuses every invalid one with 1002', () => {
    for (let code = 0; code <= 65535; code += code < 5100 ? 1 : 97) {
      if (expectedValid(code)) {
        expect(parseClosePayload(payload(code))).toEqual({ code, reason: '' });
      } else {
        const error = protocolError(() => parseClosePayload(payload(code)));
        expect(error.code).toBe('WS_ERR_INVALID_CLOSE_CODE');
        expect(error.closeCode).toBe(1002);
      }
    }
  });

  it('decodes a UTF-8 reason', () => {
    expect(parseClosePayload(payload(1000, 'bye'))).toEqual({ code: 1000, reason: 'bye' });
    expect(parseClosePayload(payload(4321, 'ça va 😀'))).toEqual({ code: 4321, reason: 'ça va 😀' });
  });

  it('decodes a payload that is a view into a bigger buffer', () => {
    const frame = Buffer.concat([Buffer.from([0x88, 0x05]), payload(1001, 'abc'), Buffer.from('trailing')]);
    expect(parseClosePayload(frame.subarray(2, 7))).toEqual({ code: 1001, reason: 'abc' });
  });

  it('refuses an invalid UTF-8 reason with 1007', () => {
    for (const bad of [[0xff], [0xc0, 0x80], [0xed, 0xa0, 0x80], [0xe2, 0x82], [0x61, 0xf4, 0x90, 0x80, 0x80]]) {
      const error = protocolError(() => parseClosePayload(payload(1000, Uint8Array.from(bad))));
      expect(error.code).toBe('WS_ERR_INVALID_UTF8');
      expect(error.closeCode).toBe(1007);
    }
  });

  it('takes the reason unchecked when told to (skipUtf8Validation), still checking the code', () => {
    expect(parseClosePayload(payload(1000, Uint8Array.of(0x61, 0xff)), false)).toEqual({ code: 1000, reason: 'a\ufffd' });
    expect(protocolError(() => parseClosePayload(payload(1005, Uint8Array.of(0xff)), false)).closeCode).toBe(1002);
  });

  it('checks the code before the reason', () => {
    const error = protocolError(() => parseClosePayload(payload(1005, Uint8Array.of(0xff))));
    expect(error.closeCode).toBe(1002);
  });
});

describe('fitCloseReason', () => {
  it('keeps a reason that fits and cuts a longer one to 120 bytes at a character boundary', () => {
    expect(fitCloseReason('going away')).toBe('going away');
    expect(fitCloseReason('x'.repeat(123))).toBe('x'.repeat(123));
    expect(fitCloseReason('x'.repeat(124))).toBe('x'.repeat(120));
    // 'é' is 2 bytes: 60 of them fill 120 bytes exactly; '€' is 3: 40 of them.
    expect(fitCloseReason('é'.repeat(100))).toBe('é'.repeat(60));
    expect(fitCloseReason('a' + '€'.repeat(60))).toBe('a' + '€'.repeat(39));
    for (const reason of ['é'.repeat(100), 'a' + '€'.repeat(60), '😀'.repeat(50)]) {
      expect(() => encodeClosePayload(1000, fitCloseReason(reason))).not.toThrow();
    }
  });
});

describe('encodeClosePayload', () => {
  it('encodes no code as an empty payload', () => {
    expect(encodeClosePayload()).toHaveLength(0);
  });

  it('refuses a reason without a code', () => {
    expect(() => encodeClosePayload(undefined, 'why')).toThrow(TypeError);
  });

  it('encodes exactly the code and the reason bytes', () => {
    expect(encodeClosePayload(1000)).toEqual(Buffer.from([0x03, 0xe8]));
    expect(encodeClosePayload(4999, 'ok')).toEqual(Buffer.from([0x13, 0x87, 0x6f, 0x6b]));
    const reason = 'é€😀';
    expect(encodeClosePayload(3000, reason)).toEqual(Buffer.concat([Buffer.from([0x0b, 0xb8]), Buffer.from(reason)]));
  });

  it('leaves no uninitialized memory: the bytes are exactly code + reason, many times over', () => {
    // allocUnsafe draws from Node's pool; dirty the pool first so stale bytes would show.
    for (let i = 0; i < 200; i++) Buffer.allocUnsafe(64).fill(0xcc);
    for (const reason of ['', 'a', 'x'.repeat(123), '€'.repeat(41), '\ud800', 'a\udc00b', '😀'.repeat(30)]) {
      const out = encodeClosePayload(1000, reason);
      const expected = Buffer.concat([Buffer.from([0x03, 0xe8]), Buffer.from(reason, 'utf8')]);
      expect(out).toEqual(expected);
      expect(parseClosePayload(out).code).toBe(1000);
    }
  });

  it('fits a reason of 123 bytes and refuses 124 with RangeError', () => {
    expect(MAX_CLOSE_REASON_BYTES).toBe(123);
    expect(encodeClosePayload(1000, 'a'.repeat(123))).toHaveLength(125);
    expect(() => encodeClosePayload(1000, 'a'.repeat(124))).toThrow(RangeError);
  });

  it('counts a multibyte reason in bytes, not characters', () => {
    // 41 × '€' = 123 bytes fits; 42 × '€' = 126 bytes (42 characters) does not.
    expect(encodeClosePayload(1000, '€'.repeat(41))).toHaveLength(125);
    expect(() => encodeClosePayload(1000, '€'.repeat(42))).toThrow(RangeError);
    // 31 × '😀' = 124 bytes but only 62 UTF-16 units.
    expect(() => encodeClosePayload(1000, '😀'.repeat(31))).toThrow(RangeError);
    expect(encodeClosePayload(1000, '😀'.repeat(30) + 'abc')).toHaveLength(125);
  });

  it('refuses codes that may not be sent', () => {
    for (const code of [0, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000, 65535, 1000.5, Number.NaN]) {
      expect(() => encodeClosePayload(code)).toThrow(RangeError);
    }
    for (let code = 0; code <= 5000; code++) {
      if (expectedValid(code)) expect(encodeClosePayload(code).readUInt16BE(0)).toBe(code);
    }
  });

  it('round-trips through parseClosePayload', () => {
    for (const [code, reason] of [[1000, ''], [1001, 'going'], [1011, 'oops ✓'], [4000, 'x'.repeat(123)]] as const) {
      expect(parseClosePayload(encodeClosePayload(code, reason))).toEqual({ code, reason });
    }
  });
});
