import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ShardServer } from '../../src/main/listen.ts';
import { cleanup, clientFrame, openClient, rawWebSocket, startServer, wsUrl } from './helpers.ts';

const MAX_PAYLOAD = 1024;

const closePayload = (code: number): Buffer => {
  const payload = Buffer.alloc(2);
  payload.writeUInt16BE(code);
  return payload;
};

describe('a peer that breaks RFC 6455', () => {
  let server: ShardServer;
  beforeAll(async () => {
    server = await startServer({ maxPayloadLength: MAX_PAYLOAD });
  });
  afterAll(cleanup);

  const cases: { name: string; bytes: () => Buffer; code: number }[] = [
    // §5.1: a server MUST close the connection upon receiving an unmasked frame.
    { name: 'an unmasked frame', bytes: () => clientFrame(0x1, Buffer.from('hello'), { mask: false }), code: 1002 },
    // §8.1: text must be valid UTF-8.
    { name: 'text that is not UTF-8', bytes: () => clientFrame(0x1, Buffer.from([0x68, 0xff, 0xfe, 0x69])), code: 1007 },
    { name: 'text with a truncated UTF-8 sequence', bytes: () => clientFrame(0x1, Buffer.from([0xe2, 0x82])), code: 1007 },
    // The declared length alone is enough: the payload need not be sent.
    { name: 'a frame declaring more than maxPayloadLength', bytes: () => clientFrame(0x2, Buffer.alloc(0), { length: 1024 * 1024 }).subarray(0, 14), code: 1009 },
    {
      name: 'fragments that add up to more than maxPayloadLength',
      bytes: () => Buffer.concat([clientFrame(0x2, Buffer.alloc(600), { fin: false }), clientFrame(0x0, Buffer.alloc(600))]),
      code: 1009,
    },
    // §7.4.1: 1005 is never sent on the wire.
    { name: 'a close frame with code 1005', bytes: () => clientFrame(0x8, closePayload(1005)), code: 1002 },
    { name: 'a close frame with a 1-byte payload', bytes: () => clientFrame(0x8, Buffer.from([0x03])), code: 1002 },
    { name: 'a reserved opcode', bytes: () => clientFrame(0x3, Buffer.from('x')), code: 1002 },
    // §5.5: control frames MUST NOT be fragmented.
    { name: 'a fragmented ping', bytes: () => clientFrame(0x9, Buffer.from('x'), { fin: false }), code: 1002 },
    { name: 'a continuation frame with nothing to continue', bytes: () => clientFrame(0x0, Buffer.from('x')), code: 1002 },
    {
      name: 'RSV1 without a negotiated extension',
      bytes: () => {
        const frame = clientFrame(0x1, Buffer.from('x'));
        frame[0] = frame[0]! | 0x40;
        return frame;
      },
      code: 1002,
    },
  ];

  for (const { name, bytes, code } of cases) {
    it(`closes with ${code} after ${name}, then closes TCP`, async () => {
      const raw = await rawWebSocket(server.address().port, '/echo');
      raw.socket.write(bytes());
      const close = await raw.nextClose();
      expect(close.code).toBe(code);
      expect(close.skipped).toEqual([]);
      await raw.waitEnded();
    });
  }

  it('accepts a message of exactly maxPayloadLength, and a valid close code', async () => {
    const raw = await rawWebSocket(server.address().port, '/echo');
    raw.socket.write(clientFrame(0x2, Buffer.alloc(MAX_PAYLOAD, 7)));
    const echo = await raw.nextFrame();
    expect(echo.opcode).toBe(0x2);
    expect(echo.payload.equals(Buffer.alloc(MAX_PAYLOAD, 7))).toBe(true);
    raw.socket.write(clientFrame(0x8, closePayload(4000)));
    expect((await raw.nextClose()).code).toBe(4000);
    await raw.waitEnded();
  });

  it('still serves a normal client after all of that', async () => {
    const client = await openClient(wsUrl(server, '/echo'));
    expect((await client.request('still serving')).data.toString()).toBe('still serving');
    expect(server.stats().restarts).toBe(0);
  });
});
