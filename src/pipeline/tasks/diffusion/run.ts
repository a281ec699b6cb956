// SPDX-License-Identifier: MIT
// The text-to-image experiment (paper App. E, Table 3, Fig. 13) in miniature, end to end:
//   base     DDPM pre-training of the conditional UNet on procedural shapes (cached by a hash of its settings)
//   samples  K images from the base model (DDIM, no guidance), scored by every reward
//   experts  per reward: best 50%, rescaled to min 0 / mean 1, reward-weighted fine-tuning of
//            cross-attention + biases + norm scales; MORL on the average of the z-normalised rewards;
//            a control fine-tune (random half, random weights) that shows the drift common to all
//   sweep    init, experts, MORL, control and the soups θ(λ) on fixed captions, one fixed seed per caption
//   report   front, MORL's point, hypervolumes, LMC gaps (the pipeline's buildReport), the image grid
import { mkdirSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { SoupError } from '../../../errors.js';
import type { TensorMap } from '../../../io/index.js';
import { interpolate } from '../../../soup/index.js';
import { imageReward, type Reward } from '../../../rewards/index.js';
import {
  DiffusionModel,
  DiffusionTrainer,
  controlWeights,
  normalisedAverage,
  topHalfWeights,
  UNET_ARCHITECTURE,
  type UNetConfig,
} from '../../../train/index.js';
import { randomCaptions, type RgbImage } from '../../../data/shapes.js';
import { cachedStage, hashOf, recordedHash, timedStage, type ProgressEvent, type StageEvent } from '../../stages.js';
import type { EvalEntry } from '../../sweep.js';
import { meanStderr } from '../../../pareto/index.js';

export interface DiffusionSettings {
  name: string;
  seed: number;
  output: string;
  unet: Partial<UNetConfig>;
  /** libtorch threads of the pre-training, sampling and evaluation model. */
  threads: number;
  pretrain: { steps: number; batch_size: number; learning_rate: number; ema: number };
  samples: { count: number; ddim_steps: number; guidance: number };
  rewards: string[];
  finetune: { steps: number; batch_size: number; learning_rate: number; ema: number; concurrency: number };
  morl: { mu: number[][] };
  control: boolean;
  eval: { captions: number; ddim_steps: number; seed: number; lambdas: number; grid_captions: number };
}

/** Settings measured beforehand for the diffusion miniature, scaled to ~10 minutes on a busy 2-core machine. */
export const DIFFUSION_DEMO: DiffusionSettings = {
  name: 'demo-diffusion',
  seed: 0,
  output: 'runs/demo-diffusion',
  unet: {},
  threads: 2,
  pretrain: { steps: 250, batch_size: 64, learning_rate: 1e-3, ema: 0.995 },
  samples: { count: 512, ddim_steps: 20, guidance: 1 },
  rewards: ['colourfulness', 'brightness'],
  finetune: { steps: 120, batch_size: 32, learning_rate: 1e-3, ema: 0.99, concurrency: 2 },
  morl: { mu: [[0.5, 0.5]] },
  control: true,
  eval: { captions: 64, ddim_steps: 20, seed: 1234, lambdas: 11, grid_captions: 8 },
};

export type DiffusionStage = 'base' | 'samples' | 'experts' | 'sweep' | 'report';
export type DiffusionEvent =
  | StageEvent<DiffusionStage>
  | ProgressEvent<DiffusionStage>
  | { event: 'finished'; report: string; html: string; seconds: number; timings: Record<string, number> };

export interface DiffusionRunOptions {
  signal?: AbortSignal;
  onEvent?: (e: DiffusionEvent) => void;
}

export interface FineTuned {
  name: string;
  kind: 'expert' | 'morl' | 'control';
  reward?: string;
  mu?: number[];
  tensors: TensorMap;
  seconds: number;
  losses: number[];
}

export interface EvalResult extends EvalEntry {
  images: RgbImage[];
  /** Per reward, per evaluation caption (same captions and seeds for every model: paired comparisons). */
  scores: number[][];
}

/** Scores images with each reward (Reward adapters over samples whose meta.image is the image). */
export async function scoreImages(rewards: Reward[], captions: readonly string[], images: readonly RgbImage[], signal?: AbortSignal): Promise<Float64Array[]> {
  const samples = images.map((image, i) => ({ prompt: captions[i], response: '', meta: { image } }));
  const out: Float64Array[] = [];
  for (const r of rewards) out.push(await r.score(samples, { signal }));
  return out;
}

export function checkSettings(s: DiffusionSettings): DiffusionSettings {
  const rewards = s.rewards.map((r) => imageReward(r)); // unknown rewards fail here, before any training
  if (rewards.length !== 2)
    throw new SoupError('ERR_SOUP_CONFIG', `diffusion experiment: exactly 2 rewards are supported (the front is 2-D), got ${rewards.length}`);
  for (const [i, mu] of s.morl.mu.entries()) {
    if (mu.length !== rewards.length || mu.some((v) => !(v >= 0)) || Math.abs(mu.reduce((a, b) => a + b, 0) - 1) > 1e-9)
      throw new SoupError('ERR_SOUP_CONFIG', `morl.mu[${i}]: expected ${rewards.length} weights >= 0 summing to 1, got ${JSON.stringify(mu)}`);
  }
  const pos = (v: number, f: string) => {
    if (!(Number.isInteger(v) && v >= 1)) throw new SoupError('ERR_SOUP_CONFIG', `${f} must be a positive integer, got ${v}`);
  };
  pos(s.pretrain.steps, 'pretrain.steps');
  pos(s.samples.count, 'samples.count');
  pos(s.finetune.steps, 'finetune.steps');
  pos(s.eval.captions, 'eval.captions');
  pos(s.eval.lambdas, 'eval.lambdas');
  if (s.samples.count < 4) throw new SoupError('ERR_SOUP_CONFIG', 'samples.count must be >= 4');
  return s;
}

/** Runs the experiment; returns the report and where it is. */
export async function runDiffusionExperiment(settings: DiffusionSettings, o: DiffusionRunOptions = {}) {
  const s = checkSettings(settings);
  const emit = o.onEvent ?? (() => {});
  const t0 = performance.now();
  const timings: Record<string, number> = {};
  const load0 = loadavg()[0];
  const dir = s.output;
  mkdirSync(dir, { recursive: true });
  const rewards = s.rewards.map((r) => imageReward(r));
  const rewardNames = rewards.map((r) => r.name);
  const stage = <T>(name: DiffusionStage, detail: string, fn: () => Promise<T>): Promise<T> => timedStage(name, detail, emit, timings, fn);

  // ---- base (cached): the model dir's config.json records the hash of its settings
  const baseDir = join(dir, 'base');
  // keys as written: the recipe cached base models were saved with (src/pipeline/stages.ts)
  const baseHash = hashOf({ unet: s.unet, pretrain: s.pretrain, seed: s.seed, arch: UNET_ARCHITECTURE, v: 1 }, { keys: 'as-written' });
  let pretrainLosses: number[] = [];
  const { value: base, cached: baseCached } = await cachedStage({
    stage: 'base' as DiffusionStage,
    hash: baseHash,
    emit,
    detail: baseDir,
    recorded: () => recordedHash(join(baseDir, 'config.json'), { field: 'rsoup_hash' }),
    load: () => DiffusionModel.load(baseDir, { threads: s.threads, seed: s.seed }),
    compute: () =>
      stage('base', `DDPM pre-training, ${s.pretrain.steps} steps × ${s.pretrain.batch_size} images`, async () => {
        const m = await DiffusionModel.create({ config: s.unet, seed: s.seed, threads: s.threads });
        pretrainLosses = await new DiffusionTrainer(m).pretrain({
          steps: s.pretrain.steps,
          batchSize: s.pretrain.batch_size,
          lr: s.pretrain.learning_rate,
          emaDecay: s.pretrain.ema,
          seed: s.seed,
          signal: o.signal,
          onStep: (i) => (i + 1) % 20 === 0 && emit({ event: 'progress', stage: 'base', done: i + 1, total: s.pretrain.steps }),
        });
        await m.save(baseDir, { meta: { rsoup_hash: baseHash, pretrain: s.pretrain, final_loss: pretrainLosses.at(-1) } });
        // Fine-tunes and evaluation start from the EMA weights (what was saved) in both copies.
        await m.setTensors(await m.getTensors({ set: 'ema' }));
        return m;
      }),
  });
  if (baseCached) timings.base = 0;
  const info = await base.info();
  const baseTensors = await base.getTensors({ set: 'ema' });
  const baseFt = await base.getTensors({ set: 'ema', group: 'finetune' });

  try {
    // ---- samples
    const K = s.samples.count;
    const sampleCaptions = randomCaptions(s.seed * 7919 + 1, K);
    const sampleSeeds = sampleCaptions.map((_, i) => s.seed * 1_000_000 + 500_000 + i);
    const { images: sampleImages, scores } = await stage(
      'samples',
      `${K} images, ${s.samples.ddim_steps}-step DDIM, guidance ${s.samples.guidance}`,
      async () => {
        const images = await base.generate(sampleCaptions, sampleSeeds, { steps: s.samples.ddim_steps, guidance: s.samples.guidance });
        return { images, scores: await scoreImages(rewards, sampleCaptions, images, o.signal) };
      },
    );

    // ---- fine-tunes: experts, MORL, control
    const plans: Array<{ name: string; kind: FineTuned['kind']; reward?: string; mu?: number[]; sel: { indices: number[]; weights: Float64Array } }> = [];
    rewardNames.forEach((r, k) => plans.push({ name: `expert ${r}`, kind: 'expert', reward: r, sel: topHalfWeights(scores[k]) }));
    for (const mu of s.morl.mu) plans.push({ name: `MORL μ=[${mu.join(', ')}]`, kind: 'morl', mu, sel: topHalfWeights(normalisedAverage(scores, mu)) });
    if (s.control) plans.push({ name: 'control', kind: 'control', sel: controlWeights(K, s.seed + 17) });
    const tuned: FineTuned[] = await stage(
      'experts',
      `${plans.length} fine-tunes × ${s.finetune.steps} steps (cross-attention + biases + norm scales: ${info.finetuneNumel} of ${info.numel} parameters)`,
      async () => {
        const out: FineTuned[] = new Array(plans.length);
        let next = 0,
          done = 0;
        const worker = async () => {
          for (;;) {
            const i = next++;
            if (i >= plans.length) return;
            const p = plans[i];
            const t = performance.now();
            const m = await DiffusionModel.create({
              config: base.config,
              weights: baseTensors,
              seed: s.seed,
              threads: Math.max(1, Math.floor(s.threads / Math.max(1, s.finetune.concurrency))),
            });
            try {
              const losses = await new DiffusionTrainer(m).finetune(
                p.sel.indices.map((j) => sampleImages[j]),
                p.sel.indices.map((j) => sampleCaptions[j]),
                p.sel.weights,
                {
                  steps: s.finetune.steps,
                  batchSize: s.finetune.batch_size,
                  lr: s.finetune.learning_rate,
                  emaDecay: s.finetune.ema,
                  seed: s.seed + 101 + i,
                  signal: o.signal,
                },
              );
              out[i] = {
                name: p.name,
                kind: p.kind,
                reward: p.reward,
                mu: p.mu,
                tensors: await m.getTensors({ set: 'ema', group: 'finetune' }),
                seconds: (performance.now() - t) / 1000,
                losses,
              };
            } finally {
              await m.dispose();
            }
            emit({ event: 'progress', stage: 'experts', done: ++done, total: plans.length, detail: p.name });
          }
        };
        await Promise.all(Array.from({ length: Math.max(1, s.finetune.concurrency) }, worker));
        return out;
      },
    );

    // ---- sweep
    const evalCaptions = randomCaptions(s.eval.seed, s.eval.captions);
    const evalSeeds = evalCaptions.map((_, i) => s.eval.seed * 1000 + i); // one fixed seed per caption, shared by every model
    const experts = tuned.filter((t) => t.kind === 'expert');
    const N = experts.length;
    const unit = (i: number) => Array.from({ length: N }, (_, k) => (k === i ? 1 : 0));
    const lambdas = Array.from({ length: s.eval.lambdas }, (_, j) => (s.eval.lambdas === 1 ? 0.5 : j / (s.eval.lambdas - 1)));
    const entries: EvalResult[] = await stage('sweep', `${3 + tuned.length - N + lambdas.length} models × ${s.eval.captions} captions`, async () => {
      const out: EvalResult[] = [];
      const evalWith = async (t: TensorMap): Promise<Pick<EvalResult, 'rewards' | 'stderr' | 'images' | 'samples' | 'scores'>> => {
        await base.setTensors(t, { partial: true });
        const images = await base.generate(evalCaptions, evalSeeds, { steps: s.eval.ddim_steps, guidance: s.samples.guidance });
        const sc = await scoreImages(rewards, evalCaptions, images, o.signal);
        const ms = sc.map((x) => meanStderr(x));
        return { rewards: ms.map((x) => x[0]), stderr: ms.map((x) => x[1]), images, samples: [], scores: sc.map((x) => Array.from(x)) };
      };
      const total = 1 + tuned.length + lambdas.filter((x) => x !== 0 && x !== 1).length;
      let evaluated = 0;
      const push = (e: EvalResult) => {
        out.push(e);
        emit({ event: 'progress', stage: 'sweep', done: ++evaluated, total, detail: e.name });
      };
      push({ kind: 'init', name: 'init', ...(await evalWith(baseFt)) });
      const byExpert: EvalResult[] = [];
      for (const [i, e] of experts.entries()) {
        const r: EvalResult = { kind: 'expert', name: e.name, lambda: unit(i), mu: unit(i), ...(await evalWith(e.tensors)) };
        byExpert.push(r);
        push(r);
      }
      for (const m of tuned.filter((t) => t.kind === 'morl')) push({ kind: 'morl', name: m.name, mu: m.mu, ...(await evalWith(m.tensors)) });
      const control = tuned.find((t) => t.kind === 'control');
      // The control is kept beside the entries the pipeline report knows (it is none of init/expert/soup/MORL).
      if (control) push({ kind: 'control' as EvalEntry['kind'], name: 'control', ...(await evalWith(control.tensors)) });
      let buf: TensorMap | undefined;
      for (const x of lambdas) {
        const lam = [1 - x, x];
        const name = `soup λ=[${lam.map((v) => +v.toFixed(3)).join(', ')}]`;
        // λ = eᵢ is expert i exactly (1·θᵢ + 0·θⱼ): reuse its evaluation.
        const same = x === 0 ? byExpert[0] : x === 1 ? byExpert[1] : undefined;
        if (same) {
          out.push({ ...same, kind: 'soup', name, lambda: lam, mu: undefined });
          continue;
        }
        buf = await interpolate([experts[0].tensors, experts[1].tensors], lam, { normalize: false, ...(buf ? { out: buf } : {}) });
        push({ kind: 'soup', name, lambda: lam, ...(await evalWith(buf)) });
      }
      await base.setTensors(baseFt, { partial: true });
      return out;
    });

    // ---- report
    const { writeDiffusionReport } = await import('./report.js');
    const res = await stage('report', 'front, hypervolumes, LMC gaps, image grid', () =>
      writeDiffusionReport(dir, {
        settings: s,
        rewardNames,
        entries,
        tuned,
        info,
        pretrainLosses,
        sampleScores: scores,
        evalCaptions,
        timings,
        load: { start: load0, end: loadavg()[0] },
      }),
    );
    const seconds = (performance.now() - t0) / 1000;
    emit({ event: 'finished', report: res.reportPath, html: res.htmlPath, seconds, timings });
    return { ...res, seconds, timings };
  } finally {
    await base.dispose();
  }
}
