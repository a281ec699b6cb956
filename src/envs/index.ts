// SPDX-License-Identifier: MIT
// Locomotion environments over mujoco-js (official MuJoCo 3.3 WASM): HalfCheetah-v5 and Hopper-v5 with
// Gymnasium v5 semantics and MO-Gymnasium reward vectors, vectorised, seeded, optionally threaded.
export { VecEnv, checkPolicyFits, type VecEnvOptions, type EnvInfo, type VecStep } from './vec.js';
export { ENV_NAMES, resolveEnvName, resolveEnvConfig, defaultModelPath, type EnvName, type EnvOptions, type EnvConfig, type Range } from './specs.js';
export { type Frame, type VecBuffers } from './shard.js';
export { loadMujoco, compileMjcf } from './mujoco.js';
export { Rng } from './rng.js';
export { RolloutCollector, evaluateEpisodes, recordEpisodeFrames, type PolicyFn, type Rollout, type EpisodeRecord, type EvaluationResult } from './rollout.js';
export { filmstripSvg, filmstripPng, type FilmstripRow, type FilmstripOptions } from './render.js';
