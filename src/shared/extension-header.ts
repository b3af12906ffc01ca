/**
 * The Sec-WebSocket-Extensions header (RFC 6455 §9.1, RFC 7692 §5):
 *
 *   extension-list = 1#extension
 *   extension      = extension-token *( ";" extension-param )
 *   extension-param = token [ "=" (token | quoted-string) ]
 *
 * Scanned one character at a time in linear time, never with a backtracking regex (ws,
 * CVE-2021-32640). Names and values are case-sensitive; params live in a Map, so names such as
 * `__proto__` are plain keys.
 */
import { HandshakeError } from './errors.ts';
import { isToken, isTokenChar } from './token-list.ts';

const TAB = 0x09;
const SPACE = 0x20;
const DQUOTE = 0x22;
const COMMA = 0x2c;
const SEMICOLON = 0x3b;
const EQUALS = 0x3d;
const BACKSLASH = 0x5c;

/** One element of the list: an extension offered by a client, or accepted in a server's response. */
export interface ExtensionOffer {
  readonly name: string;
  /** Param name → value; `true` for a param without a value. A repeated param keeps its first value. */
  readonly params: ReadonlyMap<string, string | true>;
  /** Params that appeared more than once in this element; absent when none did. */
  readonly repeatedParams?: readonly string[];
}

const isOws = (code: number): boolean => code === SPACE || code === TAB;

/**
 * parseExtensionHeader returns the list's elements in order, so several offers of one extension
 * (RFC 7692 §5: alternatives in preference order) and header lines joined by ", " both work.
 * Empty list elements are skipped (RFC 9110 §5.6.1); a list with no element, a non-token name, a
 * quoted value that is not a token after unescaping (RFC 6455 §9.1), or any stray character is a
 * HandshakeError(400).
 */
export function parseExtensionHeader(value: string): ExtensionOffer[] {
  const offers: ExtensionOffer[] = [];
  const n = value.length;
  let i = 0;

  const fail = (reason: string): never => {
    throw new HandshakeError(400, `Invalid Sec-WebSocket-Extensions header: ${reason}`);
  };
  const unexpected = (expected: string): never =>
    i === n ? fail(`expected ${expected} at end of header`) : fail(`expected ${expected} at index ${i}`);
  const skipOws = (): void => {
    while (i < n && isOws(value.charCodeAt(i))) i++;
  };
  const readToken = (what: string): string => {
    const start = i;
    while (i < n && isTokenChar(value.charCodeAt(i))) i++;
    if (i === start) unexpected(what);
    return value.slice(start, i);
  };
  // quoted-string = DQUOTE *( qdtext / quoted-pair ) DQUOTE (RFC 9110 §5.6.4); the unescaped
  // value must be a token, so every character, escaped or not, must be a tchar.
  const readQuoted = (): string => {
    i++; // opening quote
    const start = i;
    let unescaped: string | undefined; // built only when a backslash appears
    for (;;) {
      if (i === n) return fail('unterminated quoted-string');
      let code = value.charCodeAt(i);
      if (code === DQUOTE) break;
      if (code === BACKSLASH) {
        unescaped ??= value.slice(start, i);
        if (++i === n) return fail('unterminated quoted-string');
        code = value.charCodeAt(i);
        if (!isTokenChar(code)) fail(`quoted value is not a token (index ${i})`);
        unescaped += value[i];
      } else {
        if (!isTokenChar(code)) fail(`quoted value is not a token (index ${i})`);
        if (unescaped !== undefined) unescaped += value[i];
      }
      i++;
    }
    const result = unescaped ?? value.slice(start, i);
    i++; // closing quote
    if (result.length === 0) fail('empty quoted value');
    return result;
  };

  for (;;) {
    // Between elements: whitespace and empty elements ("a, , b").
    while (i < n) {
      const code = value.charCodeAt(i);
      if (code !== COMMA && !isOws(code)) break;
      i++;
    }
    if (i === n) break;

    const name = readToken('an extension name');
    const params = new Map<string, string | true>();
    let repeatedParams: string[] | undefined;
    skipOws();
    while (i < n && value.charCodeAt(i) === SEMICOLON) {
      i++;
      skipOws();
      const param = readToken('a parameter name');
      skipOws();
      let paramValue: string | true = true;
      if (i < n && value.charCodeAt(i) === EQUALS) {
        i++;
        skipOws();
        paramValue = i < n && value.charCodeAt(i) === DQUOTE ? readQuoted() : readToken('a parameter value');
        skipOws();
      }
      if (params.has(param)) (repeatedParams ??= []).push(param);
      else params.set(param, paramValue);
    }
    offers.push(repeatedParams === undefined ? { name, params } : { name, params, repeatedParams });

    if (i === n) break;
    if (value.charCodeAt(i) !== COMMA) unexpected('"," or ";"');
  }

  if (offers.length === 0) fail('no extension listed');
  return offers;
}

/**
 * formatExtension builds one list element, `name; a; b=1`. Names and values must be tokens (values
 * are never quoted: RFC 6455 §9.1 requires a token even inside quotes); anything else is a
 * programming error and throws TypeError.
 */
export function formatExtension(name: string, params: Iterable<readonly [string, string | true]> = []): string {
  if (!isToken(name)) throw new TypeError(`Extension name ${JSON.stringify(name)} is not a token`);
  let out = name;
  for (const [param, paramValue] of params) {
    if (!isToken(param)) throw new TypeError(`Extension parameter ${JSON.stringify(param)} is not a token`);
    out += `; ${param}`;
    if (paramValue === true) continue;
    if (!isToken(paramValue)) {
      throw new TypeError(`Value ${JSON.stringify(paramValue)} of extension parameter ${param} is not a token`);
    }
    out += `=${paramValue}`;
  }
  return out;
}
