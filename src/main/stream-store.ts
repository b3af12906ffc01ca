/**
 * The Redis side of the durable bridge: one stream per topic, appended to by a Lua script that
 * also announces each new entry (`<id> <entry>`) on the topic's channel in the same step, and the
 * reads that fill what the announcements missed. StreamOutbox and StreamReader see it through
 * the two interfaces below (tests give them in-memory ones).
 *
 * Why announcements instead of blocking XREADs: an XREAD names every stream it waits on, so a
 * server following ten thousand topics would send twenty thousand arguments per wake-up, and on
 * a cluster one XREAD cannot span hash slots at all (a connection per topic). A subscription
 * costs nothing per message; the script makes the announcement atomic with the append, so
 * announcements arrive in the stream's order, and only a subscription interrupted (a reconnect)
 * needs the stream read back, from the last id delivered.
 */
import type { RedisClient, RedisLink } from './redis-link.ts';
import { readStreamEnvelope } from './bridge-envelope.ts';

/** A stream entry as read: its id and the entry's bytes (the envelope). */
export interface RawEntry {
  readonly id: string;
  readonly entry: Buffer;
}

/** What a stream holds, for deciding whether a recovery is complete. */
export interface StreamBounds {
  /** The oldest entry still there (null: none). */
  readonly first: string | null;
  /** The last id ever given in this stream. */
  readonly lastGenerated: string;
  /** The highest id removed by XDEL (Redis 7; '0-0' before). Trimming does not set it. */
  readonly maxDeleted: string;
  /** Entries ever removed, by trimming or XDEL (Redis 7: entries-added − length; null before). */
  readonly removed: number | null;
}

export interface OutboxTarget {
  readonly ready: boolean;
  /** Appends `entries` to `topic`'s stream, in order, in one step, and announces them; resolves to their ids. */
  append(topic: string, entries: readonly Buffer[]): Promise<string[]>;
  /** This server's entries among `sequences` found in `topic`'s stream after `after`: sequence → id. */
  find(topic: string, after: string | null, sequences: ReadonlySet<number>): Promise<Map<number, string>>;
}

export interface StreamSource {
  readonly ready: boolean;
  /** Subscribes to `topic`'s announcements: true once confirmed, false when offline. */
  listen(topic: string): Promise<boolean>;
  stopListening(topic: string): void;
  /** The id of `topic`'s last entry, or 0-0 when it has none. */
  lastId(topic: string): Promise<string>;
  /** Up to `count` entries after `after` (exclusive), in order. */
  range(topic: string, after: string, count: number): Promise<RawEntry[]>;
  /** Null when there is no such stream. */
  bounds(topic: string): Promise<StreamBounds | null>;
}

/** How a topic's stream is kept short. */
export type Retention = { readonly maxLength: number } | { readonly maxAge: number };

/**
 * KEYS[1]: the topic's stream, whose name is also its channel (one hash slot for both, as a
 * script on a cluster needs). ARGV: MAXLEN or MINID, the length or the window in milliseconds,
 * PUBLISH or SPUBLISH, then the entries. The window is measured on Redis's clock, the one ids are
 * made of. `~` lets Redis trim whole nodes only: cheaper, and the stream keeps at least what was
 * asked. A script runs without anything between its commands: no other append comes between an
 * entry and its announcement, so announcements go out in the stream's order.
 */
const APPEND_SCRIPT = `
local threshold = ARGV[2]
if ARGV[1] == 'MINID' then
  local now = redis.call('TIME')
  threshold = string.format('%d', math.max(0, tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000) - tonumber(ARGV[2])))
end
local ids = {}
for i = 4, #ARGV do
  local id = redis.call('XADD', KEYS[1], ARGV[1], '~', threshold, '*', 'm', ARGV[i])
  redis.call(ARGV[3], KEYS[1], id .. ' ' .. ARGV[i])
  ids[#ids + 1] = id
end
return ids
`;

export const STREAM_SCRIPTS = { shardwsAppend: { numberOfKeys: 1, lua: APPEND_SCRIPT } } as const;

