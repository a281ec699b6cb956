// SPDX-License-Identifier: MIT
// Types shared by the two addons' typed faces (core.ts, torch.ts). Keep in sync with native/addon/.

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

/** Storage dtypes of tensors that cross the boundary (src/io's Tensor is this shape). */
export type NativeDType = 'float32' | 'float16' | 'bfloat16' | 'float64';

/** {dtype, shape, data}: fp16/bf16 travel as Uint16Array (onnxruntime's convention). */
export interface NativeTensor {
  dtype: NativeDType;
  shape: number[];
  data: Float32Array | Uint16Array | Float64Array;
}
export type NativeTensorMap = Record<string, NativeTensor>;
