// SPDX-License-Identifier: MIT
// Continuous control: ControlPolicy (Gaussian MLP with a state-independent log-std, a separate value
// MLP, observation normalisation that can be frozen; native, libtorch) and ControlTrainer (PPO with
// CleanRL's ppo_continuous_action.py defaults). The rollout loop steps a VecEnv in JS and calls the
// policy once per step for every env with one Float32Array in and one out; each PPO update (GAE, reward
// normalisation, epochs of minibatch Adam steps) runs natively off the JS thread. Design: docs/locomotion.md.
import { z } from 'zod';
import { SoupError, fromNative } from '../errors.js';
import { parseStrict } from '../util/config.js';
import { readSafetensors, writeSafetensors, type Tensor, type TensorMap } from '../io/index.js';
import {
  callTorchSync,
  torchFunctions,
  type ControlBatch,
  type ControlFunctions,
  type ControlHandle,
  type ControlLoss,
  type NativeHyper,
  type TorchAddon,
} from '../native/torch.js';
import { checkPolicyFits, RolloutCollector, type EnvInfo, type EpisodeRecord, type PolicyFn, type VecEnv } from '../envs/index.js';

// ---- native face: declared with its batons in src/native/torch.ts ---------------------------------
export type { ControlHandle, NativeHyper, ControlBatch, ControlLoss } from '../native/torch.js';

let cached: TorchAddon | undefined;
function addon(): TorchAddon {
  return (cached ??= torchFunctions('control'));
}

// acting runs once per env step: synchronous, on the cached addon
const call = callTorchSync;

/** The PPO math pieces, for tests and for users checking semantics (float64). */
export const controlMath = {
  gae: (b: Parameters<ControlFunctions['ctlGae']>[0]) => call('ctlGae', b),
  normalizeRewards: (b: Parameters<ControlFunctions['ctlNormalizeRewards']>[0]) => call('ctlNormalizeRewards', b),
};

// ---- the policy -----------------------------------------------------------------------------------
export const CONTROL_POLICY_FORMAT = 'rewarded-soups/control-policy@1';
/** Tensors that are statistics, not parameters: soups share them instead of interpolating them. */
export const OBS_STAT_TENSORS = ['obs_rms.mean', 'obs_rms.var', 'obs_rms.count'] as const;

export interface ControlPolicyOptions {
  obsDim: number;
  actDim: number;
  /** Hidden layer sizes of both MLPs (CleanRL: [64, 64]). */
  hidden?: number[];
  /** Parameter dtype: float32 (default) or float64 (tests). */
  dtype?: 'float32' | 'float64';
  /** Seed of the orthogonal init and of the action noise / minibatch order. */
  seed?: number;
}

function posInt(v: unknown, what: string): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 1)
    throw new SoupError('ERR_SOUP_INVALID_ARG', `Expected a positive integer for ${what} but received ${String(v)}`);
  return v;
}

/** Sizes of a policy read from its tensors (CleanRL names), or a clear error naming `source`. */
export function policyShape(t: TensorMap, source: string): { obsDim: number; actDim: number; hidden: number[] } {
  const need = (n: string): Tensor => {
    const x = t[n];
    if (!x)
      throw new SoupError('ERR_SOUP_MISSING_TENSOR', `policy ${source} has no tensor '${n}' (expected a control policy: actor_mean.*, critic.*, actor_logstd)`);
    return x;
  };
  const hidden: number[] = [];
  const w0 = need('actor_mean.0.weight');
  if (w0.shape.length !== 2)
    throw new SoupError('ERR_SOUP_SHAPE_MISMATCH', `policy ${source}: 'actor_mean.0.weight' has shape ${JSON.stringify(w0.shape)}, expected [hidden, obsDim]`);
  const obsDim = w0.shape[1];
  let l = 0;
  while (t[`actor_mean.${2 * (l + 1)}.weight`]) {
    hidden.push(t[`actor_mean.${2 * l}.weight`].shape[0]);
    l++;
  }
  if (hidden.length === 0) throw new SoupError('ERR_SOUP_MISSING_TENSOR', `policy ${source} has no tensor 'actor_mean.2.weight' (at least one hidden layer)`);
  const actDim = need(`actor_mean.${2 * l}.weight`).shape[0];
  return { obsDim, actDim, hidden };
}

export class ControlPolicy {
  readonly obsDim: number;
  readonly actDim: number;
  readonly hidden: number[];
  readonly dtype: 'float32' | 'float64';
  private h: ControlHandle | undefined;
  private frozenStats = false;

  private constructor(h: ControlHandle, o: Required<ControlPolicyOptions>) {
    this.h = h;
    this.obsDim = o.obsDim;
    this.actDim = o.actDim;
    this.hidden = [...o.hidden];
    this.dtype = o.dtype;
  }

