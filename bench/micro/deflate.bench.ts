/**
 * permessage-deflate (RFC 7692). One operation is a round trip of one message: the server's
 * codec compresses it, the client's codec inflates it back. Both libraries run zlib level 1,
 * memLevel 8, 15-bit windows unless a row says otherwise (ws's default level is zlib's 6).
 *
 * The design rows decide where deflate runs (docs/design.md): on the calling thread with zlib
 * contexts kept between messages (zlib-context.ts, the default), Node's one-shot sync calls
 * (deflateRawSync / inflateRawSync, a stream built and freed per message) and zlib streams on
 * libuv's pool, at 4 KiB and 64 KiB, one message at a time and 8 at once; the contexts against
 * the one-shot calls alone at 1, 4, 16 and 64 KiB; and `cpuSplit`, which reports how much of each
 * path's CPU lands on the calling (worker) thread.
 */
import { constants, deflateRaw, deflateRawSync, inflateRaw, inflateRawSync } from 'node:zlib';
import type { DeflateParams } from '../../src/shared/permessage-deflate.ts';
import { PerMessageDeflate as OursDeflate } from '../../src/shared/permessage-deflate.ts';
import { ZlibContext } from '../../src/shared/zlib-context.ts';
import type { BenchCase, Subject } from './case.ts';
import { assertSameBytes } from './case.ts';
import { jsonDocument } from './fixtures.ts';
import type { WsPerMessageDeflate } from './ws-internals.ts';
import { PerMessageDeflate as WsDeflate } from './ws-internals.ts';

const MAX_MESSAGE = 16 * 1024 * 1024;
const LEVEL = 1;

type RoundTrip = () => Promise<Buffer>;
type SyncRoundTrip = () => Buffer;

function oursPair(noContext: boolean, onThread: boolean): { server: OursDeflate; client: OursDeflate } {
  const params: DeflateParams = {
    serverNoContextTakeover: noContext,
    clientNoContextTakeover: noContext,
    serverMaxWindowBits: 15,
    clientMaxWindowBits: 15,
  };
  const opts = { maxMessageSize: MAX_MESSAGE, level: LEVEL, onThread };
  return { server: new OursDeflate('server', params, opts), client: new OursDeflate('client', params, opts) };
}

/** zlib streams on libuv's pool (the path without on-thread contexts). */
function oursAsync(data: Buffer, noContext: boolean): RoundTrip {
  const { server, client } = oursPair(noContext, false);
  return () =>
    new Promise((resolve, reject) => {
      server.compress(data, (error, compressed) => {
        if (error) return reject(error);
        client.decompress(compressed!, true, (error, out) => (error ? reject(error) : resolve(out!)));
      });
    });
}

/** Node's one-shot sync calls (no context only): a zlib stream built and freed per message. */
function oursOneShot(data: Buffer): SyncRoundTrip {
  const { server, client } = oursPair(true, false);
  return () => client.decompressSync(server.compressSync(data));
}

/** On the calling thread with zlib contexts kept between messages (the default). */
function oursOnThread(data: Buffer, noContext: boolean): SyncRoundTrip {
  const { server, client } = oursPair(noContext, true);
  return () => client.inflateFrame(server.compressSync(data), true);
}

/** zlib alone: one deflate and one inflate context kept and reset, against the one-shot calls. */
function contexts(data: Buffer): SyncRoundTrip {
  const deflate = ZlibContext.create('deflate', { windowBits: 15, level: LEVEL, memLevel: 8 })!;
  const inflate = ZlibContext.create('inflate', { windowBits: 15 })!;
  return () => {
    const compressed = deflate.process(data);
    deflate.reset();
    const out = inflate.process(compressed);
    inflate.reset();
    return out;
  };
}

