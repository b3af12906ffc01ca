/**
 * LatencyHistogram: a log-linear histogram of whole microseconds, HDR-style. Values below 256 get
 * a bucket each; above, every power of two is split into 128 linear buckets, so any value is
 * reported within 1/128 (0.8 %) of itself, from 1 µs to 2^32 µs (71 minutes) in 3,328 counters.
 *
 * Written here rather than taking hdr-histogram-js: the load generator needs record, merge
 * across threads and a percentile, about 100 lines, and the package brings a WebAssembly build
 * and a base64/zlib encoding we would not use. The counts travel between threads as a plain
 * Float64Array (structured clone), so merging is adding arrays.
 */

const SUB_BITS = 7;
const SUB_COUNT = 1 << SUB_BITS; // 128 linear buckets per power of two
const LINEAR_MAX = SUB_COUNT * 2; // values below 256 are exact
const MAX_SHIFT = 32 - SUB_BITS - 1; // largest value: a 32-bit number
export const BUCKETS = LINEAR_MAX + MAX_SHIFT * SUB_COUNT;
const MAX_VALUE = 0xffffffff;

/** Bucket of a value in whole microseconds (clamped to 0..2^32-1). */
function bucketOf(value: number): number {
  const v = value <= 0 ? 0 : value >= MAX_VALUE ? MAX_VALUE : Math.floor(value) >>> 0;
  if (v < LINEAR_MAX) return v;
  const msb = 31 - Math.clz32(v); // >= 8
  const shift = msb - SUB_BITS; // >= 1
  return LINEAR_MAX + (shift - 1) * SUB_COUNT + ((v >>> shift) - SUB_COUNT);
}

/** The lowest and highest value a bucket holds. */
function bucketRange(index: number): [number, number] {
  if (index < LINEAR_MAX) return [index, index];
  const shift = Math.floor((index - LINEAR_MAX) / SUB_COUNT) + 1;
  const mantissa = ((index - LINEAR_MAX) % SUB_COUNT) + SUB_COUNT;
  const low = mantissa * 2 ** shift;
  return [low, low + 2 ** shift - 1];
}

/** What crosses threads: plain numbers and one Float64Array. */
export interface HistogramData {
  readonly counts: Float64Array;
  readonly count: number;
  readonly sum: number;
  readonly min: number;
  readonly max: number;
}

export interface LatencySummary {
  readonly count: number;
  /** Milliseconds. */
  readonly min: number;
  readonly mean: number;
  readonly p50: number;
  readonly p90: number;
  readonly p99: number;
  readonly p999: number;
  readonly max: number;
}

export class LatencyHistogram {
  readonly counts = new Float64Array(BUCKETS);
  count = 0;
  sum = 0;
  min = Infinity;
  max = 0;

  static from(data: HistogramData): LatencyHistogram {
    const histogram = new LatencyHistogram();
    histogram.merge(data);
    return histogram;
  }

  /** Records one value in microseconds. */
  record(micros: number): void {
    this.counts[bucketOf(micros)]!++;
    this.count++;
    this.sum += micros;
    if (micros < this.min) this.min = micros;
    if (micros > this.max) this.max = micros;
  }

  merge(other: HistogramData): void {
    const counts = this.counts;
    const theirs = other.counts;
    for (let i = 0; i < BUCKETS; i++) counts[i]! += theirs[i]!;
    this.count += other.count;
    this.sum += other.sum;
    if (other.min < this.min) this.min = other.min;
    if (other.max > this.max) this.max = other.max;
  }

  /** The value (µs) at quantile q in 0..1: the middle of its bucket, kept within min..max. */
  quantile(q: number): number {
    if (this.count === 0) return 0;
    const rank = Math.max(1, Math.ceil(q * this.count));
    let seen = 0;
    for (let i = 0; i < BUCKETS; i++) {
      seen += this.counts[i]!;
      if (seen >= rank) {
        const [low, high] = bucketRange(i);
        return Math.min(this.max, Math.max(this.min, (low + high) / 2));
      }
    }
    return this.max;
  }

  toData(): HistogramData {
    return { counts: this.counts, count: this.count, sum: this.sum, min: this.min, max: this.max };
  }

  /** Percentiles in milliseconds. */
  summary(): LatencySummary {
    const ms = (micros: number): number => Math.round(micros) / 1000;
    return {
      count: this.count,
      min: this.count === 0 ? 0 : ms(this.min),
      mean: this.count === 0 ? 0 : ms(this.sum / this.count),
      p50: ms(this.quantile(0.5)),
      p90: ms(this.quantile(0.9)),
      p99: ms(this.quantile(0.99)),
      p999: ms(this.quantile(0.999)),
      max: ms(this.max),
    };
  }
}