interface ScriptCommands {
  shardwsAppend(key: string, trim: string, threshold: string, publish: string, ...entries: Buffer[]): Promise<string[]>;
}

const BATCH = 1000;

export class RedisStreamStore implements OutboxTarget, StreamSource {
  readonly #link: RedisLink;
  readonly #prefix: string;
  readonly #origin: Buffer;
  readonly #trim: string;
  readonly #threshold: string;

  constructor(link: RedisLink, prefix: string, origin: Buffer, retention: Retention) {
    this.#link = link;
    this.#prefix = prefix;
    this.#origin = origin;
    this.#trim = 'maxLength' in retention ? 'MAXLEN' : 'MINID';
    this.#threshold = String('maxLength' in retention ? retention.maxLength : Math.round(retention.maxAge * 1000));
  }

  get ready(): boolean {
    return this.#link.ready;
  }

  /** The stream of `topic`, and the channel its entries are announced on. */
  key(topic: string): string {
    return this.#prefix + topic;
  }

  async append(topic: string, entries: readonly Buffer[]): Promise<string[]> {
    const commands = this.#commands() as RedisClient & ScriptCommands;
    return commands.shardwsAppend(this.key(topic), this.#trim, this.#threshold, this.#link.sharded ? 'SPUBLISH' : 'PUBLISH', ...entries);
  }

  async find(topic: string, after: string | null, sequences: ReadonlySet<number>): Promise<Map<number, string>> {
    const found = new Map<number, string>();
    let start = after === null ? '-' : `(${after}`;
    for (;;) {
      const batch = await this.#range(topic, start, BATCH);
      for (const { id, entry } of batch) {
        const message = readStreamEnvelope(entry, this.#origin);
        if (message !== null && message.own && sequences.has(message.sequence)) found.set(message.sequence, id);
      }
      if (batch.length < BATCH || found.size === sequences.size) return found;
      start = `(${batch[batch.length - 1]!.id}`;
    }
  }

  listen(topic: string): Promise<boolean> {
    return this.#link.subscribe(this.key(topic));
  }

  stopListening(topic: string): void {
    this.#link.unsubscribe(this.key(topic));
  }

  async lastId(topic: string): Promise<string> {
    const last = (await this.#commands().xrevrangeBuffer(this.key(topic), '+', '-', 'COUNT', 1)) as [Buffer, Buffer[]][];
    return last.length === 0 ? '0-0' : last[0]![0].toString('latin1');
  }

  range(topic: string, after: string, count: number): Promise<RawEntry[]> {
    return this.#range(topic, `(${after}`, count);
  }

  async bounds(topic: string): Promise<StreamBounds | null> {
    let info: unknown[];
    try {
      info = (await this.#commands().xinfo('STREAM', this.key(topic))) as unknown[];
    } catch (error) {
      if (/no such key/i.test((error as Error).message)) return null;
      throw error;
    }
    const field = (name: string): unknown => {
      for (let i = 0; i + 1 < info.length; i += 2) if (info[i] === name) return info[i + 1];
      return undefined;
    };
    const first = field('first-entry') as [string, unknown] | null | undefined;
    const added = field('entries-added');
    return {
      removed: added === undefined ? null : Number(added) - Number(field('length')),
      first: first === null || first === undefined ? null : String(first[0]),
      lastGenerated: String(field('last-generated-id') ?? '0-0'),
      maxDeleted: String(field('max-deleted-entry-id') ?? '0-0'),
    };
  }

  async #range(topic: string, start: string, count: number): Promise<RawEntry[]> {
    const rows = (await this.#commands().xrangeBuffer(this.key(topic), start, '+', 'COUNT', count)) as [Buffer, Buffer[]][];
    const entries: RawEntry[] = [];
    for (const [id, fields] of rows) {
      // One field per entry: 'm', the envelope.
      const entry = fields[1];
      if (entry !== undefined) entries.push({ id: id.toString('latin1'), entry });
    }
    return entries;
  }

  #commands(): RedisClient {
    const commands = this.#link.commands;
    if (commands === null) throw new Error('redis is unreachable');
    return commands;
  }
}
