import { describe, expect, it, vi } from 'vitest';
import { FlushScheduler, FrameSink, writeChunks } from '../../src/runtime/frame-flush.ts';
import type { Flushable, FlushHook } from '../../src/runtime/frame-flush.ts';
import { encodeFrame } from '../../src/shared/frame-encoder.ts';
import { FrameParser } from '../../src/shared/frame-parser.ts';
import { ByteArena, COPY_THRESHOLD } from '../../src/shared/frame-writer.ts';
import { MaskKeySource } from '../../src/shared/mask.ts';
import { Opcode } from '../../src/shared/opcodes.ts';
import { FakeSocket, nextTurn, readFrames, settle } from '../support/fake-socket.ts';
import { frameFor } from '../support/frames.ts';

/** A flushable that records its flushes into a shared log. */
const target = (name: string, log: string[], onFlush?: () => void): Flushable => ({
  flush() {
    log.push(name);
    onFlush?.();
  },
});

/** Counts cork() calls on a socket. */
function watchCorks(socket: FakeSocket) {
  const cork = vi.spyOn(socket, 'cork');
  const uncork = vi.spyOn(socket, 'uncork');
  return { cork, uncork };
}

describe('FlushScheduler', () => {
  it('flushes what was scheduled at the end of the turn, not before, in order', async () => {
    const scheduler = new FlushScheduler();
    const log: string[] = [];
    scheduler.schedule(target('a', log));
    scheduler.schedule(target('b', log));
    scheduler.schedule(target('c', log));
    await Promise.resolve();
    expect(log).toEqual([]);
    await nextTurn();
    expect(log).toEqual(['a', 'b', 'c']);
  });

  it('asks for one setImmediate per turn, however many targets', async () => {
    const spy = vi.spyOn(globalThis, 'setImmediate');
    try {
      const scheduler = new FlushScheduler();
      const log: string[] = [];
      for (let i = 0; i < 50; i++) scheduler.schedule(target(String(i), log));
      expect(spy).toHaveBeenCalledTimes(1);
      const run = spy.mock.calls[0]![0];
      await nextTurn();
      expect(log).toHaveLength(50);
      scheduler.schedule(target('next', log));
      // A new turn, the same callback: nothing is allocated per turn.
      expect(spy.mock.calls.filter((call) => call[0] === run)).toHaveLength(2);
    } finally {
      spy.mockRestore();
    }
    await nextTurn();
  });

  it('flushes each target once per turn over many turns (the batches do not leak into one another)', async () => {
    const scheduler = new FlushScheduler();
    const log: string[] = [];
    for (let turn = 0; turn < 5; turn++) {
      scheduler.schedule(target(`t${turn}a`, log));
      scheduler.schedule(target(`t${turn}b`, log));
      await nextTurn();
      expect(log).toEqual([`t${turn}a`, `t${turn}b`]);
      log.length = 0;
    }
    await settle(3);
    expect(log).toEqual([]);
  });

  it('a target scheduled while flushing (a write callback that sends again) is flushed on the next turn, once', async () => {
    const scheduler = new FlushScheduler();
    const log: string[] = [];
    const later = target('later', log);
    scheduler.schedule(target('first', log, () => scheduler.schedule(later)));
    scheduler.schedule(target('second', log));
    await nextTurn();
    expect(log).toEqual(['first', 'second']);
    await nextTurn();
    expect(log).toEqual(['first', 'second', 'later']);
    await settle(3);
    expect(log).toEqual(['first', 'second', 'later']);
  });
});

