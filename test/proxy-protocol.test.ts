import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { MAX_V2_PAYLOAD, formatIPv6, parseProxyHeader } from '../src/shared/proxy-protocol.ts';

const SIGNATURE = [0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a];
const v2 = (versionCommand: number, family: number, body: number[]): Buffer => Buffer.from([...SIGNATURE, versionCommand, family, body.length >> 8, body.length & 0xff, ...body]);
const text = (s: string): Buffer => Buffer.from(s, 'latin1');

describe('parseProxyHeader: v1', () => {
  it('reads TCP4 and TCP6 lines, and the bytes after them stay for the caller', () => {
    const line = 'PROXY TCP4 203.0.113.7 192.0.2.1 51234 443\r\n';
    expect(parseProxyHeader(text(`${line}GET /`))).toEqual({ kind: 'header', length: line.length, version: 1, source: { address: '203.0.113.7', port: 51234, family: 'IPv4' } });
    expect(parseProxyHeader(text('PROXY TCP6 2001:db8::1 ::1 0 65535\r\n'))).toMatchObject({ source: { address: '2001:db8::1', port: 0, family: 'IPv6' } });
    expect(parseProxyHeader(text('PROXY UNKNOWN ffff::1 ::1 1 2\r\n'))).toMatchObject({ kind: 'header', source: null });
  });

  it('waits for more while a prefix could still become a header', () => {
    const line = 'PROXY TCP4 203.0.113.7 192.0.2.1 51234 443\r\n';
    for (let i = 1; i < line.length; i++) expect(parseProxyHeader(text(line.slice(0, i))).kind, line.slice(0, i)).toBe('incomplete');
  });

  it('takes a line of exactly 107 bytes (the worst case of §2.1) and refuses one of 108, without waiting for its LF', () => {
    const f39 = 'ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff';
    const worst = `PROXY UNKNOWN ${f39} ${f39} 65535 65535\r\n`;
    expect(worst).toHaveLength(107);
    expect(parseProxyHeader(text(`${worst}GET`))).toEqual({ kind: 'header', length: 107, version: 1, source: null });
    const longer = `PROXY UNKNOWN ${f39} ${f39} 65535 655350\r\n`;
    expect(parseProxyHeader(text(longer)).kind).toBe('invalid');
    // 106 bytes and no CR yet: the CR could only come at byte 107, leaving no room for the LF.
    expect(parseProxyHeader(text(longer.slice(0, 106))).kind).toBe('invalid');
    expect(parseProxyHeader(text(longer.slice(0, 105))).kind).toBe('incomplete');
  });

  it('refuses a v1 line whose fields are not single-space separated, and takes a v4-mapped TCP6 source as written', () => {
    expect(parseProxyHeader(text('PROXY TCP4  1.2.3.4 5.6.7.8 1 2\r\n')).kind).toBe('invalid');
    expect(parseProxyHeader(text('PROXY TCP4 1.2.3.4 5.6.7.8 1 2 \r\n')).kind).toBe('invalid');
    expect(parseProxyHeader(text('PROXY TCP6 ::ffff:1.2.3.4 ::1 7 8\r\n'))).toMatchObject({ source: { address: '::ffff:1.2.3.4', port: 7, family: 'IPv6' } });
  });

  it.each([
    ['GET / HTTP/1.1\r\n', /does not start with a PROXY/],
    ['PROXX TCP4', /does not start with a PROXY/],
    ['PROXY TCP4 203.0.113.7 192.0.2.1 51234\r\n', /expected PROXY/],
    ['PROXY TCP4 ::1 192.0.2.1 1 2\r\n', /not IPv4/],
    ['PROXY TCP6 1.2.3.4 ::1 1 2\r\n', /not IPv6/],
    ['PROXY UDP4 1.2.3.4 5.6.7.8 1 2\r\n', /unknown protocol/],
    ['PROXY TCP4 1.2.3.4 5.6.7.8 65536 2\r\n', /a port/],
    ['PROXY TCP4 1.2.3.4 5.6.7.8 01 2\r\n', /a port/],
    ['PROXY TCP4 1.2.3.4 5.6.7.8 1 2\rX', /CR without LF/],
    ['PROXY TCP4 1.2.3.4\n', /not printable/],
    [`PROXY ${'1'.repeat(110)}`, /longer than 107/],
  ])('refuses %j', (input, reason) => {
    const parsed = parseProxyHeader(text(input));
    expect(parsed.kind).toBe('invalid');
    expect(parsed.kind === 'invalid' && parsed.reason).toMatch(reason);
  });
});

