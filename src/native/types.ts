// SPDX-License-Identifier: MIT
// Exactly what the .node files export (ORT's binding.ts idea). Keep in sync with native/addon/.

/** SIMD levels of the CPU kernels, best first; each needs the CPU features of the ones after it. */
export type Simd = 'avx512bf16' | 'avx512' | 'avx2' | 'scalar';

export interface CoreInfo {
  version: string;
  simd: Simd;
  cpuFeatures: string[];
  hardwareThreads: number;
}

export interface TorchInfo {
  libtorch: string;
  threads: number;
  interopThreads: number;
  parallel: string;
  cuda: { compiled: boolean; available: boolean; devices: number; torchCuda: boolean };
}

export interface CoreAddon {
  info(): CoreInfo;
  [fn: string]: unknown;
}

export interface TorchAddon {
  info(): TorchInfo;
  setNumThreads(n: number): void;
  [fn: string]: unknown;
}