  /** A freshly initialised policy (CleanRL's layer_init: orthogonal, gains √2 / 0.01 / 1, log-std 0). */
  static create(opts: ControlPolicyOptions): ControlPolicy {
    const o: Required<ControlPolicyOptions> = {
      obsDim: posInt(opts.obsDim, 'obsDim'),
      actDim: posInt(opts.actDim, 'actDim'),
      hidden: opts.hidden ?? [64, 64],
      dtype: opts.dtype ?? 'float32',
      seed: opts.seed ?? 0,
    };
    if (!Array.isArray(o.hidden) || o.hidden.length === 0) throw new SoupError('ERR_SOUP_INVALID_ARG', 'Expected a non-empty array of layer sizes for hidden');
    o.hidden.forEach((x, i) => posInt(x, `hidden[${i}]`));
    if (o.dtype !== 'float32' && o.dtype !== 'float64')
      throw new SoupError('ERR_SOUP_INVALID_ARG', `Expected 'float32' or 'float64' for dtype but received ${String(o.dtype)}`);
    if (!Number.isSafeInteger(o.seed) || o.seed < 0)
      throw new SoupError('ERR_SOUP_INVALID_ARG', `Expected a non-negative integer for seed but received ${String(o.seed)}`);
    return new ControlPolicy(call('ctlCreate', o), o);
  }

  /** A policy holding `tensors` (sizes read from them); `source` names them in errors. */
  static fromTensors(tensors: TensorMap, opts: { source?: string; dtype?: 'float32' | 'float64'; seed?: number; env?: EnvInfo } = {}): ControlPolicy {
    const source = opts.source ?? 'tensors';
    const shape = policyShape(tensors, source);
    if (opts.env) checkPolicyFits(opts.env, shape, source);
    const p = ControlPolicy.create({ ...shape, dtype: opts.dtype, seed: opts.seed });
    try {
      p.setTensors(tensors, source);
    } catch (e) {
      p.dispose();
      throw e;
    }
    return p;
  }

  /** Reads a policy checkpoint (.safetensors); with `env`, checks it fits the env (clear error otherwise). */
  static async load(path: string, opts: { env?: EnvInfo; seed?: number } = {}): Promise<ControlPolicy> {
    const { tensors } = await readSafetensors(path, { copy: true });
    return ControlPolicy.fromTensors(tensors, { source: path, env: opts.env, seed: opts.seed });
  }

  /** Writes parameters and observation statistics to a .safetensors file (atomically). */
  async save(path: string, metadata: Record<string, string> = {}): Promise<void> {
    await writeSafetensors(path, this.tensors(), {
      metadata: { format: CONTROL_POLICY_FORMAT, obs_dim: String(this.obsDim), act_dim: String(this.actDim), hidden: this.hidden.join(','), ...metadata },
    });
  }

  get handle(): ControlHandle {
    if (!this.h) throw new SoupError('ERR_SOUP_INVALID_ARG', 'the policy was disposed');
    return this.h;
  }

  /** Parameter tensors (CleanRL names) then obs_rms.mean/var/count (float64). Copies. */
  tensors(): TensorMap {
    return call('ctlGetTensors', this.handle);
  }

  /** Names of the parameters (the order of the flat gradient), without the statistics. */
  paramNames(): string[] {
    return Object.keys(this.tensors()).filter((n) => !(OBS_STAT_TENSORS as readonly string[]).includes(n));
  }

  setTensors(t: TensorMap, source = 'tensors'): void {
    const stack = new Error().stack;
    try {
      addon().ctlSetTensors(this.handle, t);
    } catch (e) {
      const err = fromNative(e, stack);
      err.message = `policy ${source}: ${err.message}`;
      throw err;
    }
  }

  /** Stop (or resume) updating the observation statistics while training. */
  set frozen(v: boolean) {
    call('ctlFreeze', this.handle, v);
    this.frozenStats = v;
  }
  get frozen(): boolean {
    return this.frozenStats;
  }

  /** Actions for a batch of observations ([n·obsDim] -> [n·actDim]); never updates statistics. */
  act(obs: Float32Array, actions: Float32Array, opts: { deterministic?: boolean } = {}): void {
    call('ctlAct', this.handle, obs, actions, 0, opts.deterministic ?? true, false);
  }

  /** A PolicyFn for `evaluateEpisodes` / `recordEpisodeFrames` (deterministic: the mean action). */
  policyFn(opts: { deterministic?: boolean } = {}): PolicyFn {
    const det = opts.deterministic ?? true;
    const h = this.handle;
    const a = addon();
    return (obs, actions) => a.ctlAct(h, obs, actions, 0, det, false);
  }

  /** Allocates native rollout storage [numSteps, numEnvs, ·] for `actAndStore` and `update`. */
  setRollout(numSteps: number, numEnvs: number): void {
    call('ctlSetRollout', this.handle, posInt(numSteps, 'numSteps'), posInt(numEnvs, 'numEnvs'));
  }

