/**
 * The PROXY protocol header (HAProxy's proxy-protocol.txt, versions 1 and 2) that a load
 * balancer in front (HAProxy, AWS NLB, nginx's stream module) sends before anything else on a
 * connection, carrying the client's real address. Read strictly and in bounded space: version 1
 * is one text line of at most 107 bytes, version 2 a 16-byte binary header and at most
 * MAX_V2_PAYLOAD bytes of addresses and TLVs. Anything else at the start of a connection is
 * `invalid` as soon as a byte shows it: a server that expects the header must not guess
 * (proxy-protocol.txt §2: "the receiver MUST ... close the connection").
 */
import { isIPv4, isIPv6 } from 'node:net';

export interface ProxiedAddress {
  readonly address: string;
  readonly port: number;
  readonly family: 'IPv4' | 'IPv6';
}

export type ProxyHeaderParse =
  /** Not enough bytes yet to decide. */
  | { readonly kind: 'incomplete' }
  | { readonly kind: 'invalid'; readonly reason: string }
  /**
   * A header of `length` bytes. `source` is the client's address, or null when the header says
   * the connection is the proxy's own (v1 UNKNOWN, v2 LOCAL or an unspecified family): the
   * socket's own address stands.
   */
  | { readonly kind: 'header'; readonly length: number; readonly version: 1 | 2; readonly source: ProxiedAddress | null };

/** proxy-protocol.txt §2.1: "a receiver ... 107 bytes" is the longest v1 line. */
export const MAX_V1_LENGTH = 107;
/** Bytes of v2 addresses and TLVs accepted after the 16-byte header (the format allows 65,535). */
export const MAX_V2_PAYLOAD = 2048;
/** The most bytes a header can take: what a caller may have to hold before it is parsed. */
export const MAX_PROXY_HEADER = 16 + MAX_V2_PAYLOAD;

const V1_PREFIX = Buffer.from('PROXY ', 'latin1');
const V2_SIGNATURE = Buffer.from([0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a]);

const INCOMPLETE: ProxyHeaderParse = Object.freeze({ kind: 'incomplete' });
const invalid = (reason: string): ProxyHeaderParse => ({ kind: 'invalid', reason });

/** Parses the start of a connection's bytes. */
export function parseProxyHeader(bytes: Uint8Array): ProxyHeaderParse {
  if (bytes.length === 0) return INCOMPLETE;
  if (bytes[0] === V1_PREFIX[0]) return parseV1(bytes);
  if (bytes[0] === V2_SIGNATURE[0]) return parseV2(bytes);
  return invalid('the connection does not start with a PROXY protocol header');
}

function startsWith(bytes: Uint8Array, prefix: Uint8Array): boolean | null {
  const n = Math.min(bytes.length, prefix.length);
  for (let i = 0; i < n; i++) if (bytes[i] !== prefix[i]) return false;
  return bytes.length >= prefix.length ? true : null;
}

function parseV1(bytes: Uint8Array): ProxyHeaderParse {
  const prefix = startsWith(bytes, V1_PREFIX);
  if (prefix === false) return invalid('the connection does not start with a PROXY protocol header');
  let end = -1;
  // The CR must leave room for its LF within MAX_V1_LENGTH bytes.
  const limit = Math.min(bytes.length, MAX_V1_LENGTH - 1);
  for (let i = 0; i < limit; i++) {
    const c = bytes[i]!;
    if (c === 0x0d) {
      if (i + 1 >= bytes.length) return INCOMPLETE;
      if (bytes[i + 1] !== 0x0a) return invalid('PROXY v1 header: CR without LF');
      end = i;
      break;
    }
    // Printable ASCII only (§2.1: "US-ASCII").
    if (c < 0x20 || c > 0x7e) return invalid('PROXY v1 header: a byte that is not printable ASCII');
  }
  if (end < 0) return bytes.length >= MAX_V1_LENGTH - 1 ? invalid(`PROXY v1 header longer than ${MAX_V1_LENGTH} bytes`) : INCOMPLETE;
  const line = Buffer.from(bytes.buffer, bytes.byteOffset, end).toString('latin1');
  const parts = line.split(' ');
  const length = end + 2;
  // "PROXY UNKNOWN" may be followed by anything up to the CRLF (§2.1): the proxy's own connection.
  if (parts[1] === 'UNKNOWN') return { kind: 'header', length, version: 1, source: null };
  if (parts.length !== 6) return invalid('PROXY v1 header: expected PROXY TCP4|TCP6 SRC DST SPORT DPORT');
  const [, protocol, source, destination, sourcePort, destinationPort] = parts as [string, string, string, string, string, string];
  const family = protocol === 'TCP4' ? 'IPv4' : protocol === 'TCP6' ? 'IPv6' : null;
  if (family === null) return invalid(`PROXY v1 header: unknown protocol ${JSON.stringify(protocol)}`);
  const valid = family === 'IPv4' ? isIPv4 : isIPv6;
  if (!valid(source) || !valid(destination)) return invalid(`PROXY v1 header: an address is not ${family}`);
  const port = v1Port(sourcePort);
  if (port < 0 || v1Port(destinationPort) < 0) return invalid('PROXY v1 header: a port is not a number from 0 to 65535');
  return { kind: 'header', length, version: 1, source: { address: source, port, family } };
}

