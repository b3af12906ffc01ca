/**
 * Framing outgoing messages. Ours as the server runs it: a FrameWriter per connection packing a
 * tick's frames into the thread's ByteArena, then take() for one writev; and encodeFrame, which
 * builds one self-contained buffer (used for broadcasts and control frames). ws: Sender.frame,
 * which returns [header, payload] without copying an unmasked payload, and for a masked one
 * (readOnly, as for a user's buffer) one merged buffer with the masked copy.
 *
 * One operation is one frame; each timed call frames a batch and keeps the output the way the
 * caller would (ours: take(); ws: the returned lists), so no socket write is timed.
 */
import { MessageReader } from '../../src/shared/message-reader.ts';
import { encodeFrame } from '../../src/shared/frame-encoder.ts';
import { ByteArena, FrameWriter } from '../../src/shared/frame-writer.ts';
import { MaskKeySource } from '../../src/shared/mask.ts';
import { Opcode } from '../../src/shared/opcodes.ts';
import type { BenchCase, Subject } from './case.ts';
import { assert, assertSameBytes } from './case.ts';
import { asciiText, keepMessages, randomBytes } from './fixtures.ts';
import { Receiver, Sender } from './ws-internals.ts';

type Role = 'server' | 'client';

/** Messages in `bytes`, parsed by ws's Receiver as the peer of `sender`. */
function parseWithWs(bytes: Buffer, sender: Role): Buffer[] {
  const out: Buffer[] = [];
  const receiver = new Receiver({ isServer: sender === 'client', maxPayload: 0 });
  receiver.on('message', (data: Buffer) => out.push(Buffer.from(data)));
  receiver.on('error', (error: Error) => {
    throw error;
  });
  receiver.write(bytes);
  return out;
}

/** Messages in `bytes`, parsed by our MessageReader as the peer of `sender`. */
function parseWithOurs(bytes: Buffer, sender: Role): Buffer[] {
  const out: Buffer[] = [];
  const events = keepMessages<Buffer[]>((messages, data) => messages.push(Buffer.from(data)));
  new MessageReader(events, out, { role: sender === 'client' ? 'server' : 'client', maxMessageSize: 1 << 30, inflater: null }).push(bytes);
  return out;
}

function encodeCases(title: string, payload: Buffer, opcode: Opcode, batch: number, role: Role): BenchCase[] {
  const masked = role === 'client';
  const maskKeys = masked ? new MaskKeySource() : null;
  const writer = new FrameWriter(new ByteArena(), maskKeys);

  const writeBatch = (): Buffer[] => {
    for (let i = 0; i < batch; i++) writer.frame(opcode, payload, true, false);
    return writer.take()!;
  };
  const frameWriter: Subject = { label: 'ours FrameWriter', batch, fn: writeBatch };

  const encoded: Buffer[] = new Array(batch);
  const encodeOptions = { maskKeys };
  const encodeBatch = (): Buffer[] => {
    for (let i = 0; i < batch; i++) encoded[i] = encodeFrame(opcode, payload, encodeOptions);
    return encoded;
  };
  const encoder: Subject = { label: 'ours encodeFrame', batch, fn: encodeBatch };

  const lists: Buffer[][] = new Array(batch);
  const wsOptions = { fin: true, opcode, mask: masked, readOnly: true, rsv1: false };
  const wsBatch = (): Buffer[] => {
    for (let i = 0; i < batch; i++) lists[i] = Sender.frame(payload, wsOptions);
    return lists.flat();
  };
  const ws: Subject = {
    label: 'ws Sender.frame',
    batch,
    fn: () => {
      for (let i = 0; i < batch; i++) lists[i] = Sender.frame(payload, wsOptions);
    },
  };

  const name = `encode ${title} (${role}${masked ? ', masked' : ''}), ${batch} per batch`;
  const verify = (ours: () => Buffer[]) => () => {
    const oursBytes = Buffer.concat(ours());
    const wsBytes = Buffer.concat(wsBatch());
    if (!masked) {
      assertSameBytes(name, oursBytes, wsBytes);
      return;
    }
    // Masked with different keys: check that each side's frames parse back to the payload on the other.
    for (const messages of [parseWithWs(oursBytes, role), parseWithOurs(wsBytes, role)]) {
      assert(messages.length === batch, `${name}: ${messages.length} of ${batch} frames parsed`);
      for (const m of messages) assertSameBytes(name, m, payload);
    }
  };
  return [
    { name, ours: frameWriter, baseline: ws, bytes: payload.length, verify: verify(writeBatch) },
    { name, ours: encoder, baseline: ws, bytes: payload.length, verify: verify(encodeBatch) },
  ];
}

const small = asciiText(64, 11);
const large = randomBytes(64 * 1024, 12);

export const cases: BenchCase[] = [
  ...encodeCases('64 B text', small, Opcode.Text, 100, 'server'),
  ...encodeCases('64 KiB binary', large, Opcode.Binary, 100, 'server'),
  ...encodeCases('64 B text', small, Opcode.Text, 100, 'client'),
  ...encodeCases('64 KiB binary', large, Opcode.Binary, 16, 'client'),
];