  /**
   * A training step for every env: updates the observation statistics (unless frozen), samples
   * actions, and stores the normalised observations, actions, log-probs and values at row `t`.
   */
  actAndStore(obs: Float32Array, actions: Float32Array, t: number): void {
    call('ctlAct', this.handle, obs, actions, t, false, true);
  }

  /**
   * One PPO update on the stored rollout (off the JS thread): scalarise the reward vectors with
   * `weights`, normalise, bootstrap truncations, GAE, then epochs of minibatch Adam steps.
   */
  async update(
    rollout: { rewards: Float32Array; terminated: Uint8Array; truncated: Uint8Array; finalObs: Float32Array; lastObs: Float32Array },
    weights: Float64Array,
    hyper: Partial<NativeHyper> = {},
  ): Promise<Record<string, number>> {
    const stack = new Error().stack;
    try {
      return await addon().ctlUpdate(this.handle, {
        ...DEFAULT_HYPER,
        ...hyper,
        rewards: rollout.rewards,
        weights,
        terminated: rollout.terminated,
        truncated: rollout.truncated,
        finalObs: rollout.finalObs,
        lastObs: rollout.lastObs,
      });
    } catch (e) {
      throw fromNative(e, stack);
    }
  }

  /** CleanRL's PPO loss on one minibatch and its gradient (tests, checks). */
  loss(batch: ControlBatch, hyper: Partial<NativeHyper> = {}): ControlLoss {
    return call('ctlLoss', this.handle, batch, { ...DEFAULT_HYPER, ...hyper });
  }

  /** The last rollout as stored natively (normalised obs, actions, log-probs, values), float64. */
  rolloutStorage(): ReturnType<ControlFunctions['ctlRollout']> {
    return call('ctlRollout', this.handle);
  }

  dispose(): void {
    if (this.h) call('ctlDispose', this.h);
    this.h = undefined;
  }

  [Symbol.dispose](): void {
    this.dispose();
  }
}

// ---- PPO --------------------------------------------------------------------------------------------
/** CleanRL ppo_continuous_action.py arguments (its names), with its defaults except the env split. */
export const ControlPPOConfigSchema = z
  .object({
    learning_rate: z.number().positive().default(3e-4),
    anneal_lr: z.boolean().default(true),
    /** Steps per env per rollout; num_envs · num_steps = 2048 samples per update as in CleanRL. */
    num_steps: z.number().int().positive().default(256),
    gamma: z.number().min(0).max(1).default(0.99),
    gae_lambda: z.number().min(0).max(1).default(0.95),
    num_minibatches: z.number().int().positive().default(32),
    update_epochs: z.number().int().positive().default(10),
    norm_adv: z.boolean().default(true),
    clip_coef: z.number().positive().default(0.2),
    clip_vloss: z.boolean().default(true),
    ent_coef: z.number().min(0).default(0),
    vf_coef: z.number().min(0).default(0.5),
    max_grad_norm: z.number().positive().default(0.5),
    /** gym NormalizeReward on the scalarised reward, then clip to ±reward_clip. */
    norm_reward: z.boolean().default(true),
    reward_clip: z.number().positive().default(10),
    adam_eps: z.number().positive().default(1e-5),
  })
  .strict();

export type ControlPPOConfig = z.output<typeof ControlPPOConfigSchema>;
export type ControlPPOConfigInput = z.input<typeof ControlPPOConfigSchema>;

/** The native update's hyper-parameters of a config (CleanRL's defaults when none is given): the one source of them. */
export function nativeHyper(c: ControlPPOConfig = ControlPPOConfigSchema.parse({})): NativeHyper {
  return {
    gamma: c.gamma,
    gaeLambda: c.gae_lambda,
    clipCoef: c.clip_coef,
    vfCoef: c.vf_coef,
    entCoef: c.ent_coef,
    maxGradNorm: c.max_grad_norm,
    learningRate: c.learning_rate,
    adamEps: c.adam_eps,
    rewardClip: c.reward_clip,
    updateEpochs: c.update_epochs,
    numMinibatches: c.num_minibatches,
    clipVloss: c.clip_vloss,
    normAdv: c.norm_adv,
    normReward: c.norm_reward,
  };
}

/** CleanRL's defaults as the native update reads them: what `ControlPolicy.loss/update` fill a partial set from (built once). */
const DEFAULT_HYPER: NativeHyper = nativeHyper();

export function parseControlPPOConfig(x: unknown, src = 'control ppo config'): ControlPPOConfig {
  return parseStrict(ControlPPOConfigSchema, x ?? {}, src);
}

