// SPDX-License-Identifier: MIT
// rsoup bench ppo: the PPO step (rollout + update) and KV-cache generation tokens/s of the native core
// against the same computation in PyTorch eager (bench/ppo_torch.py, Debian's python3-torch), each trial
// in a fresh child process, alternating, same thread settings. Defaults: the demo's text setting (d 128,
// 4 layers, 4 heads, SwiGLU 344, tied, vocab 2048; 64 prompts of 8 tokens, 24 new tokens; LoRA r 8 on
// q,v + value head; 4 epochs x 4 minibatches of 16). Table on stderr, one JSON line for the run.
import { spawnSync } from 'node:child_process';
import { packageRoot } from '../native/index.js';
import { harnessPath, runChild, torchMissingReason } from './child.js';
import { gitSha, median } from './stats.js';

/** The model and step of one trial; the same keys are bench/ppo_torch.py's flags. */
export interface PpoTrial {
  steps: number;
  warmup: number;
  threads: number;
  vocab: number;
  hidden: number;
  layers: number;
  heads: number;
  kv: number;
  inter: number;
  batch: number;
  prompt: number;
  gen: number;
  mb: number;
  epochs: number;
}

export const PPO_DEFAULTS: PpoTrial & { reps: number } = {
  reps: 3,
  steps: 4,
  warmup: 1,
  threads: 1,
  vocab: 2048,
  hidden: 128,
  layers: 4,
  heads: 4,
  kv: 4,
  inter: 344,
  batch: 64,
  prompt: 8,
  gen: 24,
  mb: 16,
  epochs: 4,
};

export interface PpoBenchOptions extends Partial<PpoTrial> {
  /** Trials per implementation (each a fresh process). */
  reps?: number;
  /** Run the PyTorch baselines (default true; skipped with a note when python3 -c "import torch" fails). */
  torch?: boolean;
  log?: (line: string) => void;
  json?: (obj: Record<string, unknown>) => void;
}

/** What one trial process prints: per measured step, seconds. */
export interface PpoTrialResult {
  impl: string;
  step_s: number[];
  gen_s: number[];
  update_s: number[];
  gen_tokens: number;
}

/** One native trial (the child process's side): warm-up steps, then `steps` timed PPO steps, each
 *  followed by a timed generation of the whole batch. */
export async function ppoTrial(o: PpoTrial): Promise<PpoTrialResult> {
  const { CausalLM, PPOTrainer, randomLlamaWeights } = await import('../train/index.js');
  const { mulberry32 } = await import('../util/random.js');
  const cfg = {
    vocabSize: o.vocab,
    hiddenSize: o.hidden,
    intermediateSize: o.inter,
    numHiddenLayers: o.layers,
    numAttentionHeads: o.heads,
    numKeyValueHeads: o.kv,
    rmsNormEps: 1e-6,
    ropeTheta: 10000,
    tieWordEmbeddings: true,
    eosTokenId: 2,
    padTokenId: 0,
  };
  const m = await CausalLM.fromTensors(cfg, randomLlamaWeights(cfg, 1, { dtype: 'float32', scale: 0.1 }), {
    threads: o.threads,
    valueHead: true,
    lora: { r: 8, lora_alpha: 16, lora_dropout: 0.05, target_modules: ['q_proj', 'v_proj'] },
  });
  const rnd = mulberry32(2);
  const prompts = Array.from({ length: o.batch }, () => Array.from({ length: o.prompt }, () => 3 + Math.floor(rnd() * (o.vocab - 3))));
  const reward = {
    name: 'tok7',
    async score(b: { meta: { responseTokens: number[] } }[]) {
      return Float64Array.from(b, (s) => s.meta.responseTokens.filter((t) => t === 7).length / s.meta.responseTokens.length);
    },
  };
  const t = new PPOTrainer(
    m,
    {
      batch_size: o.batch,
      mini_batch_size: o.mb,
      ppo_epochs: o.epochs,
      learning_rate: 1e-3,
      save_every: 0,
      generation: { fixed_length: true, output_min_length: o.gen, output_max_length: o.gen + 1 },
    },
    { rewards: [reward] },
  );
  const steps: number[] = [],
    gens: number[] = [],
    updates: number[] = [];
  let i = 0;
  for await (const s of t.train({ prompts, steps: o.warmup + o.steps })) {
    const g0 = performance.now();
    await m.generate(prompts, { maxNewTokens: o.gen, eosTokenId: -1, seed: i });
    const g = (performance.now() - g0) / 1000;
    if (i++ >= o.warmup) {
      steps.push(s.seconds.total);
      gens.push(g);
      updates.push(s.seconds.update);
    }
  }
  await m.dispose();
  return { impl: 'native', step_s: steps, gen_s: gens, update_s: updates, gen_tokens: o.batch * o.gen };
}

const IMPLS = ['native', 'torch-eager', 'torch-eager-malloc'] as const;
type Impl = (typeof IMPLS)[number];

