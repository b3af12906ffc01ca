/**
 * The case model of the conformance suite, after the Autobahn|Testsuite: a case is a script of
 * wire actions (frames, closes, waits) plus what a conforming peer does in response (the events
 * it must produce, and how the connection must end). The same definition drives both fuzzers:
 * as a client against our server (fuzzing-client.ts) and as a server against our client
 * (fuzzing-server.ts); only masking and who closes TCP differ.
 */
import type { DeflateOfferOptions, WindowBits } from '../../src/shared/permessage-deflate.ts';

/** Autobahn's verdicts; only OK, NON-STRICT and INFORMATIONAL pass. */
export type Behavior = 'OK' | 'NON-STRICT' | 'INFORMATIONAL' | 'UNIMPLEMENTED' | 'FAILED' | 'WRONG CODE' | 'UNCLEAN' | 'FAILED BY CLIENT';

export const PASSING: ReadonlySet<Behavior> = new Set<Behavior>(['OK', 'NON-STRICT', 'INFORMATIONAL']);

/** What the fuzzer records from the peer under test, in arrival order. */
export type CaseEvent =
  | { readonly kind: 'message'; readonly data: Buffer; readonly binary: boolean }
  | { readonly kind: 'ping'; readonly data: Buffer }
  | { readonly kind: 'pong'; readonly data: Buffer }
  /** A wait ended with the connection still open (Autobahn's "timeout" markers of 6.4.x). */
  | { readonly kind: 'timeout'; readonly marker: string };

/**
 * How a case's bytes reach the socket: `frames` writes each frame on its own (honouring a
 * frame's own `chop`), `chopped` cuts everything into 1–3 byte writes with a macrotask between
 * them, `batched` writes every frame up to the next wait in one write.
 */
export type Delivery = 'frames' | 'chopped' | 'batched';
export const ALL_DELIVERIES: readonly Delivery[] = ['frames', 'chopped', 'batched'];

export type Payload = string | Buffer;

export type Step =
  /** One frame, sent raw: no state change, any opcode and RSV bits, masked as our role requires. */
  | {
      readonly do: 'frame';
      readonly opcode: number;
      readonly payload?: Payload;
      readonly fin?: boolean;
      /** RSV1..RSV3 as a 3-bit number (RSV1 = 4). */
      readonly rsv?: number;
      /** Autobahn's chopsize: write the frame in pieces of this many bytes. */
      readonly chop?: number;
      /** Mask the frame against the rule of our role (RFC 6455 §5.1). */
      readonly wrongMask?: boolean;
    }
  /** Starts the closing handshake with this raw close payload (which may be invalid on purpose). */
  | { readonly do: 'close'; readonly payload: Buffer }
  /** Pauses; with a marker, records it and goes on only if the connection is still open. */
  | { readonly do: 'wait'; readonly ms: number; readonly marker?: string }
  /** The header of one frame whose payload follows in `frame-data` steps (6.4.3/6.4.4). */
  | { readonly do: 'frame-head'; readonly opcode: number; readonly length: number }
  | { readonly do: 'frame-data'; readonly data: Payload };

export interface CloseExpectation {
  /** Whether the fuzzer (not the peer under test) starts the closing handshake. */
  readonly closedByMe: boolean;
  /** Close codes the peer may send (it may also send none). */
  readonly codes: readonly number[];
  /** Whether the closing handshake must complete (a dropped TCP connection is not enough). */
  readonly requireClean: boolean;
}

interface CaseBase {
  /** Autobahn's case id ("6.4.1"), or ours for additions ("M.1"). */
  readonly id: string;
  readonly description: string;
  /** Which fuzzer runs the case: both by default. */
  readonly roles?: readonly ('client' | 'server')[];
}

/** A case as Autobahn writes most of them: a script, expected events, expected close. */
export interface ScriptedCase extends CaseBase {
  readonly kind: 'scripted';
  readonly steps: readonly Step[];
  /** Event lists that earn OK (required) or NON-STRICT. */
  readonly outcomes: { readonly OK: readonly CaseEvent[]; readonly 'NON-STRICT'?: readonly CaseEvent[] };
  readonly close: CloseExpectation;
  /** After the script: drop the connection (`kill`) or start a normal close (`close`) if still open. */
  readonly end: { readonly kill: number } | { readonly close: number };
  /** Do not close by ourselves once the expected events arrived (the script closes). */
  readonly suppressClose?: boolean;
  /** 7.x: a wrong close code fails the case itself, not just its close. */
  readonly wrongCodeFails?: boolean;
  /** The spec leaves the outcome open: recorded, never failed. */
  readonly informational?: boolean;
  readonly deliveries?: readonly Delivery[];
}

/** The server side of a permessage-deflate negotiation, as Autobahn's fuzzing server answers. */
export interface DeflateAccept {
  /** Ask the client for client_no_context_takeover (only if it offered that parameter). */
  readonly requestNoContextTakeover: boolean;
  /** Ask the client for this client_max_window_bits (only if it offered the parameter); 0: don't. */
  readonly requestMaxWindowBits: WindowBits | 0;
}

export interface DeflateSetup {
  /** What the client offers, in order of preference. Our client can send only the first. */
  readonly offers: readonly DeflateOfferOptions[];
  /** How the fuzzing server answers: the first policy the offer allows wins; none allowed declines. */
  readonly accept: readonly DeflateAccept[];
}

export interface EchoMessage {
  readonly data: Buffer;
  readonly binary: boolean;
}

/**
 * A case of many round trips (9.x, 10.x, 12.x, 13.x): send a message, wait for its echo, compare,
 * send the next. OK once every echo matched, then a normal close.
 */
