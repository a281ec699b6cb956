// SPDX-License-Identifier: MIT
// rsoup merge CONFIG.yml OUT            (mergekit's config fields)
// rsoup merge --sources A B … --weights 0.3 0.7 … --out OUT [--dtype …] [--lora params|dense] [--base DIR]
import type { Command } from 'commander';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { extname } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { SoupError } from '../../errors.js';
import { merge, type MergeOptions } from '../../soup/merge.js';
import type { DType } from '../../io/tensor.js';
import { jsonLine, progressBar, UsageError } from '../output.js';
import { withSigint } from '../signals.js';
import { parseStrict, schemaFields } from '../../util/config.js';

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

const dtypeNames = (): string =>
  [...new Set(Object.values(DTYPE_ALIASES))].map((d) => `${d} (${Object.keys(DTYPE_ALIASES).filter((a) => a !== d && DTYPE_ALIASES[a] === d).join(', ')})`).join(', ');

/** mergekit's config, as far as a linear merge uses it, plus the LoRA fields of this library. Strict:
 *  an unknown key is an error naming it (docs/ARCHITECTURE.md "Strict configs"). Each field's
 *  description is what `rsoup merge --help` and docs/merge.md list. */
export const MergeConfigSchema = z.strictObject({
  merge_method: z.enum(['linear']).default('linear').describe("'linear', the only method: θ = Σ λᵢ θᵢ (default)"),
  models: z.array(z.strictObject({
    model: z.string().min(1).describe('a source: .safetensors file, Hugging Face model dir or PEFT adapter dir'),
    parameters: z.strictObject({ weight: z.number().describe("the source's weight λᵢ") }),
  })).min(1),
  dtype: z.string().optional().describe('output dtype when out_dtype is not given (merging always accumulates in fp32)'),
  out_dtype: z.string().optional().describe('output dtype (default: the sources\'); names as for --dtype'),
  parameters: z.strictObject({
    normalize: z.boolean().optional().describe('divide the weights by their sum (default true; = --no-normalize when false)'),
  }).optional(),
  base_model: z.string().optional().describe('with lora: dense, the base model to merge the adapters into (= --base)'),
  lora: z.enum(['params', 'dense']).optional().describe('PEFT sources: params (A and B separately) or dense (exact Σ λᵢ sᵢ BᵢAᵢ) (= --lora)'),
  allow_extrapolation: z.boolean().optional().describe('use the weights as given, λ may leave the simplex (= --allow-extrapolation)'),
  out_shard_size: z.union([z.string(), z.number()]).optional().describe('maximum output shard size, e.g. 5GB, or bytes (= --shard-size)'),
});

/** The config keys, one line each, from the schema: the help text and docs/merge.md list these. */
export function mergeConfigHelp(): string {
  const fields = schemaFields(MergeConfigSchema);
  const w = Math.max(...fields.map((f) => f.key.length));
  return `Config keys (CONFIG.yml, mergekit-style; unknown keys are errors):\n${fields.map((f) => `  ${f.key.padEnd(w)}  ${f.description ?? ''}`).join('\n')}\n`;
}

