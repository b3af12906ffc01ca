import { receiveMessageOnPort } from 'node:worker_threads';
import type { MessagePort } from 'node:worker_threads';
import type { Logger } from 'pino';
import type { Priority } from '../shared/app.ts';
import type { SlabPool } from '../shared/slab-pool.ts';
import type { DirectMessage, PeerMessage, PeerPublish } from '../shared/thread-messages.ts';
import type { DirectPeers } from './connection-directory.ts';

interface Peer {
  readonly worker: number;
  readonly generation: number;
  readonly port: MessagePort;
}

/** The topic registry as the mesh sees it: what peers tell this worker, and what a new peer must learn. */
export interface MeshTopics {
  /** Topics with local subscribers: a peer that joins is told them. */
  readonly localTopics: readonly string[];
  /** A peer's subscribers to `topics` came or went. */
  setRemoteInterest(worker: number, topics: readonly string[], subscribed: boolean): void;
  /** A peer's publish; `release` (pooled frames) must run once they are written, on every path. */
  deliver(message: PeerPublish, frames: Buffer, release: (() => void) | null): void;
  /** A peer left: it has no subscribers any more. */
  forgetWorker(worker: number): void;
}

/**
 * PeerMesh is this worker's MessagePorts to every other worker (a port per pair, set up by the
 * primary). Interest changes go to all peers; a publish goes to the peers that asked for the
 * topic. Frames at or above the pool threshold are written once into the SharedArrayBuffer
 * pool and only a handle crosses; smaller ones are copied by postMessage, which costs less than
 * a pool round trip at that size.
 */
export class PeerMesh implements DirectPeers {
  readonly #self: number;
  readonly #generation: number;
  readonly #peers = new Map<number, Peer>();
  readonly #pool: SlabPool;
  readonly #poolThreshold: number;
  readonly #logger: Logger;
  #topics: MeshTopics | null = null;
  /** Where direct messages for this worker's connections go (the ConnectionDirectory). */
  #direct: ((message: DirectMessage) => void) | null = null;

  constructor(self: number, generation: number, pool: SlabPool, poolThreshold: number, logger: Logger) {
    this.#self = self;
    this.#generation = generation;
    this.#pool = pool;
    this.#poolThreshold = poolThreshold;
    this.#logger = logger;
  }

  /** The registry this mesh serves (it attaches itself when constructed). */
  attach(topics: MeshTopics): void {
    this.#topics = topics;
  }

  /** The directory that takes direct messages from peers. */
  attachDirect(receive: (message: DirectMessage) => void): void {
    this.#direct = receive;
  }

  generationOf(worker: number): number {
    return this.#peers.get(worker)?.generation ?? -1;
  }

  get workers(): Iterable<number> {
    return this.#peers.keys();
  }

  post(worker: number, message: DirectMessage): boolean {
    const peer = this.#peers.get(worker);
    if (peer === undefined) return false;
    peer.port.postMessage(message);
    return true;
  }

  add(worker: number, generation: number, port: MessagePort): void {
    this.remove(worker);
    const peer: Peer = { worker, generation, port };
    this.#peers.set(worker, peer);
    port.on('message', (message: PeerMessage) => this.#receive(peer, message));
    // A peer that joins late must learn which topics we have subscribers for.
    if (this.#topics !== null) this.announce(this.#topics.localTopics, true, worker);
  }

  remove(worker: number): void {
    const peer = this.#peers.get(worker);
    if (peer === undefined) return;
    this.#peers.delete(worker);
    // Closing a port discards what is still queued on it: return the pooled publishes among
    // them first, or this worker's holder bits would pin their pages for as long as it lives.
    for (let queued = receiveMessageOnPort(peer.port); queued !== undefined; queued = receiveMessageOnPort(peer.port)) {
      const message = queued.message as PeerMessage;
      if (message.type === 'publish' && message.bytes === null) this.#pool.release(message.handle, this.#self);
    }
    peer.port.close();
    this.#topics?.forgetWorker(worker);
  }

  announce(topics: readonly string[], subscribed: boolean, only?: number): void {
    if (topics.length === 0) return;
    const message: PeerMessage = { type: 'interest', topics, subscribed };
    if (only !== undefined) {
      this.#peers.get(only)?.port.postMessage(message);
      return;
    }
    for (const peer of this.#peers.values()) peer.port.postMessage(message);
  }

  publish(workers: ReadonlySet<number>, topic: string, plain: Buffer, compressed: Buffer | null, priority: Priority): void {
    const plainLength = plain.length;
    const compressedLength = compressed?.length ?? 0;
    const total = plainLength + compressedLength;
    if (total >= this.#poolThreshold && workers.size > 0) {
      // The publisher holds the pages too while it writes them: were every receiver to die
      // meanwhile, the sweep would otherwise free the pages under the copy.
      const holders = [{ worker: this.#self, generation: this.#generation }];
      for (const worker of workers) {
        const peer = this.#peers.get(worker);
        if (peer !== undefined) holders.push({ worker, generation: peer.generation });
      }
      const allocation = this.#pool.allocate(total, holders);
      if (allocation.ok) {
        const bytes = this.#pool.bytes(allocation.handle);
        bytes.set(plain, 0);
        if (compressed !== null) bytes.set(compressed, plainLength);
        const message: PeerPublish = { type: 'publish', topic, priority, plainLength, compressedLength, bytes: null, handle: allocation.handle };
        for (const holder of allocation.holders) {
          if (holder.worker !== this.#self) this.#peers.get(holder.worker)!.port.postMessage(message);
        }
        this.#pool.release(allocation.handle, this.#self);
        return;
      }
      // Pool full (or every receiver just died): fall back to copying, bounded by postMessage.
    }
    const bytes = new Uint8Array(total);
    bytes.set(plain, 0);
    if (compressed !== null) bytes.set(compressed, plainLength);
    const message: PeerPublish = { type: 'publish', topic, priority, plainLength, compressedLength, bytes, handle: -1 };
    for (const worker of workers) this.#peers.get(worker)?.port.postMessage(message);
  }

  #receive(peer: Peer, message: PeerMessage): void {
    const topics = this.#topics;
    if (topics === null) return;
    if (message.type === 'interest') {
      topics.setRemoteInterest(peer.worker, message.topics, message.subscribed);
      return;
    }
    if (message.type === 'direct') {
      this.#direct?.(message);
      return;
    }
    if (message.bytes !== null) {
      const bytes = message.bytes;
      topics.deliver(message, Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength), null);
      return;
    }
    const handle = message.handle;
    const pool = this.#pool;
    const self = this.#self;
    let frames: Buffer;
    try {
      frames = pool.bytes(handle);
    } catch (error) {
      this.#logger.error({ err: error, handle }, 'publish refers to a pool allocation that is gone');
      return;
    }
    topics.deliver(message, frames, () => {
      pool.release(handle, self);
    });
  }

  close(): void {
    for (const worker of [...this.#peers.keys()]) this.remove(worker);
  }
}