export interface EchoCase extends CaseBase {
  readonly kind: 'echo';
  readonly messages: () => Iterable<EchoMessage>;
  /**
   * Frame payload size: uncompressed messages are fragmented into frames of this size;
   * compressed ones have their compressed payload cut the same way (Autobahn's autoFragmentSize).
   */
  readonly fragmentSize?: number;
  /** Present: negotiate permessage-deflate and compress every message; absent: no extension. */
  readonly deflate?: DeflateSetup;
  readonly timeoutMs: number;
}

export type FuzzingCase = ScriptedCase | EchoCase;

/** Autobahn compares events exactly: kind, payload bytes, text or binary, marker. */
export function sameEvent(a: CaseEvent, b: CaseEvent): boolean {
  if (a.kind !== b.kind) return false;
  if (a.kind === 'timeout') return a.marker === (b as typeof a).marker;
  if (!a.data.equals((b as typeof a).data)) return false;
  return a.kind !== 'message' || a.binary === (b as typeof a).binary;
}

export const sameEvents = (a: readonly CaseEvent[], b: readonly CaseEvent[]): boolean =>
  a.length === b.length && a.every((event, i) => sameEvent(event, b[i]!));

/** "6.4.1" → "6"; "M.1" → "M". */
export const groupOf = (id: string): string => id.slice(0, id.indexOf('.'));

// ---- builders shared by the case files ------------------------------------------------------

export const bytes = (payload: Payload): Buffer => (typeof payload === 'string' ? Buffer.from(payload) : payload);

export const text = (payload: Payload): CaseEvent => ({ kind: 'message', data: bytes(payload), binary: false });
export const binary = (payload: Payload): CaseEvent => ({ kind: 'message', data: bytes(payload), binary: true });
export const pong = (payload: Payload = ''): CaseEvent => ({ kind: 'pong', data: bytes(payload) });
export const timeout = (marker: string): CaseEvent => ({ kind: 'timeout', marker });

/** A payload of `length` bytes repeating `unit` (Autobahn's `payload_len`). */
export function repeat(unit: Payload, length: number): Buffer {
  const u = bytes(unit);
  const out = Buffer.allocUnsafe(length);
  if (length === 0) return out;
  let filled = Math.min(u.length, length);
  out.set(u.subarray(0, filled), 0);
  // Doubling keeps `filled` a multiple of the unit, so each copy continues the pattern.
  while (filled < length) {
    const count = Math.min(filled, length - filled);
    out.copyWithin(filled, 0, count);
    filled += count;
  }
  return out;
}

/** A close payload: a 16-bit code (any value, valid or not) and a raw reason. */
export function closePayload(code?: number, reason: Payload = ''): Buffer {
  if (code === undefined) return bytes(reason);
  const r = bytes(reason);
  const out = Buffer.allocUnsafe(2 + r.length);
  out.writeUInt16BE(code, 0);
  out.set(r, 2);
  return out;
}

export const NORMAL = 1000;
export const PROTOCOL_ERROR = 1002;
export const INVALID_PAYLOAD = 1007;

/** The fuzzer closes after the expected events, normally and cleanly. */
export const CLEAN_NORMAL_CLOSE: CloseExpectation = { closedByMe: true, codes: [NORMAL], requireClean: true };
/** The peer under test fails the connection: 1002 or a dropped connection. */
export const FAIL_PROTOCOL: CloseExpectation = { closedByMe: false, codes: [PROTOCOL_ERROR], requireClean: false };
/** The peer under test fails the connection: 1007 or a dropped connection. */
export const FAIL_INVALID_PAYLOAD: CloseExpectation = { closedByMe: false, codes: [INVALID_PAYLOAD], requireClean: false };

type ScriptedInit = Omit<ScriptedCase, 'kind' | 'outcomes' | 'close' | 'end'> & {
  readonly outcomes?: ScriptedCase['outcomes'];
  readonly close?: CloseExpectation;
  readonly end?: ScriptedCase['end'];
};

/** A scripted case; defaults: no events expected, clean normal close by us, kill after 1 s. */
export function scripted(init: ScriptedInit): ScriptedCase {
  return { kind: 'scripted', outcomes: { OK: [] }, close: CLEAN_NORMAL_CLOSE, end: { kill: 1000 }, ...init };
}

/** A case the peer must answer by failing the connection (before echoing anything). */
export function failing(id: string, description: string, steps: readonly Step[], close: CloseExpectation = FAIL_PROTOCOL): ScriptedCase {
  return scripted({ id, description, steps, close });
}

/** A case whose first message is echoed before a violation fails the connection (OK), or not (NON-STRICT). */
export function echoThenFail(id: string, description: string, echoed: CaseEvent, steps: readonly Step[]): ScriptedCase {
  return scripted({ id, description, steps, outcomes: { OK: [echoed], 'NON-STRICT': [] }, close: FAIL_PROTOCOL });
}

export const frame = (opcode: number, payload: Payload = '', more: { fin?: boolean; rsv?: number; chop?: number } = {}): Step => ({
  do: 'frame',
  opcode,
  payload,
  ...more,
});
export const wait = (ms: number, marker?: string): Step => (marker === undefined ? { do: 'wait', ms } : { do: 'wait', ms, marker });
export const close = (code?: number, reason: Payload = ''): Step => ({ do: 'close', payload: closePayload(code, reason) });

/** How a case is delivered: scripted cases in every mode (unless they say otherwise), echo cases frame by frame. */
export const deliveriesOf = (kase: FuzzingCase): readonly Delivery[] =>
  kase.kind === 'scripted' ? (kase.deliveries ?? ALL_DELIVERIES) : ['frames'];
