// SPDX-License-Identifier: MIT
// npx tsx bench/diffusion.ts [--reps 3] [--steps 6] [--batch 64] [--threads 2]
// The diffusion core's throughput as ratios against baselines measured in the same run (the machine is
// shared, so absolute images/s are noisy): a training step on the fine-tuning set (cross-attention +
// biases + norm scales, App. E) against a full training step; 20-step DDIM with classifier-free guidance
// (two ε passes) against without; 1 libtorch thread against `--threads`. Each trial runs in a fresh
// child process, configurations alternate. Table and load average on stderr, JSON lines on stdout.
import { spawnSync } from 'node:child_process';
import { loadavg } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const arg = (k: string, d: number) => {
  const i = process.argv.indexOf(`--${k}`);
  return i > 0 ? Number(process.argv[i + 1]) : d;
};
const o = { reps: arg('reps', 3), steps: arg('steps', 6), batch: arg('batch', 64), threads: arg('threads', 2) };
const CONFIGS = ['train-all', 'train-finetune', 'sample-g1', 'sample-g3', 'train-all-1thread'] as const;

async function child(cfg: string): Promise<void> {
  const { DiffusionModel } = await import('../src/train/diffusion.js');
  const { shapesBatch, toModelInput, tokenizeCaptions, randomCaptions } = await import('../src/data/shapes.js');
  const m = await DiffusionModel.create({ seed: 0, threads: cfg.endsWith('1thread') ? 1 : o.threads });
  const B = o.batch;
  const { captions, images } = shapesBatch(1, B);
  const x = toModelInput(images), tok = tokenizeCaptions(captions);
  let seconds = 0, count = 0;
  if (cfg.startsWith('train')) {
    const finetune = cfg === 'train-finetune';
    await m.trainStep(x, tok, B, null, { finetune }); // warm-up
    const t0 = performance.now();
    for (let i = 0; i < o.steps; i++) await m.trainStep(x, tok, B, null, { finetune });
    seconds = (performance.now() - t0) / 1000;
    count = o.steps * B;
  } else {
    const caps = randomCaptions(3, B);
    const g = cfg === 'sample-g3' ? 3 : 1;
    await m.generate(caps.slice(0, 4), [0, 1, 2, 3], { steps: 2, guidance: g });
    const t0 = performance.now();
    await m.generate(caps, caps.map((_, i) => i), { steps: 20, guidance: g });
    seconds = (performance.now() - t0) / 1000;
    count = B;
  }
  await m.dispose();
  process.stdout.write(`${JSON.stringify({ config: cfg, images_per_s: count / seconds, seconds })}\n`);
}

const median = (a: number[]) => {
  const s = [...a].sort((p, q) => p - q);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

function parent(): void {
  const res: Record<string, number[]> = Object.fromEntries(CONFIGS.map((c) => [c, []]));
  const load0 = loadavg()[0];
  for (let r = 0; r < o.reps; r++) {
    for (const c of CONFIGS) {
      const p = spawnSync(process.execPath, ['--import', 'tsx', join(here, 'diffusion.ts'), '--child', c, ...Object.entries(o).flatMap(([k, v]) => [`--${k}`, String(v)])], { encoding: 'utf8', env: { ...process.env, OMP_WAIT_POLICY: 'PASSIVE' } });
      if (p.status !== 0) throw new Error(`${c}: ${p.stderr}`);
      const line = JSON.parse(p.stdout.trim().split('\n').at(-1)!);
      res[c].push(line.images_per_s);
      process.stdout.write(`${JSON.stringify({ rep: r, ...line, load: loadavg()[0] })}\n`);
    }
  }
  const med = Object.fromEntries(CONFIGS.map((c) => [c, median(res[c])]));
  const w = process.stderr;
  w.write(`diffusion bench: batch ${o.batch}, ${o.reps} reps, threads ${o.threads}; load average ${load0.toFixed(2)} → ${loadavg()[0].toFixed(2)}\n`);
  for (const c of CONFIGS) w.write(`  ${c.padEnd(18)} ${med[c].toFixed(1)} images/s (median)\n`);
  w.write(`  fine-tuning set / full step: ${(med['train-finetune'] / med['train-all']).toFixed(2)}x\n`);
  w.write(`  guidance (2 passes) / none:  ${(med['sample-g3'] / med['sample-g1']).toFixed(2)}x\n`);
  w.write(`  ${o.threads} threads / 1 thread:      ${(med['train-all'] / med['train-all-1thread']).toFixed(2)}x\n`);
  process.stdout.write(`${JSON.stringify({ summary: med, ratios: { finetune_vs_full: med['train-finetune'] / med['train-all'], guided_vs_unguided: med['sample-g3'] / med['sample-g1'], threads_vs_1: med['train-all'] / med['train-all-1thread'] } })}\n`);
}

const ci = process.argv.indexOf('--child');
if (ci > 0) await child(process.argv[ci + 1]);
else parent();
