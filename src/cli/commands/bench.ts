// SPDX-License-Identifier: MIT
// rsoup bench <name>: every benchmark that runs under Node (the code lives in src/bench/<name>.ts; bench/
// keeps the harnesses that do not: C++ kernel harnesses, PyTorch baselines, gpu.sh). Each prints progress
// and a table on stderr and, with --json, JSON lines on stdout: `--json > bench/results/<name>.jsonl`
// refreshes a bench's canonical results file. Benches that time one trial per process re-run this CLI as
// `rsoup bench <name> --child <trial>` (a hidden option; src/bench/child.ts).
import { Option, type Command } from 'commander';
import { benchMerge } from '../../bench/merge.js';
import { benchCalls } from '../../bench/calls.js';
import { benchLoad } from '../../bench/load.js';
import { ENV_NAMES, type EnvName } from '../../envs/index.js';
import { isDType, DTYPES, type DType } from '../../io/tensor.js';
import { jsonLine, UsageError } from '../output.js';

/** A flag's positive integer, or a usage error naming the flag. */
function count(flag: string, s: unknown): number {
  const v = Number(s);
  if (!Number.isSafeInteger(v) || v < 1) throw new UsageError(`${flag}: '${String(s)}' is not a positive integer`);
  return v;
}

/** A flag's integer ≥ 0. */
function natural(flag: string, s: unknown): number {
  const v = Number(s);
  if (String(s).trim() === '' || !Number.isSafeInteger(v) || v < 0) throw new UsageError(`${flag}: '${String(s)}' is not a non-negative integer`);
  return v;
}

/** A flag's positive (finite) number. */
function positive(flag: string, s: unknown): number {
  const v = Number(s);
  if (!(v > 0) || !Number.isFinite(v)) throw new UsageError(`${flag}: '${String(s)}' is not a positive number`);
  return v;
}

function one<T>(flag: string, xs: T[]): T {
  if (xs.length !== 1) throw new UsageError(`${flag}: give one value, got ${xs.length}`);
  return xs[0];
}

const counts = (flag: string, s: unknown): number[] =>
  String(s)
    .split(',')
    .map((x) => count(flag, x));

function dtypes(flag: string, s: unknown, allowed: readonly DType[] = DTYPES): DType[] {
  return String(s)
    .split(',')
    .map((x) => {
      if (!isDType(x) || !allowed.includes(x)) throw new UsageError(`${flag}: '${x}' is not one of ${allowed.join(', ')}`);
      return x;
    });
}

function envNames(flag: string, s: unknown): EnvName[] {
  return String(s)
    .split(',')
    .map((x) => {
      if (!(ENV_NAMES as readonly string[]).includes(x)) throw new UsageError(`${flag}: '${x}' is not one of ${ENV_NAMES.join(', ')}`);
      return x as EnvName;
    });
}

type Opts = Record<string, string | boolean | undefined>;
const sink = (o: Opts) => (o.json ? (x: unknown) => jsonLine(x) : undefined);
/** The hidden option of the benches that run each trial in a fresh `rsoup bench <name> --child` process. */
const childOption = () => new Option('--child <trial>', 'internal: run one trial (JSON) in this process, print its result').hideHelp();
/** The child's side: one trial from its JSON, its result as one JSON line. */
async function child<T>(o: Opts, trial: (t: T) => Promise<unknown>): Promise<boolean> {
  if (typeof o.child !== 'string') return false;
  jsonLine(await trial(JSON.parse(o.child) as T));
  return true;
}

