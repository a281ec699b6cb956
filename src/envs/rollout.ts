// SPDX-License-Identifier: MIT
// The control-policy data path PPO needs: a rollout collector that steps a VecEnv for T steps, calling
// the policy once per step with one Float32Array holding every env's observation and one to fill with
// every env's action (no per-env JS↔native crossing), and storing everything in flat [T, N, ·] buffers
// a native trainer can take as they are. Also: deterministic evaluation over seeded episodes and
// frame recording for the report's filmstrips.
import { SoupError } from '../errors.js';
import type { Frame } from './shard.js';
import type { VecEnv } from './vec.js';

/**
 * A policy step: read `obs` ([numEnvs·obsDim]), write `actions` ([numEnvs·actDim]). Both are views into
 * the rollout's storage: read/write them during the call only. `t` is the step within the rollout.
 */
export type PolicyFn = (obs: Float32Array, actions: Float32Array, t: number) => void;

/** One finished episode (returns are sums of the reward vector; Gymnasium's scalar return too). */
export interface EpisodeRecord {
  env: number;
  length: number;
  /** Sum over the episode of each reward-vector entry (MO-Gymnasium's order, see EnvInfo.rewardNames). */
  returns: number[];
  /** Sum of Gymnasium's scalar reward. */
  scalarReturn: number;
  terminated: boolean;
  /** rootx at the end minus rootx at the start of the episode (m). */
  distance: number;
}

/** Storage of one rollout, time-major: index [t, env, k] is (t·numEnvs + env)·dim + k. */
export interface Rollout {
  numSteps: number;
  numEnvs: number;
  obsDim: number;
  actDim: number;
  rewardDim: number;
  /** [T·N·obsDim] observation the policy saw at step t. */
  obs: Float32Array;
  /** [T·N·actDim] actions the policy wrote (before the env's clipping). */
  actions: Float32Array;
  /** [T·N·rewardDim] reward vectors. */
  rewards: Float32Array;
  /** [T·N] Gymnasium's scalar rewards. */
  scalarRewards: Float32Array;
  /** [T·N] 1 where the episode ended by the env's rule (no bootstrapping). */
  terminated: Uint8Array;
  /** [T·N] 1 where the episode hit the time limit (bootstrap from finalObs). */
  truncated: Uint8Array;
  /** [T·N·obsDim] last observation of episodes that ended at step t (zeros elsewhere). */
  finalObs: Float32Array;
  /** [N·obsDim] observation after the last step (to bootstrap the value of unfinished episodes). */
  lastObs: Float32Array;
  /** Episodes that finished during this rollout. */
  episodes: EpisodeRecord[];
  /** Wall time in env stepping and in the policy callback during this rollout (s). */
  timing: { envS: number; policyS: number };
}

/** Steps a VecEnv through rollouts of `numSteps`, keeping episode bookkeeping across rollouts. */
export class RolloutCollector {
  readonly rollout: Rollout;
  private readonly epReturns: Float64Array;
  private readonly epScalar: Float64Array;
  private readonly epLength: Int32Array;
  private readonly epStartX: Float64Array;
  /** Env steps taken so far (all envs). */
  totalSteps = 0;

  constructor(
    readonly env: VecEnv,
    numSteps: number,
  ) {
    if (!Number.isInteger(numSteps) || numSteps < 1) {
      throw new SoupError('ERR_SOUP_INVALID_ARG', `Expected a positive integer for numSteps but received ${String(numSteps)}`);
    }
    const { obsDim, actDim, rewardDim } = env.info;
    const N = env.numEnvs;
    const T = numSteps;
    this.rollout = {
      numSteps: T,
      numEnvs: N,
      obsDim,
      actDim,
      rewardDim,
      obs: new Float32Array(T * N * obsDim),
      actions: new Float32Array(T * N * actDim),
      rewards: new Float32Array(T * N * rewardDim),
      scalarRewards: new Float32Array(T * N),
      terminated: new Uint8Array(T * N),
      truncated: new Uint8Array(T * N),
      finalObs: new Float32Array(T * N * obsDim),
      lastObs: new Float32Array(N * obsDim),
      episodes: [],
      timing: { envS: 0, policyS: 0 },
    };
    this.epReturns = new Float64Array(N * rewardDim);
    this.epScalar = new Float64Array(N);
    this.epLength = new Int32Array(N);
    this.epStartX = new Float64Array(N);
    this.restartBookkeeping();
  }

  /** Call after resetting the env yourself (e.g. `env.reset(seed)`), so episode sums start afresh. */
  restartBookkeeping(): void {
    this.epReturns.fill(0);
    this.epScalar.fill(0);
    this.epLength.fill(0);
    this.epStartX.set(this.env.buffers.startX);
  }

