/**
 * What a shardws server writes to Redis around a payload, for both bridge modes. Binary-safe:
 * Redis channels, stream fields and Lua strings all carry bytes.
 *
 * plain (a pub/sub message):  version 1 · flags · origin (16)                              · payload
 * streams (a stream entry):   version 2 · flags · origin (16) · except (6) · sequence (8) · payload
 *
 * The origin is the server process's random id: a plain server skips its own publishes (Redis
 * echoes them), and in streams mode it says whose `except` (the publishing connection, which a
 * `ws.publish` leaves out) applies. The sequence numbers a server's publishes, so that after a
 * lost reply it can tell whether Redis appended the entry before resending it.
 */
import { isStreamId } from '../shared/stream-id.ts';

export const ORIGIN_BYTES = 16;
const PLAIN_VERSION = 1;
const STREAM_VERSION = 2;
const FLAG_BINARY = 1;
const PLAIN_HEADER = 2 + ORIGIN_BYTES;
const EXCEPT_AT = PLAIN_HEADER;
const SEQUENCE_AT = EXCEPT_AT + 6;
const STREAM_HEADER = SEQUENCE_AT + 8;
/** A notification is `<id> <entry>`: the id, a space, the entry's bytes. */
const SPACE = 0x20;
const LONGEST_ID = 41;

/** The connection a publish leaves out: its worker and its serial there. */
export interface Except {
  readonly worker: number;
  readonly serial: number;
}

export function plainEnvelope(origin: Buffer, payload: Uint8Array, binary: boolean): Buffer {
  const message = Buffer.allocUnsafe(PLAIN_HEADER + payload.length);
  message[0] = PLAIN_VERSION;
  message[1] = binary ? FLAG_BINARY : 0;
  origin.copy(message, 2);
  message.set(payload, PLAIN_HEADER);
  return message;
}

export interface PlainMessage {
  /** Published by the server whose origin was given. */
  readonly own: boolean;
  readonly payload: Buffer;
  readonly binary: boolean;
}

/** A pub/sub message of the plain mode, or null when it is not one (another version, too short). */
export function readPlainEnvelope(message: Buffer, origin: Buffer): PlainMessage | null {
  if (message.length < PLAIN_HEADER || message[0] !== PLAIN_VERSION) return null;
  return {
    own: message.compare(origin, 0, ORIGIN_BYTES, 2, PLAIN_HEADER) === 0,
    payload: message.subarray(PLAIN_HEADER),
    binary: (message[1]! & FLAG_BINARY) !== 0,
  };
}

export function streamEnvelope(origin: Buffer, sequence: number, payload: Uint8Array, binary: boolean, except: Except | null): Buffer {
  const entry = Buffer.allocUnsafe(STREAM_HEADER + payload.length);
  entry[0] = STREAM_VERSION;
  entry[1] = binary ? FLAG_BINARY : 0;
  origin.copy(entry, 2);
  // Worker 0xffff means nobody is left out (MAX_WORKERS is 256).
  entry.writeUInt16BE(except === null ? 0xffff : except.worker, EXCEPT_AT);
  entry.writeUInt32BE(except === null ? 0 : except.serial >>> 0, EXCEPT_AT + 2);
  entry.writeDoubleBE(sequence, SEQUENCE_AT);
  entry.set(payload, STREAM_HEADER);
  return entry;
}

export interface StreamMessage {
  /** Appended by the server whose origin was given. */
  readonly own: boolean;
  readonly sequence: number;
  /** The connection to leave out, when `own`. */
  readonly except: Except | null;
  readonly payload: Buffer;
  readonly binary: boolean;
}

/** A stream entry of the streams mode, or null when it is not one. */
export function readStreamEnvelope(entry: Buffer, origin: Buffer): StreamMessage | null {
  if (entry.length < STREAM_HEADER || entry[0] !== STREAM_VERSION) return null;
  const own = entry.compare(origin, 0, ORIGIN_BYTES, 2, PLAIN_HEADER) === 0;
  const worker = entry.readUInt16BE(EXCEPT_AT);
  return {
    own,
    sequence: entry.readDoubleBE(SEQUENCE_AT),
    except: own && worker !== 0xffff ? { worker, serial: entry.readUInt32BE(EXCEPT_AT + 2) } : null,
    payload: entry.subarray(STREAM_HEADER),
    binary: (entry[1]! & FLAG_BINARY) !== 0,
  };
}

/** Splits a notification (`<id> <entry>`, published by the append script) into its id and entry. */
export function readNotification(message: Buffer): { readonly id: string; readonly entry: Buffer } | null {
  const space = message.indexOf(SPACE);
  if (space < 3 || space > LONGEST_ID) return null;
  const id = message.toString('latin1', 0, space);
  return isStreamId(id) ? { id, entry: message.subarray(space + 1) } : null;
}
