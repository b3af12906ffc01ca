import { describe, expect, it } from 'vitest';
import { Opcode } from '../../src/shared/opcodes.ts';
import { OutgoingStream } from '../../src/worker/outgoing-stream.ts';

const piece = (text: string, fin = false) => ({ data: Buffer.from(text), fin });

describe('OutgoingStream', () => {
  it('gives the first frame the message opcode and the rest continuations, and adds up their bytes', () => {
    const text = new OutgoingStream(false, true, 'normal');
    expect([text.opcode, text.binary, text.compress, text.priority]).toEqual([Opcode.Text, false, true, 'normal']);
    expect([text.started, text.size]).toEqual([false, 0]);
    expect([text.nextOpcode(3), text.nextOpcode(0), text.nextOpcode(4)]).toEqual([Opcode.Text, Opcode.Continuation, Opcode.Continuation]);
    expect([text.started, text.size]).toEqual([true, 7]);
    expect(new OutgoingStream(true, false, 'low').nextOpcode(1)).toBe(Opcode.Binary);
  });

  it('keeps waiting pieces in order and counts their bytes', () => {
    const stream = new OutgoingStream(false, false, 'normal');
    stream.push(piece('ab'));
    stream.push(piece('cde', true));
    expect([stream.hasPending, stream.pendingBytes]).toEqual([true, 5]);
    expect(stream.shift()!.data.toString()).toBe('ab');
    expect(stream.pendingBytes).toBe(3);
    expect(stream.shift()).toEqual(piece('cde', true));
    expect([stream.hasPending, stream.pendingBytes, stream.shift()]).toEqual([false, 0, undefined]);
  });

  it('is finished once the app sent its last piece', () => {
    const stream = new OutgoingStream(false, false, 'normal');
    stream.accept(false);
    expect(stream.finished).toBe(false);
    stream.accept(true);
    expect(stream.finished).toBe(true);
  });

  it('can be dropped only before its first frame, handing back what waited', () => {
    const stream = new OutgoingStream(false, false, 'normal');
    stream.push(piece('a'));
    expect(stream.drop()).toEqual([piece('a')]);
    expect([stream.dropped, stream.pendingBytes]).toEqual([true, 0]);
    const started = new OutgoingStream(false, false, 'normal');
    started.nextOpcode(1);
    expect(() => started.drop()).toThrow(/cannot be dropped/);
  });
});
