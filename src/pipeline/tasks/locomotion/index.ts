// SPDX-License-Identifier: MIT
// The paper's locomotion experiment (App. H) on HalfCheetah-v5: pre-train PPO on v − 0.1·Σa², freeze the
// observation statistics, fine-tune (fresh critic, the fine-tune's own lr and entropy cost) a risky expert
// (R1 = v) and a cautious one (R2 = v − α·Σa²) and MORL (v − μ·Σa²) side by side, interpolate every policy
// parameter over 11 λ with `interpolate()`, evaluate each model deterministically on the same seeded
// episodes, and write the report (front, MORL, hypervolumes with the stated reference, LMC gaps per λ and
// soup − MORL with paired standard errors, the verdict, filmstrips of the gaits). Design notes:
// docs/locomotion.md.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';
import { SoupError } from '../../../errors.js';
import { parseStrict } from '../../../util/config.js';
import { formatDuration } from '../../../util/duration.js';
import {
  VecEnv,
  evaluateEpisodes,
  resolveEnvName,
  filmstripPng,
  filmstripSvg,
  recordEpisodeFrames,
  type EpisodeRecord,
  type FilmstripRow,
} from '../../../envs/index.js';
import type { TensorMap } from '../../../io/index.js';
import { analyse, contrasts, hypervolumeRatio, lambdaGrid, pairedContrast, type Paired, type Scored } from '../../../pareto/index.js';
import { frontPlot, renderSpec, rewardVsLambdaPlot, PLOT_CONFIG, type Plot } from '../../../report/index.js';
import { interpolate } from '../../../soup/index.js';
import {
  ControlPolicy,
  ControlPPOConfigSchema,
  ControlTrainer,
  isPolicyParameter,
  type ControlPPOConfig,
  type ControlTrainResult,
} from '../../../train/index.js';
import { cachedStage, hashOf as stageHash, readRecord, recordedHash, type StageEvent } from '../../stages.js';

// ---- configuration ----------------------------------------------------------------------------------
/** The fine-tunes' PPO settings: chosen by "the experts still learn" (docs/locomotion.md, the table). */
export const FINETUNE_DEFAULTS = { learning_rate: 3e-4, anneal_lr: false, ent_coef: 1e-3 } as const;

export const LocomotionSchema = z
  .object({
    name: z.string().default('locomotion'),
    seed: z.number().int().nonnegative().default(0),
    output: z.string().default('runs/locomotion'),
    env: z
      .object({
        env: z.string().default('HalfCheetah-v5'),
        num_envs: z.number().int().positive().default(8),
        /** Threads stepping the training envs (results do not depend on it). */
        threads: z.number().int().positive().default(1),
        /** Episode length (Gymnasium's 1000; tests use less). */
        max_episode_steps: z.number().int().positive().default(1000),
      })
      .strict()
      .prefault({}),
    policy: z
      .object({ hidden: z.array(z.number().int().positive()).min(1).default([64, 64]) })
      .strict()
      .prefault({}),
    ppo: ControlPPOConfigSchema.prefault({}),
    /** Pre-training on Gymnasium's reward v − 0.1·Σa² (reward-vector weights [1, 0.1]). */
    pretrain: z
      .object({
        steps: z.number().int().positive().default(400_000),
        ctrl_cost: z.number().min(0).default(0.1),
        /** Threads stepping the envs while pre-training runs alone (the fine-tunes overlap instead). */
        threads: z.number().int().positive().default(2),
      })
      .strict()
      .prefault({}),
    /** Fine-tuning from the pre-trained policy with frozen observation statistics. */
    experts: z
      .object({
        steps: z.number().int().positive().default(150_000),
        /** R2 = v − alpha·Σa² (the cautious expert); R1 = v (the risky one). */
        alpha: z.number().positive().default(1),
      })
      .strict()
      .prefault({}),
    /** PPO settings of every fine-tune (experts and MORL) over `ppo`, which pre-training uses: the paper's
     *  Table 6 ranges are lr {1e-5, 3e-5, 1e-4}, entropy cost {1e-3, 3e-3, 1e-2} (discount: `ppo.gamma`,
     *  0.99, is in its range {0.97, 0.99, 0.999}). Defaults chosen in docs/locomotion.md. */
    finetune: z
      .object({
        learning_rate: z.number().positive().default(FINETUNE_DEFAULTS.learning_rate),
        /** Anneal the lr linearly to 0 over the fine-tune (CleanRL) or keep it constant. */
        anneal_lr: z.boolean().default(FINETUNE_DEFAULTS.anneal_lr),
        ent_coef: z.number().min(0).default(FINETUNE_DEFAULTS.ent_coef),
      })
      .strict()
      .prefault({}),
    /** MORL runs on v − μ·Σa² (μ in reward-vector weight terms; the paper's α = 0.5). */
    morl: z
      .object({ ctrl_costs: z.array(z.number().min(0)).default([0.5]) })
      .strict()
      .prefault({}),
    sweep: z
      .object({
        lambdas: z.number().int().min(2).default(11),
        /** Evaluation episodes, shared by every model: enough for paired standard errors (n − 1 = 29);
         *  at least 2, since a standard error needs a spread. */
        episodes: z.number().int().min(2).default(30),
        seed: z.number().int().nonnegative().default(1000),
      })
      .strict()
      .prefault({}),
    render: z
      .object({ every: z.number().int().positive().default(12), frames: z.number().int().positive().default(8) })
      .strict()
      .prefault({}),
  })
  .strict();

export type LocomotionConfig = z.output<typeof LocomotionSchema>;
export type LocomotionInput = z.input<typeof LocomotionSchema>;

export function parseLocomotion(x: unknown, src = 'locomotion experiment'): LocomotionConfig {
  const r = { data: parseStrict(LocomotionSchema, x ?? {}, src) };
  // R1 = v and R2 = v − α·Σa² are read off mo-halfcheetah's vector [v, −Σa²]; Hopper's vector has
  // other terms (each with the healthy reward added), so it would need its own objectives.
  const env = resolveEnvName(r.data.env.env);
  if (env !== 'HalfCheetah-v5')
    throw new SoupError(
      'ERR_SOUP_CONFIG',
      `${src}: env.env: the locomotion experiment runs on HalfCheetah-v5 (its reward vector is [v, −Σa²]); got '${r.data.env.env}'`,
    );
  return r.data;
}

