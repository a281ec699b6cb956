// SPDX-License-Identifier: MIT
// rsoup merge CONFIG.yml OUT            (mergekit's config fields)
// rsoup merge --sources A B … --weights 0.3 0.7 … --out OUT [--dtype …] [--lora params|dense] [--base DIR]
import type { Command } from 'commander';
import { existsSync, statSync } from 'node:fs';
import { extname } from 'node:path';
import { SoupError } from '../../errors.js';
import { merge, type MergeOptions } from '../../soup/merge.js';
import { configToOptions, dtypeNames, mergeConfigHelp, parseDtype, parseSize } from '../../soup/config.js';
import { jsonLine, progressBar, UsageError } from '../output.js';
import { withSigint } from '../signals.js';

/** The output rule: a name ending in .safetensors is one file; anything else is a directory (HF or PEFT
 *  layout). A last component with another extension (a dot, then a letter: `x.st`, `x.bin`,
 *  `x.safetensor`) is refused as a likely typo, unless it ends with '/' or is an existing directory. */
export function checkOut(out: string, field: string): void {
  if (out.endsWith('.safetensors') || /[\\/]$/.test(out)) return;
  const ext = extname(out);
  if (!/^\.[A-Za-z][A-Za-z0-9_-]*$/.test(ext)) return;
  if (existsSync(out) && statSync(out).isDirectory()) return;
  const stem = out.slice(0, -ext.length);
  throw new UsageError(
    `${field} '${out}': '${ext}' is not .safetensors. For one file, name it '${stem}.safetensors'; for a directory (Hugging Face or PEFT layout), end it with a slash: '${out}/'`,
  );
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
  if (s.trim() === '' || (Number.isNaN(v) && s.trim().toLowerCase() !== 'nan')) throw new UsageError(`${field}: '${s}' is not a number`);
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
    .option('--base <dir>', 'with --lora dense: merge into this base model')
    .option('--no-normalize', 'do not divide the weights by their sum')
    .option('--allow-extrapolation', 'allow λ outside the simplex (weights used as given)')
    .option('--shard-size <size>', 'maximum output shard size, e.g. 5GB (default 5GB)')
    .option('--threads <n>', 'worker threads (default: all cores)')
    .option('--device <device>', 'cpu or cuda', 'cpu')
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
