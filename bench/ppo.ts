// SPDX-License-Identifier: MIT
// npx tsx bench/ppo.ts [--reps 3] [--steps 4] [--threads 1] [--vocab 2048] [--hidden 128] [--layers 4] [--batch 64] [--gen 24]
// PPO step (rollout + update) and KV-cache generation tokens/s of the native core against the same
// computation in PyTorch eager (bench/ppo_torch.py, Debian's python3-torch), each trial in a fresh child
// process, alternating, same thread settings. Defaults: the demo's text setting (d 128, 4 layers,
// 4 heads, SwiGLU 344, tied, vocab 2048; 64 prompts of 8 tokens, 24 new tokens; LoRA r 8 on q,v + value
// head; 4 epochs x 4 minibatches of 16). Table on stderr, JSON lines on stdout.
import { spawnSync } from 'node:child_process';
import { execSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const arg = (k: string, d: number) => {
  const i = process.argv.indexOf(`--${k}`);
  return i > 0 ? Number(process.argv[i + 1]) : d;
};
const o = {
  reps: arg('reps', 3), steps: arg('steps', 4), warmup: arg('warmup', 1), threads: arg('threads', 1),
  vocab: arg('vocab', 2048), hidden: arg('hidden', 128), layers: arg('layers', 4), heads: arg('heads', 4), kv: arg('kv', 4),
  inter: arg('inter', 344), batch: arg('batch', 64), prompt: arg('prompt', 8), gen: arg('gen', 24), mb: arg('mb', 16), epochs: arg('epochs', 4),
};

async function child(): Promise<void> {
  const { CausalLM, PPOTrainer, randomLlamaWeights, mulberry32 } = await import('../src/train/index.js');
  const cfg = { vocabSize: o.vocab, hiddenSize: o.hidden, intermediateSize: o.inter, numHiddenLayers: o.layers, numAttentionHeads: o.heads,
    numKeyValueHeads: o.kv, rmsNormEps: 1e-6, ropeTheta: 10000, tieWordEmbeddings: true, eosTokenId: 2, padTokenId: 0 };
  const m = await CausalLM.fromTensors(cfg, randomLlamaWeights(cfg, 1, { dtype: 'float32', scale: 0.1 }), {
    threads: o.threads, valueHead: true, lora: { r: 8, lora_alpha: 16, lora_dropout: 0.05, target_modules: ['q_proj', 'v_proj'] } });
  const rnd = mulberry32(2);
  const prompts = Array.from({ length: o.batch }, () => Array.from({ length: o.prompt }, () => 3 + Math.floor(rnd() * (o.vocab - 3))));
  const reward = { name: 'tok7', async score(b: { meta: { responseTokens: number[] } }[]) { return Float64Array.from(b, (s) => s.meta.responseTokens.filter((t) => t === 7).length / s.meta.responseTokens.length); } };
  const t = new PPOTrainer(m, { batch_size: o.batch, mini_batch_size: o.mb, ppo_epochs: o.epochs, learning_rate: 1e-3, save_every: 0,
    generation: { fixed_length: true, output_min_length: o.gen, output_max_length: o.gen + 1 } }, { rewards: [reward] });
  const steps: number[] = [], gens: number[] = [], updates: number[] = [];
  let i = 0;
  for await (const s of t.train({ prompts, steps: o.warmup + o.steps })) {
    const g0 = performance.now();
    await m.generate(prompts, { maxNewTokens: o.gen, eosTokenId: -1, seed: i });
    const g = (performance.now() - g0) / 1000;
    if (i++ >= o.warmup) { steps.push(s.seconds.total); gens.push(g); updates.push(s.seconds.update); }
  }
  await m.dispose();
  process.stdout.write(`${JSON.stringify({ impl: 'native', step_s: steps, gen_s: gens, update_s: updates, gen_tokens: o.batch * o.gen })}\n`);
}

const median = (a: number[]) => { const s = [...a].sort((x, y) => x - y); return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2; };

function parent(): void {
  const env = { ...process.env, OMP_WAIT_POLICY: 'PASSIVE', OMP_NUM_THREADS: String(o.threads), OPENBLAS_NUM_THREADS: String(o.threads) };
  const flags = Object.entries(o).filter(([k]) => !['reps'].includes(k)).flatMap(([k, v]) => [`--${k}`, String(v)]);
  // torch-eager-malloc: the baseline with the same glibc settings the native core applies to itself.
  const IMPLS = ['native', 'torch-eager', 'torch-eager-malloc'];
  const mallocEnv = { MALLOC_MMAP_THRESHOLD_: String(32 << 20), MALLOC_TRIM_THRESHOLD_: String(512 << 20), MALLOC_TOP_PAD_: String(64 << 20) };
  const res: Record<string, { step: number[]; gen: number[]; tokens: number }> = Object.fromEntries(IMPLS.map((k) => [k, { step: [], gen: [], tokens: 0 }]));
  for (let r = 0; r < o.reps; r++) {
    for (const impl of IMPLS) {
      const cmd = impl === 'native'
        ? [process.execPath, ['--import', 'tsx', join(here, 'ppo.ts'), '--child', ...flags]]
        : ['/usr/bin/python3', [join(here, 'ppo_torch.py'), ...flags.filter((f, i, a) => !(f === '--reps' || a[i - 1] === '--reps'))]];
      const p = spawnSync(cmd[0] as string, cmd[1] as string[], { env: impl === 'torch-eager-malloc' ? { ...env, ...mallocEnv } : env, encoding: 'utf8', maxBuffer: 1 << 24 });
      if (p.status !== 0) { process.stderr.write(p.stderr); throw new Error(`${impl} child failed (${p.status})`); }
      const line = JSON.parse(p.stdout.trim().split('\n').pop() as string);
      res[impl].step.push(...line.step_s);
      res[impl].gen.push(...line.gen_s);
      res[impl].tokens = line.gen_tokens;
      process.stderr.write(`  trial ${r + 1}/${o.reps} ${impl}: step ${median(line.step_s).toFixed(3)} s, generation ${(line.gen_tokens / median(line.gen_s)).toFixed(0)} tok/s\n`);
    }
  }
  let sha = '';
  try { sha = execSync('git rev-parse --short HEAD', { cwd: here, encoding: 'utf8' }).trim(); } catch { /* not a checkout */ }
  const n = res.native, t = res['torch-eager'], tm = res['torch-eager-malloc'];
  const row = {
    bench: 'ppo', git: sha, threads: o.threads, model: { vocab: o.vocab, hidden: o.hidden, layers: o.layers, heads: o.heads, kv: o.kv, inter: o.inter },
    batch: o.batch, prompt: o.prompt, gen: o.gen, minibatch: o.mb, epochs: o.epochs,
    native: { step_s_p50: median(n.step), gen_tok_s_p50: n.tokens / median(n.gen) },
    torch_eager: { step_s_p50: median(t.step), gen_tok_s_p50: t.tokens / median(t.gen) },
    torch_eager_malloc: { step_s_p50: median(tm.step), gen_tok_s_p50: tm.tokens / median(tm.gen) },
    speedup_step: median(t.step) / median(n.step),
    speedup_gen: median(t.gen) / median(n.gen),
    speedup_step_vs_malloc_tuned: median(tm.step) / median(n.step),
  };
  process.stdout.write(`${JSON.stringify(row)}\n`);
  process.stderr.write(`\nPPO step (rollout + update), ${o.threads} thread(s), ${o.reps}x${o.steps} steps, medians:\n`);
  process.stderr.write(`  native       ${row.native.step_s_p50.toFixed(3)} s/step   generation ${row.native.gen_tok_s_p50.toFixed(0)} tok/s\n`);
  process.stderr.write(`  torch eager  ${row.torch_eager.step_s_p50.toFixed(3)} s/step   generation ${row.torch_eager.gen_tok_s_p50.toFixed(0)} tok/s\n`);
  process.stderr.write(`  torch+malloc ${row.torch_eager_malloc.step_s_p50.toFixed(3)} s/step   generation ${row.torch_eager_malloc.gen_tok_s_p50.toFixed(0)} tok/s\n`);
  process.stderr.write(`  speedup      ${row.speedup_step.toFixed(2)}x per step, ${row.speedup_gen.toFixed(2)}x generation (${row.speedup_step_vs_malloc_tuned.toFixed(2)}x per step vs torch with the same malloc settings)\n`);
}

if (process.argv.includes('--child')) await child();
else parent();
