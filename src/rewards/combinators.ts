// SPDX-License-Identifier: MIT
// Combinators: MORL scalarisation Σ μᵢ Rᵢ / Σ μᵢ (the paper's code renormalises by the weights' sum),
// running normalisation, clipping and user-defined rewards.
import { SoupError } from '../errors.js';
import {
  BatchedReward,
  FnReward,
  checkBatch,
  checkFinite,
  rewardError,
  throwIfAborted,
  type BatchingOptions,
  type Reward,
  type Sample,
  type ScoreOptions,
} from './types.js';

export interface WeightedOptions {
  name?: string;
  /** Divide by Σ μᵢ (default true, as the paper's reward_formats "xC" weights do). */
  normalize?: boolean;
}

class WeightedReward implements Reward {
  readonly name: string;
  constructor(
    readonly rewards: Reward[],
    readonly weights: number[],
    private readonly normalize: boolean,
    name?: string,
  ) {
    this.name = name ?? `weighted(${rewards.map((r, i) => `${weights[i]}*${r.name}`).join('+')})`;
  }
  async score(batch: Sample[], opts: ScoreOptions = {}): Promise<Float64Array> {
    checkBatch(this.name, batch);
    const parts = await Promise.all(this.rewards.map((r) => r.score(batch, opts)));
    const out = new Float64Array(batch.length);
    let wsum = 0;
    for (let k = 0; k < parts.length; k++) {
      if (parts[k].length !== batch.length)
        throw rewardError(this.name, `component '${this.rewards[k].name}' returned ${parts[k].length} scores for ${batch.length} samples`);
      const w = this.weights[k];
      wsum += w;
      for (let i = 0; i < out.length; i++) out[i] += w * parts[k][i];
    }
    if (this.normalize) for (let i = 0; i < out.length; i++) out[i] /= wsum;
    checkFinite(this.name, out);
    return out;
  }
}

/** weighted([r1, r2, …], μ): Σ μᵢ Rᵢ / Σ μᵢ (or Σ μᵢ Rᵢ with normalize: false). */
export function weighted(rewards: Reward[], mu: number[], opts: WeightedOptions = {}): Reward {
  if (!Array.isArray(rewards) || rewards.length === 0) throw new SoupError('ERR_SOUP_INVALID_ARG', 'weighted: expected a non-empty array of rewards');
  if (!Array.isArray(mu) || mu.length !== rewards.length) {
    throw new SoupError('ERR_SOUP_INVALID_ARG', `weighted: ${rewards.length} rewards but ${Array.isArray(mu) ? mu.length : 'no'} weights`);
  }
  mu.forEach((w, i) => {
    if (typeof w !== 'number' || !Number.isFinite(w))
      throw new SoupError('ERR_SOUP_INVALID_ARG', `weighted: weight ${i} is not a finite number (${String(w)})`);
  });
  const normalize = opts.normalize ?? true;
  const sum = mu.reduce((a, b) => a + b, 0);
  if (normalize && sum === 0) throw new SoupError('ERR_SOUP_INVALID_ARG', 'weighted: the weights sum to 0, cannot divide by Σμ (pass normalize: false)');
  return new WeightedReward(rewards, mu.slice(), normalize, opts.name);
}

/** Clips scores into [lo, hi]. */
export function clip(reward: Reward, lo: number, hi: number, name?: string): Reward {
  if (!(lo <= hi)) throw new SoupError('ERR_SOUP_INVALID_ARG', `clip: expected lo <= hi, got [${lo}, ${hi}]`);
  return {
    name: name ?? `clip(${reward.name})`,
    async score(batch, opts) {
      const s = await reward.score(batch, opts);
      const out = new Float64Array(s.length);
      for (let i = 0; i < s.length; i++) out[i] = Math.min(hi, Math.max(lo, s[i]));
      return out;
    },
  };
}

export interface RunningNormOptions {
  name?: string;
  eps?: number;
  /** Keep the mean (only divide by the std). */
  center?: boolean;
  /** Freeze the statistics (evaluation): normalise with what was seen so far. */
  frozen?: boolean;
}

