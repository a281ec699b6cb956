// SPDX-License-Identifier: MIT
// Golden reports: each task (text, locomotion, diffusion) runs a tiny config (seconds) into a temp dir,
// and the numbers of its report.json are compared with the committed tests/golden/<task>.json: every
// per-model reward mean and standard error, the soups' λ, front membership, hypervolumes, LMC gaps,
// paired statistics, verdicts and counts — everything report.json holds except timings, dates, paths,
// machine load and the prose of `reading` (normalise() below says exactly what is left out).
// Integers, strings, booleans and nulls must be equal; other numbers equal to a relative 1e-9.
// Beside the numbers, `hashes.*` holds the input hash of every cached stage (what a run dir's markers
// record), so a change to a hash recipe, which would invalidate every cached run dir, shows here too.
// Threads are pinned to 1 everywhere (libtorch, OpenMP, OpenBLAS, the configs' thread settings), so the
// numbers do not depend on the machine's core count.
//
// A change that is meant to change the numbers rewrites the goldens:
//   RSOUP_UPDATE_GOLDEN=1 npx vitest run tests/golden.test.ts
// and the diff of tests/golden/*.json shows what moved.
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';

// before the torch addon loads (lazily, on first use): libgomp and OpenBLAS read these once, at load
for (const k of ['OMP_NUM_THREADS', 'MKL_NUM_THREADS', 'OPENBLAS_NUM_THREADS']) process.env[k] = '1';

import { torchAddon } from '../src/native/index.js';
import { loadExperiment, runExperiment, stageHashes } from '../src/pipeline/index.js';
import { runDiffusionExperiment } from '../src/pipeline/tasks/diffusion/run.js';
import { diffusionSettings } from '../src/pipeline/tasks/index.js';
import { runLocomotion } from '../src/pipeline/tasks/locomotion/index.js';
import { microLocomotion, writeMicroCorpus } from './helpers/micro.js';