/** The demo's settings: the protocol of docs/locomotion.md (400k pre-training steps, 150k per fine-tune). */
export const LOCOMOTION_DEMO: LocomotionInput = { name: 'demo-locomotion', output: 'runs/demo/locomotion' };

/** A fine-tune's starting weights (the paper's App. H): the pre-trained actor and observation statistics,
 *  and a fresh critic — the value function is discarded after pre-training, since it estimated returns
 *  of the pre-training reward, not of the expert's. */
export function fineTuneStart(pretrained: TensorMap, fresh: TensorMap): TensorMap {
  const out: TensorMap = {};
  for (const [n, t] of Object.entries(pretrained)) out[n] = n.startsWith('critic.') ? fresh[n] : t;
  return out;
}

// ---- events -------------------------------------------------------------------------------------------
export type LocomotionEvent =
  | StageEvent
  | { event: 'update'; run: string; update: number; updates: number; step: number; meanReturn?: number; seconds: number }
  | { event: 'eval'; name: string; rewards: number[]; done: number; total: number }
  | { event: 'finished'; report: string; html: string; seconds: number; summary: string[] };

export interface LocomotionOptions {
  onEvent?: (e: LocomotionEvent) => void;
  signal?: AbortSignal;
}

// ---- evaluation ---------------------------------------------------------------------------------------
export interface LocoEntry {
  kind: 'init' | 'expert' | 'soup' | 'morl';
  name: string;
  lambda?: number[];
  mu?: number[];
  /** [R1, R2] = [Σv, Σv − α·Σa²] per episode, mean over episodes. */
  rewards: number[];
  stderr: number[];
  /** Mean per-episode sums of the raw terms: velocity Σv, control Σa², distance (m). */
  sumV: number;
  sumA2: number;
  distance: number;
  /** Raw [Σv, −Σa²] per episode. */
  episodes: number[][];
  /** R1, R2 and Σa² per episode, in episode order (the same seeded episodes for every model). */
  perEpisode: { r1: number[]; r2: number[]; a2: number[] };
}

function meanSe(x: number[]): [number, number] {
  const n = x.length;
  const m = x.reduce((a, b) => a + b, 0) / n;
  const s = n > 1 ? Math.sqrt(x.reduce((a, b) => a + (b - m) ** 2, 0) / (n - 1) / n) : 0;
  return [m, s];
}

function entryOf(kind: LocoEntry['kind'], name: string, eps: EpisodeRecord[], alpha: number, extra: Partial<LocoEntry> = {}): LocoEntry {
  // the env's reward vector is [v, −Σa²] (mo-halfcheetah): R1 = v, R2 = v − α·Σa²
  const r1 = eps.map((e) => e.returns[0]);
  const r2 = eps.map((e) => e.returns[0] + alpha * e.returns[1]);
  const [m1, s1] = meanSe(r1);
  const [m2, s2] = meanSe(r2);
  return {
    kind,
    name,
    rewards: [m1, m2],
    stderr: [s1, s2],
    sumV: m1,
    sumA2: -meanSe(eps.map((e) => e.returns[1]))[0],
    distance: meanSe(eps.map((e) => e.distance))[0],
    episodes: eps.map((e) => [e.returns[0], e.returns[1]]),
    perEpisode: { r1, r2, a2: eps.map((e) => -e.returns[1]) },
    ...extra,
  };
}

/** The input hash of a run; keys as written: the recipe cached policies were saved with (src/pipeline/stages.ts). */
const hashOf = (v: unknown) => stageHash(v, { keys: 'as-written' });

function params(t: TensorMap): TensorMap {
  return Object.fromEntries(Object.entries(t).filter(([n]) => isPolicyParameter(n)));
}

// ---- the run ----------------------------------------------------------------------------------------------
export interface LocomotionResult {
  dir: string;
  report: LocomotionReport;
  files: string[];
}

