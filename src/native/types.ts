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
  /** One copy-on-write mapping of `path`, one ArrayBuffer per [start, length] pair of `windows`. */
  mmapWindows(path: string, windows: Float64Array, maxBytes: number): ArrayBuffer[];
  /** A 64-byte aligned buffer, not zero-filled; refused over `maxBytes`. */
  allocBuffer(bytes: number, hugePages?: boolean, maxBytes?: number): ArrayBuffer;
  [fn: string]: unknown;
}

export interface TorchAddon {
  info(): TorchInfo;
  setNumThreads(n: number): void;
  [fn: string]: unknown;
}
