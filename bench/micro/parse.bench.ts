/**
 * The receive path, bytes in → messages out: our MessageReader (FrameParser + unmask + UTF-8 +
 * assembly) against ws's Receiver, both as a server reading masked client frames.
 *
 * Both unmask in place, so every timed call starts from a fresh copy of the masked input: each
 * side restores its own work buffer with one `Buffer#set` of the same size in `beforeEach`,
 * outside the timed window. The timed work is parse + unmask + validate + deliver only.
 * ws's Receiver is fed through `Writable#write`, as ws's socket 'data' handler does.
 */
import { MessageReader } from '../../src/shared/message-reader.ts';
import type { BenchCase, Subject } from './case.ts';
import { assert, assertSameBytes } from './case.ts';
import { alignedCopy, asciiText, keepMessages, maskedFrames, randomBytes } from './fixtures.ts';
import type { WsReceiverClass } from './ws-internals.ts';
import { Receiver, wsJs, wsMaskImpl } from './ws-internals.ts';

const MAX_MESSAGE = 16 * 1024 * 1024;

/** Where delivered messages go: counted always, kept only while verifying. */
interface Sink {
  count: number;
  kept: Buffer[] | null;
}

function sinkMessage(sink: Sink, data: Buffer): void {
  sink.count++;
  if (sink.kept !== null) sink.kept.push(Buffer.from(data));
}

const sinkEvents = keepMessages<Sink>(sinkMessage);

function oursReader(sink: Sink, validateUtf8 = true): MessageReader<Sink> {
  return new MessageReader(sinkEvents, sink, { role: 'server', maxMessageSize: MAX_MESSAGE, inflater: null, validateUtf8 });
}

function wsReceiver(Class: WsReceiverClass, sink: Sink) {
  const receiver = new Class({ isServer: true, maxPayload: MAX_MESSAGE });
  receiver.on('message', (data: Buffer) => sinkMessage(sink, data));
  receiver.on('error', (error: Error) => {
    throw error;
  });
  return receiver;
}

/** The input as the socket hands it over: `chunkSize`-byte reads of one work buffer. */
function chunksOf(work: Buffer, chunkSize: number): Buffer[] {
  const chunks: Buffer[] = [];
  for (let at = 0; at < work.length; at += chunkSize) chunks.push(work.subarray(at, at + chunkSize));
  return chunks;
}

interface ParseInput {
  readonly name: string;
  readonly payload: Buffer;
  readonly frames: number;
  readonly opcode: number;
  /** Socket read size; the whole input arrives in one read when omitted. */
  readonly chunkSize?: number;
}

/** Runs each subject once, untimed, and checks it delivered `frames` copies of `payload`. */
function verifyDelivered(name: string, sides: readonly (readonly [Subject, Sink])[], frames: number, payload: Buffer): void {
  for (const [subject, sink] of sides) {
    sink.kept = [];
    subject.beforeEach!();
    subject.fn();
    subject.beforeEach!();
    assert(sink.kept.length === frames, `${name}: ${subject.label} delivered ${sink.kept.length} of ${frames} messages`);
    for (const message of sink.kept) assertSameBytes(`${name}: ${subject.label}`, message, payload);
    sink.kept = null;
  }
}

/** One side of a parse row: a parser fed a private copy of the masked input on every call. */
function parseSubject(label: string, source: Buffer, chunkSize: number, push: (chunk: Buffer) => void): Subject {
  const work = alignedCopy(source);
  const chunks = chunksOf(work, chunkSize);
  return {
    label,
    fn: () => {
      for (const chunk of chunks) push(chunk);
    },
    beforeEach: () => work.set(source),
  };
}

function parseCases(input: ParseInput, withJsRow: boolean): BenchCase[] {
  const source = maskedFrames(input.payload, input.frames, input.opcode);
  const chunkSize = input.chunkSize ?? source.length;
  const oursSink: Sink = { count: 0, kept: null };
  const reader = oursReader(oursSink);
  const ours = parseSubject('ours MessageReader', source, chunkSize, (c) => reader.push(c));

  const baselines: [Subject, Sink][] = [];
  const wsSink: Sink = { count: 0, kept: null };
  const receiver = wsReceiver(Receiver, wsSink);
  baselines.push([parseSubject(`ws Receiver (${wsMaskImpl})`, source, chunkSize, (c) => receiver.write(c)), wsSink]);
  if (withJsRow) {
    const jsSink: Sink = { count: 0, kept: null };
    const jsReceiver = wsReceiver(wsJs.Receiver, jsSink);
    baselines.push([parseSubject('ws Receiver (JS unmask)', source, chunkSize, (c) => jsReceiver.write(c)), jsSink]);
  }

  return baselines.map(([baseline, baselineSink]) => ({
    name: input.name,
    ours,
    baseline,
    bytes: input.payload.length * input.frames,
    verify: () => verifyDelivered(input.name, [[ours, oursSink], [baseline, baselineSink]], input.frames, input.payload),
  }));
}

const small = asciiText(64, 7);
const large = randomBytes(64 * 1024, 8);

/** skipUtf8Validation: the same reader with the UTF-8 check off (ours) against on (baseline). */
function utf8SkipCase(name: string, payload: Buffer, frames: number): BenchCase {
  const source = maskedFrames(payload, frames, 0x1);
  const skippedSink: Sink = { count: 0, kept: null };
  const checkedSink: Sink = { count: 0, kept: null };
  const skipped = oursReader(skippedSink, false);
  const checked = oursReader(checkedSink);
  const ours = parseSubject('ours, UTF-8 skipped', source, source.length, (c) => skipped.push(c));
  const baseline = parseSubject('ours, UTF-8 checked', source, source.length, (c) => checked.push(c));
  return {
    name,
    ours,
    baseline,
    bytes: payload.length * frames,
    verify: () => verifyDelivered(name, [[ours, skippedSink], [baseline, checkedSink]], frames, payload),
  };
}

export const cases: BenchCase[] = [
  ...parseCases({ name: 'parse 1000× 64 B masked text, one read', payload: small, frames: 1000, opcode: 0x1 }, false),
  ...parseCases({ name: 'parse 1000× 64 B masked text, 1460 B reads', payload: small, frames: 1000, opcode: 0x1, chunkSize: 1460 }, false),
  ...parseCases({ name: 'parse 16× 64 KiB masked binary, one read', payload: large, frames: 16, opcode: 0x2 }, true),
  utf8SkipCase('read text, UTF-8 checked vs skipped: 1000× 64 B', small, 1000),
  utf8SkipCase('read text, UTF-8 checked vs skipped: 16× 64 KiB', asciiText(64 * 1024, 9), 16),
];
