// SPDX-License-Identifier: MIT
// Where a merge runs. CUDA is a run-time capability of the torch addon (native/cuda), not a separate
// package: `device: 'cuda'` without a GPU is a clear error, never a silent CPU fallback.
import { SoupError } from '../errors.js';
import { cudaFunctions as checkedCudaFunctions } from '../native/cuda.js';
import type { CudaFunctions } from '../native/torch.js';

export type Device = 'cpu' | 'cuda';
export type { CudaFunctions };

export function checkDevice(device: unknown): Device {
  if (device === undefined || device === 'cpu') return 'cpu';
  if (device === 'cuda') return 'cuda';
  throw new SoupError('ERR_SOUP_INVALID_ARG', `device must be 'cpu' or 'cuda', got ${JSON.stringify(device)}`);
}

/** The CUDA entry points, or ERR_SOUP_NO_CUDA saying why they cannot be used here (src/native/cuda.ts). */
export function cudaFunctions(): CudaFunctions {
  return checkedCudaFunctions("device 'cuda'");
}