/** Runs (or reuses, by config hash) every stage and writes the report into `cfg.output`. */
export async function runLocomotion(input: LocomotionInput, opts: LocomotionOptions = {}): Promise<LocomotionResult> {
  const cfg = parseLocomotion(input);
  const emit = opts.onEvent ?? (() => {});
  const dir = cfg.output;
  mkdirSync(dir, { recursive: true });
  const t0 = performance.now();
  const timings: Record<string, number> = {};
  const envOpts = { env: cfg.env.env, numEnvs: cfg.env.num_envs, threads: cfg.env.threads, maxEpisodeSteps: cfg.env.max_episode_steps };
  const ppo = cfg.ppo;
  const trainCost: Record<string, { steps: number; seconds: ControlTrainResult['seconds'] }> = {};
  const curves: Record<string, Array<{ step: number; ret: number }>> = {};

  // A run's policy file has a sidecar `<name>.json` with the hash of everything it came from; a run whose
  // sidecar holds the same hash is reused.
  const runFile = (name: string) => join(dir, `${name}.safetensors`);
  const metaFile = (name: string) => join(dir, `${name}.json`);
  const load = async (name: string): Promise<ControlPolicy> => {
    const m = readRecord<{ cost: (typeof trainCost)[string]; curve: (typeof curves)[string] }>(metaFile(name))!;
    trainCost[name] = m.cost;
    curves[name] = m.curve;
    return ControlPolicy.load(runFile(name));
  };

  const train = async (
    name: string,
    start: TensorMap | undefined,
    weights: number[],
    steps: number,
    seed: number,
    hash: string,
    config: ControlPPOConfig,
    threads = cfg.env.threads,
  ): Promise<ControlPolicy> =>
    (
      await cachedStage({
        stage: name,
        hash,
        emit,
        recorded: () => recordedHash(metaFile(name), { needs: [runFile(name)] }),
        load: () => load(name),
        compute: async () => {
          emit({ event: 'stage', stage: name, status: 'start', detail: `${steps} steps on v − ${weights[1]}·Σa²` });
          const env = await VecEnv.create({ ...envOpts, seed, threads: Math.min(threads, envOpts.numEnvs) });
          const fresh = ControlPolicy.create({ obsDim: env.info.obsDim, actDim: env.info.actDim, hidden: cfg.policy.hidden, seed });
          let policy = fresh;
          if (start) {
            policy = ControlPolicy.fromTensors(fineTuneStart(start, fresh.tensors()), { source: 'the pre-trained policy', seed, env: env.info });
            fresh.dispose();
          }
          policy.frozen = start !== undefined; // fine-tunes keep the pre-trained observation statistics
          const curve: Array<{ step: number; ret: number }> = [];
          try {
            const trainer = new ControlTrainer(env, policy, { rewardWeights: weights, config });
            const updates = Math.floor(steps / trainer.batchSize);
            const ts = performance.now();
            const res = await trainer.train(steps, {
              seed,
              signal: opts.signal,
              onUpdate: (s) => {
                const eps = s.episodes;
                const ret = eps.length ? eps.reduce((a, e) => a + e.returns[0] * weights[0] + e.returns[1] * weights[1], 0) / eps.length : undefined;
                if (ret !== undefined) curve.push({ step: s.step, ret });
                emit({ event: 'update', run: name, update: s.update, updates, step: s.step, meanReturn: ret, seconds: (performance.now() - ts) / 1000 });
              },
            });
            trainCost[name] = { steps: res.steps, seconds: res.seconds };
            curves[name] = curve;
            await policy.save(runFile(name), { run: name, env: cfg.env.env, reward_weights: weights.join(','), steps: String(res.steps) });
            writeFileSync(metaFile(name), JSON.stringify({ hash, cost: trainCost[name], curve }, null, 1));
            emit({ event: 'stage', stage: name, status: 'done', seconds: res.seconds.total });
            return policy;
          } catch (e) {
            policy.dispose();
            throw e;
          } finally {
            await env.close();
          }
        },
      })
    ).value;

  // 1. pre-training
  let ts = performance.now();
  const preWeights = [1, cfg.pretrain.ctrl_cost];
  // results do not depend on the thread split (envs own their seed streams), so it is not hashed
  const preHash = hashOf({
    env: { ...cfg.env, threads: undefined },
    policy: cfg.policy,
    ppo,
    pretrain: { ...cfg.pretrain, threads: undefined },
    seed: cfg.seed,
  });
  const pre = await train('pretrained', undefined, preWeights, cfg.pretrain.steps, cfg.seed, preHash, ppo, cfg.pretrain.threads);
  const preTensors = pre.tensors();
  timings.pretrain = (performance.now() - ts) / 1000;

  // 2. experts and MORL, side by side: while one run's PPO update is on a native thread, another steps
  //    its envs on the JS thread. Observation statistics are the pre-trained ones, frozen; the critic is
  //    fresh; lr, its schedule and the entropy cost are the fine-tune's own (`finetune`).
  ts = performance.now();
  const ftPpo: ControlPPOConfig = { ...ppo, ...cfg.finetune };
  const alpha = cfg.experts.alpha;
  const runs: Array<{ name: string; kind: 'expert' | 'morl'; weights: number[] }> = [
    { name: 'risky', kind: 'expert', weights: [1, 0] },
    { name: 'cautious', kind: 'expert', weights: [1, alpha] },
    ...cfg.morl.ctrl_costs.map((c) => ({ name: `morl-${c}`, kind: 'morl' as const, weights: [1, c] })),
  ];
  const trained = await Promise.all(
    runs.map((r, i) =>
      train(
        r.name,
        preTensors,
        r.weights,
        cfg.experts.steps,
        cfg.seed + 1 + i,
        hashOf({ preHash, experts: cfg.experts.steps, w: r.weights, i, finetune: cfg.finetune }),
        ftPpo,
      ),
    ),
  );
  timings.finetune = (performance.now() - ts) / 1000;
  const [risky, cautious] = trained;

  // 3. soups over λ and evaluation: every model on the same seeded episodes, mean action
  ts = performance.now();
  const evalEnv = await VecEnv.create({ env: cfg.env.env, numEnvs: cfg.sweep.episodes, seed: cfg.sweep.seed, maxEpisodeSteps: cfg.env.max_episode_steps });
  const entries: LocoEntry[] = [];
  const lambdas = lambdaGrid(cfg.sweep.lambdas - 1);
  const total = 1 + runs.length + lambdas.length;
  const evalOne = (p: ControlPolicy, kind: LocoEntry['kind'], name: string, extra: Partial<LocoEntry> = {}) => {
    const r = evaluateEpisodes(evalEnv, p.policyFn(), { seed: cfg.sweep.seed });
    const e = entryOf(kind, name, r.episodes, alpha, extra);
    entries.push(e);
    emit({ event: 'eval', name, rewards: e.rewards, done: entries.length, total });
    return e;
  };
  const soupPolicies: Record<string, ControlPolicy> = {};
  try {
    pre.frozen = true;
    evalOne(pre, 'init', 'pretrained');
    runs.forEach((r, i) =>
      evalOne(trained[i], r.kind, r.name, r.kind === 'morl' ? { mu: [1 - r.weights[1], r.weights[1]] } : { lambda: i === 0 ? [1, 0] : [0, 1] }),
    );
    const sources = [params(risky.tensors()), params(cautious.tensors())];
    const shared = Object.fromEntries(Object.entries(preTensors).filter(([n]) => !isPolicyParameter(n)));
    for (const l of lambdas) {
      // θ(λ) = (1 − λ)·θ_risky + λ·θ_cautious over every parameter; the frozen statistics are shared
      const mixed = await interpolate(sources, [1 - l, l], { signal: opts.signal });
      const p = ControlPolicy.fromTensors({ ...mixed, ...shared }, { source: `soup λ=${l}` });
      p.frozen = true;
      const name = `soup λ=${l.toFixed(1)}`;
      evalOne(p, 'soup', name, { lambda: [1 - l, l] });
      soupPolicies[l.toFixed(1)] = p;
    }
    timings.sweep = (performance.now() - ts) / 1000;

    // 4. filmstrips: one episode start per expert, λ = 0.5 and MORL (same seed)
    ts = performance.now();
    const filmEnv = await VecEnv.create({ env: cfg.env.env, numEnvs: 1, seed: cfg.sweep.seed, maxEpisodeSteps: cfg.env.max_episode_steps });
    const rows: FilmstripRow[] = [];
    const film = (label: string, p: ControlPolicy, e: LocoEntry | undefined) => {
      const { frames } = recordEpisodeFrames(filmEnv, p.policyFn(), {
        seed: cfg.sweep.seed,
        every: cfg.render.every,
        maxFrames: cfg.render.frames,
        maxSteps: cfg.render.every * (cfg.render.frames - 1),
      });
      rows.push({ label, frames, note: e ? `Σv ${e.sumV.toFixed(0)}, Σa² ${e.sumA2.toFixed(0)}` : undefined });
    };
    film(
      'risky (λ = 0)',
      risky,
      entries.find((e) => e.name === 'risky'),
    );
    if (soupPolicies['0.5'])
      film(
        'soup λ = 0.5',
        soupPolicies['0.5'],
        entries.find((e) => e.name === 'soup λ=0.5'),
      );
    film(
      'cautious (λ = 1)',
      cautious,
      entries.find((e) => e.name === 'cautious'),
    );
    runs.forEach(
      (r, i) =>
        r.kind === 'morl' &&
        film(
          `MORL μ = ${r.weights[1]}`,
          trained[i],
          entries.find((e) => e.name === r.name),
        ),
    );
    await filmEnv.close();
    const strip = { svg: filmstripSvg(rows, { labelWidth: 150 }), png: filmstripPng(rows, { labelWidth: 150 }) };
    timings.render = (performance.now() - ts) / 1000;

    // 5. report
    ts = performance.now();
    const out = await writeLocomotionReport(dir, { cfg, entries, trainCost, curves, strip, timings, runs });
    timings.report = (performance.now() - ts) / 1000;
    const seconds = (performance.now() - t0) / 1000;
    writeFileSync(join(dir, 'timings.json'), `${JSON.stringify({ ...timings, total: seconds }, null, 2)}\n`);
    emit({ event: 'finished', report: join(dir, 'report.json'), html: join(dir, 'report.html'), seconds, summary: out.report.reading });
    return { dir, report: out.report, files: out.files };
  } finally {
    await evalEnv.close();
    for (const p of [pre, ...trained, ...Object.values(soupPolicies)]) p.dispose();
  }
}

