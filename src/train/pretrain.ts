// SPDX-License-Identifier: MIT
// Pre-training from scratch and evaluation helpers for small models (the demo's miniature: a tiny LLaMA on
// Debian fortunes, docs/experiment.md): AdamW on the next-token loss over random windows of a token stream with
// a warmup + cosine schedule; and generate-then-score evaluation of a model (e.g. a soup loaded with
// setTensors('lora', ...)) on fixed prompts with a fixed seed.
import { SoupError } from '../errors.js';
import type { CausalLM, GenerateOptions } from './llama.js';
import { mulberry32 } from './llama.js';
import type { RewardLike, TrainSample } from './ppo.js';

export interface PretrainOptions {
  /** The corpus as one token stream (documents joined with EOS). */
  tokens: Int32Array;
  seqLen: number;
  batchSize: number;
  steps: number;
  lr?: number;
  minLr?: number;
  warmupSteps?: number;
  beta1?: number;
  beta2?: number;
  weightDecay?: number;
  maxGradNorm?: number;
  seed?: number;
  signal?: AbortSignal;
}

export interface PretrainStats {
  step: number;
  loss: number;
  lr: number;
  gradNorm: number;
  tokensPerSecond: number;
}

/** Learning rate of step s (0-based): linear warmup, then cosine from lr to minLr. */
export function cosineLr(s: number, steps: number, lr: number, minLr: number, warmup: number): number {
  if (s < warmup) return (lr * (s + 1)) / warmup;
  const p = Math.min(1, (s - warmup) / Math.max(1, steps - warmup));
  return minLr + 0.5 * (lr - minLr) * (1 + Math.cos(Math.PI * p));
}

/** AdamW on every base weight (MINIATURES defaults: lr 3e-3, betas 0.9/0.95, wd 0.1, cosine). */
export async function* pretrain(model: CausalLM, o: PretrainOptions): AsyncGenerator<PretrainStats, void, void> {
  const T = o.seqLen,
    B = o.batchSize;
  if (!(T >= 2) || !(B >= 1) || !Number.isInteger(T) || !Number.isInteger(B))
    throw new SoupError('ERR_SOUP_INVALID_ARG', 'pretrain: seqLen >= 2 and batchSize >= 1 must be integers');
  if (o.tokens.length < T + 1)
    throw new SoupError('ERR_SOUP_INVALID_ARG', `pretrain: the token stream (${o.tokens.length} tokens) is shorter than one window (${T})`);
  const V = model.config.vocabSize;
  for (let i = 0; i < o.tokens.length; i++) {
    if (o.tokens[i] < 0 || o.tokens[i] >= V)
      throw new SoupError('ERR_SOUP_INVALID_ARG', `pretrain: token ${o.tokens[i]} at ${i} is outside the vocabulary [0, ${V})`);
  }
  const lr = o.lr ?? 3e-3,
    minLr = o.minLr ?? lr / 10,
    warm = o.warmupSteps ?? Math.min(100, Math.floor(o.steps / 10));
  const rnd = mulberry32(o.seed ?? 0);
  const batch = new Int32Array(B * T);
  for (let s = 0; s < o.steps; s++) {
    if (o.signal?.aborted) throw new SoupError('ERR_SOUP_ABORTED', `pre-training aborted at step ${s}`, { cause: o.signal.reason });
    for (let b = 0; b < B; b++) {
      const start = Math.floor(rnd() * (o.tokens.length - T + 1));
      batch.set(o.tokens.subarray(start, start + T), b * T);
    }
    const cur = cosineLr(s, o.steps, lr, minLr, warm);
    const t0 = performance.now();
    const r = await model.trainStep(batch, B, T, {
      lr: cur,
      beta1: o.beta1 ?? 0.9,
      beta2: o.beta2 ?? 0.95,
      weightDecay: o.weightDecay ?? 0.1,
      maxGradNorm: o.maxGradNorm ?? 1,
      params: 'all',
    });
    yield { step: s + 1, loss: r.loss, lr: cur, gradNorm: r.gradNorm, tokensPerSecond: (B * T) / ((performance.now() - t0) / 1000) };
  }
}

export interface EvaluateOptions extends GenerateOptions {
  /** Prompts per generate call (default 64). */
  batchSize?: number;
}

/** Generates one response per prompt (seeded, so every model sees the same draws) and scores them:
 *  the mean of each reward, plus the samples and per-sample scores. */
export async function evaluate(
  model: CausalLM,
  prompts: number[][] | string[],
  rewards: RewardLike[],
  o: EvaluateOptions,
): Promise<{ means: Record<string, number>; scores: Record<string, Float64Array>; samples: TrainSample[] }> {
  const tok = model.tokenizer;
  const ids: number[][] =
    typeof prompts[0] === 'string'
      ? await Promise.all((prompts as string[]).map(async (p) => (await model.requireTokenizer().encode(p)).getIds()))
      : (prompts as number[][]);
  const bs = o.batchSize ?? 64;
  const samples: TrainSample[] = [];
  for (let i = 0; i < ids.length; i += bs) {
    const chunk = ids.slice(i, i + bs);
    const out = await model.generate(chunk, { ...o, seed: (o.seed ?? 0) + i });
    for (let b = 0; b < chunk.length; b++) {
      samples.push({
        prompt: tok ? await tok.decode(chunk[b], true) : chunk[b].join(' '),
        response: tok ? await tok.decode(out[b], true) : out[b].join(' '),
        meta: { promptTokens: chunk[b], responseTokens: out[b], index: i + b },
      });
    }
  }
  const means: Record<string, number> = {},
    scores: Record<string, Float64Array> = {};
  for (const r of rewards) {
    const s = await r.score(samples);
    if (s.length !== samples.length) throw new SoupError('ERR_SOUP_REWARD', `reward '${r.name}' returned ${s.length} scores for ${samples.length} samples`);
    scores[r.name] = s;
    means[r.name] = s.reduce((a, b) => a + b, 0) / s.length;
  }
  return { means, scores, samples };
}
