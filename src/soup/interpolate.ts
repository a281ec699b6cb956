// SPDX-License-Identifier: MIT
// In-memory soups: out = Σ λᵢ xᵢ over every tensor of N TensorMaps, in one fused native pass off the JS
// thread. No hidden copies: sources are read in place; outputs are native, 64-byte aligned buffers
// (or the caller's tensors with `out`, what a λ sweep does on every step).
import { SoupError } from '../errors.js';
import { callNative, callNativeSync, coreAddon, type InterpolatePlanBaton, type InterpolateStats } from '../native/index.js';
import { DTYPE_CODE, dtypeSize, isDType, numelOf, viewAs, type DType, type Tensor, type TensorMap } from '../io/tensor.js';
import { checkTensor, isWellFormedTensor, maxBufferBytes, tooLargeError } from '../io/safetensors.js';
import { checkDevice, cudaFunctions } from './device.js';
import { resolveWeights, type WeightRules } from './weights.js';
import type { Simd } from '../native/types.js';

export type { Simd, InterpolateStats };

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
  /** Elements per work chunk (tests and tuning); default: 1 MiB of the widest stream, fewer for small
   *  jobs (docs/ARCHITECTURE.md, "Chunks"). Any value gives the same bits. */
  chunkElems?: number;
  device?: 'cpu' | 'cuda';
  signal?: AbortSignal;
  /** Filled with what the kernel reported. */
  stats?: InterpolateStats;
}

/** Checks N TensorMaps hold the same tensors with the same shapes and dtypes; returns the names. */
export function checkSameTensors(sources: TensorMap[], label: (i: number) => string = (i) => `sources[${i}]`): string[] {
  return gatherTensors(sources, label).names;
}

/** checkSameTensors, also returning each source's tensors as an array in name order: one keyed lookup
 *  per tensor and source (maps of hundreds of tensors are hash tables; every later step uses the arrays). */
function gatherTensors(sources: TensorMap[], label: (i: number) => string = (i) => `sources[${i}]`): { names: string[]; lists: Tensor[][] } {
  if (!Array.isArray(sources) || sources.length === 0) throw new SoupError('ERR_SOUP_INVALID_ARG', 'sources must be a non-empty array of TensorMaps');
  const names = Object.keys(sources[0]);
  const first = Object.values(sources[0]);
  // isWellFormedTensor first: labels are built only for a tensor that fails (no closure per tensor)
  for (let k = 0; k < names.length; k++) if (!isWellFormedTensor(first[k])) checkTensor(`${label(0)}['${names[k]}']`, first[k]);
  const lists: Tensor[][] = [first];
  for (let i = 1; i < sources.length; i++) {
    const s = sources[i];
    const list: Tensor[] = new Array(names.length);
    for (let k = 0; k < names.length; k++) {
      const n = names[k],
        a = first[k],
        b = s[n];
      if (b === undefined) throw new SoupError('ERR_SOUP_MISSING_TENSOR', `${label(i)} has no tensor '${n}' (present in ${label(0)})`);
      if (b?.data?.length !== a.data.length || b.dtype !== a.dtype || b.data.constructor !== a.data.constructor || !sameShape(a.shape, b.shape)) {
        checkTensor(`${label(i)}['${n}']`, b);
        if (!sameShape(a.shape, b.shape))
          throw new SoupError('ERR_SOUP_SHAPE_MISMATCH', `${label(i)}['${n}'] shape ${JSON.stringify(b.shape)} != ${JSON.stringify(a.shape)} in ${label(0)}`);
        if (a.dtype !== b.dtype) throw new SoupError('ERR_SOUP_DTYPE_MISMATCH', `${label(i)}['${n}'] dtype ${b.dtype} != ${a.dtype} in ${label(0)}`);
      }
      list[k] = b;
    }
    if (Object.keys(s).length !== names.length)
      for (const n of Object.keys(s))
        if (!(n in sources[0])) throw new SoupError('ERR_SOUP_MISSING_TENSOR', `${label(i)} has tensor '${n}' that ${label(0)} lacks`);
    lists.push(list);
  }
  return { names, lists };
}

