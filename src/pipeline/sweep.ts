// SPDX-License-Identifier: MIT
// The sweep: every soup θ(λ) = Σ λᵢ θᵢ is built in memory (the LoRA A and B tensors interpolated
// separately, as the paper's WeightAverager does; no checkpoint written) into reused buffers, loaded
// into one model, and evaluated like the experts, the MORL runs and the initialisation: generation on the
// held-out prompts (stopping at EOS, as the paper's inference code) with one seed shared by every model,
// then every reward per prompt (kept for paired statistics), then each model's distance from the
// initialisation (KL on sampled responses) and fluency (distinct-n, the base model's NLL).
import { prepareInterpolation } from '../soup/index.js';
import { loadModelDir, readPeftAdapter, type TensorMap } from '../io/index.js';
import { join } from 'node:path';
import type { Reward } from '../rewards/index.js';
import { SoupError } from '../errors.js';
import { meanStderr } from '../pareto/index.js';
import { CausalLM, llamaConfigFromHF, loadTokenizer, normalizeLora, peftAdapterConfig, tokenLogProb, type LoraOptions } from '../train/index.js';

export interface Fluency {
  /** KL(π ‖ π_init) per response: mean over prompts of Σₜ log π(yₜ) − log π_init(yₜ) on sampled responses. */
  klPerResponse: number;
  klPerResponseStderr: number;
  /** The same sum divided by the number of response tokens. */
  klPerToken: number;
  /** Mean response length in tokens (EOS included when generated). */
  meanLength: number;
  /** Distinct n-grams of words over every response / all n-grams (Li et al. 2016). */
  distinct1: number;
  distinct2: number;
  /** The base model's mean negative log-likelihood per token of this model's evaluation responses. */
  baseNllPerToken: number;
}

export interface EvalEntry {
  /** 'ensemble': the paper's prediction-ensembling baseline (Fig. 4c): the experts' next-token
   *  distributions averaged with weights λ at every decoding step (N forward passes per token). */
  kind: 'init' | 'expert' | 'soup' | 'morl' | 'ensemble';
  name: string;
  /** λ (soups; experts are λ = eᵢ). */
  lambda?: number[];
  /** μ (MORL runs; experts are μ = eᵢ). */
  mu?: number[];
  /** Mean of each reward over the evaluation prompts (experiment reward order). */
  rewards: number[];
  /** Standard error of each mean. */
  stderr: number[];
  /** Each reward on each evaluation prompt, [reward][prompt]: every model sees the same prompts (and
   *  sampling seed), so differences between models get paired standard errors. */
  perPrompt?: number[][];
  fluency?: Fluency;
  /** A few generations, for the report. */
  samples: Array<{ prompt: string; response: string }>;
}

export interface EvalGen {
  maxNewTokens: number;
  /** Sampling (default) or greedy decoding of the evaluation responses. */
  doSample: boolean;
  seed: number;
  /** Stop each response at EOS (default true, as the paper's inference code); false: fixed length. */
  stopAtEos?: boolean;
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
  gen: EvalGen;
  experts: Array<{ name: string; tensors: TensorMap }>;
  morl: Array<{ name: string; mu: number[]; tensors: TensorMap }>;
  lambdas: number[][];
  /** 'lora' (default, the paper's): A and B interpolated separately; 'dense': ΔW = s Σ λᵢ BᵢAᵢ exactly,
   *  as a rank-N·r adapter [A₁; …; A_N], [λ₁B₁, …, λ_N B_N] (peft's "cat"). */
  interpolation?: 'lora' | 'dense';
  /** Also evaluate the prediction ensemble of the experts at every λ on the simplex. */
  ensemble?: boolean;
  signal?: AbortSignal;
  onProgress?: (done: number, total: number, e: EvalEntry) => void;
}

