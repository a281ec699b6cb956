// SPDX-License-Identifier: MIT
// The environments' definitions (Gymnasium v5 semantics) and their resolution into a plain config
// "baton" that the stepping code (main thread or worker) reads. Facts, from Gymnasium's
// half_cheetah_v5.py / hopper_v5.py and MO-Gymnasium's mujoco/half_cheetah_v5.py / hopper_v5.py:
//
// HalfCheetah-v5: frame_skip 5 (dt 0.05); obs = qpos[1:] (8) + qvel (9); reward = 1.0·Δx/dt − 0.1·Σa²;
//   reset qpos0 + U(−0.1, 0.1), qvel 0.1·N(0, 1); never terminates; 1000-step time limit.
//   mo-halfcheetah-v5 reward vector: [x_velocity, −Σa²].
// Hopper-v5: frame_skip 4 (dt 0.008); obs = qpos[1:] (5) + clip(qvel, −10, 10) (6); reward =
//   Δx/dt + healthy − 1e-3·Σa² with healthy = 1 when z = qpos[1] ∈ (0.7, ∞), angle = qpos[2] ∈
//   (−0.2, 0.2) and every entry of [qpos[2:], qvel] ∈ (−100, 100) (open intervals, unclipped
//   velocities); terminates when unhealthy; reset qpos0 + U(−5e-3, 5e-3), qvel U(−5e-3, 5e-3).
//   mo-hopper-v5 reward vector: [x_velocity, 10·(z − z0), −Σa²], each plus the healthy reward.
import { fileURLToPath } from 'node:url';
import { SoupError } from '../errors.js';
import { readMjcf } from './mujoco.js';

export const ENV_NAMES = ['HalfCheetah-v5', 'Hopper-v5'] as const;
export type EnvName = (typeof ENV_NAMES)[number];

/** Other names users know for the same envs (MO-Gymnasium's ids, lower case). */
const ALIASES: Record<string, EnvName> = {
  'mo-halfcheetah-v5': 'HalfCheetah-v5',
  'halfcheetah-v5': 'HalfCheetah-v5',
  halfcheetah: 'HalfCheetah-v5',
  'mo-hopper-v5': 'Hopper-v5',
  'hopper-v5': 'Hopper-v5',
  hopper: 'Hopper-v5',
};

export type Range = readonly [number, number];

/** What a user may set; everything else follows Gymnasium's defaults for the env. */
export interface EnvOptions {
  /** 'HalfCheetah-v5' | 'Hopper-v5' (also 'mo-halfcheetah-v5', 'mo-hopper-v5'). */
  env: string;
  /** An MJCF file to use instead of the project's own model (assets/mjcf). */
  modelPath?: string;
  frameSkip?: number;
  /** Time limit (Gymnasium's TimeLimit wrapper); default 1000. */
  maxEpisodeSteps?: number;
  resetNoiseScale?: number;
  /**
   * Clip actions to the actuators' ctrlrange before the env sees them (CleanRL's ClipAction wrapper),
   * so the control cost is computed on the clipped action. Default true. With false the env is raw
   * Gymnasium: the cost uses the action as given and MuJoCo clamps the control.
   */
  clipActions?: boolean;
  forwardRewardWeight?: number;
  ctrlCostWeight?: number;
  healthyReward?: number;
  terminateWhenUnhealthy?: boolean;
  healthyZRange?: Range;
  healthyAngleRange?: Range;
  healthyStateRange?: Range;
  /**
   * MuJoCo scratch memory per env in bytes (the model's `<size memory>`); default: the model's own.
   * Gymnasium's files leave it at MuJoCo's default of several MB, which limits how many envs fit in the
   * WASM heap; 1 MiB is plenty for these planar walkers.
   */
  arenaBytes?: number;
}

/** The resolved, plain-data configuration (structured-cloneable: it travels to worker threads). */
export interface EnvConfig {
  name: EnvName;
  kind: 'halfcheetah' | 'hopper';
  modelLabel: string;
  xml: string;
  frameSkip: number;
  maxEpisodeSteps: number;
  resetNoiseScale: number;
  resetVelNoise: 'normal' | 'uniform';
  clipActions: boolean;
  forwardRewardWeight: number;
  ctrlCostWeight: number;
  healthyReward: number;
  terminateWhenUnhealthy: boolean;
  healthyZRange: Range;
  healthyAngleRange: Range;
  healthyStateRange: Range;
  /** |qvel| bound in the observation (Infinity: no clipping). */
  obsVelClip: number;
  rewardNames: string[];
  /** Scratch memory per env, or null to keep the model's. */
  arenaBytes: number | null;
}

interface Defaults {
  kind: EnvConfig['kind'];
  file: string;
  frameSkip: number;
  resetNoiseScale: number;
  resetVelNoise: EnvConfig['resetVelNoise'];
  forwardRewardWeight: number;
  ctrlCostWeight: number;
  healthyReward: number;
  terminateWhenUnhealthy: boolean;
  obsVelClip: number;
  rewardNames: string[];
}

const DEFAULTS: Record<EnvName, Defaults> = {
  'HalfCheetah-v5': {
    kind: 'halfcheetah',
    file: 'half_cheetah.xml',
    frameSkip: 5,
    resetNoiseScale: 0.1,
    resetVelNoise: 'normal',
    forwardRewardWeight: 1.0,
    ctrlCostWeight: 0.1,
    healthyReward: 0,
    terminateWhenUnhealthy: false,
    obsVelClip: Infinity,
    rewardNames: ['velocity', 'neg_ctrl_sq'],
  },
  'Hopper-v5': {
    kind: 'hopper',
    file: 'hopper.xml',
    frameSkip: 4,
    resetNoiseScale: 5e-3,
    resetVelNoise: 'uniform',
    forwardRewardWeight: 1.0,
    ctrlCostWeight: 1e-3,
    healthyReward: 1.0,
    terminateWhenUnhealthy: true,
    obsVelClip: 10,
    rewardNames: ['velocity_healthy', 'height_healthy', 'neg_ctrl_sq_healthy'],
  },
};

