// SPDX-License-Identifier: MIT
// One thread's slice of a vector of envs: many MjData on one MjModel, stepped in a plain loop that
// reads actions from and writes observations/rewards/flags into shared flat buffers. The same code
// runs on the main thread and in worker threads (src/envs/worker.ts), so results do not depend on
// the thread split: each env has its own random stream derived from (seed, env index).
import { SoupError } from '../errors.js';
import { compileMjcf, DataViews, type MjData, type MjModel, type Mujoco } from './mujoco.js';
import { Rng } from './rng.js';
import type { EnvConfig } from './specs.js';

/** Sizes a vector of envs needs; fixed by the model. */
export interface EnvDims {
  numEnvs: number;
  obsDim: number;
  actDim: number;
  rewardDim: number;
}

/** Views over the flat buffers shared by every thread stepping the vector. */
export interface VecBuffers {
  /** [numEnvs·actDim] actions for the next step (written by the caller). */
  actions: Float32Array;
  /** [numEnvs·obsDim] current observation (after an automatic reset: the new episode's first). */
  obs: Float32Array;
  /** [numEnvs·obsDim] last observation of an episode that ended at this step (else stale). */
  finalObs: Float32Array;
  /** [numEnvs·rewardDim] reward vector of the last step (MO-Gymnasium's). */
  rewards: Float64Array;
  /** [numEnvs] Gymnasium's scalar reward of the last step. */
  reward: Float64Array;
  /** [numEnvs] 1 when the episode ended by the env's rule (Hopper unhealthy). */
  terminated: Uint8Array;
  /** [numEnvs] 1 when the episode hit the time limit. */
  truncated: Uint8Array;
  /** [numEnvs] steps taken in the current episode. */
  episodeStep: Int32Array;
  /** [numEnvs] rootx after the last step (Gymnasium's info.x_position; before any automatic reset). */
  xPosition: Float64Array;
  /** [numEnvs] Σa² of the last step's (clipped) action. */
  ctrlSq: Float64Array;
  /** [numEnvs] rootx at the start of the current episode (after the reset noise). */
  startX: Float64Array;
}

/** Byte layout of VecBuffers in one (Shared)ArrayBuffer, 8-byte aligned sections. */
export function bufferLayout(dims: EnvDims): { bytes: number; offsets: Record<keyof VecBuffers, number> } {
  const { numEnvs: n, obsDim, actDim, rewardDim } = dims;
  const sizes: [keyof VecBuffers, number][] = [
    ['rewards', n * rewardDim * 8],
    ['reward', n * 8],
    ['xPosition', n * 8],
    ['ctrlSq', n * 8],
    ['startX', n * 8],
    ['actions', n * actDim * 4],
    ['obs', n * obsDim * 4],
    ['finalObs', n * obsDim * 4],
    ['episodeStep', n * 4],
    ['terminated', n],
    ['truncated', n],
  ];
  const offsets = {} as Record<keyof VecBuffers, number>;
  let at = 0;
  for (const [k, size] of sizes) {
    offsets[k] = at;
    at += Math.ceil(size / 8) * 8;
  }
  return { bytes: at, offsets };
}

export function makeBuffers(buf: ArrayBufferLike, dims: EnvDims): VecBuffers {
  const { offsets: o } = bufferLayout(dims);
  const { numEnvs: n, obsDim, actDim, rewardDim } = dims;
  return {
    rewards: new Float64Array(buf, o.rewards, n * rewardDim),
    reward: new Float64Array(buf, o.reward, n),
    xPosition: new Float64Array(buf, o.xPosition, n),
    ctrlSq: new Float64Array(buf, o.ctrlSq, n),
    startX: new Float64Array(buf, o.startX, n),
    actions: new Float32Array(buf, o.actions, n * actDim),
    obs: new Float32Array(buf, o.obs, n * obsDim),
    finalObs: new Float32Array(buf, o.finalObs, n * obsDim),
    episodeStep: new Int32Array(buf, o.episodeStep, n),
    terminated: new Uint8Array(buf, o.terminated, n),
    truncated: new Uint8Array(buf, o.truncated, n),
  };
}