/** distinct-n over responses: unique word n-grams / n-grams, pooled over every response. */
export function distinctN(texts: string[], n: number): number {
  const seen = new Set<string>();
  let total = 0;
  for (const t of texts) {
    const w = t.toLowerCase().split(/\s+/).filter(Boolean);
    for (let i = 0; i + n <= w.length; i++) {
      seen.add(w.slice(i, i + n).join(' '));
      total++;
    }
  }
  return total ? seen.size / total : 0;
}

/** Σₜ log p(yₜ | prompt, y<t) of each response under the model as it is now (one batched forward). */
export async function responseLogProbs(model: CausalLM, prompts: number[][], responses: number[][]): Promise<Float64Array> {
  const seqs = prompts.map((p, i) => [...p, ...responses[i]]);
  const T = Math.max(...seqs.map((x) => x.length));
  const V = model.config.vocabSize;
  const lg = await model.logits(seqs);
  const out = new Float64Array(seqs.length);
  for (let b = 0; b < seqs.length; b++) {
    const pad = T - seqs[b].length; // left-padded: token j of row b sits at column pad + j
    let sum = 0;
    for (let j = prompts[b].length; j < seqs[b].length; j++) {
      // the logits at column c predict the token at c + 1
      sum += tokenLogProb(lg, (b * T + pad + j - 1) * V, V, seqs[b][j]);
    }
    out[b] = sum;
  }
  return out;
}

/** What one evaluation keeps for the distance measures computed once every model is evaluated. */
interface Pending {
  /** Sampled responses (the evaluation's own when it samples) and their log-probs under the model. */
  sampled: number[][];
  logp: Float64Array;
  /** The evaluation responses (for the base model's NLL). */
  responses: number[][];
  texts: string[];
}

export async function evaluateModel(
  model: CausalLM,
  prompts: number[][],
  rewards: Reward[],
  gen: EvalGen,
  signal?: AbortSignal,
): Promise<Pick<EvalEntry, 'rewards' | 'stderr' | 'samples' | 'perPrompt'> & { pending: Pending }> {
  const tok = model.requireTokenizer();
  const eos = gen.stopAtEos === false ? -1 : (model.config.eosTokenId ?? -1);
  const opts = { maxNewTokens: gen.maxNewTokens, seed: gen.seed, eosTokenId: eos, topK: 0, topP: 1, temperature: 1 };
  const out = await model.generate(prompts, { ...opts, doSample: gen.doSample });
  // KL is estimated on samples of the policy, whatever the evaluation's decoding
  const sampled = gen.doSample ? out : await model.generate(prompts, { ...opts, doSample: true });
  const logp = await responseLogProbs(model, prompts, sampled);
  const texts = await tok.decodeBatch(out, true);
  const ptexts = await tok.decodeBatch(prompts, true);
  const samples = texts.map((response, i) => ({ prompt: ptexts[i], response }));
  return { ...(await scoreSamples(rewards, samples, signal)), samples: samples.slice(0, 4), pending: { sampled, logp, responses: out, texts } };
}

/** Every reward on every sample: means, standard errors and the per-prompt scores. */
async function scoreSamples(
  rewards: Reward[],
  samples: Array<{ prompt: string; response: string }>,
  signal?: AbortSignal,
): Promise<Pick<EvalEntry, 'rewards' | 'stderr' | 'perPrompt'>> {
  const out = { rewards: [] as number[], stderr: [] as number[], perPrompt: [] as number[][] };
  for (const r of rewards) {
    const scores = await r.score(samples, { signal });
    const [m, e] = meanStderr(scores);
    out.rewards.push(m);
    out.stderr.push(e);
    out.perPrompt.push(Array.from(scores));
  }
  return out;
}

/** KL to the initialisation, fluency and the base model's NLL of every entry, from what the evaluations
 *  kept: the init adapter's and the base model's log-probs of each entry's responses. `initIsBase`: the
 *  initialisation is a fresh adapter (B = 0), the base model itself, so one pass serves both (when the
 *  evaluation samples, its responses are the KL's samples: the two log-probs are the same numbers). */
