/**
 * WorkerPresence is one worker's column of the server's PresenceTable: it counts this worker's
 * connections into the table as they subscribe to topics or take tags, remembering the bucket
 * of every key it holds so that only a key's first and last connection take the table's lock.
 */
import type { Logger } from 'pino';
import type { PresenceKind, PresenceTable } from '../shared/presence-table.ts';

export class WorkerPresence {
  readonly #table: PresenceTable;
  readonly #worker: number;
  readonly #logger: Logger;
  readonly #buckets: Record<PresenceKind, Map<string, number>> = { topic: new Map(), tag: new Map() };
  #warnedFull = false;

  constructor(table: PresenceTable, worker: number, logger: Logger) {
    this.#table = table;
    this.#worker = worker;
    this.#logger = logger;
  }

  /** One more local connection holds `key`. */
  hold(kind: PresenceKind, key: string): void {
    const buckets = this.#buckets[kind];
    const bucket = buckets.get(key);
    if (bucket !== undefined) {
      this.#table.adjust(this.#worker, bucket, 1);
      return;
    }
    const joined = this.#table.join(this.#worker, kind, key);
    if (joined >= 0) {
      buckets.set(key, joined);
      return;
    }
    // Counted locally only: the key is still served, but other workers cannot see this worker's share.
    buckets.set(key, -1);
    if (!this.#warnedFull) {
      this.#warnedFull = true;
      this.#logger.warn({ capacity: this.#table.capacity }, 'presence table full: counts of further topics and tags leave out this worker; raise presenceCapacity');
    }
  }

  /** One local connection let go of `key`; `last` when none of this worker's holds it any more. */
  release(kind: PresenceKind, key: string, last: boolean): void {
    const buckets = this.#buckets[kind];
    const bucket = buckets.get(key);
    if (bucket === undefined) return;
    if (!last) {
      if (bucket >= 0) this.#table.adjust(this.#worker, bucket, -1);
      return;
    }
    buckets.delete(key);
    if (bucket >= 0) this.#table.leave(this.#worker, bucket);
  }

  /** Connections holding `key` on every worker; `local` stands in when this worker's share could not be counted. */
  count(kind: PresenceKind, key: string, local: number): number {
    const total = this.#table.count(kind, key);
    return this.#buckets[kind].get(key) === -1 ? total + local : total;
  }

  /** Workers with connections holding `key`; null when the table overflowed and any worker may. */
  workersWith(kind: PresenceKind, key: string): number[] | null {
    return this.#table.overflowed ? null : this.#table.workersWith(kind, key);
  }

  /** Whether this worker's connections holding `key` are left out of the table (it was full). */
  uncounted(kind: PresenceKind, key: string): boolean {
    return this.#buckets[kind].get(key) === -1;
  }
}