/** The project's own MJCF file for an env (assets/mjcf, beside src/ and dist/). */
export function defaultModelPath(name: EnvName): string {
  return fileURLToPath(new URL(`../../assets/mjcf/${DEFAULTS[name].file}`, import.meta.url));
}

/** Maps a user-given env name to its canonical name, or throws naming the known ones. */
export function resolveEnvName(env: unknown): EnvName {
  if (typeof env !== 'string' || env.length === 0) {
    throw new SoupError('ERR_SOUP_INVALID_ARG', `Expected an env name (one of ${ENV_NAMES.join(', ')}) for env but received ${describe(env)}`);
  }
  if ((ENV_NAMES as readonly string[]).includes(env)) return env as EnvName;
  const alias = ALIASES[env.toLowerCase()];
  if (alias) return alias;
  throw new SoupError(
    'ERR_SOUP_INVALID_ARG',
    `unknown env '${env}': expected one of ${ENV_NAMES.join(', ')} (or ${Object.keys(ALIASES)
      .filter((k) => k.startsWith('mo-'))
      .join(', ')})`,
  );
}

function describe(v: unknown): string {
  if (typeof v === 'string') return `'${v}'`;
  if (v === null) return 'null';
  return typeof v === 'object' ? 'an object' : `${typeof v} ${String(v)}`;
}

function num(name: string, v: unknown, def: number, check: (x: number) => boolean, what: string): number {
  if (v === undefined) return def;
  if (typeof v !== 'number' || !check(v)) {
    throw new SoupError('ERR_SOUP_INVALID_ARG', `Expected ${what} for ${name} but received ${describe(v)}`);
  }
  return v;
}

function range(name: string, v: unknown, def: Range): Range {
  if (v === undefined) return def;
  if (!Array.isArray(v) || v.length !== 2 || v.some((x) => typeof x !== 'number' || Number.isNaN(x)) || !(v[0] < v[1])) {
    throw new SoupError('ERR_SOUP_INVALID_ARG', `Expected [low, high] with low < high for ${name} but received ${JSON.stringify(v)}`);
  }
  return [v[0], v[1]];
}

/** Validates options once and reads the MJCF text; the result is what stepping code uses. */
export function resolveEnvConfig(opts: EnvOptions): EnvConfig {
  if (typeof opts !== 'object' || opts === null) {
    throw new SoupError('ERR_SOUP_INVALID_ARG', `Expected an options object but received ${describe(opts)}`);
  }
  const name = resolveEnvName(opts.env);
  const d = DEFAULTS[name];
  if (opts.modelPath !== undefined && (typeof opts.modelPath !== 'string' || opts.modelPath.length === 0)) {
    throw new SoupError('ERR_SOUP_INVALID_ARG', `Expected a file path for modelPath but received ${describe(opts.modelPath)}`);
  }
  const modelPath = opts.modelPath ?? defaultModelPath(name);
  const finite = (x: number) => Number.isFinite(x);
  const nonneg = (x: number) => Number.isFinite(x) && x >= 0;
  const posInt = (x: number) => Number.isInteger(x) && x >= 1;
  if (opts.clipActions !== undefined && typeof opts.clipActions !== 'boolean') {
    throw new SoupError('ERR_SOUP_INVALID_ARG', `Expected a boolean for clipActions but received ${describe(opts.clipActions)}`);
  }
  if (opts.terminateWhenUnhealthy !== undefined && typeof opts.terminateWhenUnhealthy !== 'boolean') {
    throw new SoupError('ERR_SOUP_INVALID_ARG', `Expected a boolean for terminateWhenUnhealthy but received ${describe(opts.terminateWhenUnhealthy)}`);
  }
  return {
    name,
    kind: d.kind,
    modelLabel: modelPath,
    xml: readMjcf(modelPath),
    frameSkip: num('frameSkip', opts.frameSkip, d.frameSkip, posInt, 'a positive integer'),
    maxEpisodeSteps: num('maxEpisodeSteps', opts.maxEpisodeSteps, 1000, posInt, 'a positive integer'),
    resetNoiseScale: num('resetNoiseScale', opts.resetNoiseScale, d.resetNoiseScale, nonneg, 'a finite number >= 0'),
    resetVelNoise: d.resetVelNoise,
    clipActions: opts.clipActions ?? true,
    forwardRewardWeight: num('forwardRewardWeight', opts.forwardRewardWeight, d.forwardRewardWeight, finite, 'a finite number'),
    ctrlCostWeight: num('ctrlCostWeight', opts.ctrlCostWeight, d.ctrlCostWeight, finite, 'a finite number'),
    healthyReward: num('healthyReward', opts.healthyReward, d.healthyReward, finite, 'a finite number'),
    terminateWhenUnhealthy: opts.terminateWhenUnhealthy ?? d.terminateWhenUnhealthy,
    healthyZRange: range('healthyZRange', opts.healthyZRange, [0.7, Infinity]),
    healthyAngleRange: range('healthyAngleRange', opts.healthyAngleRange, [-0.2, 0.2]),
    healthyStateRange: range('healthyStateRange', opts.healthyStateRange, [-100, 100]),
    obsVelClip: d.obsVelClip,
    rewardNames: [...d.rewardNames],
    arenaBytes:
      opts.arenaBytes === undefined
        ? null
        : num('arenaBytes', opts.arenaBytes, 0, (x) => Number.isInteger(x) && x >= 65536, 'an integer number of bytes >= 65536'),
  };
}