function sameShape(a: readonly number[], b: readonly number[]): boolean {
  if (a === b) return true;
  if (!Array.isArray(b) || a.length !== b.length) return false;
  for (let d = 0; d < a.length; d++) if (a[d] !== b[d]) return false;
  return true;
}

/** Native buffers holding the output tensors, each tensor 64-byte aligned: as few buffers as the
 *  runtime's ArrayBuffer limit allows (one for any model under 4 GiB on Node 20). */
export function allocateTensors(specs: { name: string; dtype: DType; shape: number[] }[]): TensorMap {
  const limit = maxBufferBytes();
  const out: TensorMap = {};
  let group: { spec: (typeof specs)[number]; off: number }[] = [];
  let next = 0; // where the next tensor would start (64-byte aligned)
  let used = 0; // bytes up to the end of the group's last tensor
  const flush = (): void => {
    if (!group.length) return;
    const buf = coreAddon().allocBuffer(used, true, limit);
    for (const { spec, off } of group) out[spec.name] = { dtype: spec.dtype, shape: [...spec.shape], data: viewAs(spec.dtype, buf, off, numelOf(spec.shape)) };
    group = [];
    next = used = 0;
  };
  for (const s of specs) {
    const bytes = numelOf(s.shape) * dtypeSize(s.dtype);
    if (bytes > limit) throw tooLargeError('interpolate() output', s.name, bytes, limit);
    if (next + bytes > limit) flush();
    group.push({ spec: s, off: next });
    used = next + bytes;
    next = Math.ceil(used / 64) * 64;
  }
  flush();
  return out;
}

/** Validates sources against each other and `opts.out` (or allocates the outputs). */
function prepareOutputs(
  sources: TensorMap[],
  opts: Pick<InterpolateOptions, 'out' | 'dtype'>,
): { names: string[]; lists: Tensor[][]; out: TensorMap; outs: Tensor[] } {
  const { names, lists } = gatherTensors(sources);
  if (opts.dtype !== undefined && !isDType(opts.dtype))
    throw new SoupError('ERR_SOUP_INVALID_ARG', `dtype must be one of float32, float16, bfloat16, float64; got ${JSON.stringify(opts.dtype)}`);
  const first = lists[0];
  const outDtype = (k: number): DType => opts.dtype ?? first[k].dtype;
  if (!opts.out) {
    const out = allocateTensors(names.map((n, k) => ({ name: n, dtype: outDtype(k), shape: first[k].shape })));
    return { names, lists, out, outs: Object.values(out) };
  }
  const out = opts.out;
  const outs: Tensor[] = new Array(names.length);
  for (let k = 0; k < names.length; k++) {
    const n = names[k];
    const t: Tensor | undefined = out[n];
    if (t === undefined) throw new SoupError('ERR_SOUP_MISSING_TENSOR', `out has no tensor '${n}'`);
    if (!isWellFormedTensor(t)) checkTensor(`out['${n}']`, t);
    if (t.dtype !== outDtype(k)) throw new SoupError('ERR_SOUP_DTYPE_MISMATCH', `out['${n}'] dtype ${t.dtype} != output dtype ${outDtype(k)}`);
    if (t.data.length !== first[k].data.length)
      throw new SoupError('ERR_SOUP_SHAPE_MISMATCH', `out['${n}'] has ${t.data.length} elements, sources have ${first[k].data.length}`);
    outs[k] = t;
  }
  return { names, lists, out, outs };
}

