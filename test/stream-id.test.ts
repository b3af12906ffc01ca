import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { FIRST_ID, compareStreamIds, isStreamId } from '../src/shared/stream-id.ts';

describe('isStreamId', () => {
  it('takes what Redis gives: <milliseconds>-<sequence>', () => {
    for (const id of ['0-0', '0-1', '1796443257357-0', '1796443257357-12', '18446744073709551615-18446744073709551615']) expect(isStreamId(id), id).toBe(true);
  });

  it('refuses anything else, without a regular expression to backtrack', () => {
    for (const id of ['', '-', '1', '1-', '-1', '01-0', '1-01', '1-1-1', ' 1-1', '1-1 ', '+', '$', '1.5-0', '1-0x', '123456789012345678901-0', 'a-b']) {
      expect(isStreamId(id), JSON.stringify(id)).toBe(false);
    }
    for (const value of [undefined, null, 1, {}, ['1-1']]) expect(isStreamId(value)).toBe(false);
    expect(isStreamId(`${'9'.repeat(10_000)}-0`)).toBe(false);
  });
});

describe('compareStreamIds', () => {
  it('orders by milliseconds, then sequence, as numbers', () => {
    const sorted = ['0-0', '0-1', '0-10', '9-0', '10-0', '10-2', '100-0', '1796443257357-0', '1796443257357-3', '18446744073709551615-0'];
    for (let i = 0; i < sorted.length; i++) {
      for (let j = 0; j < sorted.length; j++) expect(Math.sign(compareStreamIds(sorted[i]!, sorted[j]!)), `${sorted[i]} vs ${sorted[j]}`).toBe(Math.sign(i - j));
    }
    expect(compareStreamIds(FIRST_ID, '0-1')).toBeLessThan(0);
  });

  it('agrees with BigInt on random ids, past 2^53 too', () => {
    const part = fc.bigInt({ min: 0n, max: 2n ** 64n - 1n });
    fc.assert(
      fc.property(part, part, part, part, (ma, sa, mb, sb) => {
        const expected = ma === mb ? Math.sign(Number(sa - sb)) : Math.sign(Number(ma - mb));
        expect(Math.sign(compareStreamIds(`${ma}-${sa}`, `${mb}-${sb}`))).toBe(expected);
      }),
    );
  });
});
