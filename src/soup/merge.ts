// SPDX-License-Identifier: MIT
// File-to-file soups: θ(λ) = Σ λᵢ θᵢ over checkpoints on disk, streamed through the fused native kernel
// with a bounded window (peak memory does not grow with model size). Sources: .safetensors files, HF
// model dirs (sharded or not) or PEFT adapter dirs; output in the sources' layout, written atomically.
import { copyFile, rm, rename, writeFile } from 'node:fs/promises';
import { existsSync, readdirSync } from 'node:fs';
import { join, basename } from 'node:path';
import { SoupError, fromNative } from '../errors.js';
import { coreAddon, type MergeFilesBaton, type MergeFilesResult, type MergeFilesTensor } from '../native/index.js';
import { atomicWriteDir, tempPathFor, fsyncDir, ioError, removeStaleTemps } from '../io/atomic.js';
import { buildHeader, writeSafetensors } from '../io/safetensors.js';
import { writePeftAdapter } from '../io/checkpoint.js';
import { checkOutputDisjoint } from '../io/overlap.js';
import {
  openCheckpoint,
  planShards,
  shardName,
  indexJson,
  DEFAULT_SHARD_SIZE,
  INDEX_NAME,
  SIDECAR_FILES,
  ADAPTER_CONFIG,
  ADAPTER_WEIGHTS,
  type Checkpoint,
} from '../io/checkpoint.js';
import { DTYPE_CODE, dtypeSize, isDType, numelOf, type DType, type TensorMap } from '../io/tensor.js';
import { resolveWeights, controlFor, abortedError } from './weights.js';
import { checkDevice, cudaFunctions } from './device.js';
import type { Simd } from './interpolate.js';
import { planDenseLora, type LoraMode } from './lora.js';

export interface MergeProgress {
  bytesDone: number;
  bytesTotal: number;
  fraction: number;
}

export interface MergeOptions {
  sources: string[];
  weights: number[];
  out: string;
  /** Output dtype (default: each tensor's source dtype). Accumulation is always fp32 (fp64 for fp64). */
  dtype?: DType;
  /** Divide the weights by their sum (default true, as mergekit); ignored with allowExtrapolation. */
  normalize?: boolean;
  /** PEFT sources: 'params' interpolates A and B separately (the paper's code, default); 'dense'
   *  interpolates the effective updates exactly, W0 + Σ λᵢ sᵢ BᵢAᵢ. */
  lora?: LoraMode;
  /** With lora 'dense': the base model (HF dir or .safetensors) to merge into; without it, a
   *  rank-concatenated PEFT adapter is written (peft "cat"). */
  base?: string;
  allowExtrapolation?: boolean;
  /** Maximum bytes per output shard for HF dirs (default 5 GB, as transformers and mergekit). */
  shardSize?: number;
  threads?: number;
  device?: 'cpu' | 'cuda';
  /** Bytes of output computed per window (default 32 MiB; inputs use 2 × this per source). */
  windowBytes?: number;
  simd?: Simd;
  onProgress?: (p: MergeProgress) => void;
  signal?: AbortSignal;
}

export interface MergeReport {
  out: string;
  layout: 'file' | 'hf' | 'peft';
  files: string[];
  tensors: number;
  bytesRead: number;
  bytesWritten: number;
  seconds: number;
  /** (bytes read + bytes written) / seconds / 1e9. */
  gbps: number;
  kernel: string;
  /** Seconds reading inputs, in the interpolation kernel, and in write() + fsync: where the time went. */
  readSeconds: number;
  kernelSeconds: number;
  writeSeconds: number;
  weights: number[];
  lora?: LoraMode;
}

/** One output file: its header and, per tensor, where its inputs are. */
export interface FilePlan {
  file: string; // name inside the output dir, or the output file itself
  header: Uint8Array;
  tensors: NativeTensor[];
  dataBytes: number;
}

/** One tensor of a file plan, as the native merge reads it (src/native/core.ts). */
export type NativeTensor = MergeFilesTensor;