const MJ_JNT_SLIDE = 2;
const MJ_JNT_HINGE = 3;

/** Compiles the config's MJCF and checks it is a planar walker the env's rules apply to. */
export function loadEnvModel(mj: Mujoco, cfg: EnvConfig): MjModel {
  const m = compileMjcf(mj, cfg.xml, cfg.modelLabel);
  const jt = m.jnt_type as Int32Array;
  const adr = m.jnt_qposadr as Int32Array;
  const planar = m.njnt >= 3 && jt[0] === MJ_JNT_SLIDE && jt[1] === MJ_JNT_SLIDE && jt[2] === MJ_JNT_HINGE && adr[0] === 0 && adr[1] === 1 && adr[2] === 2;
  if (!planar || m.nu < 1 || m.nq !== m.nv) {
    const types = Array.from(jt.subarray(0, 3), (t) => ['free', 'ball', 'slide', 'hinge'][t] ?? String(t));
    const msg = `MJCF model ${cfg.modelLabel} does not fit ${cfg.name}: it needs a planar root (joints 0-2: slide x, slide z, hinge y; nq = nv) and at least one actuator; got joints [${types.join(', ')}], nq=${m.nq}, nv=${m.nv}, nu=${m.nu}`;
    m.delete();
    throw new SoupError('ERR_SOUP_SHAPE_MISMATCH', msg);
  }
  if (cfg.arenaBytes !== null) m.narena = BigInt(cfg.arenaBytes);
  return m;
}

/** The geometry of one env at one instant, projected onto the x–z plane (for drawing). */
export interface Frame {
  /** rootx of the body (m). */
  x: number;
  /** Simulated time since the episode start (s), when known. */
  time?: number;
  /** One entry per non-plane geom: segment end points (m) and radius; spheres have a = b. */
  capsules: { ax: number; az: number; bx: number; bz: number; r: number; body: number }[];
}

export class EnvShard {
  readonly dt: number;
  readonly obsDim: number;
  readonly actDim: number;
  readonly rewardDim: number;
  private readonly datas: MjData[] = [];
  private readonly views: DataViews[] = [];
  private readonly rngs: Rng[] = [];
  private readonly ctrlLow: Float64Array;
  private readonly ctrlHigh: Float64Array;
  private readonly qpos0: Float64Array;

  constructor(
    private readonly mj: Mujoco,
    readonly model: MjModel,
    private readonly cfg: EnvConfig,
    private readonly buf: VecBuffers,
    /** First env index (global) and one past the last handled by this shard. */
    readonly lo: number,
    readonly hi: number,
  ) {
    this.obsDim = model.nq - 1 + model.nv;
    this.actDim = model.nu;
    this.rewardDim = cfg.rewardNames.length;
    this.dt = model.opt.timestep * cfg.frameSkip;
    // Copies: model views also go stale when the heap grows.
    const cr = model.actuator_ctrlrange as Float64Array;
    const limited = model.actuator_ctrllimited as Uint8Array;
    this.ctrlLow = new Float64Array(this.actDim);
    this.ctrlHigh = new Float64Array(this.actDim);
    for (let k = 0; k < this.actDim; k++) {
      this.ctrlLow[k] = limited[k] ? cr[2 * k] : -Infinity;
      this.ctrlHigh[k] = limited[k] ? cr[2 * k + 1] : Infinity;
    }
    this.qpos0 = Float64Array.from(model.qpos0 as Float64Array);
    try {
      for (let i = lo; i < hi; i++) {
        this.datas.push(new mj.MjData(model));
        this.rngs.push(new Rng(0, i));
      }
    } catch (err) {
      const made = this.datas.length;
      this.dispose();
      const mb = (Number(model.narena) / 1048576).toFixed(1);
      throw new SoupError(
        'ERR_SOUP_OOM',
        `MuJoCo could not allocate env ${lo + made} of ${cfg.name} (${hi - lo} envs on this thread, ${mb} MB of scratch memory each, model ${cfg.modelLabel}): use fewer envs, or a smaller arena (option arenaBytes, or <size memory="1M"/> in the MJCF)`,
        { cause: err },
      );
    }
    // Views are taken after every allocation, then refreshed whenever the heap grows.
    for (const d of this.datas) this.views.push(new DataViews(d));
  }