// ---- report ---------------------------------------------------------------------------------------------------
interface ReportIn {
  cfg: LocomotionConfig;
  entries: LocoEntry[];
  trainCost: Record<string, { steps: number; seconds: ControlTrainResult['seconds'] }>;
  curves: Record<string, Array<{ step: number; ret: number }>>;
  strip: { svg: string; png: Uint8Array };
  timings: Record<string, number>;
  runs: Array<{ name: string; kind: 'expert' | 'morl'; weights: number[] }>;
}

const f1 = (x: number) => (Number.isFinite(x) ? x.toFixed(1) : String(x));
const vec = (v: number[], d = 1) => `[${v.map((x) => x.toFixed(d)).join(', ')}]`;
const pm = (p: Paired) => `${p.mean >= 0 ? '+' : ''}${f1(p.mean)} ± ${f1(p.se)}`;
const pairedOut = (p: Paired) => ({ mean: p.mean, se: p.se, z: p.z, n: p.n });

/** "The experts still learn", fixed before looking at H1/H2: each expert beats the pre-trained policy on
 *  its own reward by ≥ LEARN_Z paired standard errors, and the cautious expert's Σa² is ≤ DIFFER_RATIO ×
 *  the risky one's. */
export const LEARN_Z = 4;
export const DIFFER_RATIO = 0.6;
/** An interior LMC gap below −H1_Z paired standard errors counts against Working Hypothesis 1. */
export const H1_Z = 2;

