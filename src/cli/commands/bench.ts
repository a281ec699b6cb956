// SPDX-License-Identifier: MIT
// rsoup bench merge: the merge engine against the same-run bandwidth probe, a JS loop and PyTorch.
// rsoup bench calls: what an in-memory soup costs outside its kernel, one-shot against prepared.
// rsoup bench load: a LLaMA-7B-shaped bf16 dir (shards over 4 GiB) loaded for LoRA training: times, memory.
import type { Command } from 'commander';
import { benchMerge } from '../../bench/merge.js';
import { benchCalls } from '../../bench/calls.js';
import { benchLoad } from '../../bench/load.js';
import { isDType, DTYPES, type DType } from '../../io/tensor.js';
import { jsonLine, UsageError } from '../output.js';

/** A flag's positive integer, or a usage error naming the flag. */
function count(flag: string, s: unknown): number {
  const v = Number(s);
  if (!Number.isSafeInteger(v) || v < 1) throw new UsageError(`${flag}: '${String(s)}' is not a positive integer`);
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
    .option('--json', 'JSON lines on stdout')
    .action(async (o: Record<string, string | boolean | undefined>) => {
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
        json: o.json ? (x) => jsonLine(x) : undefined,
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
    .option('--json', 'JSON lines on stdout')
    .action(async (o: Record<string, string | boolean | undefined>) => {
      await benchCalls({
        tensors: counts('--tensors', o.tensors),
        n: count('--n', o.n),
        dtype: one('--dtype', dtypes('--dtype', o.dtype)),
        reps: count('--reps', o.reps),
        threads: o.threads ? count('--threads', o.threads) : undefined,
        json: o.json ? (x) => jsonLine(x) : undefined,
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
    .action(async (o: { dir: string; keep?: boolean; json?: boolean }) => {
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
    .action(async (o: Record<string, string | boolean | undefined>) => {
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
}
