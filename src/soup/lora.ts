// SPDX-License-Identifier: MIT
// LoRA soups. Two modes (docs/merge.md, "LoRA sources"):
//   'params': A and B interpolated separately, like any tensor (the paper's code). Its product has a
//             cross term: for two experts ΔW(λ) = s[λB₁A₁ + (1−λ)B₂A₂] − sλ(1−λ)(B₁−B₂)(A₁−A₂).
//   'dense':  the effective updates interpolated exactly, Σ λᵢ sᵢ BᵢAᵢ: merged into a base model
//             (W0 + Σ λᵢ sᵢ BᵢAᵢ, transposed for fan_in_fan_out) or written as a rank-concatenated
//             adapter (peft's "cat": A = [λ₁s₁A₁; λ₂s₂A₂; …], B = [B₁ B₂ …], scaling 1).
// sᵢ = lora_alpha / r (or / √r with use_rslora), per source, honouring rank_pattern/alpha_pattern.
import { join } from 'node:path';
import { SoupError } from '../errors.js';
import {
  openCheckpoint,
  loadTensors,
  planShards,
  shardName,
  INDEX_NAME,
  SIDECAR_FILES,
  ADAPTER_CONFIG,
  type Checkpoint,
  type TensorLocation,
} from '../io/checkpoint.js';
import { buildHeader } from '../io/safetensors.js';
import { DTYPE_CODE, dtypeSize, numelOf, elementAt, f64ToBf16, f64ToF16, type DType, type Tensor, type TensorMap } from '../io/tensor.js';
import type { FilePlan, NativeTensor } from './merge.js';
import { readdirSync, statSync } from 'node:fs';

export type LoraMode = 'params' | 'dense';

const PEFT_PREFIX = 'base_model.model.';
const LORA_KEY = /^(.*)\.lora_([AB])(?:\.[A-Za-z0-9_-]+)?\.weight$/;

export interface LoraModule {
  module: string;
  A: TensorLocation;
  B: TensorLocation;
  rank: number;
  scaling: number;
}

export interface ParsedAdapter {
  ck: Checkpoint;
  modules: Map<string, LoraModule>;
  /** Tensors that are not LoRA factors (modules_to_save copies, heads). */
  others: Map<string, TensorLocation>;
  fanInFanOut: boolean;
}

function patternValue(pattern: unknown, module: string): number | undefined {
  if (typeof pattern !== 'object' || pattern === null) return undefined;
  const short = module.startsWith(PEFT_PREFIX) ? module.slice(PEFT_PREFIX.length) : module;
  for (const [k, v] of Object.entries(pattern as Record<string, unknown>)) {
    if (typeof v === 'number' && (short === k || short.endsWith(`.${k}`))) return v;
  }
  return undefined;
}