function checkOptions(o: MergeOptions): void {
  if (typeof o !== 'object' || o === null) throw new SoupError('ERR_SOUP_INVALID_ARG', 'merge(options): options must be an object');
  if (!Array.isArray(o.sources) || o.sources.length === 0 || !o.sources.every((s) => typeof s === 'string' && s.length > 0))
    throw new SoupError('ERR_SOUP_INVALID_ARG', 'sources must be a non-empty array of paths');
  if (typeof o.out !== 'string' || !o.out) throw new SoupError('ERR_SOUP_INVALID_ARG', 'out must be a path');
  if (o.dtype !== undefined && !isDType(o.dtype))
    throw new SoupError('ERR_SOUP_INVALID_ARG', `dtype must be one of float32, float16, bfloat16, float64; got ${JSON.stringify(o.dtype)}`);
  if (o.lora !== undefined && o.lora !== 'params' && o.lora !== 'dense')
    throw new SoupError('ERR_SOUP_INVALID_ARG', `lora must be 'params' or 'dense', got ${JSON.stringify(o.lora)}`);
  if (o.shardSize !== undefined && !(Number.isFinite(o.shardSize) && o.shardSize > 0))
    throw new SoupError('ERR_SOUP_INVALID_ARG', `shardSize must be a positive number of bytes, got ${o.shardSize}`);
  if (o.threads !== undefined && !(Number.isInteger(o.threads) && o.threads >= 1))
    throw new SoupError('ERR_SOUP_INVALID_ARG', `threads must be a positive integer, got ${o.threads}`);
}

/** Checks that all sources hold the same float tensors with the same shapes and dtypes. */
export function checkSameLayout(cks: Checkpoint[]): string[] {
  const first = cks[0];
  const names = [...first.tensors.keys()];
  for (const [n, loc] of first.tensors) {
    if (!loc.dtype)
      throw new SoupError('ERR_SOUP_DTYPE_MISMATCH', `${loc.file}: tensor '${n}' has dtype ${loc.stDtype}; only F32/F16/BF16/F64 tensors can be interpolated`);
  }
  for (let i = 1; i < cks.length; i++) {
    const ck = cks[i];
    if (ck.kind !== first.kind)
      throw new SoupError(
        'ERR_SOUP_FORMAT',
        `sources[${i}] '${ck.path}' is a ${ck.kind} checkpoint but sources[0] '${first.path}' is a ${first.kind} checkpoint`,
      );
    for (const [n, a] of first.tensors) {
      const b = ck.tensors.get(n);
      if (!b) throw new SoupError('ERR_SOUP_MISSING_TENSOR', `sources[${i}] '${ck.path}' has no tensor '${n}' (present in '${first.path}')`);
      if (a.shape.length !== b.shape.length || a.shape.some((d, k) => d !== b.shape[k]))
        throw new SoupError(
          'ERR_SOUP_SHAPE_MISMATCH',
          `tensor '${n}': shape ${JSON.stringify(b.shape)} in '${b.file}' != ${JSON.stringify(a.shape)} in '${a.file}'`,
        );
      if (a.stDtype !== b.stDtype)
        throw new SoupError('ERR_SOUP_DTYPE_MISMATCH', `tensor '${n}': dtype ${b.stDtype} in '${b.file}' != ${a.stDtype} in '${a.file}'`);
    }
    for (const n of ck.tensors.keys())
      if (!first.tensors.has(n)) throw new SoupError('ERR_SOUP_MISSING_TENSOR', `sources[${i}] '${ck.path}' has tensor '${n}' that '${first.path}' lacks`);
  }
  return names;
}

/** A PEFT adapter and a full model in one soup is never what was meant. Merging adapters into a base
 *  model is lora 'dense' with the model as `base` (planDenseLora), so that is the advice. */
function checkSameKind(cks: Checkpoint[]): void {
  const p = cks.findIndex((c) => c.kind === 'peft');
  const f = cks.findIndex((c) => c.kind !== 'peft');
  if (p < 0 || f < 0) return;
  const full = cks[f];
  if (full.kind === 'file' && [...full.tensors.keys()].some((n) => /\.lora_[AB]\b/.test(n)))
    throw new SoupError(
      'ERR_SOUP_FORMAT',
      `sources[${f}] '${full.path}' holds LoRA tensors but is a bare .safetensors file, while sources[${p}] '${cks[p].path}' is a PEFT adapter dir: give every adapter as its dir (${ADAPTER_CONFIG} + ${ADAPTER_WEIGHTS}), which holds its scaling`,
    );
  const what = full.kind === 'hf' ? 'a full model (Hugging Face model dir)' : 'a full model (.safetensors file)';
  throw new SoupError(
    'ERR_SOUP_FORMAT',
    `sources mix a PEFT adapter and a full model: sources[${p}] '${cks[p].path}' is a PEFT adapter dir, sources[${f}] '${full.path}' is ${what}. ` +
      `A soup interpolates checkpoints of one kind. To merge LoRA experts into a base model, give only the adapters as sources, with lora 'dense' and base '${full.path}'`,
  );
}