describe('FrameSink', () => {
  const setup = (socket: FakeSocket | null = new FakeSocket(), onFlush: FlushHook<string> | null = null) => {
    const scheduler = new FlushScheduler();
    const sink = new FrameSink<string>(new ByteArena(), null, scheduler, socket, onFlush, 'owner');
    return { scheduler, sink, socket };
  };

  it('writes the frames of a turn with one write call, in order, at the end of the turn', async () => {
    const { sink, socket } = setup();
    sink.frame(Opcode.Text, Buffer.from('one'), true, false);
    sink.frame(Opcode.Binary, Buffer.from([1, 2, 3]), true, false);
    sink.frame(Opcode.Ping, Buffer.from('p'), true, false);
    expect(socket!.writes).toEqual([]);
    expect(sink.pendingBytes).toBe(5 + 5 + 3);
    await nextTurn();
    expect(socket!.writes).toHaveLength(1);
    expect(sink.pendingBytes).toBe(0);
    expect(readFrames(socket!.output).map((f) => [f.opcode, f.payload.toString('hex')])).toEqual([
      [Opcode.Text, Buffer.from('one').toString('hex')],
      [Opcode.Binary, '010203'],
      [Opcode.Ping, Buffer.from('p').toString('hex')],
    ]);
  });

  it('several chunks (a large payload between small frames) go out corked, as one writev', async () => {
    const { sink, socket } = setup();
    const { cork, uncork } = watchCorks(socket!);
    const big = Buffer.alloc(COPY_THRESHOLD + 1, 9);
    sink.frame(Opcode.Text, Buffer.from('a'), true, false);
    sink.frame(Opcode.Binary, big, true, false);
    sink.frame(Opcode.Text, Buffer.from('b'), true, false);
    await nextTurn();
    expect(cork).toHaveBeenCalledTimes(1);
    expect(uncork).toHaveBeenCalledTimes(1);
    expect(socket!.writes).toHaveLength(1);
    expect(socket!.writes[0]).toHaveLength(3);
    // The large payload is written as the caller's buffer, not a copy.
    expect(socket!.writes[0]![1]).toBe(big);
    expect(socket!.output).toEqual(
      Buffer.concat([encodeFrame(Opcode.Text, Buffer.from('a')), encodeFrame(Opcode.Binary, big), encodeFrame(Opcode.Text, Buffer.from('b'))]),
    );
  });

  it('one chunk is written without corking', async () => {
    const { sink, socket } = setup();
    const { cork } = watchCorks(socket!);
    sink.frame(Opcode.Text, Buffer.from('a'), true, false);
    sink.frame(Opcode.Text, Buffer.from('b'), true, false);
    await nextTurn();
    expect(cork).not.toHaveBeenCalled();
    expect(socket!.writes).toEqual([[Buffer.concat([encodeFrame(Opcode.Text, Buffer.from('a')), encodeFrame(Opcode.Text, Buffer.from('b'))])]]);
  });

  it('schedules itself once per turn, and again on the next', async () => {
    const { sink, scheduler, socket } = setup();
    const schedule = vi.spyOn(scheduler, 'schedule');
    for (let i = 0; i < 10; i++) sink.frame(Opcode.Text, Buffer.from(String(i)), true, false);
    sink.raw(encodeFrame(Opcode.Text, Buffer.from('raw')));
    expect(schedule).toHaveBeenCalledTimes(1);
    await nextTurn();
    sink.raw(encodeFrame(Opcode.Text, Buffer.from('again')));
    expect(schedule).toHaveBeenCalledTimes(2);
    await nextTurn();
    expect(socket!.writes).toHaveLength(2);
    expect(readFrames(socket!.output).map((f) => f.payload.toString())).toEqual(['0', '1', '2', '3', '4', '5', '6', '7', '8', '9', 'raw', 'again']);
  });

  it('raw() passes prepared frames through in order with framed ones', async () => {
    const { sink, socket } = setup();
    const prepared = encodeFrame(Opcode.Binary, Buffer.alloc(5000, 3));
    sink.frame(Opcode.Text, Buffer.from('before'), true, false);
    sink.raw(prepared);
    sink.frame(Opcode.Text, Buffer.from('after'), true, false);
    await nextTurn();
    expect(socket!.writes[0]).toContain(prepared);
    expect(readFrames(socket!.output).map((f) => f.payload.length)).toEqual([6, 5000, 5]);
  });

  it('a flush() called early writes at once; the scheduled one then finds nothing to write', async () => {
    const { sink, socket } = setup();
    sink.frame(Opcode.Close, Buffer.from([0x03, 0xe8]), true, false);
    expect(sink.flush()).toBe(true);
    expect(socket!.writes).toHaveLength(1);
    expect(sink.flush()).toBe(false);
    await settle(2);
    expect(socket!.writes).toHaveLength(1);
  });

  it('masks frames when given mask keys (the client)', async () => {
    const socket = new FakeSocket();
    const sink = new FrameSink(new ByteArena(), new MaskKeySource(), new FlushScheduler(), socket, null, null);
    sink.frame(Opcode.Text, Buffer.from('masked'), true, false);
    await nextTurn();
    const got: string[] = [];
    new FrameParser(
      {
        onFrame: (_opcode, _fin, _compressed, payload) => got.push(payload.toString()),
        onError: (error) => {
          throw error;
        },
      },
      { role: 'server', maxMessageSize: 1024, rsv1Allowed: false },
    ).push(socket.output);
    expect(got).toEqual(['masked']);
    // The same bytes a client frame has: header, key, masked payload.
    expect(socket.output).toHaveLength(frameFor('server')(Opcode.Text, 'masked').length);
  });

  describe('the flush hook', () => {
    it('hears the owner and the bytes of each flush before they are written', async () => {
      const calls: [string, number, number][] = [];
      const socket = new FakeSocket();
      const { sink } = setup(socket, (owner, bytes) => {
        calls.push([owner, bytes, socket.writes.length]);
        return undefined;
      });
      sink.frame(Opcode.Text, Buffer.from('12345'), true, false);
      sink.raw(encodeFrame(Opcode.Binary, Buffer.alloc(3000)));
      await nextTurn();
      expect(calls).toEqual([['owner', 7 + 3004, 0]]);
      expect(socket.writes).toHaveLength(1);
      sink.frame(Opcode.Ping, Buffer.alloc(0), true, false);
      await nextTurn();
      expect(calls).toEqual([
        ['owner', 3011, 0],
        ['owner', 2, 1],
      ]);
    });

    it('what it returns runs once the socket has taken the last byte, not before', async () => {
      const socket = new FakeSocket();
      const done = vi.fn();
      const { sink } = setup(socket, () => done);
      socket.stall();
      sink.frame(Opcode.Text, Buffer.from('a'), true, false);
      sink.frame(Opcode.Binary, Buffer.alloc(COPY_THRESHOLD + 10), true, false);
      await settle(3);
      expect(socket.writes).toHaveLength(1);
      expect(socket.writableLength).toBeGreaterThan(COPY_THRESHOLD);
      expect(done).not.toHaveBeenCalled();
      socket.unstall();
      await settle(2);
      expect(done).toHaveBeenCalledTimes(1);
      expect(done.mock.calls[0]![0] ?? null).toBeNull();
    });

    it('is not told of a flush that writes nothing', async () => {
      const hook = vi.fn(() => undefined);
      const { sink } = setup(new FakeSocket(), hook);
      expect(sink.flush()).toBe(false);
      await settle(2);
      expect(hook).not.toHaveBeenCalled();
    });
  });

  describe('without a socket to write to', () => {
    it('drops the frames of a destroyed socket, and does not call the hook', async () => {
      const hook = vi.fn(() => undefined);
      const socket = new FakeSocket();
      const { sink } = setup(socket, hook);
      sink.frame(Opcode.Text, Buffer.from('lost'), true, false);
      socket.destroy();
      await settle(2);
      expect(socket.writes).toEqual([]);
      expect(hook).not.toHaveBeenCalled();
      expect(sink.pendingBytes).toBe(0);
      sink.frame(Opcode.Text, Buffer.from('lost too'), true, false);
      expect(sink.flush()).toBe(false);
      expect(sink.pendingBytes).toBe(0);
    });

    it('a socket attached later in the turn gets what was framed before', async () => {
      const { sink } = setup(null);
      sink.frame(Opcode.Text, Buffer.from('early'), true, false);
      const socket = new FakeSocket();
      sink.attach(socket);
      await nextTurn();
      expect(readFrames(socket.output).map((f) => f.payload.toString())).toEqual(['early']);
    });

    it('frames flushed while no socket is attached are dropped; later ones reach the socket', async () => {
      const { sink } = setup(null);
      sink.frame(Opcode.Text, Buffer.from('nowhere'), true, false);
      expect(sink.flush()).toBe(false);
      const socket = new FakeSocket();
      sink.attach(socket);
      sink.frame(Opcode.Text, Buffer.from('somewhere'), true, false);
      await nextTurn();
      expect(readFrames(socket.output).map((f) => f.payload.toString())).toEqual(['somewhere']);
    });
  });
});

describe('writeChunks', () => {
  it('writes one chunk with a plain write and passes the callback', async () => {
    const socket = new FakeSocket();
    const { cork } = watchCorks(socket);
    const done = vi.fn();
    writeChunks(socket, [Buffer.from('x')], done);
    expect(cork).not.toHaveBeenCalled();
    await settle(1);
    expect(socket.writes).toEqual([[Buffer.from('x')]]);
    expect(done).toHaveBeenCalledTimes(1);
  });

  it('writes several corked, as one writev, and calls back once after the last', async () => {
    const socket = new FakeSocket();
    const done = vi.fn();
    const chunks = [Buffer.from('a'), Buffer.from('b'), Buffer.from('c')];
    writeChunks(socket, chunks, done);
    expect(socket.writes).toEqual([chunks]);
    await settle(1);
    expect(done).toHaveBeenCalledTimes(1);
  });

  it('leaves the socket uncorked', () => {
    const socket = new FakeSocket();
    writeChunks(socket, [Buffer.from('a'), Buffer.from('b')]);
    expect(socket.writableCorked).toBe(0);
  });
});
