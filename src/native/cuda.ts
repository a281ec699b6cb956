// SPDX-License-Identifier: MIT
// The typed face of the CUDA functions of the torch addon (native/addon/torch/cuda_binding.cc, kernels
// in native/cuda). CUDA is a run-time capability: the same build loads on machines without a GPU and
// says why it cannot run there (ERR_SOUP_NO_CUDA), never falling back silently. See docs/cuda.md.
import { SoupError } from '../errors.js';
import { callNative } from './call.js';
import { torchAddon } from './index.js';
import type { CudaFunctions, InterpolateCudaBaton, InterpolateCudaResult, MergeFilesCudaBaton, MergeFilesCudaResult } from './torch.js';

export type { DtypeCode, InterpolateCudaBaton, InterpolateCudaResult, MergeFilesCudaBaton, MergeFilesCudaResult, MergeFilesCudaTensor } from './torch.js';

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

let cached: CudaStatus | undefined;

/** What this process can do with CUDA, and why not. Never throws. */
export function cudaStatus(): CudaStatus {
  if (cached) return cached;
  let addon: Partial<CudaFunctions>;
  try {
    addon = torchAddon();
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

/** The CUDA entry points, or ERR_SOUP_NO_CUDA saying why they cannot be used here (the one check). */
export function cudaFunctions(what?: string): CudaFunctions {
  requireCuda(what);
  return torchAddon() as CudaFunctions;
}

const addon = (): CudaFunctions => cudaFunctions();

/** out[t] = Σᵢ weights[i]·sources[i][t] on the GPU, streamed through pinned buffers; bit-identical to the CPU path. */
export async function interpolateCuda(baton: InterpolateCudaBaton): Promise<InterpolateCudaResult> {
  return callNative(() => addon().interpolateCuda(baton));
}

/** File-to-file merge on the GPU: read → H2D → kernel → D2H → write overlap on several streams; the output is fsync'd. */
export async function mergeFilesCuda(baton: MergeFilesCudaBaton): Promise<MergeFilesCudaResult> {
  return callNative(() => addon().mergeFilesCuda(baton));
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
    const r = await callNative(() => addon().cudaResidentCreate({ sources, inDtypes, outDtypes }));
    return new CudaResident(r.id, r.deviceBytes, sources.length);
  }

  async run(weights: Float64Array, outs: ArrayBufferView[], control?: Float64Array): Promise<InterpolateCudaResult> {
    if (this.id === 0) throw new SoupError('ERR_SOUP_INVALID_ARG', 'this CudaResident was disposed');
    const id = this.id;
    return callNative(() => addon().cudaResidentRun({ id, weights, outs, control }));
  }

  dispose(): void {
    if (this.id !== 0) (torchAddon() as CudaFunctions).cudaResidentFree(this.id);
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
