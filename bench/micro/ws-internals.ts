/**
 * The ws package's own protocol modules, loaded by file path: ws's package `exports` only expose
 * its entry point, and @types/ws does not describe lib/. The interfaces below type just what the
 * benchmarks call.
 *
 * ws picks its mask/unmask at load time: Node's http.websocketMask when the runtime has it (Node
 * 26 does not), else the `bufferutil` addon when installed (it is a devDependency here), else a
 * byte loop in JS. The default exports therefore use bufferutil; `wsJs` is a second copy of
 * buffer-util.js and receiver.js loaded with WS_NO_BUFFER_UTIL=1, which is what ws runs without
 * the addon.
 */
import type { EventEmitter } from 'node:events';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';

const require = createRequire(import.meta.url);
const wsLib = join(dirname(require.resolve('ws')), 'lib');

export interface WsReceiverOptions {
  readonly isServer?: boolean;
  readonly maxPayload?: number;
  readonly extensions?: Record<string, unknown>;
  readonly skipUTF8Validation?: boolean;
  readonly allowSynchronousEvents?: boolean;
}

/** ws's frame parser: a Writable that emits 'message' (data, isBinary), 'ping', 'pong', 'conclude'. */
export interface WsReceiver extends EventEmitter {
  write(chunk: Buffer): boolean;
}
export type WsReceiverClass = new (options: WsReceiverOptions) => WsReceiver;

export interface WsFrameOptions {
  readonly fin: boolean;
  readonly opcode: number;
  readonly mask: boolean;
  readonly readOnly: boolean;
  readonly rsv1: boolean;
}
export interface WsSenderClass {
  /** Header and payload as one or two buffers (two when the payload is not copied). */
  frame(data: Buffer, options: WsFrameOptions): Buffer[];
}

export interface WsBufferUtil {
  mask(source: Buffer, mask: Buffer, output: Buffer, offset: number, length: number): void;
  unmask(buffer: Buffer, mask: Buffer): void;
}

export interface WsDeflateOptions {
  readonly isServer?: boolean;
  readonly maxPayload?: number;
  readonly serverNoContextTakeover?: boolean;
  readonly clientNoContextTakeover?: boolean;
  readonly zlibDeflateOptions?: { level?: number; memLevel?: number };
}
type DeflateCallback = (error: Error | null, data?: Buffer) => void;
export interface WsPerMessageDeflate {
  /** Takes offers (server) or the response (client) as ws's header parser yields them: values in arrays. */
  accept(configurations: Record<string, unknown[]>[]): Record<string, unknown>;
  compress(data: Buffer, fin: boolean, callback: DeflateCallback): void;
  decompress(data: Buffer, fin: boolean, callback: DeflateCallback): void;
  cleanup(): void;
}
export type WsPerMessageDeflateClass = new (options: WsDeflateOptions) => WsPerMessageDeflate;

export interface WsValidation {
  isValidUTF8(buf: Buffer): boolean;
}

const libPath = (file: string): string => join(wsLib, file);

export const Receiver = require(libPath('receiver.js')) as WsReceiverClass;
export const Sender = require(libPath('sender.js')) as WsSenderClass;
export const PerMessageDeflate = require(libPath('permessage-deflate.js')) as WsPerMessageDeflateClass;
export const bufferUtil = require(libPath('buffer-util.js')) as WsBufferUtil;
export const validation = require(libPath('validation.js')) as WsValidation;

/** Which mask/unmask the ws modules above use. */
export const wsMaskImpl: string = (() => {
  if (typeof (require('node:http') as Record<string, unknown>).websocketMask === 'function') return 'node:http';
  try {
    require('bufferutil');
    return 'bufferutil';
  } catch {
    return 'JS';
  }
})();

/** The bufferutil addon itself, or null when it is not installed. */
export const bufferutilAddon: WsBufferUtil | null = (() => {
  try {
    return require('bufferutil') as WsBufferUtil;
  } catch {
    return null;
  }
})();

/** A second copy of ws's buffer-util.js and receiver.js, loaded as if bufferutil were absent. */
export const wsJs = ((): { bufferUtil: WsBufferUtil; Receiver: WsReceiverClass } => {
  const ids = [libPath('buffer-util.js'), libPath('receiver.js')];
  const saved = ids.map((id) => require.cache[id]);
  const env = process.env.WS_NO_BUFFER_UTIL;
  for (const id of ids) delete require.cache[id];
  process.env.WS_NO_BUFFER_UTIL = '1';
  try {
    // receiver.js requires './buffer-util' while the fresh JS copy is in the cache.
    const jsBufferUtil = require(ids[0]!) as WsBufferUtil;
    const JsReceiver = require(ids[1]!) as WsReceiverClass;
    return { bufferUtil: jsBufferUtil, Receiver: JsReceiver };
  } finally {
    if (env === undefined) delete process.env.WS_NO_BUFFER_UTIL;
    else process.env.WS_NO_BUFFER_UTIL = env;
    ids.forEach((id, i) => {
      const module = saved[i];
      if (module !== undefined) require.cache[id] = module;
      else delete require.cache[id];
    });
  }
})();