  /** Runs `numSteps` steps; the returned Rollout's buffers are reused by the next call. */
  collect(policy: PolicyFn): Rollout {
    const r = this.rollout;
    const env = this.env;
    const { numSteps: T, numEnvs: N, obsDim: O, actDim: A, rewardDim: R } = r;
    r.episodes = [];
    r.finalObs.fill(0);
    let envS = 0;
    let policyS = 0;
    for (let t = 0; t < T; t++) {
      const obs = r.obs.subarray(t * N * O, (t + 1) * N * O);
      const act = r.actions.subarray(t * N * A, (t + 1) * N * A);
      obs.set(env.obs);
      const t0 = performance.now();
      policy(obs, act, t);
      const t1 = performance.now();
      const s = env.step(act);
      const t2 = performance.now();
      policyS += t1 - t0;
      envS += t2 - t1;
      for (let i = 0; i < N; i++) {
        const row = t * N + i;
        for (let k = 0; k < R; k++) {
          const v = s.rewards[i * R + k];
          r.rewards[row * R + k] = v;
          this.epReturns[i * R + k] += v;
        }
        r.scalarRewards[row] = s.reward[i];
        this.epScalar[i] += s.reward[i];
        this.epLength[i]++;
        r.terminated[row] = s.terminated[i];
        r.truncated[row] = s.truncated[i];
        if (s.terminated[i] || s.truncated[i]) {
          r.finalObs.set(s.finalObs.subarray(i * O, (i + 1) * O), row * O);
          r.episodes.push({
            env: i,
            length: this.epLength[i],
            returns: Array.from(this.epReturns.subarray(i * R, (i + 1) * R)),
            scalarReturn: this.epScalar[i],
            terminated: s.terminated[i] === 1,
            distance: s.xPosition[i] - this.epStartX[i],
          });
          this.epReturns.fill(0, i * R, (i + 1) * R);
          this.epScalar[i] = 0;
          this.epLength[i] = 0;
          this.epStartX[i] = s.startX[i]; // the new episode's (the env reset itself)
        }
      }
    }
    r.lastObs.set(env.obs);
    r.timing = { envS: envS / 1000, policyS: policyS / 1000 };
    this.totalSteps += T * N;
    return r;
  }
}

/** Per-episode results of a deterministic evaluation. */
export interface EvaluationResult {
  episodes: EpisodeRecord[];
  /** Mean over episodes of each reward-vector return. */
  meanReturns: number[];
  meanScalarReturn: number;
}

/**
 * Runs one episode in each env from `env.reset(seed)` (env i starts from stream (seed, i)), with the
 * policy called on the whole batch each step, and returns each env's first episode. Use as many envs as
 * episodes wanted; envs that finish early keep stepping until all are done (their steps are ignored).
 */
export function evaluateEpisodes(env: VecEnv, policy: PolicyFn, opts: { seed: number }): EvaluationResult {
  env.reset(opts.seed);
  const collector = new RolloutCollector(env, 1);
  const N = env.numEnvs;
  const done = new Array<EpisodeRecord | undefined>(N);
  let remaining = N;
  for (let t = 0; remaining > 0; t++) {
    const r = collector.collect((obs, act) => policy(obs, act, t));
    for (const ep of r.episodes) {
      if (!done[ep.env]) {
        done[ep.env] = ep;
        remaining--;
      }
    }
  }
  const episodes = done as EpisodeRecord[];
  const R = env.info.rewardDim;
  const meanReturns = Array.from({ length: R }, (_, k) => episodes.reduce((s, e) => s + e.returns[k], 0) / N);
  return { episodes, meanReturns, meanScalarReturn: episodes.reduce((s, e) => s + e.scalarReturn, 0) / N };
}

/**
 * Records frames of env 0's first episode from `env.reset(seed)`: one frame every `every` steps
 * (and the first), at most `maxFrames`. Env 0 must be on the main thread (it always is).
 */
export function recordEpisodeFrames(
  env: VecEnv,
  policy: PolicyFn,
  opts: { seed: number; every: number; maxFrames?: number; maxSteps?: number },
): { frames: Frame[]; episode: EpisodeRecord | undefined } {
  if (!Number.isInteger(opts.every) || opts.every < 1) {
    throw new SoupError('ERR_SOUP_INVALID_ARG', `Expected a positive integer for every but received ${String(opts.every)}`);
  }
  env.reset(opts.seed);
  const collector = new RolloutCollector(env, 1);
  const frames: Frame[] = [env.frame(0)];
  const maxFrames = opts.maxFrames ?? Infinity;
  const maxSteps = opts.maxSteps ?? env.info.maxEpisodeSteps;
  for (let t = 1; t <= maxSteps; t++) {
    const r = collector.collect((obs, act) => policy(obs, act, t - 1));
    const ended = r.episodes.find((e) => e.env === 0);
    if (ended) return { frames, episode: ended };
    if (t % opts.every === 0 && frames.length < maxFrames) frames.push(env.frame(0));
  }
  return { frames, episode: undefined };
}