async function distances(model: CausalLM, prompts: number[][], initAdapter: TensorMap | undefined, pend: Pending[], initIsBase: boolean): Promise<Fluency[]> {
  const initLogp: Float64Array[] = [];
  const baseLogp: Float64Array[] = [];
  if (!initIsBase) {
    if (initAdapter) await model.setTensors('lora', initAdapter);
    for (const p of pend) initLogp.push(await responseLogProbs(model, prompts, p.sampled));
  }
  if (model.lora) await model.disableAdapter();
  try {
    for (const p of pend) {
      const base = await responseLogProbs(model, prompts, p.responses);
      baseLogp.push(base);
      if (initIsBase) initLogp.push(p.sampled === p.responses ? base : await responseLogProbs(model, prompts, p.sampled));
    }
  } finally {
    if (model.lora) await model.enableAdapter();
  }
  return pend.map((p, k) => {
    const kl = p.logp.map((v, i) => v - initLogp[k][i]);
    const [klMean, klSe] = meanStderr(kl);
    const sampledTokens = p.sampled.reduce((a, r) => a + r.length, 0);
    const evalTokens = p.responses.reduce((a, r) => a + r.length, 0);
    return {
      klPerResponse: klMean,
      klPerResponseStderr: klSe,
      klPerToken: (klMean * p.sampled.length) / Math.max(1, sampledTokens),
      meanLength: evalTokens / p.responses.length,
      distinct1: distinctN(p.texts, 1),
      distinct2: distinctN(p.texts, 2),
      baseNllPerToken: -baseLogp[k].reduce((a, v) => a + v, 0) / Math.max(1, evalTokens),
    };
  });
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
  const model = await CausalLM.fromPretrained(s.model, {
    dtype: s.dtype === 'float16' ? 'float32' : s.dtype,
    lora,
    seed: s.seed,
    ...(s.threads ? { threads: s.threads } : {}),
  });
  const ensembleLambdas = s.ensemble ? s.lambdas.filter((l) => l.every((v) => v >= 0 && v <= 1)) : [];
  const total = 1 + N + s.morl.length + s.lambdas.length + ensembleLambdas.length;
  const entries: EvalEntry[] = [];
  const push = (e: EvalEntry) => {
    entries.push(e);
    s.onProgress?.(entries.length, total, e);
  };
  const pending: Pending[] = [];
  const measured: EvalEntry[] = []; // the entries `pending` belongs to, in order
  const evaluate = async (e: Omit<EvalEntry, 'rewards' | 'stderr' | 'samples'>) => {
    const { pending: p, ...res } = await evaluateModel(model, s.prompts, s.rewards, s.gen, s.signal);
    pending.push(p);
    push({ ...e, ...res });
    measured.push(entries[entries.length - 1]);
  };
  try {
    // A fresh adapter (B = 0) or the starting adapter: the shared initialisation every run began from.
    const initAdapter = model.lora ? await model.getTensors('lora') : undefined;
    await evaluate({ kind: 'init', name: 'init' });
    const ex = s.experts.map((e) => e.tensors);
    for (const [i, e] of s.experts.entries()) {
      await model.setTensors('lora', load(ex, unit(N, i)));
      await evaluate({ kind: 'expert', name: e.name, lambda: unit(N, i), mu: unit(N, i) });
    }
    for (const m of s.morl) {
      await model.setTensors(
        'lora',
        dense
          ? catLora(
              ex.map(() => m.tensors),
              unit(N, 0),
            )
          : m.tensors,
      );
      await evaluate({ kind: 'morl', name: m.name, mu: m.mu });
    }
    let buf: TensorMap | undefined;
    const soup = dense ? undefined : prepareInterpolation(ex); // checked once, one output buffer for every λ
    for (const lam of s.lambdas) {
      buf = soup ? await soup.run(lam, { allowExtrapolation: lam.some((v) => v < 0 || v > 1), normalize: false }) : catLora(ex, lam, buf);
      await model.setTensors('lora', buf);
      await evaluate({ kind: 'soup', name: `soup λ=[${lam.map((v) => +v.toFixed(3)).join(', ')}]`, lambda: lam });
    }
    const fl = await distances(model, s.prompts, initAdapter, pending, !s.adapter);
    measured.forEach((e, k) => (e.fluency = fl[k]));
  } finally {
    await model.dispose();
  }
  if (ensembleLambdas.length) {
    const lora = typeof s.adapter === 'string' ? (await readPeftAdapter(s.adapter)).config : peftAdapterConfig(normalizeLora(s.lora));
    for await (const e of evaluateEnsembles(s, lora, ensembleLambdas)) push(e);
  }
  return entries;
}

