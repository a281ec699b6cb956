// SPDX-License-Identifier: MIT
// The one Reward interface every adapter implements, plus the shared machinery: finite-score checks,
// batching, a concurrency limit and a cache of repeated samples (PPO batches repeat prompts often).
import { SoupError } from '../errors.js';

export interface Sample {
  prompt: string;
  response: string;
  references?: string[];
  meta?: Record<string, unknown>;
}

export interface ScoreOptions {
  signal?: AbortSignal;
}

export interface Reward {
  readonly name: string;
  score(batch: Sample[], opts?: ScoreOptions): Promise<Float64Array>;
}

export function rewardError(name: string, message: string, cause?: unknown): SoupError {
  return new SoupError('ERR_SOUP_REWARD', `reward '${name}': ${message}`, cause === undefined ? undefined : { cause });
}

export function throwIfAborted(signal: AbortSignal | undefined, name: string): void {
  if (signal?.aborted) throw new SoupError('ERR_SOUP_ABORTED', `reward '${name}': aborted`, { cause: signal.reason });
}

/** NaN or ±inf is a bug in a reward, never a value to train on: fail loudly, naming sample and reward. */
export function checkFinite(name: string, scores: ArrayLike<number>, offset = 0): void {
  for (let i = 0; i < scores.length; i++) {
    const v = scores[i];
    if (typeof v !== 'number' || !Number.isFinite(v)) {
      throw rewardError(name, `non-finite score ${String(v)} for sample ${i + offset}`);
    }
  }
}

export function checkBatch(name: string, batch: unknown): asserts batch is Sample[] {
  if (!Array.isArray(batch)) throw rewardError(name, `expected an array of samples but received ${typeof batch}`);
  for (let i = 0; i < batch.length; i++) {
    const s = batch[i] as Partial<Sample> | null;
    if (s === null || typeof s !== 'object') throw rewardError(name, `sample ${i} is not an object`);
    if (typeof s.prompt !== 'string') throw rewardError(name, `sample ${i}: expected a string for 'prompt' but received ${typeof s.prompt}`);
    if (typeof s.response !== 'string') throw rewardError(name, `sample ${i}: expected a string for 'response' but received ${typeof s.response}`);
    if (s.references !== undefined && (!Array.isArray(s.references) || s.references.some((r) => typeof r !== 'string'))) {
      throw rewardError(name, `sample ${i}: 'references' must be an array of strings`);
    }
  }
}

export function requireReferences(name: string, s: Sample, i: number): string[] {
  if (!s.references || s.references.length === 0) {
    throw rewardError(name, `sample ${i} has no references, but this metric compares the response with references (set 'references: [...]')`);
  }
  if (s.references.every((r) => r.trim() === '')) throw rewardError(name, `sample ${i} has only empty references`);
  return s.references;
}

/** A counting semaphore: at most `limit` tasks run at once. */
export class Limiter {
  private active = 0;
  private readonly queue: Array<() => void> = [];
  constructor(readonly limit: number) {
    if (!(Number.isInteger(limit) && limit >= 1)) throw new SoupError('ERR_SOUP_INVALID_ARG', `concurrency must be an integer >= 1, got ${limit}`);
  }
  async run<T>(fn: () => Promise<T>): Promise<T> {
    if (this.active >= this.limit) await new Promise<void>((res) => this.queue.push(res));
    this.active++;
    try {
      return await fn();
    } finally {
      this.active--;
      this.queue.shift()?.();
    }
  }
}

/** Insertion-ordered LRU map. */
export class LruCache<V> {
  private readonly map = new Map<string, V>();
  constructor(readonly capacity: number) {}
  get(k: string): V | undefined {
    const v = this.map.get(k);
    if (v !== undefined) {
      this.map.delete(k);
      this.map.set(k, v);
    }
    return v;
  }
  set(k: string, v: V): void {
    if (this.capacity <= 0) return;
    this.map.delete(k);
    this.map.set(k, v);
    if (this.map.size > this.capacity) this.map.delete(this.map.keys().next().value as string);
  }
  get size(): number {
    return this.map.size;
  }
}