export function parseAdapter(ck: Checkpoint): ParsedAdapter {
  const cfg = ck.adapterConfig ?? {};
  const where = `${ck.path}/${ADAPTER_CONFIG}`;
  const num = (k: string, d?: number): number => {
    const v = cfg[k] ?? d;
    if (typeof v !== 'number' || !Number.isFinite(v))
      throw new SoupError('ERR_SOUP_FORMAT', `${where}: '${k}' must be a number, got ${JSON.stringify(cfg[k])}`);
    return v;
  };
  const alpha = num('lora_alpha', 8);
  const rslora = cfg.use_rslora === true;
  if (cfg.use_dora === true) throw new SoupError('ERR_SOUP_FORMAT', `${where}: DoRA adapters (use_dora) cannot be merged exactly; not supported`);
  const parts = new Map<string, { A?: TensorLocation; B?: TensorLocation }>();
  const others = new Map<string, TensorLocation>();
  for (const [name, loc] of ck.tensors) {
    const m = LORA_KEY.exec(name);
    if (!m) {
      if (/lora_embedding_[AB]|lora_magnitude/.test(name))
        throw new SoupError('ERR_SOUP_FORMAT', `${ck.path}: tensor '${name}' (embedding LoRA or DoRA) is not supported in dense mode`);
      others.set(name, loc);
      continue;
    }
    const p = parts.get(m[1]) ?? {};
    p[m[2] as 'A' | 'B'] = loc;
    parts.set(m[1], p);
  }
  const modules = new Map<string, LoraModule>();
  for (const [module, p] of parts) {
    if (!p.A || !p.B)
      throw new SoupError('ERR_SOUP_MISSING_TENSOR', `${ck.path}: LoRA module '${module}' has lora_${p.A ? 'A' : 'B'} but no lora_${p.A ? 'B' : 'A'}`);
    if (p.A.shape.length !== 2 || p.B.shape.length !== 2 || p.A.shape[0] !== p.B.shape[1])
      throw new SoupError(
        'ERR_SOUP_SHAPE_MISMATCH',
        `${ck.path}: LoRA module '${module}': lora_A ${JSON.stringify(p.A.shape)} and lora_B ${JSON.stringify(p.B.shape)} do not form B·A`,
      );
    if (!p.A.dtype || !p.B.dtype) throw new SoupError('ERR_SOUP_DTYPE_MISMATCH', `${ck.path}: LoRA module '${module}' is not a float tensor`);
    const rank = p.A.shape[0];
    const a = patternValue(cfg.alpha_pattern, module) ?? alpha;
    modules.set(module, { module, A: p.A, B: p.B, rank, scaling: rank === 0 ? 0 : rslora ? a / Math.sqrt(rank) : a / rank });
  }
  return { ck, modules, others, fanInFanOut: cfg.fan_in_fan_out === true };
}

function roundTo(dtype: DType, v: number): number {
  return dtype === 'bfloat16' ? f64ToBf16(v) : dtype === 'float16' ? f64ToF16(v) : v;
}

function newTensor(dtype: DType, shape: number[]): Tensor {
  const n = numelOf(shape);
  return { dtype, shape, data: dtype === 'float32' ? new Float32Array(n) : dtype === 'float64' ? new Float64Array(n) : new Uint16Array(n) };
}

/** The rank-concatenated adapter (peft "cat"), exact: B_cat·A_cat = Σ λᵢ sᵢ BᵢAᵢ. Computed in memory
 *  (adapters are small). Non-LoRA tensors are interpolated linearly. */