export function buildLocomotionReport(r: Omit<ReportIn, 'strip' | 'timings'>) {
  const { cfg, entries } = r;
  const alpha = cfg.experts.alpha;
  const objectives = ['R1 = Σv', `R2 = Σv − ${alpha}·Σa²`];
  const soups = entries.filter((e) => e.kind === 'soup');
  const experts = entries.filter((e) => e.kind === 'expert');
  const morl = entries.filter((e) => e.kind === 'morl');
  const init = entries.find((e) => e.kind === 'init')!;
  const risky = experts.find((e) => e.name === 'risky')!;
  const cautious = experts.find((e) => e.name === 'cautious')!;
  const soupPts = soups.map((e) => e.rewards);
  const morlPts = [...experts.map((e) => e.rewards), ...morl.map((e) => e.rewards)];
  // Every model ran on the same seeded episodes, so each contrast is taken per episode and its standard
  // error comes from the spread of those differences: variation the models share cancels, and none is
  // assumed independent.
  const scored = (e: LocoEntry): Scored => ({ rewards: e.rewards, stderr: e.stderr, perSample: [e.perEpisode.r1, e.perEpisode.r2] });
  const stats = contrasts(entries.map(scored), { samples: init.perEpisode.r1.length, paired: true });
  const a = analyse({
    sets: { soups: soupPts, morl: morlPts },
    refPoints: [...soupPts, ...morlPts, init.rewards],
    soups: soups.map((e) => ({ ...scored(e), lambda: e.lambda!, name: e.name })),
    experts: [scored(risky), scored(cautious)],
    contrasts: stats,
  });
  const ref = a.ref;
  const hvSoups = a.sets.soups.hypervolume;
  const hvMorl = a.sets.morl.hypervolume;
  const paper = a.box ? { ...a.box, soups: a.sets.soups.paperHypervolume!, morl: a.sets.morl.paperHypervolume! } : undefined;
  const lmc = a.lmc!;
  const rows = lmc.rows.map((row) => {
    const s = soups[row.index];
    const paired = row.contrast;
    // the bound that treats the three models as independent, kept for comparison
    const seIndependent = row.gaps.map(
      (_, k) =>
        stats.independent(k, [
          [1, scored(s)],
          [-row.lambda[0], scored(risky)],
          [-row.lambda[1], scored(cautious)],
        ]).se,
    );
    return {
      lambda: row.lambda,
      rewards: row.rewards,
      baseline: row.baseline,
      gaps: row.gaps,
      se: paired.map((p) => p.se),
      z: paired.map((p) => p.z),
      se_independent: seIndependent,
      holds: row.holds,
      beyond_segment: false,
    };
  });
  const ratio = hypervolumeRatio(hvSoups, hvMorl);
  // In the plane: which side of the experts' segment a soup lies on (beyond = towards higher rewards,
  // i.e. the front the soups trace bulges out past the linear interpolation).
  const d = [cautious.rewards[0] - risky.rewards[0], cautious.rewards[1] - risky.rewards[1]];
  let nrm = [-d[1], d[0]];
  if (nrm[0] + nrm[1] < 0) nrm = [d[1], -d[0]];
  const beyond = (x: number[]) => (x[0] - risky.rewards[0]) * nrm[0] + (x[1] - risky.rewards[1]) * nrm[1] > 0;
  const interior = rows.filter((x) => x.lambda.every((v) => v > 1e-9));
  for (const x of rows) x.beyond_segment = x.lambda.every((v) => v > 1e-9) && beyond(x.rewards);
  const beyondCount = interior.filter((x) => x.beyond_segment).length;
  const significant = interior.reduce((a, x) => a + x.gaps.filter((g, k) => g < -H1_Z * x.se[k]).length, 0);
  const significantIndependent = interior.reduce((a, x) => a + x.gaps.filter((g, k) => g < -H1_Z * x.se_independent[k]).length, 0);
  const nonneg = interior.reduce((a, x) => a + x.gaps.filter((g) => g >= 0).length, 0);

  // Did the experts learn? Each on its own reward against the pre-trained policy, paired per episode.
  const gain = (e: LocoEntry, k: number) =>
    stats.contrast(k, [
      [1, scored(e)],
      [-1, scored(init)],
    ]);
  const gains = {
    risky: { R1: pairedOut(gain(risky, 0)), R2: pairedOut(gain(risky, 1)) },
    cautious: { R1: pairedOut(gain(cautious, 0)), R2: pairedOut(gain(cautious, 1)) },
  };
  const ratioA2 = cautious.sumA2 / risky.sumA2;
  const riskyLearned = gains.risky.R1.z >= LEARN_Z;
  const cautiousLearned = gains.cautious.R2.z >= LEARN_Z;
  const differ = ratioA2 <= DIFFER_RATIO;

  // H2: each MORL run v − c·Σa² against the soup at λ = c/α (R2 weight λ·α on Σa²), or the nearest λ.
  const h2 = morl.map((m) => {
    const c = m.mu![1];
    const target = c / alpha;
    const soup = soups.reduce((best, e) => (Math.abs(e.lambda![1] - target) < Math.abs(best.lambda![1] - target) ? e : best));
    const own = (e: LocoEntry) => e.perEpisode.r1.map((v, i) => v - c * e.perEpisode.a2[i]);
    return {
      morl: m.name,
      ctrl_cost: c,
      lambda_target: target,
      lambda: soup.lambda![1],
      soup: soup.name,
      soup_minus_morl: {
        R1: pairedOut(
          stats.contrast(0, [
            [1, scored(soup)],
            [-1, scored(m)],
          ]),
        ),
        R2: pairedOut(
          stats.contrast(1, [
            [1, scored(soup)],
            [-1, scored(m)],
          ]),
        ),
        [`v − ${c}·Σa²`]: pairedOut(
          pairedContrast([
            [1, own(soup)],
            [-1, own(m)],
          ]),
        ),
      },
    };
  });
  const frontIdx = a.sets.soups.front;
  const half = soups.find((e) => Math.abs(e.lambda![1] - 0.5) < 1e-9);
  const dominates = (a: number[], b: number[]) => a.every((x, k) => x >= b[k]) && a.some((x, k) => x > b[k]);
  const n = init.perEpisode.r1.length;
  const h1Holds = significant === 0;
  const reading = [
    `Experts learned (criterion fixed beforehand: each beats the pre-trained policy on its own reward by ≥ ${LEARN_Z} paired s.e., and cautious Σa² ≤ ${DIFFER_RATIO} × risky's): ${riskyLearned && cautiousLearned && differ ? 'yes' : 'no'}. Risky on R1 ${pm(gains.risky.R1)} (${f1(gains.risky.R1.z)} s.e.), cautious on R2 ${pm(gains.cautious.R2)} (${f1(gains.cautious.R2.z)} s.e.), paired over ${n} episodes.`,
    `Experts differ: the cautious expert's Σa² is ${f1(cautious.sumA2)} against the risky one's ${f1(risky.sumA2)} (ratio ${ratioA2.toFixed(2)}; the issue asks ≤ ${DIFFER_RATIO}), with Σv ${f1(cautious.sumV)} vs ${f1(risky.sumV)}.`,
    `Pre-trained policy: Σv ${f1(init.sumV)}, Σa² ${f1(init.sumA2)}.`,
    `H1 (LMC, Working Hypothesis 1): ${significant}/${interior.length * 2} interior (λ, reward) gaps are below −${H1_Z} paired s.e. (${h1Holds ? 'holds within noise' : 'does not hold'}); ${nonneg} are ≥ 0. (With the independence bound instead of the paired s.e.: ${significantIndependent}.) In the (R1, R2) plane ${beyondCount}/${interior.length} interior soups lie beyond the experts' segment (on the side of higher rewards).`,
    `H2: hypervolume (higher is better; reference point ${vec(ref)} = nadir of every evaluated model minus 10% of the range): soups ${hvSoups.toFixed(0)}, MORL set (experts + MORL) ${hvMorl.toFixed(0)}, ratio ${ratio.toFixed(3)}.`,
    ...h2.map(
      (x) =>
        `H2: soup λ = ${x.lambda.toFixed(1)}${Math.abs(x.lambda - x.lambda_target) > 1e-9 ? ` (nearest to ${x.lambda_target.toFixed(2)})` : ''} − ${x.morl}, paired over ${n} episodes: ${Object.entries(
          x.soup_minus_morl,
        )
          .map(([k, p]) => `${k} ${pm(p)}`)
          .join(', ')}.`,
    ),
    ...(paper
      ? [
          `Paper's lower-is-better hypervolume (box utopia ${vec(paper.utopia)}, lower ${vec(paper.lower)}): soups ${paper.soups.toFixed(0)}, MORL ${paper.morl.toFixed(0)}.`,
        ]
      : []),
    ...morl.map(
      (m) =>
        `MORL ${m.name} at ${vec(m.rewards)}${half ? (dominates(m.rewards, half.rewards) ? ' dominates' : dominates(half.rewards, m.rewards) ? ' is dominated by' : ' neither dominates nor is dominated by') + ` the λ = 0.5 soup at ${vec(half.rewards)}` : ''}.`,
    ),
    `Soups on the front: λ ∈ {${frontIdx.map((i) => soups[i].lambda![1].toFixed(1)).join(', ')}} of ${soups.length}.`,
  ];
  const cost = Object.fromEntries(
    Object.entries(r.trainCost).map(([k, v]) => [
      k,
      { steps: v.steps, seconds: v.seconds, simulation_share: v.seconds.env / (v.seconds.env + v.seconds.act + v.seconds.learn) },
    ]),
  );
  return {
    format: 'rewarded-soups/locomotion-report@1',
    name: cfg.name,
    env: cfg.env.env,
    objectives,
    evaluation: {
      episodes: cfg.sweep.episodes,
      seed: cfg.sweep.seed,
      policy: 'deterministic (mean action), frozen pre-trained observation statistics',
      max_steps: cfg.env.max_episode_steps,
      paired: 'every model on the same seeded episodes; contrasts (gains, LMC gaps, soup − MORL) get standard errors from their per-episode differences',
    },
    protocol: {
      pretrain: { steps: cfg.pretrain.steps, reward: `v − ${cfg.pretrain.ctrl_cost}·Σa²` },
      experts: { steps: cfg.experts.steps, risky: 'R1 = v', cautious: `R2 = v − ${alpha}·Σa²` },
      finetune: { ...cfg.finetune, critic: 'fresh (the pre-trained value function is discarded)', obs_stats: 'frozen at the pre-trained ones' },
      morl: cfg.morl.ctrl_costs.map((c) => `v − ${c}·Σa²`),
      soups: `θ(λ) = (1 − λ)·θ_risky + λ·θ_cautious, every parameter (actor, log-std, critic), ${cfg.sweep.lambdas} λ`,
      ppo: cfg.ppo,
    },
    models: entries.map((e) => ({
      kind: e.kind,
      name: e.name,
      lambda: e.lambda,
      mu: e.mu,
      rewards: e.rewards,
      stderr: e.stderr,
      sum_v: e.sumV,
      sum_a2: e.sumA2,
      distance: e.distance,
      per_episode: { r1: e.perEpisode.r1, r2: e.perEpisode.r2, sum_a2: e.perEpisode.a2 },
    })),
    experts: { risky_sum_a2: risky.sumA2, cautious_sum_a2: cautious.sumA2, ratio: ratioA2, differ_clearly: differ, gains },
    verdict: {
      experts_learned: {
        risky: riskyLearned,
        cautious: cautiousLearned,
        differ,
        all: riskyLearned && cautiousLearned && differ,
        criterion: `own-reward gain over the pre-trained policy ≥ ${LEARN_Z} paired s.e. for each expert, and cautious Σa² ≤ ${DIFFER_RATIO} × risky Σa²`,
      },
      h1: {
        violations: significant,
        pairs: interior.length * 2,
        threshold_se: H1_Z,
        holds_within_noise: h1Holds,
        violations_independent_bound: significantIndependent,
      },
      h2: { hypervolume_ratio: ratio, ref, soup_minus_morl: h2 },
    },
    hypervolume: {
      ref,
      ref_rule: 'nadir of every evaluated model (init, experts, MORL, soups) minus 10% of the range',
      soups: hvSoups,
      morl: hvMorl,
      ratio,
      paper,
      soups_front_lambdas: frontIdx.map((i) => soups[i].lambda),
    },
    lmc: {
      rows,
      interior_beyond_segment: beyondCount,
      interior_nonnegative: nonneg,
      interior_pairs: interior.length * 2,
      significant_violations: significant,
      se: 'paired: standard error of the per-episode gap',
      min_gap: lmc.minGap,
    },
    cost,
    reading,
  };
}