/** §2.1: ports are decimal, without leading zeros. */
function v1Port(text: string): number {
  if (!/^(0|[1-9][0-9]{0,4})$/.test(text)) return -1;
  const port = Number(text);
  return port <= 65535 ? port : -1;
}

function parseV2(bytes: Uint8Array): ProxyHeaderParse {
  const signature = startsWith(bytes, V2_SIGNATURE);
  if (signature === false) return invalid('the connection does not start with a PROXY protocol header');
  if (signature === null || bytes.length < 16) return INCOMPLETE;
  const versionCommand = bytes[12]!;
  if (versionCommand >> 4 !== 2) return invalid(`PROXY v2 header: version ${versionCommand >> 4}`);
  const command = versionCommand & 0x0f;
  if (command > 1) return invalid(`PROXY v2 header: unknown command ${command}`);
  const family = bytes[13]! >> 4;
  const transport = bytes[13]! & 0x0f;
  const payload = (bytes[14]! << 8) | bytes[15]!;
  if (payload > MAX_V2_PAYLOAD) return invalid(`PROXY v2 header: ${payload} bytes of addresses and TLVs (at most ${MAX_V2_PAYLOAD} accepted)`);
  const length = 16 + payload;
  if (bytes.length < length) return INCOMPLETE;
  // LOCAL (§2.2): the proxy's own connection (a health check); the addresses are to be ignored.
  if (command === 0) return { kind: 'header', length, version: 2, source: null };
  if (transport > 2) return invalid(`PROXY v2 header: unknown transport ${transport}`);
  const at = 16;
  switch (family) {
    case 0: // AF_UNSPEC: nothing to say about the source.
      return { kind: 'header', length, version: 2, source: null };
    case 1: // AF_INET: 4 + 4 address bytes, 2 + 2 port bytes.
      if (payload < 12) return invalid('PROXY v2 header: too short for IPv4 addresses');
      return { kind: 'header', length, version: 2, source: { address: `${bytes[at]}.${bytes[at + 1]}.${bytes[at + 2]}.${bytes[at + 3]}`, port: (bytes[at + 8]! << 8) | bytes[at + 9]!, family: 'IPv4' } };
    case 2: // AF_INET6: 16 + 16, 2 + 2.
      if (payload < 36) return invalid('PROXY v2 header: too short for IPv6 addresses');
      return { kind: 'header', length, version: 2, source: { address: formatIPv6(bytes.subarray(at, at + 16)), port: (bytes[at + 32]! << 8) | bytes[at + 33]!, family: 'IPv6' } };
    case 3: // AF_UNIX: paths, no address a WebSocket app can use.
      if (payload < 216) return invalid('PROXY v2 header: too short for Unix addresses');
      return { kind: 'header', length, version: 2, source: null };
    default:
      return invalid(`PROXY v2 header: unknown address family ${family}`);
  }
}

/** An IPv6 address as Node prints a peer's (RFC 5952: lowercase, the longest zero run as ::). */
export function formatIPv6(bytes: Uint8Array): string {
  const groups: number[] = [];
  for (let i = 0; i < 16; i += 2) groups.push((bytes[i]! << 8) | bytes[i + 1]!);
  // An IPv4-mapped address (::ffff:a.b.c.d) keeps its dotted quad, as Node shows it.
  if (groups.slice(0, 5).every((g) => g === 0) && groups[5] === 0xffff) return `::ffff:${bytes[12]}.${bytes[13]}.${bytes[14]}.${bytes[15]}`;
  let bestStart = -1;
  let bestLength = 1;
  for (let i = 0; i < 8; ) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLength) {
      bestStart = i;
      bestLength = j - i;
    }
    i = j;
  }
  const hex = groups.map((g) => g.toString(16));
  if (bestStart < 0) return hex.join(':');
  return `${hex.slice(0, bestStart).join(':')}::${hex.slice(bestStart + bestLength).join(':')}`;
}
