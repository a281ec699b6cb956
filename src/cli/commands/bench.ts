// SPDX-License-Identifier: MIT
// rsoup bench merge: the merge engine against the same-run bandwidth probe, a JS loop and PyTorch.
// rsoup bench calls: what an in-memory soup costs outside its kernel, one-shot against prepared.
import type { Command } from 'commander';
import { benchMerge } from '../../bench/merge.js';
import { benchCalls } from '../../bench/calls.js';
import { jsonLine } from '../output.js';

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
    .option('--json', 'JSON lines on stdout')
    .action(async (o: Record<string, string | boolean | undefined>) => {
      await benchMerge({
        fullBytes: Number(o.fullGib) * 2 ** 30,
        reps: Number(o.reps),
        ns: String(o.n).split(',').map(Number),
        dtypes: String(o.dtypes).split(',') as never,
        regimes: String(o.regimes).split(',') as never,
        threads: o.threads ? Number(o.threads) : undefined,
        torch: o.torch !== false,
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
        tensors: String(o.tensors).split(',').map(Number),
        n: Number(o.n),
        dtype: String(o.dtype) as never,
        reps: Number(o.reps),
        threads: o.threads ? Number(o.threads) : undefined,
        json: o.json ? (x) => jsonLine(x) : undefined,
      });
    });
}
