// SPDX-License-Identifier: MIT
// mergekit's YAML config as far as a linear merge uses it (plus this library's LoRA fields), and the
// dtype and size spellings the merge accepts: parsed here into MergeOptions, so the CLI only maps flags.
import { z } from 'zod';
import { SoupError } from '../errors.js';
import type { DType } from '../io/tensor.js';
import { parseStrict, readConfigFile, schemaFields } from '../util/config.js';
import type { MergeOptions } from './merge.js';

export const DTYPE_ALIASES: Record<string, DType> = {
  float32: 'float32',
  fp32: 'float32',
  f32: 'float32',
  float16: 'float16',
  fp16: 'float16',
  f16: 'float16',
  half: 'float16',
  bfloat16: 'bfloat16',
  bf16: 'bfloat16',
  float64: 'float64',
  fp64: 'float64',
  f64: 'float64',
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
  const mult: Record<string, number> = {
    '': 1,
    b: 1e9,
    k: 1e3,
    kb: 1e3,
    m: 1e6,
    mb: 1e6,
    g: 1e9,
    gb: 1e9,
    t: 1e12,
    tb: 1e12,
    kib: 2 ** 10,
    mib: 2 ** 20,
    gib: 2 ** 30,
    tib: 2 ** 40,
    ki: 2 ** 10,
    mi: 2 ** 20,
    gi: 2 ** 30,
  };
  if (!(unit in mult)) throw new SoupError('ERR_SOUP_CONFIG', `${field}: unknown size unit in '${s}'`);
  return Math.round(Number(m[1]) * mult[unit]);
}

export const dtypeNames = (): string =>
  [...new Set(Object.values(DTYPE_ALIASES))]
    .map(
      (d) =>
        `${d} (${Object.keys(DTYPE_ALIASES)
          .filter((a) => a !== d && DTYPE_ALIASES[a] === d)
          .join(', ')})`,
    )
    .join(', ');

/** mergekit's config, as far as a linear merge uses it, plus the LoRA fields of this library. Strict:
 *  an unknown key is an error naming it (docs/ARCHITECTURE.md "Strict configs"). Each field's
 *  description is what `rsoup merge --help` and docs/merge.md list. */
export const MergeConfigSchema = z.strictObject({
  merge_method: z.enum(['linear']).default('linear').describe("'linear', the only method: θ = Σ λᵢ θᵢ (default)"),
  models: z
    .array(
      z.strictObject({
        model: z.string().min(1).describe('a source: .safetensors file, Hugging Face model dir or PEFT adapter dir'),
        parameters: z.strictObject({ weight: z.number().describe("the source's weight λᵢ") }),
      }),
    )
    .min(1),
  dtype: z.string().optional().describe('output dtype when out_dtype is not given (merging always accumulates in fp32)'),
  out_dtype: z.string().optional().describe("output dtype (default: the sources'); names as for --dtype"),
  parameters: z
    .strictObject({
      normalize: z.boolean().optional().describe('divide the weights by their sum (default true; = --no-normalize when false)'),
    })
    .optional(),
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
  const c = parseStrict(MergeConfigSchema, readConfigFile(path), path);
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
    shardSize:
      c.out_shard_size === undefined ? undefined : typeof c.out_shard_size === 'number' ? c.out_shard_size : parseSize(c.out_shard_size, 'out_shard_size'),
  };
}