  /** Action bounds used for clipping (the actuators' ctrlrange). */
  actionBounds(): { low: Float64Array; high: Float64Array } {
    return { low: this.ctrlLow.slice(), high: this.ctrlHigh.slice() };
  }

  /** Reseeds (when `seed` is given) and resets every env of the shard. */
  reset(seed?: number): void {
    for (let i = this.lo; i < this.hi; i++) {
      if (seed !== undefined) this.rngs[i - this.lo].reseed(seed, i);
      this.resetOne(i);
      this.writeObs(i, this.buf.obs);
      this.buf.terminated[i] = 0;
      this.buf.truncated[i] = 0;
    }
  }

  private resetOne(i: number): void {
    const { mj, model, cfg } = this;
    const d = this.datas[i - this.lo];
    const rng = this.rngs[i - this.lo];
    mj.mj_resetData(model, d);
    const v = this.views[i - this.lo].fresh();
    const s = cfg.resetNoiseScale;
    // Gymnasium draws all qpos noise, then all qvel noise.
    for (let k = 0; k < model.nq; k++) v.qpos[k] = this.qpos0[k] + rng.uniform(-s, s);
    if (cfg.resetVelNoise === 'normal') for (let k = 0; k < model.nv; k++) v.qvel[k] = s * rng.normal();
    else for (let k = 0; k < model.nv; k++) v.qvel[k] = rng.uniform(-s, s);
    mj.mj_forward(model, d);
    this.buf.episodeStep[i] = 0;
    this.buf.startX[i] = v.qpos[0];
  }

  private writeObs(i: number, out: Float32Array): void {
    const v = this.views[i - this.lo].fresh();
    const o = i * this.obsDim;
    const nq = this.model.nq;
    for (let k = 1; k < nq; k++) out[o + k - 1] = v.qpos[k];
    const c = this.cfg.obsVelClip;
    for (let k = 0; k < this.model.nv; k++) {
      const q = v.qvel[k];
      out[o + nq - 1 + k] = q > c ? c : q < -c ? -c : q;
    }
  }

  /** Hopper's healthy rule on the current state (Gymnasium's is_healthy; open intervals). */
  private healthy(v: DataViews): boolean {
    const { healthyZRange: zr, healthyAngleRange: ar, healthyStateRange: sr } = this.cfg;
    const z = v.qpos[1];
    const angle = v.qpos[2];
    if (!(zr[0] < z && z < zr[1]) || !(ar[0] < angle && angle < ar[1])) return false;
    for (let k = 2; k < this.model.nq; k++) if (!(sr[0] < v.qpos[k] && v.qpos[k] < sr[1])) return false;
    for (let k = 0; k < this.model.nv; k++) if (!(sr[0] < v.qvel[k] && v.qvel[k] < sr[1])) return false;
    return true;
  }

