// SPDX-License-Identifier: MIT
// The sweep: every soup θ(λ) = Σ λᵢ θᵢ is built in memory (the LoRA A and B tensors interpolated
// separately, as the paper's WeightAverager does; no checkpoint written) into reused buffers, loaded
// into one model, and evaluated like the experts, the MORL runs and the initialisation: fixed-length
// generation on the held-out prompts with one seed shared by every model, then every reward.
import { interpolate, type InterpolateOptions } from '../soup/index.js';
import type { TensorMap } from '../io/index.js';
import type { Reward } from '../rewards/index.js';
import { CausalLM, type LoraOptions } from '../train/index.js';

export interface EvalEntry {
  kind: 'init' | 'expert' | 'soup' | 'morl';
  name: string;
  /** λ (soups; experts are λ = eᵢ). */
  lambda?: number[];
  /** μ (MORL runs; experts are μ = eᵢ). */
  mu?: number[];
  /** Mean of each reward over the evaluation prompts (experiment reward order). */
  rewards: number[];
  /** Standard error of each mean. */
  stderr: number[];
  /** A few generations, for the report. */
  samples: Array<{ prompt: string; response: string }>;
}

export interface SweepInput {
  model: string;
  adapter?: string;
  lora: LoraOptions;
  dtype: 'float32' | 'bfloat16' | 'float16';
  threads?: number;
  seed: number;
  prompts: number[][];
  rewards: Reward[];
  gen: { maxNewTokens: number; doSample: boolean; seed: number };
  experts: Array<{ name: string; tensors: TensorMap }>;
  morl: Array<{ name: string; mu: number[]; tensors: TensorMap }>;
  lambdas: number[][];
  signal?: AbortSignal;
  onProgress?: (done: number, total: number, e: EvalEntry) => void;
}

function meanStderr(x: Float64Array): [number, number] {
  const n = x.length;
  let m = 0;
  for (const v of x) m += v;
  m /= n;
  let s = 0;
  for (const v of x) s += (v - m) * (v - m);
  return [m, n > 1 ? Math.sqrt(s / (n - 1) / n) : 0];
}

export async function evaluateModel(model: CausalLM, prompts: number[][], rewards: Reward[], gen: SweepInput['gen'], signal?: AbortSignal): Promise<Pick<EvalEntry, 'rewards' | 'stderr' | 'samples'>> {
  const tok = model.requireTokenizer();
  const out = await model.generate(prompts, { maxNewTokens: gen.maxNewTokens, doSample: gen.doSample, seed: gen.seed, eosTokenId: -1, topK: 0, topP: 1, temperature: 1 });
  const texts = await tok.decodeBatch(out, true);
  const ptexts = await tok.decodeBatch(prompts, true);
  const samples = texts.map((response, i) => ({ prompt: ptexts[i], response }));
  const means: number[] = [];
  const errs: number[] = [];
  for (const r of rewards) {
    const [m, e] = meanStderr(await r.score(samples, { signal }));
    means.push(m);
    errs.push(e);
  }
  return { rewards: means, stderr: errs, samples: samples.slice(0, 4) };
}

const unit = (n: number, i: number) => Array.from({ length: n }, (_, k) => (k === i ? 1 : 0));

/** Evaluates init, experts, MORL runs and every soup; returns entries in that order. */
export async function runSweep(s: SweepInput): Promise<EvalEntry[]> {
  const N = s.experts.length;
  const model = await CausalLM.fromPretrained(s.model, { dtype: s.dtype === 'float16' ? 'float32' : s.dtype, lora: s.adapter ?? s.lora, seed: s.seed, ...(s.threads ? { threads: s.threads } : {}) });
  const total = 1 + N + s.morl.length + s.lambdas.length;
  const entries: EvalEntry[] = [];
  const push = (e: EvalEntry) => {
    entries.push(e);
    s.onProgress?.(entries.length, total, e);
  };
  try {
    // A fresh adapter (B = 0) or the starting adapter: the shared initialisation every run began from.
    push({ kind: 'init', name: 'init', ...(await evaluateModel(model, s.prompts, s.rewards, s.gen, s.signal)) });
    for (const [i, e] of s.experts.entries()) {
      await model.setTensors('lora', e.tensors);
      push({ kind: 'expert', name: e.name, lambda: unit(N, i), mu: unit(N, i), ...(await evaluateModel(model, s.prompts, s.rewards, s.gen, s.signal)) });
    }
    for (const m of s.morl) {
      await model.setTensors('lora', m.tensors);
      push({ kind: 'morl', name: m.name, mu: m.mu, ...(await evaluateModel(model, s.prompts, s.rewards, s.gen, s.signal)) });
    }
    let buf: TensorMap | undefined;
    for (const lam of s.lambdas) {
      const opts: InterpolateOptions = { allowExtrapolation: lam.some((v) => v < 0 || v > 1), normalize: false, ...(buf ? { out: buf } : {}) };
      buf = await interpolate(s.experts.map((e) => e.tensors), lam, opts);
      await model.setTensors('lora', buf);
      const name = `soup λ=[${lam.map((v) => +v.toFixed(3)).join(', ')}]`;
      push({ kind: 'soup', name, lambda: lam, ...(await evaluateModel(model, s.prompts, s.rewards, s.gen, s.signal)) });
    }
  } finally {
    await model.dispose();
  }
  return entries;
}