export function catAdapters(adapters: ParsedAdapter[], weights: Float64Array, outDtype?: DType): { tensors: TensorMap; config: Record<string, unknown> } {
  const loaded = adapters.map((a) => loadTensors(a.ck));
  const allModules = [...new Set(adapters.flatMap((a) => [...a.modules.keys()]))];
  const tensors: TensorMap = {};
  const rankOf = new Map<string, number>();
  for (const m of allModules) {
    const parts = adapters.map((a, i) => ({ mod: a.modules.get(m), i })).filter((p) => p.mod && weights[p.i] !== 0);
    const first = adapters.map((a) => a.modules.get(m)).find(Boolean)!;
    const [, inDim] = first.A.shape;
    const [outDim] = first.B.shape;
    for (const p of parts) {
      if (p.mod!.A.shape[1] !== inDim || p.mod!.B.shape[0] !== outDim)
        throw new SoupError(
          'ERR_SOUP_SHAPE_MISMATCH',
          `LoRA module '${m}': sources[${p.i}] maps ${p.mod!.A.shape[1]}→${p.mod!.B.shape[0]}, another source ${inDim}→${outDim}`,
        );
    }
    const total = parts.reduce((a, p) => a + p.mod!.rank, 0);
    const dt = outDtype ?? first.A.dtype!;
    const A = newTensor(dt, [total, inDim]);
    const B = newTensor(dt, [outDim, total]);
    let k0 = 0;
    for (const p of parts) {
      const mod = p.mod!;
      const a = loaded[p.i][mod.A.name],
        b = loaded[p.i][mod.B.name];
      const c = weights[p.i] * mod.scaling;
      for (let k = 0; k < mod.rank; k++) for (let j = 0; j < inDim; j++) A.data[(k0 + k) * inDim + j] = roundTo(dt, c * elementAt(a, k * inDim + j));
      for (let o = 0; o < outDim; o++) for (let k = 0; k < mod.rank; k++) B.data[o * total + k0 + k] = roundTo(dt, elementAt(b, o * mod.rank + k));
      k0 += mod.rank;
    }
    tensors[`${m}.lora_A.weight`] = A;
    tensors[`${m}.lora_B.weight`] = B;
    rankOf.set(m, total);
  }
  for (const [name, loc] of adapters[0].others) {
    const dt = outDtype ?? loc.dtype!;
    const t = newTensor(dt, loc.shape);
    const srcs = loaded.map((l, i) => {
      const s = l[name];
      if (!s) throw new SoupError('ERR_SOUP_MISSING_TENSOR', `sources[${i}] '${adapters[i].ck.path}' has no tensor '${name}'`);
      if (s.data.length !== t.data.length) throw new SoupError('ERR_SOUP_SHAPE_MISMATCH', `tensor '${name}': shapes differ across sources`);
      return s;
    });
    for (let j = 0; j < t.data.length; j++) {
      let acc = 0;
      for (let i = 0; i < srcs.length; i++) acc += weights[i] * elementAt(srcs[i], j);
      t.data[j] = roundTo(dt, acc);
    }
    tensors[name] = t;
  }
  // Config: the first source's, with scaling 1 for every module (lora_alpha = r) and the union of targets.
  const counts = new Map<number, number>();
  for (const r of rankOf.values()) counts.set(r, (counts.get(r) ?? 0) + 1);
  const r = [...counts].sort((a, b) => b[1] - a[1])[0]?.[0] ?? 0;
  const rankPattern: Record<string, number> = {};
  for (const [m, rr] of rankOf) if (rr !== r) rankPattern[m.startsWith(PEFT_PREFIX) ? m.slice(PEFT_PREFIX.length) : m] = rr;
  const targets = new Set<string>();
  for (const a of adapters) {
    const t = a.ck.adapterConfig?.target_modules;
    if (Array.isArray(t)) t.forEach((x) => targets.add(String(x)));
  }
  const config: Record<string, unknown> = {
    ...adapters[0].ck.adapterConfig,
    r,
    lora_alpha: r,
    use_rslora: false,
    rank_pattern: rankPattern,
    alpha_pattern: { ...rankPattern },
    ...(targets.size ? { target_modules: [...targets].sort() } : {}),
  };
  return { tensors, config };
}

/** Finds the base tensor that a PEFT key names: strip "base_model.model.", then leading components
 *  until a match (GPT-2 hub checkpoints drop the "transformer." prefix that the model class has). */
export function baseNameFor(peftName: string, base: Checkpoint): string | undefined {
  let n = peftName.startsWith(PEFT_PREFIX) ? peftName.slice(PEFT_PREFIX.length) : peftName;
  for (;;) {
    if (base.tensors.has(n)) return n;
    const dot = n.indexOf('.');
    if (dot < 0) return undefined;
    n = n.slice(dot + 1);
  }
}

export interface DensePlan {
  layout: 'hf' | 'peft';
  plans: FilePlan[];
  files: string[];
  extraFiles: { name: string; text?: string; copyFrom?: string }[];
  /** Set when the result is computed in memory (no base: the "cat" adapter). */
  memory?: { tensors: TensorMap; config: Record<string, unknown> };
}