const GOLDEN = join(__dirname, 'golden');
const UPDATE = process.env.RSOUP_UPDATE_GOLDEN === '1';
const tmp = mkdtempSync(join(tmpdir(), 'rsoup-golden-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

/** Keys whose values differ between identical runs or machines (wall/CPU time, load, dates, run dirs),
 *  and the prose of `reading`, whose numbers are the report's own, rounded. */
const DROP = new Set(['seconds', 'cpu_seconds', 'timings', 'machine', 'simulation_share', 'reading', 'date', 'output']);

type Leaf = number | string | boolean | null;

/** The report as `path → leaf` (paths like `models[3].rewards[1]`), without the DROP keys. */
function normalise(v: unknown, path = '', out: Record<string, Leaf> = {}): Record<string, Leaf> {
  if (Array.isArray(v)) {
    v.forEach((x, i) => normalise(x, `${path}[${i}]`, out));
    if (!v.length) out[path] = '[]';
  } else if (v && typeof v === 'object') {
    const keys = Object.keys(v).filter((k) => !DROP.has(k) && (v as Record<string, unknown>)[k] !== undefined);
    for (const k of keys) normalise((v as Record<string, unknown>)[k], path ? `${path}.${k}` : k, out);
    if (!keys.length) out[path] = '{}';
  } else {
    out[path] = v as Leaf;
  }
  return out;
}

/** Compares with the golden leaf by leaf; returns how many numbers were compared. */
function compare(task: string, got: Record<string, Leaf>): number {
  const file = join(GOLDEN, `${task}.json`);
  if (UPDATE) {
    mkdirSync(GOLDEN, { recursive: true });
    writeFileSync(file, `${JSON.stringify({ task, note: 'tests/golden.test.ts; RSOUP_UPDATE_GOLDEN=1 rewrites it', values: got }, null, 1)}\n`);
  }
  if (!existsSync(file)) throw new Error(`${file} is missing: RSOUP_UPDATE_GOLDEN=1 npx vitest run tests/golden.test.ts writes it`);
  const want = (JSON.parse(readFileSync(file, 'utf8')) as { values: Record<string, Leaf> }).values;
  expect(
    Object.keys(got).filter((k) => !(k in want)),
    `${task}: fields not in the golden`,
  ).toEqual([]);
  expect(
    Object.keys(want).filter((k) => !(k in got)),
    `${task}: golden fields missing from the report`,
  ).toEqual([]);
  const bad: string[] = [];
  let numbers = 0;
  for (const [k, w] of Object.entries(want)) {
    const g = got[k];
    if (typeof w === 'number' && typeof g === 'number') {
      numbers++;
      const ok = Number.isInteger(w) ? g === w : g === w || Math.abs(g - w) <= 1e-9 * Math.max(Math.abs(g), Math.abs(w));
      if (!ok) bad.push(`${k}: got ${g}, golden ${w} (relative ${((g - w) / Math.abs(w)).toExponential(2)})`);
    } else if (g !== w) bad.push(`${k}: got ${JSON.stringify(g)}, golden ${JSON.stringify(w)}`);
  }
  expect(bad, `${task}: ${bad.length} of ${Object.keys(want).length} fields differ from tests/golden/${task}.json`).toEqual([]);
  process.stderr.write(`golden ${task}: ${numbers} numbers and ${Object.keys(want).length - numbers} other fields equal\n`);
  return numbers;
}

/** The text task: the micro experiment's corpus slice, a model pre-trained just enough to write words, a
 *  length and a lexicon reward that its samples move, and PPO steps large enough that every model differs. */
const TEXT_CONFIG = `name: golden
seed: 3
output: run
worker_threads: 1
base:
  pretrain: { corpus_dir: corpus, hold_every: 4, vocab_size: 320, hidden_size: 32, intermediate_size: 64, num_layers: 1, num_heads: 2, steps: 40, batch_size: 8, seq_len: 32, warmup_steps: 4, learning_rate: 0.01, threads: 1 }
prompts: { prompt_tokens: 6, num_train: 16, num_eval: 8 }
rewards:
  - { type: length, name: length, target: 24, unit: chars }
  - { type: lexicon, name: topic, words: [life, world, man, time, computer, the, a, you, to, of, and, is, in, it] }
lora: { r: 2, lora_alpha: 4, target_modules: [q_proj, v_proj] }
ppo: { learning_rate: 0.1, batch_size: 4, mini_batch_size: 2, ppo_epochs: 1, init_kl_coef: 0.01, save_every: 2, generation: { output_min_length: 6, output_max_length: 8 } }
experts: { steps: 4 }
morl: { mu: [[0.5, 0.5]] }
sweep: { lambdas: 3, max_new_tokens: 8, threads: 1 }
`;

const readReport = (dir: string) => JSON.parse(readFileSync(join(dir, 'report.json'), 'utf8')) as unknown;

describe('golden reports', () => {
  torchAddon().setNumThreads(1);

  it('text: a micro experiment', async () => {
    writeMicroCorpus(tmp);
    const cfg = join(tmp, 'golden.yml');
    writeFileSync(cfg, TEXT_CONFIG);
    const x = loadExperiment(cfg, { output: join(tmp, 'text') });
    await runExperiment(x);
    // the stage hashes of the same config at a fixed place (the corpus path is part of the base's hash)
    const fixed = loadExperiment(parseYaml(TEXT_CONFIG), { cwd: '/golden', output: '/golden/run' });
    const got = { ...normalise(readReport(join(tmp, 'text'))), ...normalise(stageHashes(fixed), 'hashes') };
    expect(compare('text', got)).toBeGreaterThan(100);
  }, 300_000);

  it('locomotion: the micro experiment', async () => {
    const m = microLocomotion(join(tmp, 'locomotion'));
    await runLocomotion({ ...m, name: 'golden', env: { ...m.env, threads: 1 }, pretrain: { ...m.pretrain, threads: 1 } });
    const dir = join(tmp, 'locomotion');
    const hashes = Object.fromEntries(
      readdirSync(dir)
        .filter((f) => f.endsWith('.safetensors'))
        .map((f) => [
          f.replace(/\.safetensors$/, ''),
          (JSON.parse(readFileSync(join(dir, f.replace(/\.safetensors$/, '.json')), 'utf8')) as { hash: string }).hash,
        ]),
    );
    expect(compare('locomotion', { ...normalise(readReport(dir)), ...normalise(hashes, 'hashes') })).toBeGreaterThan(100);
  }, 300_000);

  it('diffusion: a tiny UNet', async () => {
    const s = diffusionSettings(
      {
        name: 'golden',
        threads: 1,
        output: join(tmp, 'diffusion'),
        unet: { imageSize: 8, ch0: 8, ch1: 16, tembDim: 16, textDim: 8, heads: 2, groups: 4, T: 50 },
        pretrain: { steps: 2, batch_size: 8 },
        samples: { count: 8, ddim_steps: 2 },
        finetune: { steps: 1, batch_size: 4, concurrency: 1 },
        eval: { captions: 4, ddim_steps: 2, lambdas: 3, grid_captions: 2 },
      },
      'golden',
    );
    await runDiffusionExperiment(s);
    const base = JSON.parse(readFileSync(join(tmp, 'diffusion', 'base', 'config.json'), 'utf8')) as { rsoup_hash: string };
    expect(compare('diffusion', { ...normalise(readReport(join(tmp, 'diffusion'))), 'hashes.base': base.rsoup_hash })).toBeGreaterThan(50);
  }, 300_000);
});
