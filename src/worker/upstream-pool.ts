/**
 * Which upstream a proxied connection goes to, per worker: the order in which a target's URLs
 * are tried (least connections, round robin, or a sticky key), upstreams that failed to answer
 * put last for a back-off that doubles with each failure, and the connections each one holds.
 * Each worker keeps its own counts and back-offs: no state crosses threads on the handshake path.
 */
import type { ResolvedProxyTarget } from '../shared/proxy-target.ts';

/** Back-off after an upstream fails to answer: 1 s, doubling to 30 s, reset by a success. */
const FIRST_BACKOFF_MS = 1000;
const MAX_BACKOFF_MS = 30_000;
/**
 * An app may give a URL per request (a path per user or tenant), so entries are dropped once
 * they say nothing: an upstream with no connection and no failure, one whose back-off ended long
 * ago, a rotation among more lists than this. Otherwise every URL ever dialed stayed in the maps.
 */
const MAX_CURSORS = 1024;

const UNKNOWN: Readonly<UpstreamState> = Object.freeze({ active: 0, failures: 0, retryAt: 0 });

interface UpstreamState {
  /** Proxied connections open to it from this worker. */
  active: number;
  /** Failures in a row (connect errors, timeouts). */
  failures: number;
  /** Until when it is tried only after every other upstream. */
  retryAt: number;
}

export interface UpstreamStats {
  readonly url: string;
  readonly active: number;
  readonly failures: number;
  readonly backingOff: boolean;
}

export class UpstreamPool {
  readonly #states = new Map<string, UpstreamState>();
  /** Round-robin position per list of URLs (a target's `urls`, joined). */
  readonly #cursors = new Map<string, number>();

  /**
   * The URLs of `target` in the order to try them: the balance's (or the sticky key's) order
   * among those not backing off, then those backing off, soonest retry first.
   */
  order(target: ResolvedProxyTarget, sticky: string | null = target.sticky, now = Date.now()): string[] {
    const urls = target.urls;
    if (urls.length === 1) return [urls[0]!];
    let ordered: string[];
    if (sticky !== null) {
      // Rendezvous hashing: each key ranks the upstreams the same way on every worker and every
      // server, and losing one upstream moves only the keys that ranked it first.
      ordered = [...urls].sort((a, b) => rendezvousScore(sticky, b) - rendezvousScore(sticky, a));
    } else {
      const key = urls.join('\n');
      const start = this.#cursors.get(key) ?? 0;
      if (this.#cursors.size >= MAX_CURSORS && start === 0) this.#cursors.clear();
      this.#cursors.set(key, (start + 1) % urls.length);
      const rotated = urls.map((_, i) => urls[(start + i) % urls.length]!);
      // least-connections: fewest open first; the rotation breaks ties, so equals take turns.
      ordered = target.balance === 'round-robin' ? rotated : rotated.sort((a, b) => this.#peek(a).active - this.#peek(b).active);
    }
    const ready = ordered.filter((url) => this.#peek(url).retryAt <= now);
    if (ready.length === ordered.length) return ordered;
    const waiting = ordered.filter((url) => this.#peek(url).retryAt > now).sort((a, b) => this.#peek(a).retryAt - this.#peek(b).retryAt);
    return [...ready, ...waiting];
  }

  /** A connection to `url` opened: it answered, so it is healthy again. */
  opened(url: string): void {
    const state = this.#state(url);
    state.active++;
    state.failures = 0;
    state.retryAt = 0;
  }

  /** A connection to `url` ended. */
  closed(url: string): void {
    const state = this.#states.get(url);
    if (state === undefined) return;
    if (state.active > 0) state.active--;
    if (state.active === 0 && state.failures === 0) this.#states.delete(url);
  }

  /** `url` did not answer (refused, unreachable, timed out): try it last for a while. */
  failed(url: string, now = Date.now()): number {
    // Upstreams idle since a back-off that ended long ago are forgotten (their doubling restarts).
    for (const [other, state] of this.#states) if (state.active === 0 && state.retryAt + MAX_BACKOFF_MS < now) this.#states.delete(other);
    const state = this.#state(url);
    state.failures++;
    const delay = Math.min(MAX_BACKOFF_MS, FIRST_BACKOFF_MS * 2 ** Math.min(state.failures - 1, 16));
    state.retryAt = now + delay;
    return delay;
  }

  stats(now = Date.now()): UpstreamStats[] {
    return [...this.#states].map(([url, s]) => ({ url, active: s.active, failures: s.failures, backingOff: s.retryAt > now }));
  }

  #peek(url: string): Readonly<UpstreamState> {
    return this.#states.get(url) ?? UNKNOWN;
  }

  #state(url: string): UpstreamState {
    let state = this.#states.get(url);
    if (state === undefined) {
      state = { active: 0, failures: 0, retryAt: 0 };
      this.#states.set(url, state);
    }
    return state;
  }
}

/** A 32-bit FNV-1a hash of `key` and `url`, mixed (murmur3's finalizer) so close inputs spread. */
export function rendezvousScore(key: string, url: string): number {
  let h = 0x811c9dc5;
  const text = `${key}\u0000${url}`;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}