/** A negotiated ws pair, as ws's handshake code would set it up. */
function wsPair(noContext: boolean, level: number | undefined): { server: WsPerMessageDeflate; client: WsPerMessageDeflate } {
  const zlibDeflateOptions = level === undefined ? {} : { level };
  const server = new WsDeflate({ isServer: true, maxPayload: MAX_MESSAGE, zlibDeflateOptions });
  const client = new WsDeflate({ isServer: false, maxPayload: MAX_MESSAGE, zlibDeflateOptions });
  const offer: Record<string, unknown[]> = noContext ? { server_no_context_takeover: [true], client_no_context_takeover: [true] } : {};
  const response = server.accept([offer]);
  client.accept([Object.fromEntries(Object.entries(response).map(([k, v]) => [k, [v]]))]);
  return { server, client };
}

function wsAsync(data: Buffer, noContext: boolean, level: number | undefined = LEVEL): RoundTrip {
  const { server, client } = wsPair(noContext, level);
  return () =>
    new Promise((resolve, reject) => {
      server.compress(data, true, (error, compressed) => {
        if (error) return reject(error);
        client.decompress(compressed!, true, (error, out) => (error ? reject(error) : resolve(out!)));
      });
    });
}

/** Node's one-shot zlib calls, no stream kept between messages: the pool version. */
function zlibPool(data: Buffer): RoundTrip {
  const deflateOptions = { level: LEVEL, windowBits: 15, finishFlush: constants.Z_SYNC_FLUSH };
  return () =>
    new Promise((resolve, reject) => {
      deflateRaw(data, deflateOptions, (error, compressed) => {
        if (error) return reject(error);
        inflateRaw(compressed, { windowBits: 15, finishFlush: constants.Z_SYNC_FLUSH }, (error, out) => (error ? reject(error) : resolve(out)));
      });
    });
}

function zlibSync(data: Buffer): SyncRoundTrip {
  const deflateOptions = { level: LEVEL, windowBits: 15, finishFlush: constants.Z_SYNC_FLUSH };
  return () => inflateRawSync(deflateRawSync(data, deflateOptions), { windowBits: 15, finishFlush: constants.Z_SYNC_FLUSH });
}

/** `n` messages at once through `n` independent codecs (n connections), awaited together. */
function inFlight(n: number, make: () => RoundTrip): RoundTrip {
  const trips = Array.from({ length: n }, make);
  return async () => (await Promise.all(trips.map((trip) => trip())))[0]!;
}

function syncTimes(n: number, trip: SyncRoundTrip): SyncRoundTrip {
  return () => {
    let out = trip();
    for (let i = 1; i < n; i++) out = trip();
    return out;
  };
}

interface Side {
  readonly subject: Subject;
  readonly once: () => Buffer | Promise<Buffer>;
}
const asyncSide = (label: string, trip: RoundTrip, batch = 1): Side => ({ subject: { label, fn: trip, batch, async: true }, once: trip });
const syncSide = (label: string, trip: SyncRoundTrip, batch = 1): Side => ({ subject: { label, fn: trip, batch, async: false }, once: trip });

function deflateCase(name: string, data: Buffer, ours: Side, baseline: Side): BenchCase {
  return {
    name,
    ours: ours.subject,
    baseline: baseline.subject,
    bytes: data.length,
    async verify() {
      for (const s of [ours, baseline]) assertSameBytes(`${name}: ${s.subject.label}`, await s.once(), data);
    },
  };
}

const json1k = jsonDocument(1024, 24);
const json4k = jsonDocument(4096, 21);
const json16k = jsonDocument(16384, 23);
const json64k = jsonDocument(65536, 22);

const size = (data: Buffer): string => `${Math.round(data.length / 1024)} KiB`;