/** The bench: `reps` rounds, each running every implementation once in a fresh process. */
export async function benchPpo(opts: PpoBenchOptions = {}): Promise<Record<string, unknown>> {
  const log = opts.log ?? ((l: string) => process.stderr.write(`${l}\n`));
  const { reps, torch: _t, log: _l, json: _j, ...rest } = { ...PPO_DEFAULTS, ...opts };
  const o: PpoTrial = { ...rest };
  const script = harnessPath('ppo_torch.py');
  const wantTorch = opts.torch ?? true;
  const torchMissing = wantTorch ? torchMissingReason('ppo_torch.py') : '--no-torch';
  const useTorch = !torchMissing;
  if (torchMissing) log(`  (PyTorch baselines skipped: ${torchMissing})`);
  const impls: Impl[] = useTorch ? [...IMPLS] : ['native'];
  const env = { ...process.env, OMP_WAIT_POLICY: 'PASSIVE', OMP_NUM_THREADS: String(o.threads), OPENBLAS_NUM_THREADS: String(o.threads) };
  // torch-eager-malloc: the baseline with the same glibc settings the native core applies to itself.
  const mallocEnv = { MALLOC_MMAP_THRESHOLD_: String(32 << 20), MALLOC_TRIM_THRESHOLD_: String(512 << 20), MALLOC_TOP_PAD_: String(64 << 20) };
  const flags = Object.entries(o).flatMap(([k, v]) => [`--${k}`, String(v)]);
  const res = Object.fromEntries(IMPLS.map((k) => [k, { step: [] as number[], gen: [] as number[], tokens: 0 }])) as Record<
    Impl,
    { step: number[]; gen: number[]; tokens: number }
  >;
  for (let r = 0; r < reps; r++) {
    for (const impl of impls) {
      let line: PpoTrialResult;
      if (impl === 'native') line = await runChild<PpoTrialResult>('ppo', o, { env });
      else {
        const p = spawnSync('/usr/bin/python3', [script, ...flags], {
          env: impl === 'torch-eager-malloc' ? { ...env, ...mallocEnv } : env,
          encoding: 'utf8',
          maxBuffer: 1 << 24,
        });
        if (p.status !== 0) throw new Error(`${impl} (bench/ppo_torch.py) failed (exit ${p.status}):\n${p.stderr.trim().split('\n').slice(-20).join('\n')}`);
        line = JSON.parse(p.stdout.trim().split('\n').at(-1) as string) as PpoTrialResult;
      }
      res[impl].step.push(...line.step_s);
      res[impl].gen.push(...line.gen_s);
      res[impl].tokens = line.gen_tokens;
      log(`  trial ${r + 1}/${reps} ${impl}: step ${median(line.step_s).toFixed(3)} s, generation ${(line.gen_tokens / median(line.gen_s)).toFixed(0)} tok/s`);
    }
  }
  const n = res.native,
    t = res['torch-eager'],
    tm = res['torch-eager-malloc'];
  const of = (x: { step: number[]; gen: number[]; tokens: number }) =>
    x.step.length ? { step_s_p50: median(x.step), gen_tok_s_p50: x.tokens / median(x.gen) } : null;
  const row = {
    bench: 'ppo',
    git: gitSha(packageRoot),
    threads: o.threads,
    reps,
    steps: o.steps,
    model: { vocab: o.vocab, hidden: o.hidden, layers: o.layers, heads: o.heads, kv: o.kv, inter: o.inter },
    batch: o.batch,
    prompt: o.prompt,
    gen: o.gen,
    minibatch: o.mb,
    epochs: o.epochs,
    native: of(n),
    torch_eager: of(t),
    torch_eager_malloc: of(tm),
    speedup_step: useTorch ? median(t.step) / median(n.step) : null,
    speedup_gen: useTorch ? median(t.gen) / median(n.gen) : null,
    speedup_step_vs_malloc_tuned: useTorch ? median(tm.step) / median(n.step) : null,
  };
  opts.json?.(row);
  const fmt = (x: ReturnType<typeof of>) => (x ? `${x.step_s_p50.toFixed(3)} s/step   generation ${x.gen_tok_s_p50.toFixed(0)} tok/s` : 'skipped');
  log(`\nPPO step (rollout + update), ${o.threads} thread(s), ${reps}x${o.steps} steps, medians:`);
  log(`  native       ${fmt(row.native)}`);
  log(`  torch eager  ${fmt(row.torch_eager)}`);
  log(`  torch+malloc ${fmt(row.torch_eager_malloc)}`);
  if (useTorch)
    log(
      `  speedup      ${row.speedup_step!.toFixed(2)}x per step, ${row.speedup_gen!.toFixed(2)}x generation (${row.speedup_step_vs_malloc_tuned!.toFixed(2)}x per step vs torch with the same malloc settings)`,
    );
  return row;
}