export function register(program: Command): void {
  const bench = program.command('bench').description('benchmarks (ratios against baselines measured in the same run)');
  bench
    .command('merge')
    .description('fused interpolation GB/s vs bandwidth probe, JS loop and PyTorch sum(l*t) / in-place ops')
    .option('--full-gib <gib>', 'bytes per source in the full-model regime, in GiB', '1')
    .option('--reps <n>', 'timed repetitions (medians of same-pair ratios reported; PyTorch runs min(reps, 3))', '15')
    .option('--n <list>', 'numbers of sources', '2,4,8')
    .option('--dtypes <list>', 'storage dtypes', 'float32,bfloat16')
    .option('--regimes <list>', 'lora (512 small tensors) and/or full (LLaMA-7B layer shapes)', 'lora,full')
    .option('--threads <n>', 'threads (default: all cores)')
    .option('--no-torch', 'skip the PyTorch baselines')
    .option('--no-js', 'skip the plain JS loop baseline')
    .option('--no-fresh', 'skip interpolate() allocating new outputs (huge pages vs 4 KiB pages)')
    .option('--huge-pages <0|1>', "the bench's own buffers on transparent huge pages (1) or 4 KiB pages (0)", '0')
    .option('--json', 'JSON lines on stdout (`--json > bench/results/merge.jsonl` refreshes the canonical results)')
    .action(async (o: Opts) => {
      if (o.hugePages !== '0' && o.hugePages !== '1') throw new UsageError(`--huge-pages: '${String(o.hugePages)}' is not 0 or 1`);
      const gib = Number(o.fullGib);
      if (!(gib > 0)) throw new UsageError(`--full-gib: '${String(o.fullGib)}' is not a positive number`);
      const regimes = String(o.regimes).split(',');
      for (const r of regimes) if (r !== 'lora' && r !== 'full') throw new UsageError(`--regimes: '${r}' is not lora or full`);
      await benchMerge({
        fullBytes: gib * 2 ** 30,
        reps: count('--reps', o.reps),
        ns: counts('--n', o.n),
        dtypes: dtypes('--dtypes', o.dtypes, ['float32', 'bfloat16']),
        regimes: regimes as ('lora' | 'full')[],
        threads: o.threads ? count('--threads', o.threads) : undefined,
        torch: o.torch !== false,
        js: o.js !== false,
        freshOutputs: o.fresh !== false,
        hugePages: o.hugePages === '1',
        json: sink(o),
      });
    });
  bench
    .command('calls')
    .description('per-call cost of interpolate() and a prepared run() outside the kernel, by tensor count')
    .option('--tensors <list>', 'tensors per source (32 MiB per source in all)', '64,512,4096')
    .option('--n <n>', 'number of sources', '2')
    .option('--dtype <dtype>', 'storage dtype', 'bfloat16')
    .option('--reps <n>', 'timed calls per cell (median reported)', '41')
    .option('--threads <n>', 'threads (default: all cores)')
    .option('--json', 'JSON lines on stdout (`--json > bench/results/calls.jsonl` refreshes the canonical results)')
    .action(async (o: Opts) => {
      await benchCalls({
        tensors: counts('--tensors', o.tensors),
        n: count('--n', o.n),
        dtype: one('--dtype', dtypes('--dtype', o.dtype)),
        reps: count('--reps', o.reps),
        threads: o.threads ? count('--threads', o.threads) : undefined,
        json: sink(o),
      });
    });
  bench
    .command('load')
    .description(
      'load a LLaMA-7B-shaped random bf16 dir (shards over 4 GiB; made when missing), logits and LoRA lossAndGrad on 16 tokens: times, VmHWM, peak RssAnon',
    )
    .option('--dir <dir>', 'the model dir (made there when it has no index; removed after unless --keep)', 'rsoup-bench-llama7b')
    .option('--keep', 'keep a dir the bench made')
    .option('--json', 'JSON line on stdout')
    .addOption(childOption())
    .action(async (o: { dir: string; keep?: boolean; json?: boolean; child?: string }) => {
      if (await child<string>(o, async (dir) => (await import('../../bench/load.js')).measureLoad(dir))) return;
      const row = await benchLoad({ dir: o.dir, keep: o.keep });
      if (o.json) jsonLine(row);
    });
  bench
    .command('serve')
    .description(
      'rsoup serve under loopback load: synthetic LLaMA, C concurrent requests each with its own λ vs one merged model (tokens/s ratio, TTFT, p50/p99), fresh vs repeated λ TTFT',
    )
    .option('--hidden <n>', 'hidden size', '1024')
    .option('--layers <n>', 'layers', '8')
    .option('--heads <n>', 'attention heads', '16')
    .option('--vocab <n>', 'vocabulary', '32000')
    .option('--experts <n>', 'experts', '4')
    .option('--rank <n>', 'LoRA rank of each expert', '16')
    .option('--targets <list>', 'LoRA target modules', 'q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj')
    .option('--concurrency <n>', 'concurrent requests per wave', '64')
    .option('--prompt-tokens <n>', 'prompt length', '16')
    .option('--max-tokens <n>', 'new tokens per request', '32')
    .option('--waves <n>', 'waves per server (soup and merged alternate)', '2')
    .option('--ttft-pairs <n>', 'fresh-λ / repeated-λ TTFT pairs', '30')
    .option('--threads <n>', 'libtorch threads (default: all cores)')
    .option('--seconds <s>', 'no new wave after this many seconds', '600')
    .option('--soak <s>', 'instead: the soak, `rsoup serve` in a child process under a steady --rate for this many seconds (RSS, statuses, SIGTERM exit)')
    .option('--rate <r>', 'requests per second of the soak', '1')
    .option('--json', 'JSON line on stdout')
    .action(async (o: Opts) => {
      const { benchServe, soakServe } = await import('../../bench/serve.js');
      if (o.soak) {
        const rate = Number(o.rate);
        if (!(rate > 0)) throw new UsageError(`--rate: '${String(o.rate)}' is not a positive number`);
        const res = await soakServe({
          seconds: count('--soak', o.soak),
          rate,
          hidden: count('--hidden', o.hidden),
          layers: count('--layers', o.layers),
          heads: count('--heads', o.heads),
          vocab: count('--vocab', o.vocab),
          experts: count('--experts', o.experts),
          rank: count('--rank', o.rank),
          targets: String(o.targets).split(','),
          promptTokens: count('--prompt-tokens', o.promptTokens),
          maxTokens: count('--max-tokens', o.maxTokens),
          threads: o.threads ? count('--threads', o.threads) : undefined,
        });
        if (o.json) jsonLine(res);
        if (res.errors5xx > 0 || res.exitCode !== 0) process.exitCode = 1;
        return;
      }
      const res = await benchServe({
        hidden: count('--hidden', o.hidden),
        layers: count('--layers', o.layers),
        heads: count('--heads', o.heads),
        vocab: count('--vocab', o.vocab),
        experts: count('--experts', o.experts),
        rank: count('--rank', o.rank),
        targets: String(o.targets).split(','),
        concurrency: count('--concurrency', o.concurrency),
        promptTokens: count('--prompt-tokens', o.promptTokens),
        maxTokens: count('--max-tokens', o.maxTokens),
        waves: count('--waves', o.waves),
        ttftPairs: count('--ttft-pairs', o.ttftPairs),
        threads: o.threads ? count('--threads', o.threads) : undefined,
        seconds: count('--seconds', o.seconds),
      });
      if (o.json) jsonLine(res);
    });
  bench
    .command('memory')
    .description('peak RSS (VmHWM) of a file-to-file merge of N bf16 sources of S GiB (written once; merged in a fresh process)')
    .option('--n <n>', 'number of sources', '4')
    .option('--gib <gib>', 'GiB per source', '4')
    .option('--dir <dir>', 'where the sources and the soup are written (needs (N+1)·S GiB free)', '/var/tmp/soup-mem')
    .option('--keep', 'keep the files this run wrote (sources already there are reused and always kept)')
    .option('--json', 'JSON line on stdout')
    .addOption(childOption())
    .action(async (o: Opts) => {
      const { benchMemory, memoryTrial } = await import('../../bench/memory.js');
      if (await child(o, memoryTrial)) return;
      await benchMemory({ n: count('--n', o.n), gib: positive('--gib', o.gib), dir: String(o.dir), keep: o.keep === true, json: sink(o) });
    });
  bench
    .command('ppo')
    .description(
      "PPO step (rollout + update) and generation tokens/s of the native core against PyTorch eager (bench/ppo_torch.py), each trial in a fresh process; defaults: the demo's text setting",
    )
    .option('--reps <n>', 'trials per implementation, alternating', '3')
    .option('--steps <n>', 'timed PPO steps per trial', '4')
    .option('--warmup <n>', 'untimed PPO steps first', '1')
    .option('--threads <n>', 'threads (libtorch, OpenMP, BLAS) of every implementation', '1')
    .option('--vocab <n>', 'vocabulary', '2048')
    .option('--hidden <n>', 'hidden size', '128')
    .option('--layers <n>', 'layers', '4')
    .option('--heads <n>', 'attention heads', '4')
    .option('--kv <n>', 'key/value heads', '4')
    .option('--inter <n>', 'SwiGLU intermediate size', '344')
    .option('--batch <n>', 'prompts per PPO batch', '64')
    .option('--prompt <n>', 'prompt tokens', '8')
    .option('--gen <n>', 'new tokens per response', '24')
    .option('--mb <n>', 'minibatch size', '16')
    .option('--epochs <n>', 'PPO epochs per step', '4')
    .option('--no-torch', 'skip the PyTorch baselines')
    .option('--json', 'JSON line on stdout')
    .addOption(childOption())
    .action(async (o: Opts) => {
      const { benchPpo, ppoTrial } = await import('../../bench/ppo.js');
      if (await child(o, ppoTrial)) return;
      const c = (k: string) => count(`--${k}`, o[k]);
      await benchPpo({
        reps: c('reps'),
        steps: c('steps'),
        warmup: natural('--warmup', o.warmup),
        threads: c('threads'),
        vocab: c('vocab'),
        hidden: c('hidden'),
        layers: c('layers'),
        heads: c('heads'),
        kv: c('kv'),
        inter: c('inter'),
        batch: c('batch'),
        prompt: c('prompt'),
        gen: c('gen'),
        mb: c('mb'),
        epochs: c('epochs'),
        torch: o.torch !== false,
        json: sink(o),
      });
    });
  bench
    .command('control')
    .description(
      'where a PPO update on HalfCheetah-v5 spends its time: env stepping vs policy calls vs the native update (CleanRL settings), each configuration in a fresh process',
    )
    .option('--updates <n>', 'measured updates per trial (one more runs first, as warm-up)', '6')
    .option('--rounds <n>', 'rounds, every configuration once per round, interleaved', '3')
    .option('--envs <list>', 'numbers of envs', '8')
    .option('--threads <list>', 'env stepping threads', '1,2')
    .option('--samples <n>', 'samples per update, num_envs·num_steps (at least 64: 32 minibatches of 2)', '2048')
    .option('--json', 'JSON lines on stdout')
    .addOption(childOption())
    .action(async (o: Opts) => {
      const { benchControl, controlTrial } = await import('../../bench/control.js');
      if (await child(o, controlTrial)) return;
      const samples = count('--samples', o.samples);
      if (samples < 64) throw new UsageError(`--samples: '${String(o.samples)}' is less than 64 (32 minibatches of at least 2 samples)`);
      await benchControl({
        updates: count('--updates', o.updates),
        rounds: count('--rounds', o.rounds),
        envs: counts('--envs', o.envs),
        threads: counts('--threads', o.threads),
        samples,
        json: sink(o),
      });
    });
  bench
    .command('diffusion')
    .description(
      'the diffusion core: fine-tuning-set vs full training step, guided vs unguided 20-step DDIM, N threads vs 1 (images/s ratios), each trial in a fresh process',
    )
    .option('--reps <n>', 'rounds of every configuration', '3')
    .option('--steps <n>', 'timed training steps per trial', '6')
    .option('--batch <n>', 'images per step / per generation', '64')
    .option('--threads <n>', 'libtorch threads (the 1-thread configuration aside)', '2')
    .option('--json', 'JSON lines on stdout')
    .addOption(childOption())
    .action(async (o: Opts) => {
      const { benchDiffusion, diffusionTrial } = await import('../../bench/diffusion.js');
      if (await child(o, diffusionTrial)) return;
      await benchDiffusion({
        reps: count('--reps', o.reps),
        steps: count('--steps', o.steps),
        batch: count('--batch', o.batch),
        threads: count('--threads', o.threads),
        json: sink(o),
      });
    });
  bench
    .command('envs')
    .description('env steps/s of VecEnv at each thread count against a bare mujoco-js loop, each trial in a fresh process')
    .option('--seconds <s>', 'timed seconds per trial (after 0.3 s of warm-up)', '2')
    .option('--rounds <n>', 'rounds, every configuration once per round, interleaved', '3')
    .option('--envs <list>', 'numbers of envs', '8,16')
    .option('--env <list>', `environments (${ENV_NAMES.join(', ')})`, ENV_NAMES.join(','))
    .option('--threads <list>', 'VecEnv thread counts (the bare loop runs on 1)', '1,2')
    .option('--json', 'JSON lines on stdout')
    .addOption(childOption())
    .action(async (o: Opts) => {
      const { benchEnvs, envsTrial } = await import('../../bench/envs.js');
      if (await child(o, envsTrial)) return;
      await benchEnvs({
        seconds: positive('--seconds', o.seconds),
        rounds: count('--rounds', o.rounds),
        envs: counts('--envs', o.envs),
        env: envNames('--env', o.env),
        threads: counts('--threads', o.threads),
        json: sink(o),
      });
    });
  bench
    .command('pareto')
    .description(
      'hypervolume speed against the targets (2-D 10^6 points < 1 s, 3-D 10^5 < 2 s, 5-D 200 < 1 s) and a same-run baseline; exit 1 when a target is missed',
    )
    .option('--repeats <n>', 'timed repeats per case', '7')
    .option('--quick', '3 repeats (same as --repeats 3)')
    .option('--scale <x>', "fraction of every case's point count (targets are checked at 1 only)", '1')
    .option('--json', 'JSON lines on stdout')
    .action(async (o: Opts) => {
      const { benchPareto } = await import('../../bench/pareto.js');
      const scale = positive('--scale', o.scale);
      if (scale > 1) throw new UsageError(`--scale: '${String(o.scale)}' is more than 1`);
      const rows = benchPareto({ repeats: o.quick ? 3 : count('--repeats', o.repeats), scale, json: sink(o) });
      if (rows.some((r) => r.pass === false)) process.exitCode = 1;
    });
  bench
    .command('rewards')
    .description(
      'reward throughput (BLEU, ROUGE-L, VADER, CIDEr-D, METEOR) in samples/s of CPU time against a same-run tokenization baseline, and the time of one 64-sample PPO batch',
    )
    .option('--n <n>', 'samples per trial (METEOR: at most 2000)', '10000')
    .option('--trials <n>', 'trials, every reward once per trial, interleaved (medians)', '5')
    .option('--json', 'JSON lines on stdout')
    .action(async (o: Opts) => {
      const { benchRewards } = await import('../../bench/rewards.js');
      await benchRewards({ n: count('--n', o.n), trials: count('--trials', o.trials), json: sink(o) });
    });
}
