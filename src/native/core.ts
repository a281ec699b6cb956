// SPDX-License-Identifier: MIT
// Exactly what soup_core.node exports (onnxruntime-node's binding.ts idea), with the batons each
// function takes (native/addon/core/addon_core.cc). src/soup and src/io build the batons; every field
// has been checked there, and native re-checks only what could corrupt memory.
import type { CoreInfo, Simd } from './types.js';

/** Options every CPU kernel call takes. */
export interface KernelOptions {
  threads?: number;
  simd?: Simd;
}

/** An in-memory soup: out[t] = Σᵢ weights[i]·sources[i][t]; codes 0=float32, 1=float16, 2=bfloat16, 3=float64. */
export interface InterpolatePlanBaton extends KernelOptions {
  /** N lists of T arrays: sources[i][t] is tensor t of source i. */
  sources: ArrayBufferView[][];
  inDtypes: Int32Array;
  /** T outputs; each one's byte length fixes its element count. */
  outs: ArrayBufferView[];
  outDtypes: Int32Array;
  nonTemporal?: boolean;
  chunkElems?: number;
}

export interface InterpolateBaton extends InterpolatePlanBaton {
  weights: Float64Array;
  /** [0] cancel flag set by JS; [1] bytes done, added to by native code. */
  control?: Float64Array;
}

/** What an in-memory soup reports: the kernel's own time, bytes moved, the SIMD path it took. */
export interface InterpolateStats {
  seconds: number;
  bytes: number;
  kernel: string;
  nonTemporal: boolean;
}

/** A prepared plan: native state owned by this object (freed when it is collected). */
export type InterpolationPlan = { readonly __brand: 'soup-interpolation-plan' };

/** One tensor of a file merge: N sources at (file, offset), or a low-rank update over a base. */
export interface MergeFilesTensor {
  name: string;
  numel: number;
  inDtype: number;
  outDtype: number;
  /** This tensor's own weights (n of them; default: the baton's). */
  weights?: Float64Array;
  srcFile?: Int32Array;
  srcOffset?: Float64Array;
  lowRank?: { baseFile: number; baseOffset: number; rows: number; cols: number; rank: number; L: Float32Array; R: Float32Array };
}

/** A file-to-file merge (native/addon/common/merge_baton.h): the GPU merge takes the same baton. */
export interface MergeFilesBaton extends KernelOptions {
  files: string[];
  /** Output path (a temporary one: the caller renames it). */
  out: string;
  /** Written first; the tensors follow contiguously, in `tensors` order. */
  header: Uint8Array;
  weights: Float64Array;
  tensors: MergeFilesTensor[];
  windowBytes?: number;
  control?: Float64Array;
}

export interface MergeFilesResult {
  seconds: number;
  readSeconds?: number;
  kernelSeconds?: number;
  writeSeconds?: number;
  bytesRead: number;
  bytesWritten: number;
  kernel: string;
}

/** The bandwidth probe: a triad over three arrays, or a read of 1..8 caller arrays (`kind: 'read'`). */
export interface BandwidthProbeOptions extends KernelOptions {
  bytes: number;
  reps?: number;
  nonTemporal?: boolean;
  arrays?: Float32Array[];
  kind?: 'triad' | 'read';
  /** One untimed pass first (default true). */
  warmup?: boolean;
}

export interface BandwidthProbeResult {
  seconds: number[];
  bytesPerRep: number;
  kernel: string;
  sum?: number;
}

export interface CoreAddon {
  info(): CoreInfo;
  /** One copy-on-write mapping of `path`, one ArrayBuffer per [start, length] pair of `windows`. */
  mmapWindows(path: string, windows: Float64Array, maxBytes: number): ArrayBuffer[];
  /** A 64-byte aligned buffer, not zero-filled; refused over `maxBytes`. */
  allocBuffer(bytes: number, hugePages?: boolean, maxBytes?: number): ArrayBuffer;
  interpolate(b: InterpolateBaton): Promise<InterpolateStats>;
  prepareInterpolation(b: InterpolatePlanBaton): InterpolationPlan;
  /** One run at a time per plan (ERR_SOUP_BUSY). */
  runInterpolation(plan: InterpolationPlan, weights: Float64Array, control?: Float64Array): Promise<InterpolateStats>;
  mergeFiles(b: MergeFilesBaton): Promise<MergeFilesResult>;
  bandwidthProbe(o: BandwidthProbeOptions): Promise<BandwidthProbeResult>;
}
