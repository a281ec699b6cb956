// SPDX-License-Identifier: MIT
// One PPO run (an expert or a MORL baseline) in its own process. Several run side by side, each with
// one libtorch thread and OPENBLAS_NUM_THREADS=1 set by the parent before this process loads the addon
// (measured: independent single-thread workers are ~2x faster than shared pools and
// robust to a busy machine). Resumes from the checkpoint in `job.out` when there is one.
import { existsSync, readFileSync, writeFileSync, appendFileSync } from 'node:fs';
import { join } from 'node:path';
import { SoupError } from '../errors.js';
import { CausalLM, PPOTrainer, type PPOConfig, type PPOStats, type LoraOptions } from '../train/index.js';
import { buildRewards } from './rewards.js';

export interface PPOJob {
  name: string;
  model: string;
  adapter?: string;
  lora: LoraOptions;
  dtype: 'float32' | 'bfloat16' | 'float16';
  ppo: PPOConfig;
  /** Reward specs (as in the experiment file) and their MORL weights μ. */
  rewards: unknown[];
  weights: number[];
  baseDir: string;
  /** JSON file { train: number[][] } of prompt token ids. */
  promptsFile: string;
  steps: number;
  /** Checkpoint dir (PEFT adapter + trainer state). */
  out: string;
  /** Per-step stats, one JSON line each. */
  history: string;
  threads: number;
}

export type WorkerMessage =
  | { type: 'start'; name: string; step: number }
  | { type: 'step'; name: string; step: number; steps: number; score: number; rewards: Record<string, number>; kl: number; seconds: number }
  | { type: 'done'; name: string; step: number }
  | { type: 'error'; name: string; code: string; message: string };

/** Keeps the history lines up to `step` (after a resume, steps past the checkpoint are redone). */
export function truncateHistory(file: string, step: number): void {
  if (!existsSync(file)) return;
  const keep = readFileSync(file, 'utf8')
    .split('\n')
    .filter((l) => l.trim() !== '')
    .filter((l) => (JSON.parse(l) as { step: number }).step <= step);
  writeFileSync(file, keep.map((l) => `${l}\n`).join(''));
}

export async function runPPOJob(job: PPOJob, send: (m: WorkerMessage) => void, signal?: AbortSignal): Promise<void> {
  const prompts = (JSON.parse(readFileSync(job.promptsFile, 'utf8')) as { train: number[][] }).train;
  const rewards = await buildRewards(job.rewards, job.baseDir);
  const model = await CausalLM.fromPretrained(job.model, {
    dtype: job.dtype === 'float16' ? 'float32' : job.dtype,
    lora: job.adapter ?? job.lora,
    valueHead: true,
    seed: job.ppo.seed,
    threads: job.threads,
  });
  try {
    const trainer = new PPOTrainer(model, job.ppo, { rewards, weights: job.weights, checkpointDir: job.out });
    if (existsSync(join(job.out, 'trainer_state.json'))) await trainer.load(job.out);
    truncateHistory(job.history, trainer.step);
    send({ type: 'start', name: job.name, step: trainer.step });
    // CPU seconds of this process per step (all threads): on a busy machine the wall time says little
    let cpu = process.cpuUsage();
    // the history line is written before the step's checkpoint (record), so a kill between the two
    // loses no step: on resume, lines past the checkpoint are dropped and redone
    const record = (s: PPOStats) => {
      const d = process.cpuUsage(cpu);
      cpu = process.cpuUsage();
      appendFileSync(
        job.history,
        `${JSON.stringify({ step: s.step, score: s.score, rewards: s.rewards, kl: s.kl, kl_coef: s.klCoef, entropy: s.entropy, seconds: s.seconds.total, cpu_seconds: (d.user + d.system) / 1e6 })}\n`,
      );
    };
    for await (const s of trainer.train({ prompts, steps: job.steps, signal, record })) {
      send({ type: 'step', name: job.name, step: s.step, steps: job.steps, score: s.score, rewards: s.rewards, kl: s.kl, seconds: s.seconds.total });
    }
  } finally {
    await model.dispose();
  }
}

// Child-process entry: the parent sends the job; a lost parent (killed run) ends the child too.
if (process.send && process.env.RSOUP_PPO_WORKER === '1') {
  const send = (m: WorkerMessage) => process.send?.(m);
  const flush = (m: WorkerMessage) => new Promise<void>((res) => (process.send ? process.send(m, undefined, {}, () => res()) : res()));
  const ac = new AbortController();
  process.on('disconnect', () => process.exit(1));
  process.on('SIGTERM', () => ac.abort(new Error('SIGTERM')));
  process.on('SIGINT', () => ac.abort(new Error('SIGINT')));
  process.once('message', (job: PPOJob) => {
    runPPOJob(job, send, ac.signal).then(
      () => process.exit(0),
      async (e: unknown) => {
        const err = e instanceof SoupError ? e : new SoupError('ERR_SOUP_INTERNAL', (e as Error)?.stack ?? String(e));
        await flush({ type: 'error', name: job.name, code: err.code, message: err.message });
        process.exit(1);
      },
    );
  });
}
