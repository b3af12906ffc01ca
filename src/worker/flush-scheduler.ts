/** Something with frames gathered during this tick. */
export interface Flushable {
  flush(): void;
}

/**
 * FlushScheduler writes every connection's frames once per event-loop turn: sends made while
 * handling one socket read (an echo of 50 frames, a publish to 1,000 subscribers) become one
 * writev per connection instead of one write per message.
 */
export class FlushScheduler {
  #dirty: Flushable[] = [];
  #spare: Flushable[] = [];
  #scheduled = false;
  readonly #run = (): void => this.#flushAll();

  schedule(target: Flushable): void {
    this.#dirty.push(target);
    if (!this.#scheduled) {
      this.#scheduled = true;
      setImmediate(this.#run);
    }
  }

  #flushAll(): void {
    this.#scheduled = false;
    const batch = this.#dirty;
    this.#dirty = this.#spare;
    for (let i = 0; i < batch.length; i++) batch[i]!.flush();
    batch.length = 0;
    this.#spare = batch;
  }
}
