// SPDX-License-Identifier: MIT
// rsoup bench merge: the merge engine against the same-run bandwidth probe, a JS loop and PyTorch.
import type { Command } from 'commander';
import { benchMerge } from '../../bench/merge.js';
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
}
