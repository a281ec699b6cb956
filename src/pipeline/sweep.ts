// SPDX-License-Identifier: MIT
// The sweep: every soup θ(λ) = Σ λᵢ θᵢ is built in memory (the LoRA A and B tensors interpolated
// separately, as the paper's WeightAverager does; no checkpoint written) into reused buffers, loaded
// into one model, and evaluated like the experts, the MORL runs and the initialisation: fixed-length
// generation on the held-out prompts with one seed shared by every model, then every reward.
import { prepareInterpolation } from '../soup/index.js';
import type { TensorMap } from '../io/index.js';
import type { Reward } from '../rewards/index.js';
import { SoupError } from '../errors.js';
import { CausalLM, normalizeLora, type LoraOptions } from '../train/index.js';

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
  /** 'lora' (default, the paper's): A and B interpolated separately; 'dense': ΔW = s Σ λᵢ BᵢAᵢ exactly,
   *  as a rank-N·r adapter [A₁; …; A_N], [λ₁B₁, …, λ_N B_N] (peft's "cat"). */
  interpolation?: 'lora' | 'dense';
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

/**
 * The rank-concatenated adapter of `sources` (same keys and ranks): A_cat = [A₁; …; A_N] (rows),
 * B_cat = [w₁B₁, …, w_N B_N] (columns), so B_cat·A_cat = Σ wᵢ BᵢAᵢ. Written into `out` when given.
 */
export function catLora(sources: TensorMap[], weights: number[], out?: TensorMap): TensorMap {
  const res: TensorMap = out ?? {};
  for (const key of Object.keys(sources[0])) {
    const N = sources.length;
    const t0 = sources[0][key];
    if (key.includes('lora_A')) {
      const [r, inDim] = t0.shape;
      const o = res[key] ?? { dtype: 'float32', shape: [N * r, inDim], data: new Float32Array(N * r * inDim) };
      sources.forEach((s, i) => (o.data as Float32Array).set(s[key].data as Float32Array, i * r * inDim));
      res[key] = o;
    } else if (key.includes('lora_B')) {
      const [outDim, r] = t0.shape;
      const o = res[key] ?? { dtype: 'float32', shape: [outDim, N * r], data: new Float32Array(outDim * N * r) };
      const d = o.data as Float32Array;
      sources.forEach((s, i) => {
        const b = s[key].data as Float32Array;
        for (let row = 0; row < outDim; row++) for (let k = 0; k < r; k++) d[row * N * r + i * r + k] = weights[i] * b[row * r + k];
      });
      res[key] = o;
    } else {
      throw new SoupError('ERR_SOUP_FORMAT', `dense interpolation: '${key}' is not a LoRA A or B tensor`);
    }
  }
  return res;
}

/** Evaluates init, experts, MORL runs and every soup; returns entries in that order. */
export async function runSweep(s: SweepInput): Promise<EvalEntry[]> {
  const N = s.experts.length;
  const dense = s.interpolation === 'dense';
  let lora: LoraOptions | string = s.adapter ?? s.lora;
  if (dense) {
    if (s.adapter) throw new SoupError('ERR_SOUP_CONFIG', 'sweep.interpolation dense: not available with a starting adapter (base.adapter)');
    // rank N·r with the same scaling s = alpha / r (or alpha / √r for rsLoRA)
    const l = normalizeLora(s.lora);
    lora = { ...l, r: N * l.r, lora_alpha: l.use_rslora ? l.lora_alpha * Math.sqrt(N) : l.lora_alpha * N };
  }
  const load = (list: TensorMap[], w: number[], out?: TensorMap) => (dense ? catLora(list, w, out) : list[w.indexOf(1)]);
  const model = await CausalLM.fromPretrained(s.model, { dtype: s.dtype === 'float16' ? 'float32' : s.dtype, lora, seed: s.seed, ...(s.threads ? { threads: s.threads } : {}) });
  const total = 1 + N + s.morl.length + s.lambdas.length;
  const entries: EvalEntry[] = [];
  const push = (e: EvalEntry) => {
    entries.push(e);
    s.onProgress?.(entries.length, total, e);
  };
  try {
    // A fresh adapter (B = 0) or the starting adapter: the shared initialisation every run began from.
    push({ kind: 'init', name: 'init', ...(await evaluateModel(model, s.prompts, s.rewards, s.gen, s.signal)) });
    const ex = s.experts.map((e) => e.tensors);
    for (const [i, e] of s.experts.entries()) {
      await model.setTensors('lora', load(ex, unit(N, i)));
      push({ kind: 'expert', name: e.name, lambda: unit(N, i), mu: unit(N, i), ...(await evaluateModel(model, s.prompts, s.rewards, s.gen, s.signal)) });
    }
    for (const m of s.morl) {
      await model.setTensors('lora', dense ? catLora(ex.map(() => m.tensors), unit(N, 0)) : m.tensors);
      push({ kind: 'morl', name: m.name, mu: m.mu, ...(await evaluateModel(model, s.prompts, s.rewards, s.gen, s.signal)) });
    }
    let buf: TensorMap | undefined;
    const soup = dense ? undefined : prepareInterpolation(ex); // checked once, one output buffer for every λ
    for (const lam of s.lambdas) {
      buf = soup ? await soup.run(lam, { allowExtrapolation: lam.some((v) => v < 0 || v > 1), normalize: false }) : catLora(ex, lam, buf);
      await model.setTensors('lora', buf);
      const name = `soup λ=[${lam.map((v) => +v.toFixed(3)).join(', ')}]`;
      push({ kind: 'soup', name, lambda: lam, ...(await evaluateModel(model, s.prompts, s.rewards, s.gen, s.signal)) });
    }
  } finally {
    await model.dispose();
  }
  return entries;
}