export function configToOptions(path: string, out: string): MergeOptions {
  let raw: unknown;
  try {
    raw = parseYaml(readFileSync(path, 'utf8'));
  } catch (e) {
    throw new SoupError('ERR_SOUP_CONFIG', `${path}: ${(e as Error).message}`);
  }
  const c = parseStrict(MergeConfigSchema, raw, path);
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

/** The output rule: a name ending in .safetensors is one file; anything else is a directory (HF or PEFT
 *  layout). A last component with another extension (a dot, then a letter: `x.st`, `x.bin`,
 *  `x.safetensor`) is refused as a likely typo, unless it ends with '/' or is an existing directory. */
export function checkOut(out: string, field: string): void {
  if (out.endsWith('.safetensors') || /[\\/]$/.test(out)) return;
  const ext = extname(out);
  if (!/^\.[A-Za-z][A-Za-z0-9_-]*$/.test(ext)) return;
  if (existsSync(out) && statSync(out).isDirectory()) return;
  const stem = out.slice(0, -ext.length);
  throw new UsageError(`${field} '${out}': '${ext}' is not .safetensors. For one file, name it '${stem}.safetensors'; for a directory (Hugging Face or PEFT layout), end it with a slash: '${out}/'`);
}

/** Library messages name the API's options (allowExtrapolation, lora 'dense', base, shardSize, threads);
 *  the CLI names its own flags, or with a config file its YAML keys. */
export function cliMessage(msg: string, mode: 'flags' | 'yaml'): string {
  const yaml = mode === 'yaml';
  return msg
    .replace(/\ballowExtrapolation\b/g, yaml ? 'allow_extrapolation: true (or --allow-extrapolation)' : '--allow-extrapolation')
    .replace(/\blora:? '(params|dense)'/g, yaml ? 'lora: $1' : '--lora $1')
    .replace(/\bbase '([^']*)'/g, yaml ? 'base_model: $1' : '--base $1')
    .replace(/^base is only used\b/, yaml ? 'base_model is only used' : '--base is only used')
    .replace(/\bshardSize\b/g, yaml ? 'out_shard_size' : '--shard-size')
    .replace(/^threads must\b/, '--threads must')
    .replace(/^(dtype must|lora must)\b/, (m) => (yaml ? m : `--${m}`));
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
    .argument('[config]', 'mergekit-style YAML (keys below)')
    .argument('[out]', 'output: a .safetensors file, or a directory (a name without extension, or ending in /)')
    .option('--sources <paths...>', 'source checkpoints')
    .option('--weights <numbers...>', 'one weight per source')
    .option('--out <path>', 'output: NAME.safetensors (one file) or a directory (a name without extension, or ending in /)')
    .option('--dtype <dtype>', `output dtype (default: the sources'): ${dtypeNames()}`)
    .option('--lora <mode>', "PEFT sources: 'params' (A and B separately, the paper's code) or 'dense' (exact Σ λᵢ sᵢ BᵢAᵢ)")
    .option('--base <dir>', "with --lora dense: merge into this base model")
    .option('--no-normalize', 'do not divide the weights by their sum')
    .option('--allow-extrapolation', 'allow λ outside the simplex (weights used as given)')
    .option('--shard-size <size>', 'maximum output shard size, e.g. 5GB (default 5GB)')
    .option('--threads <n>', 'worker threads (default: all cores)')
    .option('--device <device>', "cpu or cuda", 'cpu')
    .option('--json', 'print the report as one JSON line on stdout')
    .addHelpText('after', () => `\n${mergeConfigHelp()}`)
    .action(async (config: string | undefined, outArg: string | undefined, flags: Flags) => {
      let opts: MergeOptions;
      if (config) {
        if (flags.sources || flags.weights) throw new UsageError('give either CONFIG.yml OUT or --sources/--weights/--out, not both');
        const out = outArg ?? flags.out;
        if (!out) throw new UsageError('missing OUT: rsoup merge CONFIG.yml OUT');
        checkOut(out, outArg ? 'OUT' : '--out');
        opts = configToOptions(config, out);
        if (flags.dtype) opts.dtype = parseDtype(flags.dtype, '--dtype');
        if (flags.lora) opts.lora = flags.lora as MergeOptions['lora'];
        if (flags.base) opts.base = flags.base;
        if (flags.normalize === false) opts.normalize = false;
        if (flags.allowExtrapolation) opts.allowExtrapolation = true;
      } else {
        if (!flags.sources?.length || !flags.weights?.length || !flags.out) throw new UsageError('need --sources, --weights and --out (or CONFIG.yml OUT)');
        checkOut(flags.out, '--out');
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
      )
        .catch((e: unknown) => {
          throw e instanceof SoupError ? new SoupError(e.code, cliMessage(e.message, config ? 'yaml' : 'flags'), { cause: e }) : e;
        })
        .finally(() => bar.done());
      if (flags.json) jsonLine({ event: 'merge', ...report });
      else
        process.stderr.write(
          `merged ${opts.sources.length} sources -> ${report.out} (${report.layout}, ${report.tensors} tensors, ${report.files.length} files)\n` +
            `read ${(report.bytesRead / 1e9).toFixed(3)} GB, wrote ${(report.bytesWritten / 1e9).toFixed(3)} GB in ${report.seconds.toFixed(2)} s: ${report.gbps.toFixed(2)} GB/s (kernel ${report.kernel}: ${report.readSeconds.toFixed(2)} s reading, ${report.kernelSeconds.toFixed(2)} s computing, ${report.writeSeconds.toFixed(2)} s writing + fsync)\n`,
        );
    });
}