describe('parseProxyHeader: v2', () => {
  it('reads IPv4 and IPv6 sources, skips TLVs, and LOCAL keeps the socket address', () => {
    const ipv4 = v2(0x21, 0x11, [198, 51, 100, 23, 192, 0, 2, 1, 0x9c, 0x40, 0x01, 0xbb, 0x04, 0x00, 0x01, 0x00]);
    expect(parseProxyHeader(Buffer.concat([ipv4, text('GET')]))).toEqual({ kind: 'header', length: ipv4.length, version: 2, source: { address: '198.51.100.23', port: 40000, family: 'IPv4' } });
    const source6 = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
    expect(parseProxyHeader(v2(0x21, 0x21, [...source6, ...new Array(16).fill(0), 0, 80, 1, 187]))).toMatchObject({ source: { address: '2001:db8::1', port: 80, family: 'IPv6' } });
    expect(parseProxyHeader(v2(0x20, 0x00, []))).toMatchObject({ kind: 'header', source: null });
    expect(parseProxyHeader(v2(0x21, 0x00, [1, 2, 3]))).toMatchObject({ kind: 'header', source: null, length: 19 });
    expect(parseProxyHeader(v2(0x21, 0x31, new Array(216).fill(0)))).toMatchObject({ kind: 'header', source: null });
  });

  it('takes TLVs up to MAX_V2_PAYLOAD bytes of payload, and the header ends exactly there', () => {
    const body = [1, 2, 3, 4, 5, 6, 7, 8, 0, 9, 0, 10, ...new Array(MAX_V2_PAYLOAD - 12).fill(0xee)];
    const header = v2(0x21, 0x11, body);
    expect(parseProxyHeader(Buffer.concat([header, text('GET')]))).toEqual({ kind: 'header', length: 16 + MAX_V2_PAYLOAD, version: 2, source: { address: '1.2.3.4', port: 9, family: 'IPv4' } });
    expect(parseProxyHeader(header.subarray(0, header.length - 1)).kind).toBe('incomplete');
  });

  it('a LOCAL header is taken whatever its family (the addresses are to be ignored, §2.2)', () => {
    expect(parseProxyHeader(v2(0x20, 0x11, []))).toMatchObject({ kind: 'header', length: 16, source: null });
    expect(parseProxyHeader(v2(0x20, 0x51, [1, 2]))).toMatchObject({ kind: 'header', length: 18, source: null });
  });

  it('waits for the whole header', () => {
    const header = v2(0x21, 0x11, [1, 2, 3, 4, 5, 6, 7, 8, 0, 1, 0, 2]);
    for (let i = 1; i < header.length; i++) expect(parseProxyHeader(header.subarray(0, i)).kind).toBe('incomplete');
  });

  it.each([
    ['version 1 in the binary form', v2(0x11, 0x11, new Array(12).fill(0)), /version 1/],
    ['an unknown command', v2(0x22, 0x11, new Array(12).fill(0)), /unknown command/],
    ['too short for IPv4', v2(0x21, 0x11, new Array(11).fill(0)), /too short for IPv4/],
    ['too short for IPv6', v2(0x21, 0x21, new Array(35).fill(0)), /too short for IPv6/],
    ['an unknown family', v2(0x21, 0x41, new Array(12).fill(0)), /unknown address family/],
    ['an unknown transport', v2(0x21, 0x13, new Array(12).fill(0)), /unknown transport/],
    ['more than the bound', Buffer.from([...SIGNATURE, 0x21, 0x11, (MAX_V2_PAYLOAD + 1) >> 8, (MAX_V2_PAYLOAD + 1) & 0xff]), /at most/],
    ['a broken signature', Buffer.from([...SIGNATURE.slice(0, 6), 0x00]), /does not start/],
  ])('refuses %s', (_name, bytes, reason) => {
    const parsed = parseProxyHeader(bytes);
    expect(parsed.kind).toBe('invalid');
    expect(parsed.kind === 'invalid' && parsed.reason).toMatch(reason);
  });

  it('never reads past MAX_PROXY_HEADER bytes, and never throws, on any input', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), fc.boolean(), (bytes, signed) => {
        const input = signed ? Buffer.concat([Buffer.from(SIGNATURE), bytes]) : Buffer.from(bytes);
        const parsed = parseProxyHeader(input);
        if (parsed.kind === 'header') expect(parsed.length).toBeLessThanOrEqual(input.length);
      }),
    );
  });
});

describe('formatIPv6', () => {
  it('writes addresses as Node prints a peer (RFC 5952)', () => {
    const bytes = (groups: number[]): Uint8Array => new Uint8Array(groups.flatMap((g) => [g >> 8, g & 0xff]));
    expect(formatIPv6(bytes([0, 0, 0, 0, 0, 0, 0, 1]))).toBe('::1');
    expect(formatIPv6(bytes([0, 0, 0, 0, 0, 0, 0, 0]))).toBe('::');
    expect(formatIPv6(bytes([0x2001, 0xdb8, 0, 0, 1, 0, 0, 1]))).toBe('2001:db8::1:0:0:1');
    expect(formatIPv6(bytes([0x2001, 0xdb8, 1, 2, 3, 4, 5, 6]))).toBe('2001:db8:1:2:3:4:5:6');
    expect(formatIPv6(bytes([0x2001, 0, 1, 2, 3, 4, 5, 6]))).toBe('2001:0:1:2:3:4:5:6');
    expect(formatIPv6(bytes([0, 0, 0, 0, 0, 0xffff, 0xc000, 0x0201]))).toBe('::ffff:192.0.2.1');
  });
});