/** What the native side resolves to pointers: per-source tensor lists, outputs, dtype codes, options. */
function nativeBaton(lists: Tensor[][], outs: Tensor[], opts: InterpolateOptions): InterpolatePlanBaton {
  const ch = opts.chunkElems;
  if (ch !== undefined && !(Number.isSafeInteger(ch) && ch > 0))
    throw new SoupError('ERR_SOUP_INVALID_ARG', `chunkElems must be a positive integer, got ${ch}`);
  // loops, not Int32Array.from(list, fn) (the iterator protocol, per tensor, on every call); the
  // arrays of arrays stay map()s: packed arrays, which N-API reads faster than new Array(t)'s holey ones
  const inDtypes = new Int32Array(outs.length),
    outDtypes = new Int32Array(outs.length);
  for (let k = 0; k < outs.length; k++) {
    inDtypes[k] = DTYPE_CODE[lists[0][k].dtype];
    outDtypes[k] = DTYPE_CODE[outs[k].dtype];
  }
  return {
    sources: lists.map((l) => l.map((t) => t.data)),
    inDtypes,
    outs: outs.map((t) => t.data),
    outDtypes,
    threads: opts.threads,
    simd: opts.simd,
    nonTemporal: opts.nonTemporal,
    chunkElems: opts.chunkElems,
  };
}

export async function interpolate(sources: TensorMap[], weights: number[], opts: InterpolateOptions = {}): Promise<TensorMap> {
  const callSite = new Error(); // its stack is formatted only if the call fails (~0.1 ms per call otherwise)
  const device = checkDevice(opts.device);
  const cuda = device === 'cuda' ? cudaFunctions() : undefined;
  const { names, lists, out, outs } = prepareOutputs(sources, opts);
  const w = resolveWeights(weights, sources.length, opts);
  if (names.length === 0) return out;
  const baton = { ...nativeBaton(lists, outs, opts), weights: w };
  await callNative((control) => (cuda ? cuda.interpolateCuda({ ...baton, control }) : coreAddon().interpolate({ ...baton, control })), opts, callSite);
  return out;
}

/** Options of a prepared soup: everything of interpolate() but the per-run ones. */
export type PrepareOptions = Omit<InterpolateOptions, 'signal' | 'stats' | 'normalize' | 'allowExtrapolation'>;

/** Options of one run of a prepared soup. */
export interface SoupRunOptions extends WeightRules {
  signal?: AbortSignal;
  stats?: InterpolateStats;
}

/** Sources and outputs checked and resolved once; each run() takes only new weights (a λ sweep). */
export interface PreparedSoup {
  /** The tensors every run() writes (opts.out, or allocated once by prepareInterpolation). */
  readonly out: TensorMap;
  /** out = Σ λᵢ sourcesᵢ with these weights; one run at a time (a second concurrent run rejects). */
  run(weights: readonly number[], opts?: SoupRunOptions): Promise<TensorMap>;
}

/**
 * Prepares interpolate(sources, ·, opts) for many weight vectors: validation, output allocation and the
 * native pointer table happen once, so a run costs the kernel plus ~0.1 ms instead of re-checking every
 * tensor (about 1 ms per 1 000 tensors). The sources and outputs must not be replaced or resized while
 * the soup is in use (their contents may change freely: the run reads them when it runs).
 */
export function prepareInterpolation(sources: TensorMap[], opts: PrepareOptions = {}): PreparedSoup {
  const device = checkDevice(opts.device);
  const { names, lists, out, outs } = prepareOutputs(sources, opts);
  const n = sources.length;
  if (device === 'cuda' || names.length === 0) {
    // CUDA (and the empty soup) keep the one-shot path: the device copy dominates there
    return { out, run: (weights, o = {}) => interpolate(sources, weights as number[], { ...opts, ...o, out }) };
  }
  const addon = coreAddon();
  const plan = callNativeSync(() => addon.prepareInterpolation(nativeBaton(lists, outs, opts)));
  return {
    out,
    async run(weights, o = {}) {
      const callSite = new Error();
      const w = resolveWeights(weights, n, o);
      await callNative((control) => addon.runInterpolation(plan, w, control), o, callSite);
      return out;
    },
  };
}
