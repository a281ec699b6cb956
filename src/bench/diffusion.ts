// SPDX-License-Identifier: MIT
// rsoup bench diffusion: the diffusion core's throughput as ratios against baselines measured in the same
// run (the machine is shared, so absolute images/s are noisy): a training step on the fine-tuning set
// (cross-attention + biases + norm scales, App. E) against a full training step; 20-step DDIM with
// classifier-free guidance (two ε passes) against without; 1 libtorch thread against `threads`. Each
// trial runs in a fresh child process, configurations alternate. Table and load average on stderr.
import { loadavg } from 'node:os';
import { runChild } from './child.js';
import { median } from './stats.js';

export const DIFFUSION_CONFIGS = ['train-all', 'train-finetune', 'sample-g1', 'sample-g3', 'train-all-1thread'] as const;
export type DiffusionConfig = (typeof DIFFUSION_CONFIGS)[number];

export interface DiffusionTrial {
  config: DiffusionConfig;
  /** Timed training steps (train-* configs). */
  steps: number;
  batch: number;
  threads: number;
}

export interface DiffusionTrialResult {
  config: DiffusionConfig;
  images_per_s: number;
  seconds: number;
}

export interface DiffusionBenchOptions {
  reps?: number;
  steps?: number;
  batch?: number;
  threads?: number;
  log?: (line: string) => void;
  json?: (obj: Record<string, unknown>) => void;
}

/** One trial (the child process's side). */
export async function diffusionTrial(t: DiffusionTrial): Promise<DiffusionTrialResult> {
  const { DiffusionModel } = await import('../train/diffusion.js');
  const { shapesBatch, toModelInput, tokenizeCaptions, randomCaptions } = await import('../data/shapes.js');
  const m = await DiffusionModel.create({ seed: 0, threads: t.config.endsWith('1thread') ? 1 : t.threads });
  const B = t.batch;
  const { captions, images } = shapesBatch(1, B);
  const x = toModelInput(images),
    tok = tokenizeCaptions(captions);
  let seconds = 0,
    count = 0;
  if (t.config.startsWith('train')) {
    const finetune = t.config === 'train-finetune';
    await m.trainStep(x, tok, B, null, { finetune }); // warm-up
    const t0 = performance.now();
    for (let i = 0; i < t.steps; i++) await m.trainStep(x, tok, B, null, { finetune });
    seconds = (performance.now() - t0) / 1000;
    count = t.steps * B;
  } else {
    const caps = randomCaptions(3, B);
    const g = t.config === 'sample-g3' ? 3 : 1;
    const warm = caps.slice(0, 4);
    await m.generate(
      warm,
      warm.map((_, i) => i),
      { steps: 2, guidance: g },
    );
    const t0 = performance.now();
    await m.generate(
      caps,
      caps.map((_, i) => i),
      { steps: 20, guidance: g },
    );
    seconds = (performance.now() - t0) / 1000;
    count = B;
  }
  await m.dispose();
  return { config: t.config, images_per_s: count / seconds, seconds };
}

/** The bench: `reps` rounds of every configuration, each in a fresh process; one JSON line per trial,
 *  then one with the medians and their ratios. */
export async function benchDiffusion(opts: DiffusionBenchOptions = {}): Promise<{ summary: Record<DiffusionConfig, number>; ratios: Record<string, number> }> {
  const o = { reps: opts.reps ?? 3, steps: opts.steps ?? 6, batch: opts.batch ?? 64, threads: opts.threads ?? 2 };
  const log = opts.log ?? ((l: string) => process.stderr.write(`${l}\n`));
  const res = Object.fromEntries(DIFFUSION_CONFIGS.map((c) => [c, [] as number[]])) as Record<DiffusionConfig, number[]>;
  const load0 = loadavg()[0];
  const env = { ...process.env, OMP_WAIT_POLICY: 'PASSIVE' };
  for (let r = 0; r < o.reps; r++) {
    for (const config of DIFFUSION_CONFIGS) {
      const line = await runChild<DiffusionTrialResult>('diffusion', { config, steps: o.steps, batch: o.batch, threads: o.threads } satisfies DiffusionTrial, {
        env,
      });
      res[config].push(line.images_per_s);
      opts.json?.({ bench: 'diffusion', rep: r, ...line, batch: o.batch, threads: config.endsWith('1thread') ? 1 : o.threads, load: loadavg()[0] });
    }
  }
  const med = Object.fromEntries(DIFFUSION_CONFIGS.map((c) => [c, median(res[c])])) as Record<DiffusionConfig, number>;
  const ratios = {
    finetune_vs_full: med['train-finetune'] / med['train-all'],
    guided_vs_unguided: med['sample-g3'] / med['sample-g1'],
    threads_vs_1: med['train-all'] / med['train-all-1thread'],
  };
  log(`diffusion bench: batch ${o.batch}, ${o.reps} reps, threads ${o.threads}; load average ${load0.toFixed(2)} → ${loadavg()[0].toFixed(2)}`);
  for (const c of DIFFUSION_CONFIGS) log(`  ${c.padEnd(18)} ${med[c].toFixed(1)} images/s (median)`);
  log(`  fine-tuning set / full step: ${ratios.finetune_vs_full.toFixed(2)}x`);
  log(`  guidance (2 passes) / none:  ${ratios.guided_vs_unguided.toFixed(2)}x`);
  log(`  ${o.threads} threads / 1 thread:      ${ratios.threads_vs_1.toFixed(2)}x`);
  opts.json?.({ bench: 'diffusion', summary: med, ratios, reps: o.reps, steps: o.steps, batch: o.batch, threads: o.threads });
  return { summary: med, ratios };
}
