/**
 * Redis streams in memory, as StreamOutbox and StreamReader see them (OutboxTarget and
 * StreamSource): ids from a fake clock, trimming, an on/off switch for the connection, replies
 * that get lost after the append happened, and announcements handed to whoever listens.
 */
import { readStreamEnvelope } from '../../src/main/bridge-envelope.ts';
import type { OutboxTarget, RawEntry, StreamBounds, StreamSource } from '../../src/main/stream-store.ts';

interface MemoryStream {
  entries: RawEntry[];
  lastGenerated: string;
  added: number;
}

export class MemoryStreams implements OutboxTarget, StreamSource {
  readonly streams = new Map<string, MemoryStream>();
  readonly listening = new Set<string>();
  ready = true;
  /** The next appends (calls) happen, but their answer is lost (the connection broke after Redis ran them). */
  loseReplies = 0;
  /** The next appends are refused by Redis (a ReplyError). */
  refuse = 0;
  /** The next appends never reach Redis, and fail as a broken connection does. */
  vanish = 0;
  /** Calls made, for the tests to check what was asked of Redis. */
  readonly calls: string[] = [];
  #ms = 1000;
  #seq = 0;
  readonly #origin: Buffer;
  readonly #announce: (topic: string, id: string, entry: Buffer) => void;

  constructor(origin: Buffer, announce: (topic: string, id: string, entry: Buffer) => void = () => {}) {
    this.#origin = origin;
    this.#announce = announce;
  }

  /** Moves the clock: the next id starts a new millisecond. */
  tick(): void {
    this.#ms++;
    this.#seq = 0;
  }

  async append(topic: string, entries: readonly Buffer[]): Promise<string[]> {
    this.calls.push(`append ${topic} ×${entries.length}`);
    if (!this.ready) throw new Error("Stream isn't writeable and enableOfflineQueue options is false");
    if (this.vanish > 0) {
      this.vanish--;
      throw new Error('Connection is closed.');
    }
    if (this.refuse > 0) {
      this.refuse--;
      throw Object.assign(new Error('OOM command not allowed'), { name: 'ReplyError' });
    }
    const ids = entries.map((entry) => this.add(topic, entry));
    if (this.loseReplies > 0) {
      this.loseReplies--;
      throw new Error('Connection is closed.');
    }
    return ids;
  }

  /** Appends as another server would (announced to listeners like any append). */
  add(topic: string, entry: Buffer): string {
    const stream = this.#stream(topic);
    const id = `${this.#ms}-${this.#seq++}`;
    stream.entries.push({ id, entry: Buffer.from(entry) });
    stream.lastGenerated = id;
    stream.added++;
    if (this.ready && this.listening.has(topic)) this.#announce(topic, id, entry);
    return id;
  }

  /** Keeps only the newest `keep` entries. */
  trim(topic: string, keep: number): void {
    const stream = this.#stream(topic);
    stream.entries = stream.entries.slice(Math.max(0, stream.entries.length - keep));
  }

  ids(topic: string): string[] {
    return this.streams.get(topic)?.entries.map((e) => e.id) ?? [];
  }

  async find(topic: string, after: string | null, sequences: ReadonlySet<number>): Promise<Map<number, string>> {
    this.calls.push(`find ${topic} after ${after ?? '-'}`);
    if (!this.ready) throw new Error('Connection is closed.');
    const found = new Map<number, string>();
    for (const { id, entry } of this.#after(topic, after)) {
      const message = readStreamEnvelope(entry, this.#origin);
      if (message !== null && message.own && sequences.has(message.sequence)) found.set(message.sequence, id);
    }
    return found;
  }

  async listen(topic: string): Promise<boolean> {
    if (!this.ready) return false;
    this.listening.add(topic);
    return true;
  }

  stopListening(topic: string): void {
    this.listening.delete(topic);
  }

  async lastId(topic: string): Promise<string> {
    if (!this.ready) throw new Error('Connection is closed.');
    return this.streams.get(topic)?.entries.at(-1)?.id ?? '0-0';
  }

  async range(topic: string, after: string, count: number): Promise<RawEntry[]> {
    this.calls.push(`range ${topic} after ${after}`);
    if (!this.ready) throw new Error('Connection is closed.');
    return this.#after(topic, after).slice(0, count);
  }

  async bounds(topic: string): Promise<StreamBounds | null> {
    if (!this.ready) throw new Error('Connection is closed.');
    const stream = this.streams.get(topic);
    if (stream === undefined) return null;
    return { first: stream.entries[0]?.id ?? null, lastGenerated: stream.lastGenerated, maxDeleted: '0-0', removed: stream.added - stream.entries.length };
  }

  #stream(topic: string): MemoryStream {
    let stream = this.streams.get(topic);
    if (stream === undefined) this.streams.set(topic, (stream = { entries: [], lastGenerated: '0-0', added: 0 }));
    return stream;
  }

  #after(topic: string, after: string | null): RawEntry[] {
    const entries = this.streams.get(topic)?.entries ?? [];
    if (after === null) return [...entries];
    const [ms, seq] = after.split('-').map(Number) as [number, number];
    return entries.filter((e) => {
      const [m, s] = e.id.split('-').map(Number) as [number, number];
      return m > ms || (m === ms && s > seq);
    });
  }
}