  /** One env step (frame_skip physics steps) for every env of the shard, with automatic reset. */
  step(): void {
    const { mj, model, cfg, buf } = this;
    const A = this.actDim;
    const R = this.rewardDim;
    const skip = cfg.frameSkip;
    for (let i = this.lo; i < this.hi; i++) {
      const d = this.datas[i - this.lo];
      const v = this.views[i - this.lo].fresh();
      let sq = 0;
      for (let k = 0; k < A; k++) {
        let a = buf.actions[i * A + k];
        if (cfg.clipActions) a = a < this.ctrlLow[k] ? this.ctrlLow[k] : a > this.ctrlHigh[k] ? this.ctrlHigh[k] : a;
        v.ctrl[k] = a;
        sq += a * a;
      }
      const x0 = v.qpos[0];
      for (let f = 0; f < skip; f++) mj.mj_step(model, d);
      const x1 = v.qpos[0];
      const vel = (x1 - x0) / this.dt;
      const steps = ++buf.episodeStep[i];
      let term = false;
      if (cfg.kind === 'halfcheetah') {
        buf.rewards[i * R] = vel;
        buf.rewards[i * R + 1] = -sq;
        buf.reward[i] = cfg.forwardRewardWeight * vel - cfg.ctrlCostWeight * sq;
      } else {
        const ok = this.healthy(v);
        const h = ok ? cfg.healthyReward : 0;
        buf.rewards[i * R] = vel + h;
        buf.rewards[i * R + 1] = 10 * (v.qpos[1] - this.qpos0[1]) + h;
        buf.rewards[i * R + 2] = -sq + h;
        buf.reward[i] = cfg.forwardRewardWeight * vel + h - cfg.ctrlCostWeight * sq;
        term = !ok && cfg.terminateWhenUnhealthy;
      }
      buf.xPosition[i] = x1;
      buf.ctrlSq[i] = sq;
      const trunc = steps >= cfg.maxEpisodeSteps;
      buf.terminated[i] = term ? 1 : 0;
      buf.truncated[i] = trunc ? 1 : 0;
      if (term || trunc) {
        this.writeObs(i, buf.finalObs);
        this.resetOne(i);
      }
      this.writeObs(i, buf.obs);
    }
  }

  /** Current qpos/qvel of env `i` (copies, float64). */
  state(i: number): { qpos: Float64Array; qvel: Float64Array } {
    this.check(i);
    const v = this.views[i - this.lo].fresh();
    return { qpos: v.qpos.slice(), qvel: v.qvel.slice() };
  }

  /** Sets env `i` to a given state (Gymnasium's set_state: then mj_forward) and rewrites its obs. */
  setState(i: number, qpos: ArrayLike<number>, qvel: ArrayLike<number>): void {
    this.check(i);
    if (qpos.length !== this.model.nq || qvel.length !== this.model.nv) {
      throw new SoupError(
        'ERR_SOUP_SHAPE_MISMATCH',
        `setState: qpos has ${qpos.length} values and qvel ${qvel.length}; the model needs nq=${this.model.nq}, nv=${this.model.nv}`,
      );
    }
    const v = this.views[i - this.lo].fresh();
    v.qpos.set(qpos);
    v.qvel.set(qvel);
    this.mj.mj_forward(this.model, this.datas[i - this.lo]);
    this.writeObs(i, this.buf.obs);
  }

  /** Geometry of env `i` now, projected onto the x–z plane. */
  frame(i: number): Frame {
    this.check(i);
    const m = this.model;
    // mj_step leaves positions of the step's start in geom_xpos: recompute them for the state now.
    this.mj.mj_kinematics(m, this.datas[i - this.lo]);
    const v = this.views[i - this.lo].fresh();
    const type = m.geom_type as Int32Array;
    const size = m.geom_size as Float64Array;
    const body = m.geom_bodyid as Int32Array;
    const capsules: Frame['capsules'] = [];
    for (let g = 0; g < m.ngeom; g++) {
      if (type[g] === 0) continue; // plane (floor)
      const cx = v.geomXpos[3 * g];
      const cz = v.geomXpos[3 * g + 2];
      // capsule/cylinder (3, 5): half length size[1] along the local z axis (third column of xmat)
      const half = type[g] === 3 || type[g] === 5 ? size[3 * g + 1] : 0;
      const ex = v.geomXmat[9 * g + 2] * half;
      const ez = v.geomXmat[9 * g + 8] * half;
      capsules.push({ ax: cx - ex, az: cz - ez, bx: cx + ex, bz: cz + ez, r: size[3 * g], body: body[g] });
    }
    return { x: v.qpos[0], time: this.buf.episodeStep[i] * this.dt, capsules };
  }

  private check(i: number): void {
    if (!Number.isInteger(i) || i < this.lo || i >= this.hi) {
      throw new SoupError('ERR_SOUP_INVALID_ARG', `env index ${i} is not on this thread (envs ${this.lo}..${this.hi - 1})`);
    }
  }

  dispose(): void {
    for (const d of this.datas) d.delete();
    this.datas.length = 0;
  }
}
