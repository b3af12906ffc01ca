import { describe, expect, it } from 'vitest';
import { ORIGIN_BYTES, plainEnvelope, readNotification, readPlainEnvelope, readStreamEnvelope, streamEnvelope } from '../../src/main/bridge-envelope.ts';

const us = Buffer.alloc(ORIGIN_BYTES, 1);
const them = Buffer.alloc(ORIGIN_BYTES, 2);

describe('plain envelope', () => {
  it('carries the payload, text or binary, and tells our own publishes from others', () => {
    const message = plainEnvelope(us, Buffer.from('hello'), false);
    expect(readPlainEnvelope(message, us)).toEqual({ own: true, payload: Buffer.from('hello'), binary: false });
    expect(readPlainEnvelope(message, them)).toEqual({ own: false, payload: Buffer.from('hello'), binary: false });
    expect(readPlainEnvelope(plainEnvelope(them, new Uint8Array([0, 255]), true), us)).toEqual({ own: false, payload: Buffer.from([0, 255]), binary: true });
  });

  it('ignores what is not one: too short, another version (a streams entry)', () => {
    expect(readPlainEnvelope(Buffer.alloc(3), us)).toBeNull();
    expect(readPlainEnvelope(streamEnvelope(us, 1, Buffer.from('x'), false, null), us)).toBeNull();
  });
});

describe('stream envelope', () => {
  it('carries the payload, the sequence and, for our own entries, the connection left out', () => {
    const entry = streamEnvelope(us, 42, Buffer.from('hi'), false, { worker: 3, serial: 0x7fffffff });
    expect(readStreamEnvelope(entry, us)).toEqual({ own: true, sequence: 42, except: { worker: 3, serial: 0x7fffffff }, payload: Buffer.from('hi'), binary: false });
    // Another server's `except` names a connection there: nothing here to leave out.
    expect(readStreamEnvelope(entry, them)).toMatchObject({ own: false, except: null });
    expect(readStreamEnvelope(streamEnvelope(us, 2 ** 40, new Uint8Array([1]), true, null), us)).toEqual({ own: true, sequence: 2 ** 40, except: null, payload: Buffer.from([1]), binary: true });
  });

  it('ignores a plain message and short input', () => {
    expect(readStreamEnvelope(plainEnvelope(us, Buffer.from('x'), false), us)).toBeNull();
    expect(readStreamEnvelope(Buffer.from([2]), us)).toBeNull();
  });
});

describe('readNotification', () => {
  it('splits `<id> <entry>` at the first space, whatever the entry holds', () => {
    const entry = Buffer.from('a b c');
    const parsed = readNotification(Buffer.concat([Buffer.from('1796443257357-3 '), entry]));
    expect(parsed?.id).toBe('1796443257357-3');
    expect(parsed?.entry).toEqual(entry);
  });

  it('refuses a message without a valid id in front', () => {
    for (const text of ['', 'nospace', ' 1-1 x', 'x-1 y', '1-1', `${'1'.repeat(60)}-1 x`]) expect(readNotification(Buffer.from(text)), text).toBeNull();
  });
});
