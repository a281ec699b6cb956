// SPDX-License-Identifier: MIT
// rsoup merge CONFIG.yml OUT            (mergekit's config fields)
// rsoup merge --sources A B … --weights 0.3 0.7 … --out OUT [--dtype …] [--lora params|dense] [--base DIR]
import type { Command } from 'commander';
import { readFileSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { SoupError } from '../../errors.js';
import { merge, type MergeOptions } from '../../soup/merge.js';
import type { DType } from '../../io/tensor.js';
import { jsonLine, progressBar, UsageError } from '../output.js';
import { withSigint } from '../signals.js';

const DTYPE_ALIASES: Record<string, DType> = {
  float32: 'float32', fp32: 'float32', f32: 'float32',
  float16: 'float16', fp16: 'float16', f16: 'float16', half: 'float16',
  bfloat16: 'bfloat16', bf16: 'bfloat16',
  float64: 'float64', fp64: 'float64', f64: 'float64',
};

export function parseDtype(s: string | undefined, field: string): DType | undefined {
  if (s === undefined) return undefined;
  const d = DTYPE_ALIASES[s.toLowerCase()];
  if (!d) throw new SoupError('ERR_SOUP_CONFIG', `${field}: unknown dtype '${s}' (use one of ${Object.keys(DTYPE_ALIASES).join(', ')})`);
  return d;
}

/** Sizes like 5GB, 500M, 1e9 (bytes). mergekit's "5B" means 5e9 as well. */
export function parseSize(s: string, field: string): number {
  const m = /^\s*([0-9.e+]+)\s*([kmgt]i?b?|b)?\s*$/i.exec(s);
  if (!m || !Number.isFinite(Number(m[1]))) throw new SoupError('ERR_SOUP_CONFIG', `${field}: cannot read size '${s}' (e.g. 5GB, 500MB, 2GiB)`);
  const unit = (m[2] ?? '').toLowerCase();
  const mult: Record<string, number> = { '': 1, b: 1e9, k: 1e3, kb: 1e3, m: 1e6, mb: 1e6, g: 1e9, gb: 1e9, t: 1e12, tb: 1e12, kib: 2 ** 10, mib: 2 ** 20, gib: 2 ** 30, tib: 2 ** 40, ki: 2 ** 10, mi: 2 ** 20, gi: 2 ** 30 };
  if (!(unit in mult)) throw new SoupError('ERR_SOUP_CONFIG', `${field}: unknown size unit in '${s}'`);
  return Math.round(Number(m[1]) * mult[unit]);
}

/** mergekit's config, as far as a linear merge uses it, plus the LoRA fields of this library. */
export const MergeConfigSchema = z.object({
  merge_method: z.enum(['linear']).default('linear'),
  models: z.array(z.object({
    model: z.string().min(1),
    parameters: z.object({ weight: z.number() }).passthrough(),
  })).min(1),
  dtype: z.string().optional(),
  out_dtype: z.string().optional(),
  parameters: z.object({ normalize: z.boolean().optional() }).passthrough().optional(),
  base_model: z.string().optional(),
  lora: z.enum(['params', 'dense']).optional(),
  allow_extrapolation: z.boolean().optional(),
  out_shard_size: z.union([z.string(), z.number()]).optional(),
});

export function configToOptions(path: string, out: string): MergeOptions {
  let raw: unknown;
  try {
    raw = parseYaml(readFileSync(path, 'utf8'));
  } catch (e) {
    throw new SoupError('ERR_SOUP_CONFIG', `${path}: ${(e as Error).message}`);
  }
  const r = MergeConfigSchema.safeParse(raw);
  if (!r.success) {
    const i = r.error.issues[0];
    throw new SoupError('ERR_SOUP_CONFIG', `${path}: field '${i.path.join('.') || '(root)'}': ${i.message}`);
  }
  const c = r.data;
  return {
    sources: c.models.map((m) => m.model),
    weights: c.models.map((m) => m.parameters.weight),
    out,
    // mergekit saves in out_dtype, else in dtype; we always accumulate in fp32 (never cast inputs down first)
    dtype: parseDtype(c.out_dtype ?? c.dtype, c.out_dtype ? 'out_dtype' : 'dtype'),
    normalize: c.parameters?.normalize,
    lora: c.lora,
    base: c.base_model,
    allowExtrapolation: c.allow_extrapolation,
    shardSize: c.out_shard_size === undefined ? undefined : typeof c.out_shard_size === 'number' ? c.out_shard_size : parseSize(c.out_shard_size, 'out_shard_size'),
  };
}

interface Flags {
  sources?: string[];
  weights?: string[];
  out?: string;
  dtype?: string;
  lora?: string;
  base?: string;
  normalize?: boolean;
  allowExtrapolation?: boolean;
  shardSize?: string;
  threads?: string;
  device?: string;
  json?: boolean;
}

function number(s: string, field: string): number {
  const v = Number(s);
  if (s.trim() === '' || Number.isNaN(v) && s.trim().toLowerCase() !== 'nan') throw new UsageError(`${field}: '${s}' is not a number`);
  return v;
}

export function register(program: Command): void {
  program
    .command('merge')
    .description('interpolate checkpoints: θ(λ) = Σ λᵢ θᵢ (safetensors files, HF dirs, PEFT adapter dirs)')
    .argument('[config]', 'mergekit-style YAML (models[].model, models[].parameters.weight, dtype, out_dtype, parameters.normalize)')
    .argument('[out]', 'output: a .safetensors file or a directory')
    .option('--sources <paths...>', 'source checkpoints')
    .option('--weights <numbers...>', 'one weight per source')
    .option('--out <path>', 'output .safetensors file or directory')
    .option('--dtype <dtype>', 'output dtype: float32|bfloat16|float16|float64 (default: the sources\')')
    .option('--lora <mode>', "PEFT sources: 'params' (A and B separately, the paper's code) or 'dense' (exact Σ λᵢ sᵢ BᵢAᵢ)")
    .option('--base <dir>', "with --lora dense: merge into this base model")
    .option('--no-normalize', 'do not divide the weights by their sum')
    .option('--allow-extrapolation', 'allow λ outside the simplex (weights used as given)')
    .option('--shard-size <size>', 'maximum output shard size, e.g. 5GB (default 5GB)')
    .option('--threads <n>', 'worker threads (default: all cores)')
    .option('--device <device>', "cpu or cuda", 'cpu')
    .option('--json', 'print the report as one JSON line on stdout')
    .action(async (config: string | undefined, outArg: string | undefined, flags: Flags) => {
      let opts: MergeOptions;
      if (config) {
        if (flags.sources || flags.weights) throw new UsageError('give either CONFIG.yml OUT or --sources/--weights/--out, not both');
        const out = outArg ?? flags.out;
        if (!out) throw new UsageError('missing OUT: rsoup merge CONFIG.yml OUT');
        opts = configToOptions(config, out);
        if (flags.dtype) opts.dtype = parseDtype(flags.dtype, '--dtype');
        if (flags.lora) opts.lora = flags.lora as MergeOptions['lora'];
        if (flags.base) opts.base = flags.base;
        if (flags.normalize === false) opts.normalize = false;
        if (flags.allowExtrapolation) opts.allowExtrapolation = true;
      } else {
        if (!flags.sources?.length || !flags.weights?.length || !flags.out) throw new UsageError('need --sources, --weights and --out (or CONFIG.yml OUT)');
        opts = {
          sources: flags.sources,
          weights: flags.weights.map((w, i) => number(w, `--weights[${i}]`)),
          out: flags.out,
          dtype: parseDtype(flags.dtype, '--dtype'),
          lora: flags.lora as MergeOptions['lora'],
          base: flags.base,
          normalize: flags.normalize,
          allowExtrapolation: flags.allowExtrapolation,
        };
      }
      if (flags.shardSize) opts.shardSize = parseSize(flags.shardSize, '--shard-size');
      if (flags.threads) opts.threads = number(flags.threads, '--threads');
      if (flags.device) opts.device = flags.device as MergeOptions['device'];
      const bar = progressBar('merging');
      const report = await withSigint((signal) =>
        merge({ ...opts, signal, onProgress: (p) => bar.update(p.fraction, `${(p.bytesDone / 1e9).toFixed(2)}/${(p.bytesTotal / 1e9).toFixed(2)} GB`) }),
      ).finally(() => bar.done());
      if (flags.json) jsonLine({ event: 'merge', ...report });
      else
        process.stderr.write(
          `merged ${opts.sources.length} sources -> ${report.out} (${report.layout}, ${report.tensors} tensors, ${report.files.length} files)\n` +
            `read ${(report.bytesRead / 1e9).toFixed(3)} GB, wrote ${(report.bytesWritten / 1e9).toFixed(3)} GB in ${report.seconds.toFixed(2)} s: ${report.gbps.toFixed(2)} GB/s (kernel ${report.kernel}: ${report.readSeconds.toFixed(2)} s reading, ${report.kernelSeconds.toFixed(2)} s computing, ${report.writeSeconds.toFixed(2)} s writing + fsync)\n`,
        );
    });
}
