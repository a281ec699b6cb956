// SPDX-License-Identifier: MIT
// In-memory soups: out = Σ λᵢ xᵢ over every tensor of N TensorMaps, in one fused native pass off the JS
// thread. No hidden copies: sources are read in place; outputs are one native, 64-byte aligned buffer
// (or the caller's tensors with `out`, what a λ sweep does on every step).
import { SoupError, fromNative } from '../errors.js';
import { coreAddon } from '../native/index.js';
import { DTYPE_CODE, dtypeSize, isDType, numelOf, viewAs, type DType, type Tensor, type TensorMap } from '../io/tensor.js';
import { checkTensor } from '../io/safetensors.js';
import { checkDevice, cudaFunctions } from './device.js';
import { resolveWeights, controlFor, abortedError, type WeightRules } from './weights.js';

export type Simd = 'avx512' | 'avx2' | 'scalar';

export interface InterpolateOptions extends WeightRules {
  /** Write into these tensors instead of allocating (same names and shapes; dtype = output dtype). */
  out?: TensorMap;
  /** Output storage dtype (default: the sources' dtype of each tensor). */
  dtype?: DType;
  /** Worker threads (default: all cores). */
  threads?: number;
  /** Force a kernel (tests and benchmarks); default: the best this CPU supports. */
  simd?: Simd;
  /** Streaming stores (default: when the output exceeds 32 MiB). */
  nonTemporal?: boolean;
  device?: 'cpu' | 'cuda';
  signal?: AbortSignal;
  /** Filled with what the kernel reported. */
  stats?: InterpolateStats;
}

export interface InterpolateStats {
  seconds: number;
  bytes: number;
  kernel: string;
  nonTemporal: boolean;
}

interface NativeInterpolate {
  (baton: Record<string, unknown>): Promise<InterpolateStats>;
}

/** Checks N TensorMaps hold the same tensors with the same shapes and dtypes; returns the names. */
export function checkSameTensors(sources: TensorMap[], label: (i: number) => string = (i) => `sources[${i}]`): string[] {
  if (!Array.isArray(sources) || sources.length === 0) throw new SoupError('ERR_SOUP_INVALID_ARG', 'sources must be a non-empty array of TensorMaps');
  const names = Object.keys(sources[0]);
  for (const n of names) checkTensor(`${label(0)}['${n}']`, sources[0][n]);
  for (let i = 1; i < sources.length; i++) {
    const s = sources[i];
    for (const n of names) {
      const a = sources[0][n], b = s[n];
      if (!b) throw new SoupError('ERR_SOUP_MISSING_TENSOR', `${label(i)} has no tensor '${n}' (present in ${label(0)})`);
      checkTensor(`${label(i)}['${n}']`, b);
      if (a.shape.length !== b.shape.length || a.shape.some((d, k) => d !== b.shape[k]))
        throw new SoupError('ERR_SOUP_SHAPE_MISMATCH', `${label(i)}['${n}'] shape ${JSON.stringify(b.shape)} != ${JSON.stringify(a.shape)} in ${label(0)}`);
      if (a.dtype !== b.dtype) throw new SoupError('ERR_SOUP_DTYPE_MISMATCH', `${label(i)}['${n}'] dtype ${b.dtype} != ${a.dtype} in ${label(0)}`);
    }
    for (const n of Object.keys(s)) if (!(n in sources[0])) throw new SoupError('ERR_SOUP_MISSING_TENSOR', `${label(i)} has tensor '${n}' that ${label(0)} lacks`);
  }
  return names;
}

/** One native buffer holding every output tensor, each 64-byte aligned. */
export function allocateTensors(specs: { name: string; dtype: DType; shape: number[] }[]): TensorMap {
  let total = 0;
  const offs: number[] = [];
  for (const s of specs) {
    offs.push(total);
    total += Math.ceil((numelOf(s.shape) * dtypeSize(s.dtype)) / 64) * 64;
  }
  const buf = (coreAddon().allocBuffer as (n: number) => ArrayBuffer)(total);
  const out: TensorMap = {};
  specs.forEach((s, i) => (out[s.name] = { dtype: s.dtype, shape: [...s.shape], data: viewAs(s.dtype, buf, offs[i], numelOf(s.shape)) }));
  return out;
}

export async function interpolate(sources: TensorMap[], weights: number[], opts: InterpolateOptions = {}): Promise<TensorMap> {
  const stack = new Error().stack;
  const device = checkDevice(opts.device);
  const cuda = device === 'cuda' ? cudaFunctions() : undefined;
  const names = checkSameTensors(sources);
  const w = resolveWeights(weights, sources.length, opts);
  if (opts.dtype !== undefined && !isDType(opts.dtype)) throw new SoupError('ERR_SOUP_INVALID_ARG', `dtype must be one of float32, float16, bfloat16, float64; got ${JSON.stringify(opts.dtype)}`);
  const outDtype = (n: string): DType => opts.dtype ?? sources[0][n].dtype;
  let out: TensorMap;
  if (opts.out) {
    out = opts.out;
    for (const n of names) {
      const t: Tensor | undefined = out[n];
      if (!t) throw new SoupError('ERR_SOUP_MISSING_TENSOR', `out has no tensor '${n}'`);
      checkTensor(`out['${n}']`, t);
      if (t.dtype !== outDtype(n)) throw new SoupError('ERR_SOUP_DTYPE_MISMATCH', `out['${n}'] dtype ${t.dtype} != output dtype ${outDtype(n)}`);
      if (t.data.length !== sources[0][n].data.length) throw new SoupError('ERR_SOUP_SHAPE_MISMATCH', `out['${n}'] has ${t.data.length} elements, sources have ${sources[0][n].data.length}`);
    }
  } else {
    out = allocateTensors(names.map((n) => ({ name: n, dtype: outDtype(n), shape: sources[0][n].shape })));
  }
  if (names.length === 0) return out;
  const { control, dispose } = controlFor(opts.signal);
  if (opts.signal?.aborted) throw abortedError(opts.signal);
  try {
    const run = cuda ? (cuda.interpolateCuda as unknown as NativeInterpolate) : (coreAddon().interpolate as NativeInterpolate);
    const stats = await run({
      sources: sources.map((s) => names.map((n) => s[n].data)),
      inDtypes: Int32Array.from(names, (n) => DTYPE_CODE[sources[0][n].dtype]),
      outs: names.map((n) => out[n].data),
      outDtypes: Int32Array.from(names, (n) => DTYPE_CODE[out[n].dtype]),
      weights: w,
      threads: opts.threads,
      simd: opts.simd,
      nonTemporal: opts.nonTemporal,
      control,
    });
    if (opts.stats) Object.assign(opts.stats, stats);
  } catch (e) {
    const err = fromNative(e, stack);
    if (err.code === 'ERR_SOUP_ABORTED') throw abortedError(opts.signal);
    throw err;
  } finally {
    dispose();
  }
  return out;
}
