// SPDX-License-Identifier: MIT
// PPOTrainer: trl 0.4.x PPO (docs/training.md, "Semantics") over a CausalLM with a LoRA adapter and a value head.
// One step: the model's native thread generates (rollout: samples, log-probs, values, reference
// log-probs), the samples come back to JS to be scored by the rewards, then the native thread runs the
// PPO epochs. Every random draw of step s is seeded from (seed, s), so a resumed run replays exactly.
import { readFile, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';
import { SoupError } from '../errors.js';
import { parseStrict } from '../util/config.js';
import { atomicWriteDir, readSafetensors, writePeftAdapter, writeSafetensors } from '../io/index.js';
import { callNative, callNativeSync } from './native.js';
import { CausalLM, leftPad, mulberry32, peftAdapterConfig } from './llama.js';

// ---- config: trl's field names -------------------------------------------------------------------
export const GenerationConfigSchema = z
  .object({
    /** The paper's fixed-length mode: no EOS stop, length uniform in [output_min_length, output_max_length). */
    fixed_length: z.boolean().default(true),
    output_min_length: z.number().int().positive().default(16),
    output_max_length: z.number().int().positive().default(32),
    /** Used when fixed_length is false: stop at EOS or after max_new_tokens. */
    max_new_tokens: z.number().int().positive().default(32),
    min_new_tokens: z.number().int().nonnegative().default(0),
    temperature: z.number().positive().default(1),
    top_k: z.number().int().nonnegative().default(0),
    top_p: z.number().positive().max(1).default(1),
  })
  .strict();

export const PPOConfigSchema = z
  .object({
    learning_rate: z.number().positive().default(1.41e-5),
    batch_size: z.number().int().positive().default(128),
    mini_batch_size: z.number().int().positive().default(4),
    ppo_epochs: z.number().int().positive().default(4),
    init_kl_coef: z.number().nonnegative().default(0.2),
    adap_kl_ctrl: z.boolean().default(true),
    target: z.number().positive().default(6),
    horizon: z.number().positive().default(10000),
    gamma: z.number().min(0).max(1).default(1),
    lam: z.number().min(0).max(1).default(0.95),
    cliprange: z.number().positive().default(0.2),
    cliprange_value: z.number().positive().default(0.2),
    vf_coef: z.number().nonnegative().default(0.1),
    max_grad_norm: z.number().positive().nullable().default(null),
    kl_penalty: z.enum(['kl', 'abs', 'mse', 'k3']).default('kl'),
    /** 'base': the policy with its adapter disabled (trl 0.4.x, what the paper ran); 'adapter': a frozen
     *  copy of the starting adapter (the fix asked for in trl #495/#1340). */
    ref_model: z.enum(['base', 'adapter']).default('base'),
    adam_beta1: z.number().min(0).max(1).default(0.9),
    adam_beta2: z.number().min(0).max(1).default(0.999),
    adam_epsilon: z.number().positive().default(1e-8),
    seed: z.number().int().nonnegative().default(0),
    /** Checkpoint every N steps (0: only at the end). */
    save_every: z.number().int().nonnegative().default(10),
    generation: GenerationConfigSchema.prefault({}),
  })
  .strict();

export type PPOConfig = z.output<typeof PPOConfigSchema>;
export type PPOConfigInput = z.input<typeof PPOConfigSchema>;

export function parsePPOConfig(x: unknown, src = 'ppo config'): PPOConfig {
  const r = { data: parseStrict(PPOConfigSchema, x ?? {}, src) };
  if (r.data.mini_batch_size > r.data.batch_size)
    throw new SoupError('ERR_SOUP_CONFIG', `${src}: mini_batch_size ${r.data.mini_batch_size} > batch_size ${r.data.batch_size}`);
  const g = r.data.generation;
  if (g.fixed_length && g.output_max_length <= g.output_min_length)
    throw new SoupError('ERR_SOUP_CONFIG', `${src}: generation.output_max_length must exceed output_min_length (the range is [min, max))`);
  return r.data;
}

// ---- KL controllers (Ziegler et al. 2019, trl AdaptiveKLController / FixedKLController) ------------
export interface KLController {
  value: number;
  update(currentKl: number, nSteps: number): void;
}

export class AdaptiveKLController implements KLController {
  constructor(
    public value: number,
    readonly target: number,
    readonly horizon: number,
  ) {}
  update(currentKl: number, nSteps: number): void {
    const e = Math.min(Math.max(currentKl / this.target - 1, -0.2), 0.2);
    this.value *= 1 + (e * nSteps) / this.horizon;
  }
}

export class FixedKLController implements KLController {
  constructor(public value: number) {}
  update(): void {}
}

// ---- rewards ----------------------------------------------------------------------------------------
export interface TrainSample {
  prompt: string;
  response: string;
  meta: { promptTokens: number[]; responseTokens: number[]; index: number };
}

/** Any reward: `src/rewards` adapters fit, as does a plain object. */
export interface RewardLike {
  readonly name: string;
  score(batch: TrainSample[], opts?: { signal?: AbortSignal }): Promise<Float64Array>;
}

export interface PPOStats {
  step: number;
  /** Mean combined score (Σ μᵢ Rᵢ / Σ μᵢ). */
  score: number;
  /** Mean per reward. */
  rewards: Record<string, number>;
  kl: number;
  klCoef: number;
  entropy: number;
  clipfrac: number;
  valueClipfrac: number;
  approxKl: number;
  valueError: number;
  loss: number;
  responseLength: number;
  tokensPerSecond: number;
  seconds: { rollout: number; reward: number; update: number; total: number };
  /** trl-named stats from native (ppo/loss/total, objective/kl, ...). */
  raw: Record<string, number>;
}

export interface PPOTrainerOptions {
  rewards: RewardLike[];
  /** MORL weights μ (one per reward); renormalised by their sum. Default: equal. */
  weights?: number[];
  /** Checkpoint dir (a PEFT adapter dir plus value head, optimizer and trainer state). */
  checkpointDir?: string;
}

export interface TrainOptions {
  /** Token ids, or strings when the model has a tokenizer. */
  prompts: number[][] | string[];
  /** Train until this step count (a resumed trainer continues to the same total). */
  steps: number;
  signal?: AbortSignal;
  /** Called with each step's stats before that step's checkpoint is written: a log kept here never
   *  lags its checkpoint, so a run killed between the two resumes with no step missing from the log. */
  record?: (stats: PPOStats) => void | Promise<void>;
}

const STATE_FILE = 'trainer_state.json';

function hash2(a: number, b: number): number {
  let h = Math.imul(a ^ 0x9e3779b9, 0x85ebca6b) ^ Math.imul(b + 0x632be5ab, 0xc2b2ae35);
  h ^= h >>> 16;
  h = Math.imul(h, 0x7feb352d);
  h ^= h >>> 15;
  return h >>> 0;
}

export class PPOTrainer {
  readonly config: PPOConfig;
  readonly kl: KLController;
  readonly rewards: RewardLike[];
  readonly weights: number[];
  step = 0;
  /** The step of the last checkpoint written (or loaded), -1 if none. */
  lastCheckpoint = -1;
  #refReady = false;

  constructor(
    readonly model: CausalLM,
    config: PPOConfigInput,
    readonly opts: PPOTrainerOptions,
  ) {
    this.config = parsePPOConfig(config);
    if (!model.lora) throw new SoupError('ERR_SOUP_CONFIG', 'PPOTrainer needs a model with a LoRA adapter (fromPretrained(dir, { lora }))');
    if (!model.hasValueHead) throw new SoupError('ERR_SOUP_CONFIG', 'PPOTrainer needs a model with a value head (valueHead: true)');
    if (!opts.rewards?.length) throw new SoupError('ERR_SOUP_CONFIG', 'PPOTrainer needs at least one reward');
    const w = opts.weights ?? opts.rewards.map(() => 1);
    if (w.length !== opts.rewards.length) throw new SoupError('ERR_SOUP_CONFIG', `weights has ${w.length} entries for ${opts.rewards.length} rewards`);
    if (w.some((x) => !(x >= 0)) || !(w.reduce((a, b) => a + b, 0) > 0))
      throw new SoupError('ERR_SOUP_CONFIG', 'reward weights must be >= 0 with a positive sum');
    const sum = w.reduce((a, b) => a + b, 0);
    this.weights = w.map((x) => x / sum);
    this.rewards = opts.rewards;
    const c = this.config;
    this.kl = c.adap_kl_ctrl ? new AdaptiveKLController(c.init_kl_coef, c.target, c.horizon) : new FixedKLController(c.init_kl_coef);
  }

  async *train(o: TrainOptions): AsyncGenerator<PPOStats, void, void> {
    const prompts = await this.#tokenize(o.prompts);
    if (prompts.length === 0) throw new SoupError('ERR_SOUP_INVALID_ARG', 'no prompts');
    const c = this.config;
    if (c.ref_model === 'adapter' && !this.#refReady) {
      await this.model.snapshotReference();
      this.#refReady = true;
    }
    while (this.step < o.steps) {
      if (o.signal?.aborted) throw new SoupError('ERR_SOUP_ABORTED', `training aborted at step ${this.step}`, { cause: o.signal.reason });
      let stats: PPOStats;
      try {
        stats = await this.#step(prompts, o.signal);
      } catch (e) {
        if (e instanceof SoupError && e.code === 'ERR_SOUP_TRAIN') {
          const kept =
            this.lastCheckpoint >= 0 && this.opts.checkpointDir
              ? `; the last good checkpoint (step ${this.lastCheckpoint}) is kept in ${this.opts.checkpointDir}`
              : '; no checkpoint was written yet';
          throw new SoupError('ERR_SOUP_TRAIN', `step ${this.step + 1}: ${e.message}${kept}`, { cause: e });
        }
        throw e;
      }
      this.step++;
      await o.record?.(stats);
      const dir = this.opts.checkpointDir;
      if (dir && ((c.save_every > 0 && this.step % c.save_every === 0) || this.step === o.steps)) await this.save(dir);
      yield stats;
    }
  }

  async #tokenize(p: number[][] | string[]): Promise<number[][]> {
    if (p.length && typeof p[0] === 'string') {
      const tok = this.model.requireTokenizer();
      return Promise.all((p as string[]).map(async (s) => (await tok.encode(s)).getIds()));
    }
    return p as number[][];
  }

  async #step(prompts: number[][], signal?: AbortSignal): Promise<PPOStats> {
    const c = this.config,
      g = c.generation;
    const seed = hash2(c.seed, this.step);
    const rnd = mulberry32(seed);
    const B = c.batch_size;
    // The step's prompts: a seeded draw without replacement (with replacement when there are fewer).
    const idx: number[] = [];
    if (B <= prompts.length) {
      const perm = prompts.map((_, i) => i);
      for (let i = 0; i < B; i++) {
        const j = i + Math.floor(rnd() * (perm.length - i));
        [perm[i], perm[j]] = [perm[j], perm[i]];
        idx.push(perm[i]);
      }
    } else {
      for (let i = 0; i < B; i++) idx.push(Math.floor(rnd() * prompts.length));
    }
    const batch = idx.map((i) => prompts[i]);
    const pad = this.model.config.padTokenId ?? 0;
    const p = leftPad(batch, pad);
    const fixed = g.fixed_length;
    const maxNew = fixed ? g.output_min_length + Math.floor(rnd() * (g.output_max_length - g.output_min_length)) : g.max_new_tokens;
    const t0 = performance.now();
    const roll = await callNative('ppoRollout', this.model.handle, p.tokens, p.B, p.T, p.mask, {
      maxNewTokens: maxNew,
      minNewTokens: fixed ? 0 : g.min_new_tokens,
      doSample: true,
      temperature: g.temperature,
      topK: g.top_k,
      topP: g.top_p,
      eosTokenId: fixed ? -1 : (this.model.config.eosTokenId ?? -1),
      padTokenId: pad,
      seed,
      refIsAdapter: c.ref_model === 'adapter',
    });
    const t1 = performance.now();
    const tok = this.model.tokenizer;
    const samples: TrainSample[] = await Promise.all(
      batch.map(async (q, b) => {
        const r = Array.from(roll.tokens.subarray(b * roll.width, b * roll.width + roll.lengths[b]));
        return {
          prompt: tok ? await tok.decode(q, true) : q.join(' '),
          response: tok ? await tok.decode(r, true) : r.join(' '),
          meta: { promptTokens: q, responseTokens: r, index: idx[b] },
        };
      }),
    );
    const per: Record<string, number> = {};
    const scores = new Float64Array(B);
    for (let k = 0; k < this.rewards.length; k++) {
      const rw = this.rewards[k];
      const s = await rw.score(samples, { signal });
      if (!(s instanceof Float64Array) || s.length !== B)
        throw new SoupError('ERR_SOUP_REWARD', `reward '${rw.name}' returned ${s?.length} scores for ${B} samples (expected a Float64Array)`);
      let sum = 0;
      for (let i = 0; i < B; i++) {
        if (Number.isNaN(s[i])) throw new SoupError('ERR_SOUP_REWARD', `reward '${rw.name}' returned NaN for sample ${i}`);
        scores[i] += this.weights[k] * s[i];
        sum += s[i];
      }
      per[rw.name] = sum / B;
    }
    if (signal?.aborted) throw new SoupError('ERR_SOUP_ABORTED', `training aborted at step ${this.step}`, { cause: signal.reason });
    const t2 = performance.now();
    const raw = await callNative('ppoUpdate', this.model.handle, scores, {
      beta: this.kl.value,
      seed: hash2(seed, 1),
      gamma: c.gamma,
      lam: c.lam,
      cliprange: c.cliprange,
      cliprangeValue: c.cliprange_value,
      vfCoef: c.vf_coef,
      ppoEpochs: c.ppo_epochs,
      miniBatchSize: c.mini_batch_size,
      learningRate: c.learning_rate,
      beta1: c.adam_beta1,
      beta2: c.adam_beta2,
      adamEps: c.adam_epsilon,
      maxGradNorm: c.max_grad_norm ?? 0,
      klPenalty: c.kl_penalty,
    });
    const t3 = performance.now();
    const klCoef = this.kl.value;
    this.kl.update(raw['objective/kl'], B);
    const total = (t3 - t0) / 1000;
    return {
      step: this.step + 1,
      score: raw['env/reward_mean'],
      rewards: per,
      kl: raw['objective/kl'],
      klCoef,
      entropy: raw['ppo/policy/entropy'],
      clipfrac: raw['ppo/policy/clipfrac'],
      valueClipfrac: raw['ppo/val/clipfrac'],
      approxKl: raw['ppo/policy/approxkl'],
      valueError: raw['ppo/val/error'],
      loss: raw['ppo/loss/total'],
      responseLength: raw['tokens/response_len_mean'],
      tokensPerSecond: (B * roll.width) / total,
      seconds: { rollout: (t1 - t0) / 1000, reward: (t2 - t1) / 1000, update: (t3 - t2) / 1000, total },
      raw,
    };
  }

  /** Writes the checkpoint atomically: a PEFT adapter dir (what `rsoup merge` reads) plus the value head,
   *  optimizer, reference adapter and trainer state needed to resume. */
  async save(dir: string): Promise<void> {
    const m = this.model;
    // built whole beside `dir` and renamed into place (src/io/atomic.ts): a crash never leaves half a checkpoint
    await atomicWriteDir(dir, async (stage) => {
      try {
        await writePeftAdapter(stage, await m.getTensors('lora'), peftAdapterConfig(m.lora!, m.source));
        await writeSafetensors(join(stage, 'value_head.safetensors'), await m.getTensors('valueHead'));
        await writeSafetensors(join(stage, 'optimizer.safetensors'), await m.getTensors('optimizer'));
        if (this.config.ref_model === 'adapter' && this.#refReady) {
          // the reference is the adapter as it was at step 0: kept from the first save on
          const prev = join(dir, 'ref_adapter.safetensors');
          if (existsSync(prev)) await writeSafetensors(join(stage, 'ref_adapter.safetensors'), (await readSafetensors(prev)).tensors);
          else if (this.step === 0) await writeSafetensors(join(stage, 'ref_adapter.safetensors'), await m.getTensors('lora'));
        }
        const state = {
          format: 'rewarded-soups/ppo-checkpoint@1',
          step: this.step,
          kl_coef: this.kl.value,
          config: this.config,
          rewards: this.rewards.map((r) => r.name),
          weights: this.weights,
        };
        await writeFile(join(stage, STATE_FILE), `${JSON.stringify(state, null, 2)}\n`);
      } catch (e) {
        throw e instanceof SoupError ? e : new SoupError('ERR_SOUP_IO', `writing checkpoint '${dir}': ${(e as Error).message}`, { cause: e });
      }
    });
    this.lastCheckpoint = this.step;
  }

  /** Restores adapter, value head, optimizer, KL coefficient and step from a checkpoint dir. */
  async load(dir: string): Promise<void> {
    let state: { step: number; kl_coef: number; rewards?: string[] };
    try {
      state = JSON.parse(await readFile(join(dir, STATE_FILE), 'utf8'));
    } catch (e) {
      throw new SoupError('ERR_SOUP_IO', `${join(dir, STATE_FILE)}: cannot read the trainer state (${(e as Error).message})`, { cause: e });
    }
    await this.model.loadAdapter(dir);
    await this.model.setTensors('valueHead', (await readSafetensors(join(dir, 'value_head.safetensors'))).tensors);
    const opt = (await readSafetensors(join(dir, 'optimizer.safetensors'))).tensors;
    if (Object.keys(opt).length > 1) await this.model.setTensors('optimizer', opt);
    if (this.config.ref_model === 'adapter') {
      const ref = join(dir, 'ref_adapter.safetensors');
      if (!existsSync(ref)) throw new SoupError('ERR_SOUP_IO', `${ref}: missing (ref_model 'adapter' needs the starting adapter)`);
      await this.model.setTensors('refAdapter', (await readSafetensors(ref)).tensors);
      this.#refReady = true;
    }
    this.step = state.step;
    this.kl.value = state.kl_coef;
    this.lastCheckpoint = state.step;
  }
}