export interface BatchingOptions {
  /** Samples per call to the underlying scorer (default: whole batch). */
  batchSize?: number;
  /** Sub-batches in flight at once (default 1). */
  concurrency?: number;
  /** Entries in the sample cache (default 0 = off). */
  cacheSize?: number;
}

export function sampleKey(s: Sample): string {
  return JSON.stringify([s.prompt, s.response, s.references ?? null, s.meta ?? null]);
}

/**
 * Base class: subclasses implement `scoreBatch` for one sub-batch; this class deduplicates, caches,
 * splits into sub-batches, bounds concurrency and checks every score is finite.
 */
export abstract class BatchedReward implements Reward {
  readonly name: string;
  protected readonly batchSize: number;
  private readonly limiter: Limiter;
  private readonly cache: LruCache<number>;
  /** Number of samples actually passed to scoreBatch (tests use it to see the cache work). */
  scoredCount = 0;

  constructor(name: string, opts: BatchingOptions = {}) {
    this.name = name;
    this.batchSize = opts.batchSize ?? Number.POSITIVE_INFINITY;
    if (!(this.batchSize >= 1)) throw rewardError(name, `batchSize must be >= 1, got ${opts.batchSize}`);
    this.limiter = new Limiter(opts.concurrency ?? 1);
    this.cache = new LruCache<number>(opts.cacheSize ?? 0);
  }

  protected abstract scoreBatch(batch: Sample[], offsets: number[], opts: ScoreOptions): Promise<ArrayLike<number>>;

  async score(batch: Sample[], opts: ScoreOptions = {}): Promise<Float64Array> {
    checkBatch(this.name, batch);
    throwIfAborted(opts.signal, this.name);
    const out = new Float64Array(batch.length);
    // Unique samples not in cache, with the positions that share them.
    const pending = new Map<string, { sample: Sample; index: number; targets: number[] }>();
    for (let i = 0; i < batch.length; i++) {
      const key = sampleKey(batch[i]);
      const hit = this.cache.get(key);
      if (hit !== undefined) {
        out[i] = hit;
        continue;
      }
      const p = pending.get(key);
      if (p) p.targets.push(i);
      else pending.set(key, { sample: batch[i], index: i, targets: [i] });
    }
    const todo = [...pending.entries()];
    const chunks: Array<typeof todo> = [];
    const bs = Number.isFinite(this.batchSize) ? this.batchSize : Math.max(todo.length, 1);
    for (let i = 0; i < todo.length; i += bs) chunks.push(todo.slice(i, i + bs));
    await Promise.all(
      chunks.map((chunk) =>
        this.limiter.run(async () => {
          throwIfAborted(opts.signal, this.name);
          const samples = chunk.map(([, p]) => p.sample);
          const offsets = chunk.map(([, p]) => p.index);
          this.scoredCount += samples.length;
          const scores = await this.scoreBatch(samples, offsets, opts);
          if (scores.length !== samples.length) {
            throw rewardError(this.name, `scorer returned ${scores.length} scores for ${samples.length} samples`);
          }
          for (let j = 0; j < chunk.length; j++) {
            const v = scores[j];
            if (typeof v !== 'number' || !Number.isFinite(v)) {
              throw rewardError(this.name, `non-finite score ${String(v)} for sample ${offsets[j]}`);
            }
            const [key, p] = chunk[j];
            this.cache.set(key, v);
            for (const t of p.targets) out[t] = v;
          }
        }),
      ),
    );
    return out;
  }
}

/** A reward whose per-sample score is a synchronous function of the sample. */
export class FnReward extends BatchedReward {
  constructor(
    name: string,
    private readonly fn: (s: Sample, index: number) => number,
    opts: BatchingOptions = {},
  ) {
    super(name, opts);
  }
  protected async scoreBatch(batch: Sample[], offsets: number[]): Promise<Float64Array> {
    const out = new Float64Array(batch.length);
    for (let i = 0; i < batch.length; i++) out[i] = this.fn(batch[i], offsets[i]);
    return out;
  }
}
