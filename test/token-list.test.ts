import { describe, it, expect } from 'vitest';
import fc from 'fast-check';
import { HandshakeError } from '../src/shared/errors.ts';
import { isToken, isTokenChar, parseTokenList, parseUpgradeProtocols } from '../src/shared/token-list.ts';
import { TCHARS, expect400, owsArb, tokenArb } from './support/grammar.ts';

const token = tokenArb(12);
const ows = owsArb(3);

describe('isToken', () => {
  it('accepts every tchar and rejects separators, controls, non-ASCII and the empty string', () => {
    expect(isToken(TCHARS.join(''))).toBe(true);
    for (const c of [' ', '\t', ',', ';', '"', '(', ')', '/', ':', '<', '=', '>', '?', '@', '[', '\\', ']', '{', '}', '\x7f', '\0', 'é']) {
      expect(isToken(`a${c}`), JSON.stringify(c)).toBe(false);
    }
    expect(isToken('')).toBe(false);
    expect(isTokenChar(0x100 + 0x61)).toBe(false); // no truncation to 'a'
  });
});

describe('parseTokenList', () => {
  it('lowercases tokens and skips optional whitespace', () => {
    expect(parseTokenList('keep-alive, Upgrade')).toEqual(['keep-alive', 'upgrade']);
    expect(parseTokenList(' \tUPGRADE\t ,keep-alive ')).toEqual(['upgrade', 'keep-alive']);
  });

  it('skips empty elements (RFC 9110 §5.6.1)', () => {
    expect(parseTokenList(', ,upgrade,, ,')).toEqual(['upgrade']);
    expect(parseTokenList('')).toEqual([]);
  });

  it('rejects whitespace inside an element and non-token characters with 400', () => {
    expect400(() => parseTokenList('keep alive'));
    expect400(() => parseTokenList('upgrade;q=1'));
    expect400(() => parseTokenList('up\u0167grade'));
    expect400(() => parseTokenList('http/1.1')); // "/" only in Upgrade
  });

  it('names the header in its error', () => {
    expect(() => parseTokenList('a b', 'Connection')).toThrow(/Connection header/);
  });

  it('is linear on pathological input', () => {
    expect(parseTokenList(' ,'.repeat(10_000))).toEqual([]);
    expect(parseTokenList('a'.repeat(100 * 1024))).toEqual(['a'.repeat(100 * 1024)]);
    expect(parseTokenList(`a${' '.repeat(20_000)},${' '.repeat(20_000)}b`)).toEqual(['a', 'b']);
    expect400(() => parseTokenList(`a${' '.repeat(20_000)}b`));
  });

  it('parses back any list joined with random whitespace and commas', () => {
    const sep = fc.tuple(ows, fc.integer({ min: 1, max: 3 }), ows).map(([a, n, b]) => a + ','.repeat(n) + b);
    fc.assert(
      fc.property(fc.array(token, { minLength: 1, maxLength: 8 }), fc.array(sep, { minLength: 8, maxLength: 8 }), ows, ows, (tokens, seps, lead, trail) => {
        const value = lead + tokens.map((t, i) => (i === 0 ? t : seps[i] + t)).join('') + trail;
        expect(parseTokenList(value)).toEqual(tokens.map((t) => t.toLowerCase()));
      }),
    );
  });

  it('throws nothing but HandshakeError on random input', () => {
    const noisy = fc.string({ unit: fc.constantFrom('a', 'B', ',', ' ', '\t', '/', '"', ';', '\r', 'é', '\u{1f600}') });
    fc.assert(
      fc.property(fc.oneof(fc.string({ unit: 'binary' }), noisy), (s) => {
        for (const parse of [parseTokenList, parseUpgradeProtocols]) {
          try {
            const items = parse(s);
            for (const item of items) expect(item).toBe(item.toLowerCase());
          } catch (err) {
            expect(err).toBeInstanceOf(HandshakeError);
          }
        }
      }),
    );
  });
});

describe('parseUpgradeProtocols', () => {
  it('accepts protocol/version elements (RFC 9110 §7.8)', () => {
    expect(parseUpgradeProtocols('HTTP/2.0, WebSocket')).toEqual(['http/2.0', 'websocket']);
  });

  it('rejects a "/" without a name or version, or twice', () => {
    expect400(() => parseUpgradeProtocols('/2'));
    expect400(() => parseUpgradeProtocols('h2c/'));
    expect400(() => parseUpgradeProtocols('h2c/ , websocket'));
    expect400(() => parseUpgradeProtocols('a/b/c'));
    expect400(() => parseUpgradeProtocols('a /b'));
  });
});
