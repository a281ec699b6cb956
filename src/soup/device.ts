// SPDX-License-Identifier: MIT
// Where a merge runs. CUDA is a run-time capability of the torch addon (native/cuda), not a separate
// package: `device: 'cuda'` without a GPU is a clear error, never a silent CPU fallback.
import { SoupError } from '../errors.js';
import { torchAddon } from '../native/index.js';

export type Device = 'cpu' | 'cuda';

export interface CudaFunctions {
  interpolateCuda(baton: Record<string, unknown>): Promise<{ seconds: number; kernel: string }>;
  mergeFilesCuda(baton: Record<string, unknown>): Promise<{ seconds: number; bytesRead: number; bytesWritten: number; kernel: string }>;
}

export function checkDevice(device: unknown): Device {
  if (device === undefined || device === 'cpu') return 'cpu';
  if (device === 'cuda') return 'cuda';
  throw new SoupError('ERR_SOUP_INVALID_ARG', `device must be 'cpu' or 'cuda', got ${JSON.stringify(device)}`);
}

/** The CUDA entry points, or ERR_SOUP_NO_CUDA saying why they cannot be used here. */
export function cudaFunctions(): CudaFunctions {
  let info;
  try {
    info = torchAddon().info();
  } catch (e) {
    throw new SoupError('ERR_SOUP_NO_CUDA', `device 'cuda' needs the torch addon, which did not load: ${(e as Error).message}`);
  }
  if (!info.cuda.compiled) throw new SoupError('ERR_SOUP_NO_CUDA', "device 'cuda': this build has no CUDA kernels (no CUDA toolkit was found at build time); use device 'cpu'");
  if (!info.cuda.available) throw new SoupError('ERR_SOUP_NO_CUDA', "device 'cuda': CUDA compiled, no device (no GPU visible to this process); use device 'cpu'");
  const t = torchAddon() as unknown as Partial<CudaFunctions>;
  if (typeof t.interpolateCuda !== 'function' || typeof t.mergeFilesCuda !== 'function')
    throw new SoupError('ERR_SOUP_NO_CUDA', "device 'cuda': the torch addon exports no CUDA merge functions");
  return t as CudaFunctions;
}
