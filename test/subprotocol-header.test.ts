import { describe, it, expect } from 'vitest';
import fc from 'fast-check';
import { HandshakeError } from '../src/shared/errors.ts';
import { isToken, parseSubprotocolHeader } from '../src/shared/subprotocol-header.ts';
import { expect400, owsArb, tokenArb } from './support/grammar.ts';

const token = tokenArb(12);
const ows = owsArb(3);

describe('parseSubprotocolHeader', () => {
  it('returns the offers in the client order, case preserved', () => {
    expect(parseSubprotocolHeader('chat')).toEqual(['chat']);
    expect(parseSubprotocolHeader('v2.chat, Chat,superchat')).toEqual(['v2.chat', 'Chat', 'superchat']);
  });

  it('allows optional whitespace around commas and at the ends', () => {
    expect(parseSubprotocolHeader(' \ta \t,\t b ')).toEqual(['a', 'b']);
  });

  it('rejects an empty header or empty elements', () => {
    expect400(() => parseSubprotocolHeader(''));
    expect400(() => parseSubprotocolHeader('   '));
    expect400(() => parseSubprotocolHeader(',a'));
    expect400(() => parseSubprotocolHeader('a,'));
    expect400(() => parseSubprotocolHeader('a,,b'));
    expect400(() => parseSubprotocolHeader('a, ,b'));
  });

  it('rejects non-token characters and whitespace inside a name', () => {
    for (const v of ['a b', 'a;b', 'a/b', '"a"', 'a\r\nb', 'a\0', 'ch\u00e4t', 'chat\u0161']) expect400(() => parseSubprotocolHeader(v));
  });

  it('rejects a name offered twice (RFC 6455 §4.1: MUST all be unique), case-sensitively', () => {
    expect400(() => parseSubprotocolHeader('chat, superchat, chat'));
    expect(parseSubprotocolHeader('chat, Chat')).toEqual(['chat', 'Chat']);
  });

  it('treats __proto__ and constructor as plain names', () => {
    expect(parseSubprotocolHeader('__proto__, constructor, toString')).toEqual(['__proto__', 'constructor', 'toString']);
    expect400(() => parseSubprotocolHeader('__proto__, __proto__'));
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });

  it('handles pathological headers in linear time, correctly', () => {
    expect400(() => parseSubprotocolHeader(' ,'.repeat(10_000)));
    expect400(() => parseSubprotocolHeader(', '.repeat(10_000)));
    expect400(() => parseSubprotocolHeader(`a${' '.repeat(20_000)}b`));
    expect(parseSubprotocolHeader('a'.repeat(100 * 1024))).toEqual(['a'.repeat(100 * 1024)]);
    // The shape that made `split(/ *, */)` quadratic.
    expect(parseSubprotocolHeader(`a${' '.repeat(20_000)},${' '.repeat(20_000)}b`)).toEqual(['a', 'b']);
    const many = Array.from({ length: 5_000 }, (_, i) => `p${i}`);
    expect(parseSubprotocolHeader(many.join(' , '))).toEqual(many);
  });

  it('keeps the 400 message short when a long name repeats', () => {
    const name = 'x'.repeat(50_000);
    expect(() => parseSubprotocolHeader(`${name},${name}`)).toThrow(/^.{0,200}$/);
  });

  it('parses back any list of unique tokens joined with random whitespace', () => {
    const sep = fc.tuple(ows, ows).map(([a, b]) => `${a},${b}`);
    fc.assert(
      fc.property(fc.uniqueArray(token, { minLength: 1, maxLength: 8 }), fc.array(sep, { minLength: 8, maxLength: 8 }), ows, ows, (tokens, seps, lead, trail) => {
        const value = lead + tokens.map((t, i) => (i === 0 ? t : seps[i] + t)).join('') + trail;
        expect(parseSubprotocolHeader(value)).toEqual(tokens);
      }),
    );
  });

  it('throws nothing but HandshakeError on random input, and returns only unique tokens', () => {
    const noisy = fc.string({ unit: fc.constantFrom('a', 'b', ',', ' ', '\t', '/', '"', '\n', '\u00ff', '\u{1f600}') });
    fc.assert(
      fc.property(fc.oneof(fc.string({ unit: 'binary' }), noisy), (s) => {
        try {
          const protocols = parseSubprotocolHeader(s);
          expect(protocols.length).toBeGreaterThan(0);
          expect(new Set(protocols).size).toBe(protocols.length);
          for (const p of protocols) expect(isToken(p)).toBe(true);
        } catch (err) {
          expect(err).toBeInstanceOf(HandshakeError);
          expect((err as HandshakeError).status).toBe(400);
        }
      }),
    );
  });
});