/**
 * Running normalisation (r − mean) / (std + eps), statistics updated with each batch before it is
 * normalised (Chan et al. parallel Welford; population variance).
 */
export class RunningNorm implements Reward {
  readonly name: string;
  count = 0;
  mean = 0;
  m2 = 0;
  frozen: boolean;
  constructor(
    readonly inner: Reward,
    private readonly opts: RunningNormOptions = {},
  ) {
    this.name = opts.name ?? `norm(${inner.name})`;
    this.frozen = opts.frozen ?? false;
  }
  get std(): number {
    return this.count > 0 ? Math.sqrt(this.m2 / this.count) : 1;
  }
  async score(batch: Sample[], opts: ScoreOptions = {}): Promise<Float64Array> {
    const s = await this.inner.score(batch, opts);
    if (!this.frozen && s.length > 0) {
      let bm = 0;
      for (const v of s) bm += v;
      bm /= s.length;
      let bm2 = 0;
      for (const v of s) bm2 += (v - bm) * (v - bm);
      const n = this.count + s.length;
      const delta = bm - this.mean;
      this.mean += (delta * s.length) / n;
      this.m2 += bm2 + (delta * delta * this.count * s.length) / n;
      this.count = n;
    }
    const eps = this.opts.eps ?? 1e-8;
    const center = this.opts.center ?? true;
    const sd = this.std;
    const out = new Float64Array(s.length);
    for (let i = 0; i < s.length; i++) out[i] = (center ? s[i] - this.mean : s[i]) / (sd + eps);
    checkFinite(this.name, out);
    return out;
  }
}

export function runningNorm(reward: Reward, opts: RunningNormOptions = {}): RunningNorm {
  return new RunningNorm(reward, opts);
}

export interface CustomOptions extends BatchingOptions {
  /** fn takes the whole batch and returns one score per sample (default: fn takes one sample). */
  batched?: boolean;
}

class CustomBatched extends BatchedReward {
  constructor(
    name: string,
    private readonly fn: (batch: Sample[], opts: ScoreOptions) => ArrayLike<number> | Promise<ArrayLike<number>>,
    opts: BatchingOptions,
  ) {
    super(name, opts);
  }
  protected async scoreBatch(batch: Sample[], _offsets: number[], opts: ScoreOptions): Promise<ArrayLike<number>> {
    throwIfAborted(opts.signal, this.name);
    return this.fn(batch, opts);
  }
}

/** A user reward: custom('len', (s) => s.response.length) or custom('rm', async (batch) => [...], { batched: true }). */
export function custom(
  name: string,
  fn: ((s: Sample, index: number) => number) | ((batch: Sample[], opts: ScoreOptions) => ArrayLike<number> | Promise<ArrayLike<number>>),
  opts: CustomOptions = {},
): Reward {
  if (typeof name !== 'string' || name === '') throw new SoupError('ERR_SOUP_INVALID_ARG', 'custom: expected a non-empty name');
  if (typeof fn !== 'function') throw new SoupError('ERR_SOUP_INVALID_ARG', `custom('${name}'): expected a function`);
  if (opts.batched) return new CustomBatched(name, fn as (b: Sample[], o: ScoreOptions) => ArrayLike<number>, opts);
  return new FnReward(name, fn as (s: Sample, i: number) => number, opts);
}

/** Scores one batch with several rewards at once: { [reward.name]: scores } (names must be unique). */
export async function scoreAll(rewards: Reward[], batch: Sample[], opts: ScoreOptions = {}): Promise<Record<string, Float64Array>> {
  const names = new Set<string>();
  for (const r of rewards) {
    if (names.has(r.name)) throw new SoupError('ERR_SOUP_INVALID_ARG', `scoreAll: two rewards are named '${r.name}'`);
    names.add(r.name);
  }
  const parts = await Promise.all(rewards.map((r) => r.score(batch, opts)));
  return Object.fromEntries(rewards.map((r, i) => [r.name, parts[i]]));
}
