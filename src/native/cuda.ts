// SPDX-License-Identifier: MIT
// The typed face of the CUDA functions of the torch addon (native/addon/torch/cuda_binding.cc, kernels
// in native/cuda). CUDA is a run-time capability: the same build loads on machines without a GPU and
// says why it cannot run there (ERR_SOUP_NO_CUDA), never falling back silently. See docs/cuda.md.
import { SoupError, fromNative } from '../errors.js';
import { torchAddon } from './index.js';

/** Storage dtype codes shared with native code: 0=float32, 1=float16, 2=bfloat16, 3=float64. */
export type DtypeCode = 0 | 1 | 2 | 3;

export interface InterpolateCudaBaton {
  /** N lists of T host tensors (sources[i][t] is tensor t of source i). */
  sources: ArrayBufferView[][];
  /** T input dtype codes (all N sources of tensor t share it). */
  inDtypes: Int32Array;
  /** T host outputs; each one's byte length fixes the tensor's element count. */
  outs: ArrayBufferView[];
  outDtypes: Int32Array;
  /** N weights (rounded once to fp32 for fp32/fp16/bf16 inputs). */
  weights: Float64Array;
  /** [0] cancel flag set to 1 by JS; [1] output bytes done, added to by native code. */
  control?: Float64Array;
}

export interface MergeFilesCudaTensor {
  numel: number;
  inDtype: number;
  outDtype: number;
  /** N indices into `files`. */
  srcFile: Int32Array;
  /** N absolute byte offsets of the tensor's data in its source file. */
  srcOffset: Float64Array;
}

export interface MergeFilesCudaBaton {
  files: string[];
  /** Output path (a temporary one: the caller renames it). */
  out: string;
  /** Written first; the tensors follow contiguously, in `tensors` order. */
  header: Uint8Array;
  weights: Float64Array;
  tensors: MergeFilesCudaTensor[];
  /** Input bytes per source per pipeline window (default 64 MiB; capped so pinned memory stays <= 1.5 GiB). */
  windowBytes?: number;
  control?: Float64Array;
}

export interface InterpolateCudaResult {
  seconds: number;
  kernel: string;
}

export interface MergeFilesCudaResult extends InterpolateCudaResult {
  bytesRead: number;
  bytesWritten: number;
}

export interface CudaStatus {
  /** The torch addon loaded and was built with the CUDA kernels. */
  compiled: boolean;
  /** Number of visible devices (0 without a driver or GPU). */
  devices: number;
  /** compiled && devices > 0 */
  available: boolean;
  /** Why CUDA cannot be used here; '' when it can. */
  reason: string;
  /** "NVIDIA H100 80GB HBM3, cc 9.0, ..." when available. */
  device: string;
}

interface CudaAddon {
  cudaInfo(): { compiled: boolean; devices: number; reason: string; device: string };
  cudaResidentCreate(b: { sources: ArrayBufferView[][]; inDtypes: Int32Array; outDtypes: Int32Array }): Promise<{ id: number; deviceBytes: number; seconds: number }>;
  cudaResidentRun(b: { id: number; weights: Float64Array; outs: ArrayBufferView[]; control?: Float64Array }): Promise<InterpolateCudaResult>;
  cudaResidentFree(id: number): boolean;
  interpolateCuda(b: InterpolateCudaBaton): Promise<InterpolateCudaResult>;
  mergeFilesCuda(b: MergeFilesCudaBaton): Promise<MergeFilesCudaResult>;
}

let cached: CudaStatus | undefined;

/** What this process can do with CUDA, and why not. Never throws. */
export function cudaStatus(): CudaStatus {
  if (cached) return cached;
  let addon: Partial<CudaAddon>;
  try {
    addon = torchAddon() as unknown as Partial<CudaAddon>;
  } catch (e) {
    return (cached = { compiled: false, devices: 0, available: false, reason: `the torch addon did not load: ${(e as Error).message}`, device: '' });
  }
  if (typeof addon.cudaInfo !== 'function') {
    return (cached = {
      compiled: false,
      devices: 0,
      available: false,
      reason: 'this build has no CUDA kernels (no nvcc was found when the torch addon was built; see docs/cuda.md)',
      device: '',
    });
  }
  const i = addon.cudaInfo();
  const available = i.compiled && i.devices > 0;
  return (cached = { compiled: i.compiled, devices: i.devices, available, reason: available ? '' : `CUDA compiled, no device: ${i.reason}`, device: i.device });
}

/** True when the CUDA kernels are built and a GPU is visible. */
export function cudaAvailable(): boolean {
  return cudaStatus().available;
}

/** Throws ERR_SOUP_NO_CUDA (saying why) unless the CUDA kernels can run here. */
export function requireCuda(what = "device 'cuda'"): void {
  const s = cudaStatus();
  if (!s.available) throw new SoupError('ERR_SOUP_NO_CUDA', `${what} needs a CUDA GPU, but ${s.reason}. Use device 'cpu' (the default).`);
}

function addon(): CudaAddon {
  requireCuda();
  return torchAddon() as unknown as CudaAddon;
}

/** out[t] = Σᵢ weights[i]·sources[i][t] on the GPU, streamed through pinned buffers; bit-identical to the CPU path. */
export async function interpolateCuda(baton: InterpolateCudaBaton): Promise<InterpolateCudaResult> {
  const stack = new Error().stack;
  try {
    return await addon().interpolateCuda(baton);
  } catch (e) {
    throw fromNative(e, stack);
  }
}

/** File-to-file merge on the GPU: read → H2D → kernel → D2H → write overlap on several streams; the output is fsync'd. */
export async function mergeFilesCuda(baton: MergeFilesCudaBaton): Promise<MergeFilesCudaResult> {
  const stack = new Error().stack;
  try {
    return await addon().mergeFilesCuda(baton);
  } catch (e) {
    throw fromNative(e, stack);
  }
}

/**
 * Sources kept on the GPU for a λ sweep: uploaded once by `create`, then each `run(weights, outs)`
 * interpolates on the device and copies only the outputs back (bit-identical to the CPU path).
 * Call `dispose()` (or use `await using`) to free the device memory.
 */
export class CudaResident {
  private constructor(
    private id: number,
    /** Device bytes held (sources and outputs). */
    readonly deviceBytes: number,
    readonly sources: number,
  ) {}

  static async create(sources: ArrayBufferView[][], inDtypes: Int32Array, outDtypes: Int32Array): Promise<CudaResident> {
    const stack = new Error().stack;
    try {
      const r = await addon().cudaResidentCreate({ sources, inDtypes, outDtypes });
      return new CudaResident(r.id, r.deviceBytes, sources.length);
    } catch (e) {
      throw fromNative(e, stack);
    }
  }

  async run(weights: Float64Array, outs: ArrayBufferView[], control?: Float64Array): Promise<InterpolateCudaResult> {
    const stack = new Error().stack;
    if (this.id === 0) throw new SoupError('ERR_SOUP_INVALID_ARG', 'this CudaResident was disposed');
    try {
      return await addon().cudaResidentRun({ id: this.id, weights, outs, control });
    } catch (e) {
      throw fromNative(e, stack);
    }
  }

  dispose(): void {
    if (this.id !== 0) (torchAddon() as unknown as CudaAddon).cudaResidentFree(this.id);
    this.id = 0;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    this.dispose();
  }
}

/** For tests: forget the cached status. */
export function resetCudaStatusForTests(): void {
  cached = undefined;
}
