import { describe, expect, it, vi } from 'vitest';
import type { Priority } from '../../src/shared/app.ts';
import { OutboundQueue } from '../../src/worker/outbound-queue.ts';
import type { QueuedMessage } from '../../src/worker/outbound-queue.ts';
import { Opcode } from '../../src/shared/opcodes.ts';
import { PreparedMessage } from '../../src/shared/prepared-message.ts';
import { OutgoingStream } from '../../src/worker/outgoing-stream.ts';

/** A queued data message named by its payload, `size` bytes long as the queue counts it. */
const message = (name: string, priority: Priority, size = 10, release: (() => void) | null = null): QueuedMessage => {
  const prepared = PreparedMessage.of(Opcode.Text, Buffer.from(name), null);
  return { kind: 'frames', priority, size, message: prepared, frames: prepared.plain, compressed: false, release };
};

const nameOf = (m: QueuedMessage): string => (m.kind === 'data' ? m.payload : m.kind === 'frames' ? m.message.payload : Buffer.from('stream')).toString();

const drain = (queue: OutboundQueue): string[] => {
  const names: string[] = [];
  for (let m = queue.shift(); m !== undefined; m = queue.shift()) names.push(nameOf(m));
  return names;
};

describe('OutboundQueue', () => {
  it('hands out high, then normal, then low, each lane first in first out', () => {
    const queue = new OutboundQueue();
    for (const [name, priority] of [
      ['n1', 'normal'],
      ['l1', 'low'],
      ['h1', 'high'],
      ['n2', 'normal'],
      ['l2', 'low'],
      ['h2', 'high'],
      ['n3', 'normal'],
    ] as const) {
      queue.push(message(name, priority));
    }
    expect(drain(queue)).toEqual(['h1', 'h2', 'n1', 'n2', 'n3', 'l1', 'l2']);
    expect(queue.shift()).toBeUndefined();
  });

  it('a high-priority message pushed later still overtakes what waits', () => {
    const queue = new OutboundQueue();
    queue.push(message('n1', 'normal'));
    queue.push(message('n2', 'normal'));
    expect(nameOf(queue.shift()!)).toBe('n1');
    queue.push(message('h', 'high'));
    expect(drain(queue)).toEqual(['h', 'n2']);
  });

  it('counts bytes and messages through push and shift', () => {
    const queue = new OutboundQueue();
    expect([queue.bytes, queue.length]).toEqual([0, 0]);
    queue.push(message('a', 'normal', 100));
    queue.push(message('b', 'low', 30));
    queue.push(message('c', 'high', 7));
    expect([queue.bytes, queue.length]).toEqual([137, 3]);
    queue.shift(); // c
    expect([queue.bytes, queue.length]).toEqual([130, 2]);
    queue.shift(); // a
    queue.shift(); // b
    expect([queue.bytes, queue.length]).toEqual([0, 0]);
    queue.shift();
    expect([queue.bytes, queue.length]).toEqual([0, 0]);
  });

  it('counts `size`, not the payload length (a broadcast carries frames, no payload)', () => {
    const queue = new OutboundQueue();
    queue.push({ kind: 'data', priority: 'normal', size: 1234, payload: Buffer.alloc(10), binary: false, compress: false, release: null });
    expect(queue.bytes).toBe(1234);
  });

  it('counts a queued stream by what it holds now, and hands it out in its place', () => {
    const queue = new OutboundQueue();
    const stream = new OutgoingStream(false, false, 'low');
    queue.push(message('first', 'low', 10));
    queue.push({ kind: 'stream', priority: 'low', size: 0, stream, release: null });
    expect(queue.bytes).toBe(10);
    stream.push({ data: Buffer.alloc(25), fin: false });
    expect([queue.bytes, queue.length]).toEqual([35, 2]);
    expect(nameOf(queue.shift()!)).toBe('first');
    expect(queue.shift()).toMatchObject({ kind: 'stream', stream });
    // Out of the queue, its bytes are the connection's to count.
    expect(queue.bytes).toBe(0);
  });

  it('tells who drops a queued stream, and what it holds leaves the count', () => {
    const queue = new OutboundQueue();
    const stream = new OutgoingStream(false, false, 'low');
    stream.push({ data: Buffer.alloc(100), fin: false });
    queue.push({ kind: 'stream', priority: 'low', size: 0, stream, release: null });
    const dropped: QueuedMessage[] = [];
    expect(queue.dropLow(10, 50, (m) => {
      dropped.push(m);
      if (m.kind === 'stream') m.stream.drop();
    })).toBe(1);
    expect(dropped.map((m) => m.kind)).toEqual(['stream']);
    expect([queue.bytes, queue.length, stream.dropped]).toEqual([0, 0, true]);
  });

  it('clear() tells of each message when asked, and releases pooled frames', () => {
    const queue = new OutboundQueue();
    const release = vi.fn();
    queue.push(message('a', 'high', 10, release));
    queue.push(message('b', 'low', 10));
    const told: string[] = [];
    queue.clear((m) => told.push(nameOf(m)));
    expect(told).toEqual(['a', 'b']);
    expect(release).toHaveBeenCalledTimes(1);
    expect([queue.bytes, queue.length]).toEqual([0, 0]);
  });

  describe('dropLow', () => {
    it('drops low-priority messages oldest first until the new bytes fit under the limit', () => {
      const queue = new OutboundQueue();
      const released: string[] = [];
      const low = (name: string) => message(name, 'low', 100, () => released.push(name));
      queue.push(message('n', 'normal', 100));
      queue.push(low('l1'));
      queue.push(low('l2'));
      queue.push(low('l3'));
      // 400 queued + 150 needed must fit in 360: l1 and l2 go (200 + 150 = 350).
      expect(queue.dropLow(150, 360, () => {})).toBe(2);
      expect(released).toEqual(['l1', 'l2']);
      expect([queue.bytes, queue.length]).toEqual([200, 2]);
      expect(drain(queue)).toEqual(['n', 'l3']);
    });

    it('stops at exactly fitting: bytes + needed equal to the limit is enough', () => {
      const queue = new OutboundQueue();
      queue.push(message('l1', 'low', 100));
      queue.push(message('l2', 'low', 100));
      expect(queue.dropLow(100, 300, () => {})).toBe(0);
      expect(queue.dropLow(101, 300, () => {})).toBe(1);
      expect(queue.length).toBe(1);
    });

    it('never drops normal or high messages, even when they alone pass the limit', () => {
      const queue = new OutboundQueue();
      const release = vi.fn();
      queue.push(message('h', 'high', 500, release));
      queue.push(message('n', 'normal', 500, release));
      queue.push(message('l', 'low', 1, release));
      expect(queue.dropLow(10, 100, () => {})).toBe(1);
      expect(release).toHaveBeenCalledTimes(1);
      expect(queue.dropLow(10, 100, () => {})).toBe(0);
      expect(drain(queue)).toEqual(['h', 'n']);
    });

    it('drops nothing when everything fits already', () => {
      const queue = new OutboundQueue();
      queue.push(message('l', 'low', 10));
      expect(queue.dropLow(10, 20, () => {})).toBe(0);
      expect(queue.length).toBe(1);
    });
  });

  describe('clear', () => {
    it('releases every pooled message once, in every lane, and empties the counts', () => {
      const queue = new OutboundQueue();
      const released: string[] = [];
      for (const [name, priority] of [
        ['h', 'high'],
        ['n', 'normal'],
        ['l', 'low'],
      ] as const) {
        queue.push(message(name, priority, 10, () => released.push(name)));
      }
      queue.push(message('plain', 'normal', 10, null));
      queue.clear();
      expect(released.sort()).toEqual(['h', 'l', 'n']);
      expect([queue.bytes, queue.length]).toEqual([0, 0]);
      expect(queue.shift()).toBeUndefined();
      queue.clear();
      expect(released).toHaveLength(3);
    });

    it('a message shifted out is not released by a later clear (it is the sender’s now)', () => {
      const queue = new OutboundQueue();
      const release = vi.fn();
      queue.push(message('a', 'normal', 10, release));
      queue.shift();
      queue.clear();
      expect(release).not.toHaveBeenCalled();
    });

    it('works as new after clear', () => {
      const queue = new OutboundQueue();
      queue.push(message('old', 'low'));
      queue.clear();
      queue.push(message('new', 'normal', 5));
      expect([queue.bytes, queue.length]).toEqual([5, 1]);
      expect(drain(queue)).toEqual(['new']);
    });
  });
});
