// SPDX-License-Identifier: MIT
// Locomotion control reward (Gymnasium MuJoCo style): forward velocity − α·Σ a², plus an optional
// healthy/alive bonus. The paper's locomotion experts use α = 0 ("risky") and α = 1 ("cautious").
import { SoupError } from '../errors.js';
import { FnReward, rewardError, type BatchingOptions } from './types.js';

export interface ControlRewardOptions {
  /** Control-cost weight α (0 = risky, 1 = cautious). */
  alpha: number;
  forwardWeight?: number;
  /** Bonus added at each step while the agent is healthy (Hopper/Walker/Ant/Humanoid style). */
  healthyReward?: number;
  /** Add the bonus even when `healthy` is false (Gymnasium's terminate_when_unhealthy = false). */
  alwaysHealthy?: boolean;
}

export interface ControlInfo {
  /** Forward velocity of the torso (Gymnasium info['x_velocity']). */
  xVelocity: number;
  action: ArrayLike<number>;
  healthy?: boolean;
}

export interface ControlTerms {
  forward: number;
  ctrlCost: number;
  healthy: number;
  reward: number;
}

export function controlTerms(info: ControlInfo, opts: ControlRewardOptions): ControlTerms {
  const { alpha } = opts;
  if (!(typeof alpha === 'number' && Number.isFinite(alpha) && alpha >= 0))
    throw new SoupError('ERR_SOUP_INVALID_ARG', `control reward: 'alpha' must be a finite number >= 0, got ${String(alpha)}`);
  let sq = 0;
  for (let i = 0; i < info.action.length; i++) sq += info.action[i] * info.action[i];
  const forward = (opts.forwardWeight ?? 1) * info.xVelocity;
  const ctrlCost = alpha * sq;
  const healthy = (opts.healthyReward ?? 0) * ((info.healthy ?? true) || opts.alwaysHealthy ? 1 : 0);
  return { forward, ctrlCost, healthy, reward: forward - ctrlCost + healthy };
}

/** r = w·v_x − α·Σ aᵢ² + healthy bonus, for one environment step. */
export function controlReward(info: ControlInfo, opts: ControlRewardOptions): number {
  return controlTerms(info, opts).reward;
}

/**
 * The same as a Reward over samples whose `meta` carries the step info:
 * `meta.x_velocity` (or `xVelocity`), `meta.action` (number[]), optional `meta.is_healthy` / `healthy`.
 */
export function locomotionReward(opts: ControlRewardOptions & BatchingOptions & { name?: string }): FnReward {
  controlTerms({ xVelocity: 0, action: [] }, opts); // validate alpha now
  const name = opts.name ?? `locomotion(alpha=${opts.alpha})`;
  return new FnReward(
    name,
    (s, i) => {
      const m = s.meta ?? {};
      const v = m.x_velocity ?? m.xVelocity;
      const a = m.action;
      if (typeof v !== 'number') throw rewardError(name, `sample ${i}: meta.x_velocity must be a number`);
      if (!Array.isArray(a) || a.some((x) => typeof x !== 'number')) throw rewardError(name, `sample ${i}: meta.action must be an array of numbers`);
      const h = m.is_healthy ?? m.healthy;
      return controlReward({ xVelocity: v, action: a as number[], healthy: typeof h === 'boolean' ? h : undefined }, opts);
    },
    opts,
  );
}