/** The prediction ensembles of the experts at each λ, decoded by the batched serving step (its
 *  'ensemble' mode: log Σ λᵢ softmax(logitsᵢ) per token), scored like every other model. Sampling
 *  draws its own per-prompt seeds (gen.seed + prompt index), so these entries share prompts, not noise,
 *  with the others. No distance measures: the ensemble is not one set of weights. */
async function* evaluateEnsembles(s: SweepInput, loraConfig: Record<string, unknown>, lambdas: number[][]): AsyncGenerator<EvalEntry> {
  // the serving engine sits beside the pipeline (src/serve): loaded only when asked for
  const { SoupEngine, adapterModules } = await import('../serve/engine.js');
  const { config: raw, tensors } = await loadModelDir(s.model);
  const config = llamaConfigFromHF(raw, s.model);
  const engine = await SoupEngine.create(
    config,
    tensors,
    s.experts.map((e) => adapterModules(e.name, loraConfig, e.tensors)),
    {
      dtype: s.dtype === 'float16' ? 'float32' : s.dtype,
      ...(s.threads ? { threads: s.threads } : {}),
    },
  );
  const tokenizer = loadTokenizer(join(s.model, 'tokenizer.json'));
  const eos = s.gen.stopAtEos === false ? -1 : (config.eosTokenId ?? -1);
  try {
    for (const lam of lambdas) {
      if (s.signal?.aborted) throw new SoupError('ERR_SOUP_ABORTED', 'the sweep was cancelled');
      const out: number[][] = s.prompts.map(() => []);
      const active = new Set(s.prompts.map((_, i) => i));
      const take = async (r: { ids: Int32Array; tokens: Int32Array }) => {
        const done: number[] = [];
        r.ids.forEach((id, k) => {
          const t = r.tokens[k];
          if (t >= 0) out[id].push(t);
          if (t < 0 || t === eos || out[id].length >= s.gen.maxNewTokens) done.push(id);
        });
        for (const id of done) active.delete(id);
        if (done.length) await engine.remove(done);
      };
      await take(
        await engine.add(
          s.prompts.map((tokens, i) => ({
            id: i,
            tokens,
            lambda: lam,
            mode: 'ensemble' as const,
            temperature: s.gen.doSample ? 1 : 0,
            topP: 1,
            topK: 0,
            seed: s.gen.seed + i,
            maxTokens: s.gen.maxNewTokens,
          })),
        ),
      );
      while (active.size) await take(await engine.step());
      const texts = await tokenizer.decodeBatch(out, true);
      const ptexts = await tokenizer.decodeBatch(s.prompts, true);
      const samples = texts.map((response, i) => ({ prompt: ptexts[i], response }));
      yield {
        kind: 'ensemble',
        name: `ensemble λ=[${lam.map((v) => +v.toFixed(3)).join(', ')}]`,
        lambda: lam,
        ...(await scoreSamples(s.rewards, samples, s.signal)),
        samples: samples.slice(0, 4),
      };
    }
  } finally {
    await engine.dispose();
  }
}