/** A/B interpolation shares one scaling: the adapters must agree on everything that sets it. */
function checkSameScaling(cks: Checkpoint[]): void {
  const keys = ['r', 'lora_alpha', 'use_rslora', 'fan_in_fan_out', 'rank_pattern', 'alpha_pattern'];
  const norm = (v: unknown) => JSON.stringify(v ?? null);
  for (let i = 1; i < cks.length; i++) {
    for (const k of keys) {
      const a = cks[0].adapterConfig?.[k],
        b = cks[i].adapterConfig?.[k];
      const empty = (v: unknown) => v === undefined || v === null || (typeof v === 'object' && Object.keys(v as object).length === 0) || v === false;
      if (norm(a) !== norm(b) && !(empty(a) && empty(b)))
        throw new SoupError(
          'ERR_SOUP_FORMAT',
          `lora 'params' interpolates A and B under one scaling, but adapter_config.json '${k}' is ${norm(b)} in sources[${i}] '${cks[i].path}' and ${norm(a)} in sources[0]: use lora 'dense' for adapters with different scalings`,
        );
    }
  }
}

/** Plans the plain merge: every tensor interpolated across all sources, in sources[0]'s order. */
function planPlain(cks: Checkpoint[], names: string[], files: string[], outDtype: (n: string) => DType, shardSize: number, single: boolean): FilePlan[] {
  const fileIndex = new Map(files.map((f, i) => [f, i]));
  const items = names.map((n) => ({ name: n, bytes: numelOf(cks[0].tensors.get(n)!.shape) * dtypeSize(outDtype(n)) }));
  const shards = single ? [items] : planShards(items, shardSize);
  return shards.map((shard, si) => {
    const { bytes, dataBytes } = buildHeader(
      shard.map((it) => ({ name: it.name, dtype: outDtype(it.name), shape: cks[0].tensors.get(it.name)!.shape })),
      { format: 'pt' },
    );
    const tensors: NativeTensor[] = shard.map((it) => {
      const loc0 = cks[0].tensors.get(it.name)!;
      return {
        name: it.name,
        numel: numelOf(loc0.shape),
        inDtype: DTYPE_CODE[loc0.dtype!],
        outDtype: DTYPE_CODE[outDtype(it.name)],
        srcFile: Int32Array.from(cks, (ck) => fileIndex.get(ck.tensors.get(it.name)!.file)!),
        srcOffset: Float64Array.from(cks, (ck) => ck.tensors.get(it.name)!.offset),
      };
    });
    return { file: single ? '' : shards.length === 1 ? 'model.safetensors' : shardName(si, shards.length), header: bytes, tensors, dataBytes };
  });
}

/** Writes a result computed in memory (the dense "cat" adapter), atomically. */
async function writeInMemory(
  opts: MergeOptions,
  m: { tensors: TensorMap; config: Record<string, unknown> },
  singleFile: boolean,
  weights: Float64Array,
  t0: number,
): Promise<MergeReport> {
  if (opts.signal?.aborted) throw abortedError(opts.signal);
  if (singleFile) await writeSafetensors(opts.out, m.tensors, { metadata: { format: 'pt' } });
  else await writePeftAdapter(opts.out, m.tensors, m.config);
  const bytes = Object.values(m.tensors).reduce((a, t) => a + t.data.byteLength, 0);
  const seconds = (performance.now() - t0) / 1000;
  opts.onProgress?.({ bytesDone: bytes, bytesTotal: bytes, fraction: 1 });
  return {
    out: opts.out,
    layout: singleFile ? 'file' : 'peft',
    files: singleFile ? [basename(opts.out)] : [ADAPTER_CONFIG, ADAPTER_WEIGHTS],
    tensors: Object.keys(m.tensors).length,
    bytesRead: 0,
    bytesWritten: bytes,
    seconds,
    gbps: bytes / seconds / 1e9,
    kernel: 'js-cat',
    readSeconds: 0,
    kernelSeconds: 0,
    writeSeconds: seconds,
    weights: Array.from(weights),
    lora: 'dense',
  };
}

