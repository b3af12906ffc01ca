/**
 * RFC 9110 §5.6.2 tokens and §5.6.1 comma-separated lists (`#rule`), as used by the `Connection`
 * and `Upgrade` headers. Lists are scanned one character at a time in linear time: ws's old split on the
 * backtracking regex ` *, *` was quadratic on long runs of spaces (CVE-2021-32640).
 */
import { HandshakeError } from './errors.ts';

const TAB = 0x09;
const SPACE = 0x20;
const COMMA = 0x2c;
const SLASH = 0x2f;

/** tchar = "!" / "#" / "$" / "%" / "&" / "'" / "*" / "+" / "-" / "." / "^" / "_" / "`" / "|" / "~" / DIGIT / ALPHA */
const TCHAR = new Uint8Array(128);
for (const c of "!#$%&'*+-.^_`|~") TCHAR[c.charCodeAt(0)] = 1;
for (let c = 0x30; c <= 0x39; c++) TCHAR[c] = 1;
for (let c = 0x41; c <= 0x5a; c++) TCHAR[c] = 1;
for (let c = 0x61; c <= 0x7a; c++) TCHAR[c] = 1;

export const isTokenChar = (code: number): boolean => code < 128 && TCHAR[code] === 1;

/** isToken tells whether `s` is a non-empty RFC 9110 token (1*tchar). */
export function isToken(s: string): boolean {
  if (s.length === 0) return false;
  for (let i = 0; i < s.length; i++) {
    if (!isTokenChar(s.charCodeAt(i))) return false;
  }
  return true;
}

/**
 * parseTokenList reads a `#token` list such as `Connection: keep-alive, Upgrade` and returns the
 * tokens lowercased (connection options are case-insensitive, RFC 9110 §7.6.1). Empty elements are
 * skipped (RFC 9110 §5.6.1: a recipient MUST accept them); any other non-token character is a 400.
 */
export function parseTokenList(value: string, headerName = 'header'): string[] {
  return scanList(value, headerName, false);
}

/**
 * parseUpgradeProtocols reads an `Upgrade` header: a list of `protocol-name ["/" protocol-version]`
 * (RFC 9110 §7.8), lowercased, so `Upgrade: HTTP/2.0, WebSocket` yields `["http/2.0", "websocket"]`.
 */
export function parseUpgradeProtocols(value: string): string[] {
  return scanList(value, 'Upgrade', true);
}

function scanList(value: string, headerName: string, allowVersion: boolean): string[] {
  const items: string[] = [];
  let start = -1; // first character of the current element, -1 between elements
  let end = -1; // end of the current element once whitespace follows it
  let slash = -1; // index of the "/" before a protocol-version
  const invalid = (i: number): never => {
    throw new HandshakeError(400, `Invalid ${headerName} header: unexpected character at index ${i}`);
  };
  const finish = (at: number): void => {
    if (start === -1) return; // empty element
    const stop = end === -1 ? at : end;
    if (slash === stop - 1) invalid(stop); // "name/" with no version
    items.push(value.slice(start, stop).toLowerCase());
    start = end = slash = -1;
  };

  for (let i = 0; i < value.length; i++) {
    const code = value.charCodeAt(i);
    if (isTokenChar(code)) {
      if (end !== -1) invalid(i); // two tokens separated by whitespace only
      if (start === -1) start = i;
    } else if (code === SPACE || code === TAB) {
      if (start !== -1 && end === -1) {
        if (slash === i - 1) invalid(i);
        end = i;
      }
    } else if (code === COMMA) {
      finish(i);
    } else if (code === SLASH && allowVersion && start !== -1 && end === -1 && slash === -1) {
      slash = i;
    } else {
      invalid(i);
    }
  }
  finish(value.length);
  return items;
}
