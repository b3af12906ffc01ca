import type { Duplex } from 'node:stream';
import type { ProxiedAddress } from '../shared/proxy-protocol.ts';

/**
 * The client's address when a PROXY protocol header gave it: set on the socket itself, as its
 * own `remoteAddress`, `remotePort` and `remoteFamily` (which otherwise ask the kernel for the
 * proxy's), so whatever reads the socket sees the client: `ws.remoteAddress`, `req.remoteAddress`
 * in `upgrade`, and `req.socket.remoteAddress` in an app's `http` handler (Express's `req.ip`).
 */
export function setPeerAddress(socket: Duplex, peer: ProxiedAddress): void {
  Object.defineProperties(socket, {
    remoteAddress: { value: peer.address, configurable: true, enumerable: true },
    remotePort: { value: peer.port, configurable: true, enumerable: true },
    remoteFamily: { value: peer.family, configurable: true, enumerable: true },
  });
}

/** Carries an address set above to the socket that takes over the same connection (a rehomed socket, a TLS wrap). */
export function carryPeerAddress(from: Duplex, to: Duplex): void {
  if (from === to || !Object.hasOwn(from, 'remoteAddress')) return;
  const socket = from as Duplex & ProxiedAddress & { remoteAddress: string; remotePort: number; remoteFamily: 'IPv4' | 'IPv6' };
  setPeerAddress(to, { address: socket.remoteAddress, port: socket.remotePort, family: socket.remoteFamily });
}
