import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { ReadyState } from '../../src/shared/app.ts';
import { CloseHandshake } from '../../src/worker/close-handshake.ts';
import type { CloseOps } from '../../src/worker/close-handshake.ts';
import { FakeSocket, recordingLogger } from '../support/fake-socket.ts';

/**
 * A connection as the handshake drives it: its ops table records every call in `log` (close
 * frames as `close <code> <reason>`), and `busy`/`backlogged` are set by the test.
 */
class FakeConnection {
  readonly socket = new FakeSocket();
  busy = false;
  backlogged = false;
  readonly log: string[] = [];

  constructor() {
    const end = this.socket.end.bind(this.socket);
    this.socket.end = ((...args: Parameters<FakeSocket['end']>) => {
      this.log.push('end');
      return end(...args);
    }) as FakeSocket['end'];
    const destroy = this.socket.destroy.bind(this.socket);
    this.socket.destroy = ((error?: Error) => {
      this.log.push('destroy');
      return destroy(error);
    }) as FakeSocket['destroy'];
  }
}

const describeClose = (payload: Buffer): string =>
  payload.length === 0 ? 'close empty' : `close ${payload.readUInt16BE(0)} ${payload.toString('utf8', 2)}`.trimEnd();

const ops: CloseOps<FakeConnection> = {
  socket: (c) => c.socket,
  busy: (c) => c.busy,
  backlogged: (c) => c.backlogged,
  dropQueued: (c) => c.log.push('dropQueued'),
  sendCloseFrame: (c, payload) => c.log.push(describeClose(payload)),
  stopReading: (c) => c.log.push('stopReading'),
  flush: (c) => c.log.push('flush'),
};

const CLOSE_TIMEOUT = 5000;

function setup() {
  const connection = new FakeConnection();
  const logger = recordingLogger();
  const handshake = new CloseHandshake(ops, connection, { closeTimeoutMs: CLOSE_TIMEOUT, logger });
  return { connection, handshake, log: connection.log, logger };
}

/**
 * The log with repeats left out: once both close frames are exchanged, more than one step may
 * schedule the flush-then-FIN (each is harmless); the order of first occurrences is what counts.
 */
const steps = (log: readonly string[]): string[] => [...new Set(log)];

/** Runs what was put off with setImmediate (the flush-then-FIN step), not the close timer. */
const runImmediates = (): void => {
  vi.advanceTimersByTime(0);
};