function rows(data: Buffer): BenchCase[] {
  const s = size(data);
  const onThreadNoContext = syncSide('ours on thread', oursOnThread(data, true));
  const poolNoContext = asyncSide('ours async (pool)', oursAsync(data, true));
  const out = [
    deflateCase(`deflate+inflate ${s} JSON, context takeover`, data, syncSide('ours on thread', oursOnThread(data, false)), asyncSide('ws', wsAsync(data, false))),
    deflateCase(`deflate+inflate ${s} JSON, context takeover`, data, asyncSide('ours async (pool)', oursAsync(data, false)), asyncSide('ws', wsAsync(data, false))),
  ];
  if (s === '4 KiB') {
    out.push(
      deflateCase(
        `deflate+inflate ${s} JSON, context takeover, default levels (ours 1, ws 6)`,
        data,
        syncSide('ours on thread', oursOnThread(data, false)),
        asyncSide('ws level 6', wsAsync(data, false, undefined)),
      ),
    );
  }
  out.push(
    deflateCase(`deflate+inflate ${s} JSON, no context takeover`, data, onThreadNoContext, asyncSide('ws', wsAsync(data, true))),
    deflateCase(`deflate+inflate ${s} JSON, no context: on thread vs one-shot sync (design)`, data, onThreadNoContext, syncSide('ours one-shot sync', oursOneShot(data))),
    deflateCase(`deflate+inflate ${s} JSON, no context: on thread vs pool (design)`, data, onThreadNoContext, poolNoContext),
    deflateCase(
      `deflate+inflate ${s} JSON, no context, 8 connections at once: on thread vs pool`,
      data,
      syncSide('ours on thread ×8', syncTimes(8, oursOnThread(data, true)), 8),
      asyncSide('ours async ×8 (pool)', inFlight(8, () => oursAsync(data, true)), 8),
    ),
  );
  return out;
}

/** zlib contexts against Node's one-shot calls, nothing else in the way. */
const zlibRows = [json1k, json4k, json16k, json64k].map((data) =>
  deflateCase(`zlib deflateRaw+inflateRaw ${size(data)} JSON: contexts vs one-shot sync`, data, syncSide('zlib contexts', contexts(data)), syncSide('zlib *Sync', zlibSync(data))),
);

export const cases: BenchCase[] = [...rows(json4k), ...rows(json64k), ...zlibRows, deflateCase('zlib one-shot deflateRaw+inflateRaw 4 KiB: sync vs pool', json4k, syncSide('zlib *Sync', zlibSync(json4k)), asyncSide('zlib async (pool)', zlibPool(json4k)))];

export interface CpuSplitRow {
  readonly path: string;
  readonly size: number;
  /** Per message round trip, in microseconds. */
  readonly wallUs: number;
  readonly callingThreadCpuUs: number;
  readonly processCpuUs: number;
}

/**
 * For each path, runs round trips one after another for about `timeMs` and reports per message the
 * wall time, the CPU of the calling thread (what a worker shard spends) and the CPU of the whole
 * process (the pool threads included).
 */
export async function cpuSplit(timeMs: number): Promise<CpuSplitRow[]> {
  const out: CpuSplitRow[] = [];
  for (const data of [json4k, json16k, json64k]) {
    const paths: [string, RoundTrip | SyncRoundTrip][] = [
      ['ours on thread', oursOnThread(data, true)],
      ['ours one-shot sync', oursOneShot(data)],
      ['ours async (pool)', oursAsync(data, true)],
      ['ws async (pool)', wsAsync(data, true)],
    ];
    for (const [path, trip] of paths) {
      for (let i = 0; i < 50; i++) await trip(); // warm up
      const thread0 = process.threadCpuUsage();
      const process0 = process.cpuUsage();
      const t0 = performance.now();
      let n = 0;
      while (performance.now() - t0 < timeMs) {
        await trip();
        n++;
      }
      const wall = performance.now() - t0;
      const thread = process.threadCpuUsage(thread0);
      const all = process.cpuUsage(process0);
      out.push({
        path,
        size: data.length,
        wallUs: (wall * 1000) / n,
        callingThreadCpuUs: (thread.user + thread.system) / n,
        processCpuUs: (all.user + all.system) / n,
      });
    }
  }
  return out;
}
