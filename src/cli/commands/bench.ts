// SPDX-License-Identifier: MIT
// rsoup bench merge: the merge engine against the same-run bandwidth probe, a JS loop and PyTorch.
// rsoup bench calls: what an in-memory soup costs outside its kernel, one-shot against prepared.
import type { Command } from 'commander';
import { benchMerge } from '../../bench/merge.js';
import { benchCalls } from '../../bench/calls.js';
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

const counts = (flag: string, s: unknown): number[] => String(s).split(',').map((x) => count(flag, x));

function dtypes(flag: string, s: unknown, allowed: readonly DType[] = DTYPES): DType[] {
  return String(s).split(',').map((x) => {
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
    .option('--json', 'JSON lines on stdout')
    .action(async (o: Record<string, string | boolean | undefined>) => {
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
}