describe('CloseHandshake', () => {
  beforeEach(() => {
    vi.useFakeTimers();
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it('starts open, with no close frame sent', () => {
    const { handshake } = setup();
    expect(handshake.state).toBe(ReadyState.Open);
    expect(handshake.closeSent).toBe(false);
  });

  describe('closing from our side', () => {
    it('sends the close frame at once when nothing waits, then waits for the peer', () => {
      const { handshake, log } = setup();
      handshake.start(1000, 'bye');
      expect(handshake.state).toBe(ReadyState.Closing);
      expect(handshake.closeSent).toBe(true);
      expect(log).toEqual(['close 1000 bye']);
      runImmediates();
      // Our side ends only when the peer answers (or the timer runs out).
      expect(log).toEqual(['close 1000 bye']);
    });

    it('holds the close frame behind queued data until sendHeld()', () => {
      const { connection, handshake, log } = setup();
      connection.backlogged = true;
      handshake.start(4000, 'later');
      expect(handshake.state).toBe(ReadyState.Closing);
      expect(handshake.closeSent).toBe(false);
      expect(log).toEqual([]);
      expect(handshake.sendHeld()).toBe(true);
      expect(log).toEqual(['close 4000 later']);
      expect(handshake.closeSent).toBe(true);
      expect(handshake.sendHeld()).toBe(false);
      expect(log).toHaveLength(1);
    });

    it('sendHeld() with nothing held does nothing', () => {
      const { handshake, log } = setup();
      expect(handshake.sendHeld()).toBe(false);
      handshake.start(1000, '');
      expect(handshake.sendHeld()).toBe(false);
      expect(log).toEqual(['close 1000']);
    });

    it('a second start() is ignored', () => {
      const { handshake, log } = setup();
      handshake.start(1000, 'one');
      handshake.start(1001, 'two');
      expect(log).toEqual(['close 1000 one']);
    });

    it('refuses a code that may not be sent, and stays open', () => {
      const { handshake, log } = setup();
      expect(() => handshake.start(1005, '')).toThrow(RangeError);
      expect(() => handshake.start(1000, 'x'.repeat(124))).toThrow(RangeError);
      expect(handshake.state).toBe(ReadyState.Open);
      expect(log).toEqual([]);
    });

    it('the peer’s reply ends our side: flush first, then the FIN, on the next turn', () => {
      const { handshake, log } = setup();
      handshake.start(1000, 'bye');
      handshake.peerClosed(1000, 'ok');
      expect(log).toEqual(['close 1000 bye']);
      runImmediates();
      expect(steps(log)).toEqual(['close 1000 bye', 'flush', 'end']);
    });

    it('the peer’s reply to a held close frame ends our side once the frame is sent', () => {
      const { connection, handshake, log } = setup();
      connection.backlogged = true;
      handshake.start(1000, '');
      handshake.peerClosed(1000, '');
      runImmediates();
      // The peer reads no more data: the queue goes, and our frame waits only for what is
      // still backlogged after that (here, as if a message were compressing).
      expect(log).toEqual(['dropQueued']);
      handshake.sendHeld();
      runImmediates();
      expect(steps(log)).toEqual(['dropQueued', 'close 1000', 'flush', 'end']);
    });

    it('a held close frame goes out at once when the peer closes and nothing else is backlogged', () => {
      const { connection, handshake, log } = setup();
      connection.backlogged = true;
      handshake.start(1000, '');
      expect(log).toEqual([]);
      connection.backlogged = false;
      handshake.peerClosed(1000, '');
      expect(log).toEqual(['dropQueued', 'close 1000']);
      expect(handshake.sendHeld()).toBe(false);
    });
  });

  describe('closing from the peer’s side', () => {
    it('drops queued data, echoes the code without the reason, and ends our side', () => {
      const { handshake, log } = setup();
      handshake.peerClosed(1001, 'going away');
      expect(handshake.state).toBe(ReadyState.Closing);
      expect(handshake.closeSent).toBe(true);
      expect(log).toEqual(['dropQueued', 'close 1001']);
      runImmediates();
      expect(steps(log)).toEqual(['dropQueued', 'close 1001', 'flush', 'end']);
    });

    it('answers a close frame without a status (1005) with an empty one', () => {
      const { handshake, log } = setup();
      handshake.peerClosed(1005, '');
      expect(log).toEqual(['dropQueued', 'close empty']);
    });

    it('holds the echo behind a message being compressed, then ends once it is sent', () => {
      const { connection, handshake, log } = setup();
      connection.backlogged = true;
      handshake.peerClosed(1000, '');
      expect(log).toEqual(['dropQueued']);
      expect(handshake.closeSent).toBe(false);
      runImmediates();
      expect(log).toEqual(['dropQueued']);
      expect(handshake.sendHeld()).toBe(true);
      runImmediates();
      expect(steps(log)).toEqual(['dropQueued', 'close 1000', 'flush', 'end']);
    });

    it('the peer’s FIN after its close frame sends nothing more and destroys nothing', () => {
      const { handshake, log } = setup();
      handshake.peerClosed(1000, '');
      handshake.peerEnded();
      runImmediates();
      expect(log.filter((l) => l.startsWith('close'))).toEqual(['close 1000']);
      expect(log).toContain('end');
      expect(log).not.toContain('destroy');
    });
  });

  describe('fail()', () => {
    it('stops reading, drops the queue, sends the code and ends after a flush', () => {
      const { handshake, log } = setup();
      handshake.fail(1002, 'bad frame');
      expect(handshake.state).toBe(ReadyState.Closing);
      expect(log).toEqual(['stopReading', 'dropQueued', 'close 1002 bad frame']);
      runImmediates();
      expect(log).toEqual(['stopReading', 'dropQueued', 'close 1002 bad frame', 'flush', 'end']);
    });

    it('does not wait for queued data (the close frame goes ahead of it)', () => {
      const { connection, handshake, log } = setup();
      connection.backlogged = true;
      handshake.fail(1011, 'internal error');
      expect(log).toContain('close 1011 internal error');
    });

    it('replaces a close frame still held, and sends only one', () => {
      const { connection, handshake, log } = setup();
      connection.backlogged = true;
      handshake.start(1000, 'normal');
      handshake.fail(1008, 'slow client');
      expect(log.filter((l) => l.startsWith('close'))).toEqual(['close 1008 slow client']);
      expect(handshake.sendHeld()).toBe(false);
    });

    it('after our close frame is out, sends no second one but still ends', () => {
      const { handshake, log } = setup();
      handshake.start(1000, '');
      handshake.fail(1002, 'bad frame');
      runImmediates();
      expect(log).toEqual(['close 1000', 'stopReading', 'dropQueued', 'flush', 'end']);
    });

    it('cuts a reason too long for a close frame', () => {
      const { handshake, log } = setup();
      handshake.fail(1002, 'r'.repeat(300));
      expect(log[2]).toBe(`close 1002 ${'r'.repeat(120)}`);
    });

    // A non-ASCII reason under 124 characters but over 123 bytes is cut by its UTF-8 length,
    // at a character boundary (fail() once cut by characters, and threw RangeError here).
    it('cuts a non-ASCII reason by its UTF-8 length', () => {
      const { handshake, log } = setup();
      handshake.fail(1007, 'é'.repeat(100)); // 100 characters, 200 bytes
      expect(log[2]!.startsWith('close 1007 é')).toBe(true);
    });

    it('does not write to a socket already destroyed', () => {
      const { connection, handshake, log } = setup();
      connection.socket.destroy();
      handshake.fail(1002, 'x');
      runImmediates();
      expect(log).toEqual(['destroy', 'stopReading', 'dropQueued', 'close 1002 x', 'flush']);
    });
  });

  describe('the peer’s FIN', () => {
    it('without a close frame: ends our side after a flush', () => {
      const { handshake, log } = setup();
      handshake.peerEnded();
      runImmediates();
      expect(log).toEqual(['flush', 'end']);
    });

    it('while a message inflates: waits, and caughtUp() ends our side once the work is done', () => {
      const { connection, handshake, log } = setup();
      connection.busy = true;
      handshake.peerEnded();
      runImmediates();
      expect(log).toEqual([]);
      handshake.caughtUp(); // still busy: more frames behind the FIN
      runImmediates();
      expect(log).toEqual([]);
      connection.busy = false;
      handshake.caughtUp();
      runImmediates();
      expect(log).toEqual(['flush', 'end']);
      handshake.caughtUp(); // nothing pending any more
      runImmediates();
      expect(log).toEqual(['flush', 'end']);
    });

    it('caughtUp() without a FIN does nothing', () => {
      const { handshake, log } = setup();
      handshake.caughtUp();
      runImmediates();
      expect(log).toEqual([]);
    });

    it('after the peer’s close frame, while our echo waits for a compression: the echo ends our side', () => {
      const { connection, handshake, log } = setup();
      connection.backlogged = true;
      handshake.peerClosed(1000, '');
      handshake.peerEnded();
      runImmediates();
      expect(log).toEqual(['dropQueued']);
      handshake.sendHeld();
      runImmediates();
      expect(steps(log)).toEqual(['dropQueued', 'close 1000', 'flush', 'end']);
    });

    it('on a socket already destroyed does nothing', () => {
      const { connection, handshake, log } = setup();
      connection.socket.destroy();
      handshake.peerEnded();
      runImmediates();
      expect(log).toEqual(['destroy']);
    });
  });

  describe('the close timer', () => {
    it('destroys the socket of a peer that never answers our close frame', () => {
      const { handshake, log, logger } = setup();
      handshake.start(1000, '');
      vi.advanceTimersByTime(CLOSE_TIMEOUT - 1);
      expect(log).toEqual(['close 1000']);
      vi.advanceTimersByTime(1);
      expect(log).toEqual(['close 1000', 'destroy']);
      expect(logger.records.map((r) => r.level)).toEqual(['debug']);
    });

    it('destroys the socket of a peer that never closes its side after the exchange', () => {
      const { handshake, log } = setup();
      handshake.peerClosed(1000, '');
      vi.advanceTimersByTime(CLOSE_TIMEOUT);
      expect(steps(log)).toEqual(['dropQueued', 'close 1000', 'flush', 'end', 'destroy']);
    });

    it('runs from the first step of closing: later steps do not restart it', () => {
      const { handshake, log } = setup();
      handshake.start(1000, '');
      vi.advanceTimersByTime(CLOSE_TIMEOUT - 100);
      handshake.peerEnded();
      vi.advanceTimersByTime(100);
      expect(log.at(-1)).toBe('destroy');
    });

    it('starts with a held close frame too', () => {
      const { connection, handshake, log } = setup();
      connection.backlogged = true;
      handshake.start(1000, '');
      vi.advanceTimersByTime(CLOSE_TIMEOUT);
      expect(log).toEqual(['destroy']);
    });

    it('stops when the socket closes', () => {
      const { handshake, log } = setup();
      handshake.start(1000, '');
      handshake.socketClosed();
      vi.advanceTimersByTime(CLOSE_TIMEOUT * 2);
      expect(log).toEqual(['close 1000']);
    });

    it('does not hold the process open', () => {
      vi.useRealTimers();
      const { handshake, connection } = setup();
      const unref = vi.spyOn(globalThis, 'setTimeout');
      handshake.start(1000, '');
      const timer = unref.mock.results[0]!.value as NodeJS.Timeout;
      expect(timer.hasRef()).toBe(false);
      handshake.socketClosed();
      unref.mockRestore();
      connection.socket.destroy();
    });
  });

  describe('terminate()', () => {
    it('destroys the socket at once, without a close frame', () => {
      const { handshake, log } = setup();
      handshake.terminate();
      expect(handshake.state).toBe(ReadyState.Closing);
      expect(log).toEqual(['destroy']);
      expect(handshake.closeSent).toBe(false);
    });
  });

  describe('socketClosed(): how the connection ended', () => {
    it('after the peer’s close frame: its code and reason, exchanged with its code', () => {
      const { handshake } = setup();
      handshake.start(1000, '');
      handshake.peerClosed(4001, 'bye now');
      expect(handshake.socketClosed()).toEqual({ code: 4001, reason: 'bye now', exchanged: 4001 });
      expect(handshake.state).toBe(ReadyState.Closed);
    });

    it('a peer close frame without a status: 1005', () => {
      const { handshake } = setup();
      handshake.peerClosed(1005, '');
      expect(handshake.socketClosed()).toEqual({ code: 1005, reason: '', exchanged: 1005 });
    });

    it('we sent a close frame, the peer none: 1006 for the app, our code as exchanged', () => {
      const { handshake } = setup();
      handshake.start(1001, 'idle');
      expect(handshake.socketClosed()).toEqual({ code: 1006, reason: '', exchanged: 1001 });
    });

    it('a failure counts as the code we sent', () => {
      const { handshake } = setup();
      handshake.fail(1009, 'too big');
      expect(handshake.socketClosed()).toEqual({ code: 1006, reason: '', exchanged: 1009 });
    });

    it('no close frame either way: 1006, also when ours was still held', () => {
      const plain = setup();
      expect(plain.handshake.socketClosed()).toEqual({ code: 1006, reason: '', exchanged: 1006 });
      const held = setup();
      held.connection.backlogged = true;
      held.handshake.start(1000, '');
      expect(held.handshake.socketClosed()).toEqual({ code: 1006, reason: '', exchanged: 1006 });
      // The held frame is gone with the socket.
      expect(held.handshake.sendHeld()).toBe(false);
      expect(held.log).toEqual([]);
    });

    it('terminate(): 1006', () => {
      const { handshake } = setup();
      handshake.terminate();
      expect(handshake.socketClosed()).toEqual({ code: 1006, reason: '', exchanged: 1006 });
    });
  });
});