export interface ControlUpdateStats {
  update: number;
  /** Env steps so far (all envs). */
  step: number;
  learningRate: number;
  /** Episodes that finished during this update's rollout. */
  episodes: EpisodeRecord[];
  /** Native PPO statistics (policy_loss, value_loss, entropy, approx_kl, clipfrac, explained_variance, ...). */
  stats: Record<string, number>;
  /** Wall seconds: env stepping, policy calls during the rollout, the native update. */
  seconds: { env: number; act: number; learn: number };
}

export interface ControlTrainerOptions {
  /** Weights of the env's reward vector: the scalar reward PPO maximises is Σ wₖ rₖ. */
  rewardWeights: number[];
  config?: ControlPPOConfigInput;
}

export interface ControlTrainResult {
  updates: number;
  steps: number;
  history: ControlUpdateStats[];
  seconds: { env: number; act: number; learn: number; total: number };
}

/** PPO on a VecEnv: rollouts of config.num_steps per env, one native update per rollout. */
export class ControlTrainer {
  readonly config: ControlPPOConfig;
  readonly weights: Float64Array;
  private readonly collector: RolloutCollector;

  constructor(
    readonly env: VecEnv,
    readonly policy: ControlPolicy,
    opts: ControlTrainerOptions,
  ) {
    this.config = parseControlPPOConfig(opts.config);
    checkPolicyFits(env.info, policy, 'being trained');
    const w = opts.rewardWeights;
    if (!Array.isArray(w) || w.length !== env.info.rewardDim || w.some((x) => typeof x !== 'number' || !Number.isFinite(x))) {
      throw new SoupError(
        'ERR_SOUP_INVALID_ARG',
        `Expected ${env.info.rewardDim} finite rewardWeights (${env.info.rewardNames.join(', ')}) but received ${JSON.stringify(w)}`,
      );
    }
    this.weights = Float64Array.from(w);
    const B = this.config.num_steps * env.numEnvs;
    if (Math.floor(B / this.config.num_minibatches) < 2) {
      throw new SoupError(
        'ERR_SOUP_CONFIG',
        `num_envs·num_steps = ${B} gives minibatches of fewer than 2 samples with num_minibatches = ${this.config.num_minibatches}`,
      );
    }
    this.collector = new RolloutCollector(env, this.config.num_steps);
    policy.setRollout(this.config.num_steps, env.numEnvs);
  }

  /** Samples per update (num_envs · num_steps). */
  get batchSize(): number {
    return this.config.num_steps * this.env.numEnvs;
  }

  /**
   * Trains for floor(totalSteps / batchSize) updates from `env.reset(seed)`, annealing the learning
   * rate linearly to 0 over them (CleanRL). `onUpdate` sees each update's statistics.
   */
  async train(totalSteps: number, opts: { seed?: number; onUpdate?: (s: ControlUpdateStats) => void; signal?: AbortSignal } = {}): Promise<ControlTrainResult> {
    const c = this.config;
    const updates = Math.floor(totalSteps / this.batchSize);
    if (!Number.isFinite(totalSteps) || updates < 1) {
      throw new SoupError('ERR_SOUP_INVALID_ARG', `totalSteps ${totalSteps} is less than one update (num_envs·num_steps = ${this.batchSize})`);
    }
    this.env.reset(opts.seed ?? 0);
    this.collector.restartBookkeeping();
    const a = addon();
    const h = this.policy.handle;
    const history: ControlUpdateStats[] = [];
    const tot = { env: 0, act: 0, learn: 0, total: 0 };
    const t0 = performance.now();
    const hyper = nativeHyper(c);
    for (let u = 1; u <= updates; u++) {
      if (opts.signal?.aborted) throw new SoupError('ERR_SOUP_ABORTED', `training aborted at update ${u} of ${updates}`);
      const lr = c.anneal_lr ? (1 - (u - 1) / updates) * c.learning_rate : c.learning_rate;
      const r = this.collector.collect((obs, actions, t) => a.ctlAct(h, obs, actions, t, false, true));
      const tl = performance.now();
      const stats = await this.policy.update(r, this.weights, { ...hyper, learningRate: lr });
      const learn = (performance.now() - tl) / 1000;
      const s: ControlUpdateStats = {
        update: u,
        step: this.collector.totalSteps,
        learningRate: lr,
        episodes: r.episodes,
        stats,
        seconds: { env: r.timing.envS, act: r.timing.policyS, learn },
      };
      tot.env += s.seconds.env;
      tot.act += s.seconds.act;
      tot.learn += learn;
      history.push(s);
      opts.onUpdate?.(s);
    }
    tot.total = (performance.now() - t0) / 1000;
    return { updates, steps: updates * this.batchSize, history, seconds: tot };
  }
}

/** The parameters of `sets` interpolated is what a soup is; the statistics are not parameters. */
export function isPolicyParameter(name: string): boolean {
  return !(OBS_STAT_TENSORS as readonly string[]).includes(name);
}