export async function merge(opts: MergeOptions): Promise<MergeReport> {
  const stack = new Error().stack;
  checkOptions(opts);
  const device = checkDevice(opts.device);
  const t0 = performance.now();
  const weights = resolveWeights(opts.weights, opts.sources.length, opts);
  const cks: Checkpoint[] = [];
  for (let i = 0; i < opts.sources.length; i++) {
    try {
      cks.push(await openCheckpoint(opts.sources[i]));
    } catch (e) {
      if (e instanceof SoupError) throw new SoupError(e.code, `sources[${i}]: ${e.message}`, { cause: e });
      throw new SoupError('ERR_SOUP_IO', `sources[${i}] '${opts.sources[i]}': ${(e as Error).message ?? String(e)}`, { cause: e });
    }
  }
  // by identity, before anything is opened for writing: './a.safetensors', 'hfA/', a symlink or a
  // file inside a source dir are all the source
  checkOutputDisjoint(opts.out, [
    ...cks.map((ck, i) => ({ label: `sources[${i}]`, path: ck.path, files: ck.files })),
    ...(opts.base ? [{ label: 'base', path: opts.base }] : []),
  ]);
  checkSameKind(cks);
  const kind = cks[0].kind;
  if (opts.lora && kind !== 'peft')
    throw new SoupError('ERR_SOUP_INVALID_ARG', `lora '${opts.lora}' needs PEFT adapter dirs as sources; sources[0] '${cks[0].path}' is a ${kind} checkpoint`);
  if (opts.base && opts.lora !== 'dense')
    throw new SoupError('ERR_SOUP_INVALID_ARG', "base is only used with lora 'dense' (it is the model the adapters are merged into)");
  const loraMode: LoraMode | undefined = kind === 'peft' ? (opts.lora ?? 'params') : undefined;
  const cuda = device === 'cuda' ? cudaFunctions() : undefined;

  const singleFile = opts.out.endsWith('.safetensors');
  let layout: MergeReport['layout'] = singleFile ? 'file' : kind === 'peft' ? 'peft' : 'hf';
  let plans: FilePlan[];
  let files: string[];
  let extraFiles: { name: string; text?: string; copyFrom?: string }[] = [];

  if (loraMode === 'dense') {
    for (const ck of cks.slice(1)) if (ck.kind !== 'peft') throw new SoupError('ERR_SOUP_FORMAT', `lora 'dense': '${ck.path}' is not a PEFT adapter dir`);
    const dense = await planDenseLora(cks, weights, { base: opts.base, outDtype: opts.dtype, shardSize: opts.shardSize ?? DEFAULT_SHARD_SIZE, singleFile });
    if (dense.memory) return writeInMemory(opts, dense.memory, singleFile, weights, t0);
    plans = dense.plans;
    files = dense.files;
    extraFiles = dense.extraFiles;
    layout = singleFile ? 'file' : dense.layout;
  } else {
    if (loraMode === 'params') checkSameScaling(cks);
    const names = checkSameLayout(cks);
    files = [...new Set(cks.flatMap((c) => c.files))];
    const outDtype = (n: string): DType => opts.dtype ?? cks[0].tensors.get(n)!.dtype!;
    plans = planPlain(cks, names, files, outDtype, opts.shardSize ?? DEFAULT_SHARD_SIZE, singleFile);
    if (!singleFile && kind === 'peft') {
      plans[0].file = ADAPTER_WEIGHTS;
      if (plans.length > 1) throw new SoupError('ERR_SOUP_INTERNAL', 'PEFT adapters are written as one file');
      extraFiles.push({ name: ADAPTER_CONFIG, copyFrom: join(cks[0].path, ADAPTER_CONFIG) });
    }
    if (!singleFile && kind === 'hf') {
      for (const f of readdirSync(cks[0].path)) if (SIDECAR_FILES.test(f)) extraFiles.push({ name: f, copyFrom: join(cks[0].path, f) });
    }
  }
  if (!singleFile && layout === 'hf' && plans.length > 1) {
    const total = plans.reduce((a, p) => a + p.dataBytes, 0);
    extraFiles.push({
      name: INDEX_NAME,
      text: indexJson(
        plans.map((p) => ({ file: p.file, names: p.tensors.map((t) => t.name) })),
        total,
      ),
    });
  }

  const bytesTotal = plans.reduce((a, p) => a + p.dataBytes, 0);
  const { control, dispose } = controlFor(opts.signal);
  let timer: NodeJS.Timeout | undefined;
  const report = () => opts.onProgress?.({ bytesDone: control[1], bytesTotal, fraction: bytesTotal ? control[1] / bytesTotal : 1 });
  if (opts.onProgress) timer = setInterval(report, 100);
  let bytesRead = 0,
    bytesWritten = 0,
    kernel = '',
    readSeconds = 0,
    kernelSeconds = 0,
    writeSeconds = 0;
  // path: where the native writer writes (a temp name); final: what the user asked for, which errors name
  const runOne = async (plan: FilePlan, path: string, final: string) => {
    const baton: MergeFilesBaton = {
      files,
      out: path,
      header: plan.header,
      weights,
      tensors: plan.tensors,
      windowBytes: opts.windowBytes,
      threads: opts.threads,
      simd: opts.simd,
      control,
    };
    const fn = (b: MergeFilesBaton): Promise<MergeFilesResult> => (cuda ? cuda.mergeFilesCuda(b) : coreAddon().mergeFiles(b));
    try {
      const r = await fn(baton);
      bytesRead += r.bytesRead;
      bytesWritten += r.bytesWritten;
      readSeconds += r.readSeconds ?? 0;
      kernelSeconds += r.kernelSeconds ?? 0;
      writeSeconds += r.writeSeconds ?? 0;
      kernel = r.kernel;
    } catch (e) {
      const err = fromNative(e, stack);
      if (err.code === 'ERR_SOUP_ABORTED' || opts.signal?.aborted) throw abortedError(opts.signal);
      if (!err.message.includes(path)) throw err;
      throw new SoupError(err.code, `writing '${final}': ${err.message.split(`'${path}'`).join('its temporary file').split(path).join('its temporary file')}`, {
        cause: err,
      });
    }
  };
  const written: string[] = [];
  try {
    if (opts.signal?.aborted) throw abortedError(opts.signal);
    if (singleFile) {
      await removeStaleTemps(opts.out);
      const tmp = tempPathFor(opts.out);
      try {
        await runOne(plans[0], tmp, opts.out);
        await rename(tmp, opts.out);
        await fsyncDir(join(opts.out, '..'));
      } catch (e) {
        await rm(tmp, { force: true });
        throw e instanceof SoupError ? e : ioError('writing', opts.out, e);
      }
      written.push(opts.out);
    } else {
      await atomicWriteDir(opts.out, async (tmp) => {
        for (const p of plans) await runOne(p, join(tmp, p.file), join(opts.out, p.file));
        for (const f of extraFiles) {
          if (f.text !== undefined) await writeFile(join(tmp, f.name), f.text);
          else if (f.copyFrom && existsSync(f.copyFrom)) await copyFile(f.copyFrom, join(tmp, f.name));
        }
      });
      written.push(...plans.map((p) => join(opts.out, p.file)), ...extraFiles.map((f) => join(opts.out, f.name)));
    }
  } finally {
    if (timer) clearInterval(timer);
    dispose();
  }
  report();
  const seconds = (performance.now() - t0) / 1000;
  return {
    out: opts.out,
    layout,
    files: written.map((f) => basename(f)),
    tensors: plans.reduce((a, p) => a + p.tensors.length, 0),
    bytesRead,
    bytesWritten,
    seconds,
    gbps: (bytesRead + bytesWritten) / seconds / 1e9,
    kernel,
    readSeconds,
    kernelSeconds,
    writeSeconds,
    weights: Array.from(weights),
    lora: loraMode,
  };
}