/** The pure PPO math of one minibatch in float64 (native), for checks against hand computation. */
export function ppoMath(o: {
  B: number;
  T: number;
  logp: Float64Array;
  ref: Float64Array;
  oldLogp: Float64Array;
  oldValues: Float64Array;
  vpred: Float64Array;
  mask: Float64Array;
  score: Float64Array;
  beta: number;
  klPenalty?: 'kl' | 'abs' | 'mse' | 'k3';
  gamma?: number;
  lam?: number;
  cliprange?: number;
  cliprangeValue?: number;
  vfCoef?: number;
}): {
  rewards: Float64Array;
  kl: Float64Array;
  advantages: Float64Array;
  returns: Float64Array;
  loss: number;
  pgLoss: number;
  vfLoss: number;
  pgClipfrac: number;
  vfClipfrac: number;
  approxKl: number;
  policyKl: number;
} {
  // native reads every setting as given: the defaults are PPOConfigSchema's
  const d = PPOConfigSchema.parse({});
  const r = callNativeSync('ppoMath', {
    ...o,
    klPenalty: o.klPenalty ?? d.kl_penalty,
    gamma: o.gamma ?? d.gamma,
    lam: o.lam ?? d.lam,
    cliprange: o.cliprange ?? d.cliprange,
    cliprangeValue: o.cliprangeValue ?? d.cliprange_value,
    vfCoef: o.vfCoef ?? d.vf_coef,
  }) as Record<string, { data: Float64Array } | number>;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(r)) out[k] = typeof v === 'number' ? v : v.data;
  return out as ReturnType<typeof ppoMath>;
}