export async function planDenseLora(
  cks: Checkpoint[],
  weights: Float64Array,
  opts: { base?: string; outDtype?: DType; shardSize: number; singleFile: boolean },
): Promise<DensePlan> {
  const adapters = cks.map(parseAdapter);
  if (!opts.base) return { layout: 'peft', plans: [], files: [], extraFiles: [], memory: catAdapters(adapters, weights, opts.outDtype) };

  const base = await openCheckpoint(opts.base).catch((e: SoupError) => {
    throw new SoupError(e.code ?? 'ERR_SOUP_IO', `base: ${e.message}`);
  });
  if (base.kind === 'peft') throw new SoupError('ERR_SOUP_FORMAT', `base '${opts.base}' is a PEFT adapter dir; give the base model (HF dir or .safetensors)`);
  const files = [...new Set([...base.files, ...cks.flatMap((c) => c.files)])];
  const fileIndex = new Map(files.map((f, i) => [f, i]));
  const loaded = adapters.map((a) => loadTensors(a.ck));

  // base tensor name -> the LoRA modules (per source) that update it
  const updates = new Map<string, { i: number; mod: LoraModule }[]>();
  for (let i = 0; i < adapters.length; i++) {
    if (weights[i] === 0) continue;
    for (const mod of adapters[i].modules.values()) {
      const bn = baseNameFor(`${mod.module}.weight`, base);
      if (!bn) throw new SoupError('ERR_SOUP_MISSING_TENSOR', `sources[${i}]: LoRA module '${mod.module}' has no weight in base '${opts.base}'`);
      if (!updates.has(bn)) updates.set(bn, []);
      updates.get(bn)!.push({ i, mod });
    }
  }
  // non-LoRA adapter tensors (saved heads, modules_to_save) replace or extend the base
  const replaced = new Map<string, string>(); // output name -> adapter tensor name
  for (const name of adapters[0].others.keys()) {
    const bn = baseNameFor(name, base) ?? (name.startsWith(PEFT_PREFIX) ? name.slice(PEFT_PREFIX.length) : name);
    for (let i = 1; i < adapters.length; i++) {
      const o = adapters[i].others.get(name);
      const o0 = adapters[0].others.get(name)!;
      if (!o) throw new SoupError('ERR_SOUP_MISSING_TENSOR', `sources[${i}] '${cks[i].path}' has no tensor '${name}'`);
      if (o.stDtype !== o0.stDtype || o.shape.join() !== o0.shape.join())
        throw new SoupError('ERR_SOUP_SHAPE_MISMATCH', `tensor '${name}': dtype/shape differ across sources`);
    }
    replaced.set(bn, name);
  }

  const order = [...base.tensors.keys()];
  for (const bn of replaced.keys()) if (!base.tensors.has(bn)) order.push(bn);
  const outDtypeOf = (bn: string): DType => opts.outDtype ?? base.tensors.get(bn)?.dtype ?? adapters[0].others.get(replaced.get(bn)!)!.dtype!;
  const shapeOf = (bn: string): number[] => (replaced.has(bn) ? adapters[0].others.get(replaced.get(bn)!)!.shape : base.tensors.get(bn)!.shape);

  const tensorPlan = (bn: string): NativeTensor => {
    const outDtype = DTYPE_CODE[outDtypeOf(bn)];
    if (replaced.has(bn)) {
      const an = replaced.get(bn)!;
      const loc0 = adapters[0].others.get(an)!;
      if (base.tensors.has(bn) && base.tensors.get(bn)!.shape.join() !== loc0.shape.join())
        throw new SoupError(
          'ERR_SOUP_SHAPE_MISMATCH',
          `adapter tensor '${an}' ${JSON.stringify(loc0.shape)} does not match base '${bn}' ${JSON.stringify(base.tensors.get(bn)!.shape)}`,
        );
      return {
        name: bn,
        numel: numelOf(loc0.shape),
        inDtype: DTYPE_CODE[loc0.dtype!],
        outDtype,
        srcFile: Int32Array.from(adapters, (a) => fileIndex.get(a.others.get(an)!.file)!),
        srcOffset: Float64Array.from(adapters, (a) => a.others.get(an)!.offset),
      };
    }
    const loc = base.tensors.get(bn)!;
    if (!loc.dtype) throw new SoupError('ERR_SOUP_DTYPE_MISMATCH', `base tensor '${bn}' has dtype ${loc.stDtype}; only float tensors are supported`);
    const ups = updates.get(bn);
    if (!ups) {
      return {
        name: bn,
        numel: numelOf(loc.shape),
        inDtype: DTYPE_CODE[loc.dtype],
        outDtype,
        weights: Float64Array.of(1),
        srcFile: Int32Array.of(fileIndex.get(loc.file)!),
        srcOffset: Float64Array.of(loc.offset),
      };
    }
    if (loc.shape.length !== 2) throw new SoupError('ERR_SOUP_SHAPE_MISMATCH', `base tensor '${bn}' ${JSON.stringify(loc.shape)} is not a matrix`);
    const fifo = adapters[ups[0].i].fanInFanOut;
    const [rows, cols] = loc.shape;
    const K = ups.reduce((a, u) => a + u.mod.rank, 0);
    const L = new Float32Array(rows * K);
    const R = new Float32Array(K * cols);
    let k0 = 0;
    for (const { i, mod } of ups) {
      if (adapters[i].fanInFanOut !== fifo) throw new SoupError('ERR_SOUP_FORMAT', `base tensor '${bn}': sources disagree on fan_in_fan_out`);
      const [r, inDim] = mod.A.shape;
      const outDim = mod.B.shape[0];
      const want = fifo ? [inDim, outDim] : [outDim, inDim];
      if (rows !== want[0] || cols !== want[1])
        throw new SoupError(
          'ERR_SOUP_SHAPE_MISMATCH',
          `sources[${i}]: LoRA module '${mod.module}' (${inDim}→${outDim}${fifo ? ', fan_in_fan_out' : ''}) needs base '${bn}' of shape ${JSON.stringify(want)}, found ${JSON.stringify(loc.shape)}`,
        );
      const A = loaded[i][mod.A.name],
        B = loaded[i][mod.B.name];
      const c = weights[i] * mod.scaling;
      if (!fifo) {
        for (let o = 0; o < outDim; o++) for (let k = 0; k < r; k++) L[o * K + k0 + k] = c * elementAt(B, o * r + k);
        for (let k = 0; k < r; k++) for (let j = 0; j < inDim; j++) R[(k0 + k) * cols + j] = elementAt(A, k * inDim + j);
      } else {
        for (let j = 0; j < inDim; j++) for (let k = 0; k < r; k++) L[j * K + k0 + k] = elementAt(A, k * inDim + j);
        for (let k = 0; k < r; k++) for (let o = 0; o < outDim; o++) R[(k0 + k) * cols + o] = c * elementAt(B, o * r + k);
      }
      k0 += r;
    }
    return {
      name: bn,
      numel: rows * cols,
      inDtype: DTYPE_CODE[loc.dtype],
      outDtype,
      lowRank: { baseFile: fileIndex.get(loc.file)!, baseOffset: loc.offset, rows, cols, rank: K, L, R },
    };
  };

  const items = order.map((bn) => ({ name: bn, bytes: numelOf(shapeOf(bn)) * dtypeSize(outDtypeOf(bn)) }));
  const shards = opts.singleFile ? [items] : planShards(items, opts.shardSize);
  const plans: FilePlan[] = shards.map((shard, si) => {
    const { bytes, dataBytes } = buildHeader(
      shard.map((it) => ({ name: it.name, dtype: outDtypeOf(it.name), shape: shapeOf(it.name) })),
      { format: 'pt' },
    );
    return {
      file: opts.singleFile ? '' : shards.length === 1 ? 'model.safetensors' : shardName(si, shards.length),
      header: bytes,
      tensors: shard.map((it) => tensorPlan(it.name)),
      dataBytes,
    };
  });
  const extraFiles: DensePlan['extraFiles'] = [];
  if (statSync(opts.base).isDirectory()) {
    for (const f of readdirSync(opts.base)) if (SIDECAR_FILES.test(f) && f !== INDEX_NAME) extraFiles.push({ name: f, copyFrom: join(opts.base, f) });
  }
  return { layout: 'hf', plans, files, extraFiles };
}