export type LocomotionReport = ReturnType<typeof buildLocomotionReport>;

async function curvePlot(curves: ReportIn['curves']): Promise<Plot> {
  const values = Object.entries(curves).flatMap(([run, c]) => c.map((x) => ({ run, step: x.step, ret: x.ret })));
  const spec = {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title: 'Training: mean episode return of the reward each run optimises',
    config: PLOT_CONFIG,
    width: 520,
    height: 240,
    data: { values },
    mark: { type: 'line', strokeWidth: 2 },
    encoding: {
      x: { field: 'step', type: 'quantitative', title: 'env steps of the run' },
      y: { field: 'ret', type: 'quantitative', title: 'episode return' },
      color: { field: 'run', type: 'nominal' },
    },
  };
  return renderSpec(spec, { png: true });
}

const esc = (s: string) => s.replace(/[&<>"]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' })[c]!);

export async function writeLocomotionReport(dir: string, r: ReportIn): Promise<{ report: LocomotionReport; files: string[] }> {
  const report = buildLocomotionReport(r);
  const files: string[] = [];
  const put = (name: string, data: string | Uint8Array) => {
    writeFileSync(join(dir, name), data);
    files.push(join(dir, name));
  };
  put('report.json', `${JSON.stringify(report, null, 2)}\n`);
  const soups = r.entries.filter((e) => e.kind === 'soup');
  const two = (v: number[]) => [v[0], v[1]];
  const plots: Array<[string, Plot, string]> = [];
  plots.push([
    'front',
    await frontPlot(
      {
        objectives: report.objectives,
        soups: soups.map((e) => ({ lambda: e.lambda![1], rewards: two(e.rewards) })),
        morl: r.entries.filter((e) => e.kind === 'morl').map((e) => ({ mu: e.mu![1], rewards: two(e.rewards) })),
        experts: r.entries.filter((e) => e.kind === 'expert').map((e) => ({ rewards: two(e.rewards), name: e.name })),
        init: { rewards: two(r.entries.find((e) => e.kind === 'init')!.rewards), name: 'pre-trained' },
      },
      { png: true, title: 'Locomotion: rewarded soups vs MORL (HalfCheetah-v5)' },
    ),
    'Soups θ(λ) between the risky (λ = 0) and the cautious (λ = 1) expert, MORL, the experts and the pre-trained policy; the dashed segment is the LMC lower bound. Means over the evaluation episodes.',
  ]);
  plots.push([
    'rewards-vs-lambda',
    await rewardVsLambdaPlot(
      { objectives: report.objectives, soups: soups.map((e) => ({ lambda: e.lambda![1], rewards: e.rewards })) },
      { png: true, normalize: true },
    ),
    'Each reward against λ (min-max normalised over the soups).',
  ]);
  if (Object.keys(r.curves).length) plots.push(['training', await curvePlot(r.curves), 'Training curves (episodes finished during each update).']);
  for (const [name, p] of plots) {
    put(`${name}.svg`, p.svg);
    if (p.png) put(`${name}.png`, p.png);
  }
  put('gaits.svg', r.strip.svg);
  put('gaits.png', r.strip.png);
  const lmcRows = report.lmc.rows
    .map(
      (x) =>
        `<tr><td>${x.lambda[1].toFixed(1)}</td>${x.rewards.map((v, k) => `<td>${f1(v)}</td><td>${f1(x.baseline[k])}</td><td>${x.gaps[k] >= 0 ? '+' : ''}${f1(x.gaps[k])} ± ${f1(x.se[k])}</td>`).join('')}</tr>`,
    )
    .join('');
  const table = report.models
    .map(
      (m) =>
        `<tr><td>${esc(m.name)}</td><td>${m.lambda ? m.lambda[1].toFixed(1) : ''}</td><td>${m.mu ? m.mu[1].toFixed(2) : ''}</td>${m.rewards.map((v, k) => `<td>${f1(v)} ± ${f1(m.stderr[k])}</td>`).join('')}<td>${f1(m.sum_v)}</td><td>${f1(m.sum_a2)}</td><td>${m.distance.toFixed(1)}</td></tr>`,
    )
    .join('');
  const v = report.verdict;
  const g = report.experts.gains;
  const verdictRows = [
    [
      'risky expert learned: R1 gain over pre-trained',
      `${pm(g.risky.R1)} (${f1(g.risky.R1.z)} s.e.)`,
      v.experts_learned.risky ? `yes (≥ ${LEARN_Z} s.e.)` : `no (< ${LEARN_Z} s.e.)`,
    ],
    [
      'cautious expert learned: R2 gain over pre-trained',
      `${pm(g.cautious.R2)} (${f1(g.cautious.R2.z)} s.e.)`,
      v.experts_learned.cautious ? `yes (≥ ${LEARN_Z} s.e.)` : `no (< ${LEARN_Z} s.e.)`,
    ],
    [
      'experts differ: cautious Σa² / risky Σa²',
      report.experts.ratio.toFixed(2),
      v.experts_learned.differ ? `yes (≤ ${DIFFER_RATIO})` : `no (> ${DIFFER_RATIO})`,
    ],
    [
      `H1: interior LMC gaps below −${H1_Z} paired s.e.`,
      `${v.h1.violations} of ${v.h1.pairs}`,
      v.h1.holds_within_noise ? 'holds within noise' : 'does not hold',
    ],
    [
      'H2: hypervolume soups / MORL set',
      `${v.h2.hypervolume_ratio.toFixed(3)} (reference ${vec(v.h2.ref)})`,
      v.h2.hypervolume_ratio >= 1 ? 'soups ≥ MORL' : 'soups < MORL',
    ],
    ...v.h2.soup_minus_morl.map((x) => [
      `H2: soup λ = ${x.lambda.toFixed(1)} − ${x.morl}`,
      Object.entries(x.soup_minus_morl)
        .map(([k, p]) => `${k} ${pm(p)}`)
        .join('; '),
      '',
    ]),
  ]
    .map((r) => `<tr>${r.map((c) => `<td>${esc(c)}</td>`).join('')}</tr>`)
    .join('');
  const cost = Object.entries(report.cost)
    .map(
      ([k, v]) =>
        `<tr><td>${esc(k)}</td><td>${v.steps}</td><td>${v.seconds.total.toFixed(0)}</td><td>${v.seconds.env.toFixed(0)}</td><td>${v.seconds.act.toFixed(0)}</td><td>${v.seconds.learn.toFixed(0)}</td><td>${(100 * v.simulation_share).toFixed(0)}%</td></tr>`,
    )
    .join('');
  const html = `<!doctype html><html><head><meta charset="utf-8"><title>${esc(report.name)}: locomotion soups</title>
<style>body{font-family:'DejaVu Sans',sans-serif;max-width:1150px;margin:2em auto;padding:0 1em}table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:3px 8px;font-size:13px}figure{margin:1.5em 0}img{max-width:100%}</style></head><body>
<h1>${esc(report.name)}: rewarded soups vs MORL on ${esc(report.env)}</h1>
<p>Pre-training ${report.protocol.pretrain.steps} steps on ${esc(report.protocol.pretrain.reward)}; observation statistics frozen; fine-tuning ${report.protocol.experts.steps} steps each (fresh critic; lr ${report.protocol.finetune.learning_rate} ${report.protocol.finetune.anneal_lr ? 'annealed' : 'constant'}, entropy cost ${report.protocol.finetune.ent_coef}): risky ${esc(report.protocol.experts.risky)}, cautious ${esc(report.protocol.experts.cautious)}, MORL ${esc(report.protocol.morl.join(', '))}. ${esc(report.protocol.soups)}. Evaluation: ${report.evaluation.episodes} episodes of ${report.evaluation.max_steps} steps with seeds (${report.evaluation.seed}, env index), ${esc(report.evaluation.policy)}.</p>
<h2>Reading</h2><ul>${report.reading.map((l) => `<li>${esc(l)}</li>`).join('')}</ul>
<h2>Verdict</h2><table><tr><th>question</th><th>paired over ${report.evaluation.episodes} episodes</th><th>answer</th></tr>${verdictRows}</table>
<h2>Gaits</h2><figure><img src="gaits.png" alt="filmstrips of the risky expert, the λ = 0.5 soup, the cautious expert and MORL"><figcaption>The first ${(r.cfg.render.every * (r.cfg.render.frames - 1) * 0.05).toFixed(1)} s of the first evaluation episode, one frame every ${r.cfg.render.every} steps (<a href="gaits.svg">SVG</a>).</figcaption></figure>
${plots.map(([name, p, cap]) => `<figure>${p.svg}<figcaption>${esc(cap)} (<a href="${name}.png">PNG</a>, <a href="${name}.svg">SVG</a>)</figcaption></figure>`).join('\n')}
<h2>LMC gaps per λ</h2><p>gap = R(θ(λ)) − [(1 − λ)·R(θ_risky) + λ·R(θ_cautious)], ± its paired standard error: the gap is taken per evaluation episode (every model ran the same seeded episodes) and the s.e. is that of the mean of those ${report.evaluation.episodes} differences.</p>
<table><tr><th>λ</th>${report.objectives.map((o) => `<th>${esc(o)}</th><th>linear</th><th>gap</th>`).join('')}</tr>${lmcRows}</table>
<h2>Every evaluated model</h2><table><tr><th>model</th><th>λ</th><th>μ (ctrl cost)</th>${report.objectives.map((o) => `<th>${esc(o)} (± s.e.)</th>`).join('')}<th>Σv</th><th>Σa²</th><th>distance (m)</th></tr>${table}</table>
<h2>Training cost</h2><table><tr><th>run</th><th>steps</th><th>total s</th><th>env s</th><th>policy s</th><th>PPO update s</th><th>simulation share</th></tr>${cost}</table>
<h2>Stage times</h2><ul>${Object.entries(r.timings)
    .map(([k, v]) => `<li>${esc(k)}: ${v.toFixed(1)} s</li>`)
    .join('')}</ul>
<p>Numbers: report.json; policies: *.safetensors.</p></body></html>
`;
  put('report.html', html);
  return { report, files };
}

// ---- the demo -------------------------------------------------------------------------------------------------
export interface LocomotionDemoOptions extends LocomotionOptions {
  /** Run dir (default runs/demo/locomotion). */
  out?: string;
  /** Settings to override (tests use tiny ones). */
  overrides?: LocomotionInput;
  /** Print the plan only. */
  dryRun?: boolean;
  /** Write human progress to this stream (default stderr); JSON events go through onEvent. */
  log?: (line: string) => void;
}

/** `rsoup demo --task locomotion`: the protocol of docs/locomotion.md; prints progress and the findings. */
export async function runLocomotionDemo(opts: LocomotionDemoOptions = {}): Promise<LocomotionResult | undefined> {
  const input: LocomotionInput = { ...LOCOMOTION_DEMO, ...opts.overrides, ...(opts.out ? { output: opts.out } : {}) };
  const cfg = parseLocomotion(input);
  const log = opts.log ?? ((l: string) => process.stderr.write(`${l}\n`));
  const plan = [
    `locomotion demo on ${cfg.env.env} (${cfg.env.num_envs} envs, PPO batch ${cfg.env.num_envs * cfg.ppo.num_steps}):`,
    `  pre-train ${cfg.pretrain.steps} steps on v − ${cfg.pretrain.ctrl_cost}·Σa²`,
    `  fine-tune side by side, ${cfg.experts.steps} steps each: risky v, cautious v − ${cfg.experts.alpha}·Σa², MORL ${cfg.morl.ctrl_costs.map((c) => `v − ${c}·Σa²`).join(', ')}`,
    `    (lr ${cfg.finetune.learning_rate} ${cfg.finetune.anneal_lr ? 'annealed' : 'constant'}, entropy cost ${cfg.finetune.ent_coef}, fresh critic, frozen observation statistics)`,
    `  evaluate ${cfg.sweep.lambdas} soups + ${2 + cfg.morl.ctrl_costs.length} models × ${cfg.sweep.episodes} episodes; report in ${cfg.output}`,
  ];
  if (opts.dryRun) {
    plan.forEach((l) => log(l));
    return undefined;
  }
  plan.forEach((l) => log(l));
  const last: Record<string, number> = {};
  const res = await runLocomotion(cfg, {
    signal: opts.signal,
    onEvent: (e) => {
      opts.onEvent?.(e);
      if (e.event === 'stage')
        log(`[${e.stage}] ${e.status}${e.seconds !== undefined ? ` in ${formatDuration(e.seconds)}` : ''}${e.detail ? `: ${e.detail}` : ''}`);
      else if (e.event === 'update') {
        // about ten lines per run
        const every = Math.max(1, Math.floor(e.updates / 10));
        if (e.meanReturn !== undefined) last[e.run] = e.meanReturn;
        if (e.update % every === 0 || e.update === e.updates) {
          log(
            `[${e.run}] update ${e.update}/${e.updates}, ${e.step} steps, return ${last[e.run] !== undefined ? last[e.run].toFixed(0) : '–'}, ${formatDuration(e.seconds)}`,
          );
        }
      } else if (e.event === 'eval') log(`[eval ${e.done}/${e.total}] ${e.name}: R1 ${e.rewards[0].toFixed(0)}, R2 ${e.rewards[1].toFixed(0)}`);
      else if (e.event === 'finished') {
        log(`done in ${formatDuration(e.seconds)}; report: ${e.html}`);
        e.summary.forEach((l) => log(`  ${l}`));
      }
    },
  });
  return res;
}
