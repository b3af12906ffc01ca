/**
 * The `Sec-WebSocket-Protocol` request header (RFC 6455 §4.1, §11.3.4): a comma-separated list of
 * unique tokens with optional whitespace around the commas. Scanned one character at a time in
 * linear time, never with a backtracking regex (ws, CVE-2021-32640).
 */
import { HandshakeError } from './errors.ts';
import { isToken, isTokenChar } from './token-list.ts';

export { isToken };

const TAB = 0x09;
const SPACE = 0x20;
const COMMA = 0x2c;

/**
 * parseSubprotocolHeader returns the offered subprotocols in the client's order (their order is
 * the client's preference, RFC 6455 §4.1). Names are case-sensitive. Throws HandshakeError(400) on
 * an empty list or element, a non-token character, or a name offered twice ("MUST all be unique").
 */
export function parseSubprotocolHeader(value: string): string[] {
  const protocols: string[] = [];
  const seen = new Set<string>();
  let start = -1; // first character of the current name, -1 between names
  let end = -1; // end of the current name once whitespace follows it
  const invalid = (reason: string): never => {
    throw new HandshakeError(400, `Invalid Sec-WebSocket-Protocol header: ${reason}`);
  };
  const add = (at: number): void => {
    const name = value.slice(start, end === -1 ? at : end);
    // The name is echoed into the 400 body: a token, so safe, but keep the body short.
    if (seen.has(name)) invalid(`subprotocol "${name.slice(0, 64)}" is offered more than once`);
    seen.add(name);
    protocols.push(name);
    start = end = -1;
  };

  for (let i = 0; i < value.length; i++) {
    const code = value.charCodeAt(i);
    if (isTokenChar(code)) {
      if (end !== -1) invalid(`unexpected character at index ${i}`);
      if (start === -1) start = i;
    } else if (code === SPACE || code === TAB) {
      if (start !== -1 && end === -1) end = i;
    } else if (code === COMMA) {
      if (start === -1) invalid(`empty element at index ${i}`);
      add(i);
    } else {
      invalid(`unexpected character at index ${i}`);
    }
  }
  if (start === -1) invalid('unexpected end of input');
  add(value.length);
  return protocols;
}
