import { describe, it, expect } from 'vitest';
import fc from 'fast-check';
import { HandshakeError } from '../src/shared/errors.ts';
import { formatExtension, parseExtensionHeader } from '../src/shared/extension-header.ts';
import type { ExtensionOffer } from '../src/shared/extension-header.ts';
import { expect400 as expect400With, owsArb, tokenArb } from './support/grammar.ts';

const token = tokenArb(10);
const ows = owsArb(2);
const expect400 = (fn: () => unknown): void => expect400With(fn, /^Invalid Sec-WebSocket-Extensions header: /);

/** Plain-object view of the parse result, for toEqual. */
const plain = (offers: ExtensionOffer[]) =>
  offers.map((o) => ({ name: o.name, params: [...o.params], repeated: o.repeatedParams ?? [] }));

describe('parseExtensionHeader', () => {
  it('parses names, valueless params and token values', () => {
    expect(plain(parseExtensionHeader('permessage-deflate; client_max_window_bits; server_max_window_bits=10'))).toEqual([
      {
        name: 'permessage-deflate',
        params: [
          ['client_max_window_bits', true],
          ['server_max_window_bits', '10'],
        ],
        repeated: [],
      },
    ]);
    expect(plain(parseExtensionHeader('foo'))).toEqual([{ name: 'foo', params: [], repeated: [] }]);
  });

  it('keeps several offers of one extension in order', () => {
    const offers = parseExtensionHeader(
      'permessage-deflate; server_max_window_bits=10, permessage-deflate, x-webkit-deflate-frame',
    );
    expect(offers.map((o) => o.name)).toEqual(['permessage-deflate', 'permessage-deflate', 'x-webkit-deflate-frame']);
    expect(offers[0]!.params.get('server_max_window_bits')).toBe('10');
    expect(offers[1]!.params.size).toBe(0);
  });

  it('reads several header lines joined by ", " as one list', () => {
    const lines = ['permessage-deflate; client_no_context_takeover', 'foo; bar=1'];
    expect(plain(parseExtensionHeader(lines.join(', ')))).toEqual([
      { name: 'permessage-deflate', params: [['client_no_context_takeover', true]], repeated: [] },
      { name: 'foo', params: [['bar', '1']], repeated: [] },
    ]);
  });

  it('allows optional whitespace around every separator and skips empty elements', () => {
    expect(plain(parseExtensionHeader(' \t, a \t;\t b \t=\t 1 \t; c ,, \t, d ;e="2" ,'))).toEqual([
      {
        name: 'a',
        params: [
          ['b', '1'],
          ['c', true],
        ],
        repeated: [],
      },
      { name: 'd', params: [['e', '2']], repeated: [] },
    ]);
  });

  it('unquotes quoted-string values, escapes included', () => {
    const [offer] = parseExtensionHeader('permessage-deflate; server_max_window_bits="10"; a="x\\y\\-z"');
    expect(offer!.params.get('server_max_window_bits')).toBe('10');
    expect(offer!.params.get('a')).toBe('xy-z');
  });

  it('rejects quoted values that are not tokens once unquoted (RFC 6455 §9.1)', () => {
    expect400(() => parseExtensionHeader('a; b=""'));
    expect400(() => parseExtensionHeader('a; b="1 0"'));
    expect400(() => parseExtensionHeader('a; b="x,y"'));
    expect400(() => parseExtensionHeader('a; b="x\\ y"'));
    expect400(() => parseExtensionHeader('a; b="\\"'));
    expect400(() => parseExtensionHeader('a; b="abc'));
    expect400(() => parseExtensionHeader('a; b="abc\\'));
    expect400(() => parseExtensionHeader('a; b="é"'));
  });

  it('rejects malformed lists with a 400', () => {
    for (const bad of [
      '',
      ' ',
      ',',
      ' , ,\t,',
      ';',
      'a;',
      'a; ',
      'a;;b',
      'a; =1',
      'a; b=',
      'a; b= ;c',
      'a; b=1 2',
      'a b',
      'a, b c',
      'a; b c',
      'a=1',
      'a; b=1=2',
      '"a"',
      'a; "b"',
      'a; b="1"x',
      'a/b',
      'a; b=1,;',
      'ä',
      'a\u0000',
      'a; b=\r\n',
    ]) {
      expect400(() => parseExtensionHeader(bad));
    }
  });

  it('keeps __proto__ and constructor as ordinary names', () => {
    const offers = parseExtensionHeader('__proto__; __proto__=1; constructor; toString="x", constructor');
    expect(plain(offers)).toEqual([
      {
        name: '__proto__',
        params: [
          ['__proto__', '1'],
          ['constructor', true],
          ['toString', 'x'],
        ],
        repeated: [],
      },
      { name: 'constructor', params: [], repeated: [] },
    ]);
    expect(({} as Record<string, unknown>)['polluted']).toBeUndefined();
    expect(Object.getPrototypeOf(offers[0]!.params)).toBe(Map.prototype);
  });

  it('records repeated params, keeping the first value', () => {
    const [offer] = parseExtensionHeader('permessage-deflate; server_max_window_bits=10; server_max_window_bits=9; a; a; a');
    expect(offer!.params.get('server_max_window_bits')).toBe('10');
    expect(offer!.repeatedParams).toEqual(['server_max_window_bits', 'a', 'a']);
    expect(parseExtensionHeader('a; b')[0]!.repeatedParams).toBeUndefined();
  });

  it('handles 20,000 commas and spaces in linear time', () => {
    // A backtracking split (ws, CVE-2021-32640) takes seconds here; a linear scan takes far below 1 ms.
    const junk = ', '.repeat(10_000);
    expect400(() => parseExtensionHeader(junk));
    expect(plain(parseExtensionHeader(`a${junk}b`))).toEqual([
      { name: 'a', params: [], repeated: [] },
      { name: 'b', params: [], repeated: [] },
    ]);
    expect400(() => parseExtensionHeader(`a${' '.repeat(20_000)}b`));
    expect400(() => parseExtensionHeader(`a;${' ;'.repeat(10_000)}`));
    expect400(() => parseExtensionHeader(`a; b="${'x'.repeat(20_000)}`));
    expect(parseExtensionHeader(`a; b="${'\\x'.repeat(10_000)}"`)[0]!.params.get('b')).toBe('x'.repeat(10_000));
    expect(parseExtensionHeader(`a${'; b'.repeat(10_000)}`)[0]!.repeatedParams).toHaveLength(9_999);
  });

  it('round-trips any list built by formatExtension (property)', () => {
    const param = fc.tuple(token, fc.option(token, { nil: undefined }));
    const element = fc.record({ name: token, params: fc.array(param, { maxLength: 4 }) });
    fc.assert(
      fc.property(fc.array(element, { minLength: 1, maxLength: 4 }), ows, (elements, sp) => {
        const header = elements
          .map((e) => formatExtension(e.name, e.params.map(([k, v]) => [k, v ?? true] as const)))
          .join(`${sp},${sp}`);
        const parsed = parseExtensionHeader(header);
        expect(parsed.map((o) => o.name)).toEqual(elements.map((e) => e.name));
        parsed.forEach((o, i) => {
          const expected = new Map<string, string | true>();
          for (const [k, v] of elements[i]!.params) if (!expected.has(k)) expected.set(k, v ?? true);
          expect([...o.params]).toEqual([...expected]);
        });
      }),
    );
  });

  it('never throws anything but HandshakeError on arbitrary input (property)', () => {
    const chars = fc.constantFrom(...'ab1=;,"\\ \t-_é\u0000'.split(''));
    fc.assert(
      fc.property(fc.string({ unit: chars, maxLength: 40 }), (s) => {
        try {
          const offers = parseExtensionHeader(s);
          expect(offers.length).toBeGreaterThan(0);
        } catch (err) {
          expect(err).toBeInstanceOf(HandshakeError);
        }
      }),
    );
  });
});

describe('formatExtension', () => {
  it('formats a name with params in order', () => {
    expect(formatExtension('permessage-deflate')).toBe('permessage-deflate');
    expect(
      formatExtension(
        'permessage-deflate',
        new Map<string, string | true>([
          ['server_no_context_takeover', true],
          ['client_max_window_bits', '10'],
        ]),
      ),
    ).toBe('permessage-deflate; server_no_context_takeover; client_max_window_bits=10');
  });

  it('throws TypeError for names or values that are not tokens', () => {
    expect(() => formatExtension('')).toThrow(TypeError);
    expect(() => formatExtension('a b')).toThrow(TypeError);
    expect(() => formatExtension('a', [['b c', true]])).toThrow(TypeError);
    expect(() => formatExtension('a', [['b', '']])).toThrow(TypeError);
    expect(() => formatExtension('a', [['b', '1,2']])).toThrow(TypeError);
  });
});
