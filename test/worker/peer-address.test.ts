/**
 * setPeerAddress / carryPeerAddress on real loopback sockets: the address a PROXY header gave
 * becomes the socket's own remote address, and travels to the socket that takes it over.
 */
import { connect, createServer } from 'node:net';
import type { AddressInfo, Socket } from 'node:net';
import { TLSSocket } from 'node:tls';
import { afterEach, describe, expect, it } from 'vitest';
import { carryPeerAddress, setPeerAddress } from '../../src/worker/peer-address.ts';

const closers: (() => void)[] = [];
afterEach(() => {
  for (const close of closers.splice(0)) close();
});

async function accepted(): Promise<Socket> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const socket = new Promise<Socket>((resolve) => server.once('connection', resolve));
  const peer = connect((server.address() as AddressInfo).port, '127.0.0.1');
  const near = await socket;
  closers.push(() => {
    near.destroy();
    peer.destroy();
    server.close();
  });
  return near;
}

describe('peer address', () => {
  it("setPeerAddress makes the header's address the socket's own, leaving its local address alone", async () => {
    const socket = await accepted();
    expect(socket.remoteAddress).toBe('127.0.0.1');
    const local = socket.address();
    setPeerAddress(socket, { address: '2001:db8::7', port: 40_000, family: 'IPv6' });
    expect([socket.remoteAddress, socket.remotePort, socket.remoteFamily]).toEqual(['2001:db8::7', 40_000, 'IPv6']);
    expect(socket.address()).toEqual(local);
    // Set again (a second hop's header is not read, but the setter must not be one-shot).
    setPeerAddress(socket, { address: '203.0.113.5', port: 1, family: 'IPv4' });
    expect(socket.remoteAddress).toBe('203.0.113.5');
  });

  it('carryPeerAddress moves a set address to the socket that takes over, and nothing when none was set', async () => {
    const socket = await accepted();
    const wrap = new TLSSocket(socket, { isServer: true });
    closers.push(() => wrap.destroy());
    carryPeerAddress(socket, wrap);
    expect(Object.hasOwn(wrap, 'remoteAddress')).toBe(false);
    setPeerAddress(socket, { address: '198.51.100.9', port: 5555, family: 'IPv4' });
    carryPeerAddress(socket, wrap);
    expect([wrap.remoteAddress, wrap.remotePort, wrap.remoteFamily]).toEqual(['198.51.100.9', 5555, 'IPv4']);
    carryPeerAddress(socket, socket);
    expect(socket.remoteAddress).toBe('198.51.100.9');
  });
});
