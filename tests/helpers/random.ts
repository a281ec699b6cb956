// Seeded random data for tests: never zeros, reproducible.
import { f64ToBf16, f64ToF16, type DType, type Tensor, type TensorMap, numelOf } from '../../src/io/index.js';

export function rng(seed: number): () => number {
  let s = seed >>> 0 || 1;
  return () => {
    // xorshift32 -> (0, 1)
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    return (s + 0.5) / 4294967296;
  };
}

/** Standard normal values via Box-Muller; exact zeros replaced by a small non-zero value. */
export function normals(n: number, r: () => number, scale = 1): Float64Array {
  const out = new Float64Array(n);
  for (let i = 0; i < n; i += 2) {
    const u = r(),
      v = r();
    const m = Math.sqrt(-2 * Math.log(u));
    out[i] = m * Math.cos(2 * Math.PI * v) * scale || 1e-3;
    if (i + 1 < n) out[i + 1] = m * Math.sin(2 * Math.PI * v) * scale || 1e-3;
  }
  return out;
}

export function randomTensor(dtype: DType, shape: number[], r: () => number, scale = 1): Tensor {
  const n = numelOf(shape);
  const v = normals(n, r, scale);
  if (dtype === 'float64') return { dtype, shape, data: v };
  if (dtype === 'float32') return { dtype, shape, data: Float32Array.from(v) };
  const d = new Uint16Array(n);
  for (let i = 0; i < n; i++) d[i] = dtype === 'bfloat16' ? f64ToBf16(v[i]) : f64ToF16(v[i]);
  return { dtype, shape, data: d };
}

export function randomMap(names: string[], shapes: number[][], dtype: DType, r: () => number): TensorMap {
  const m: TensorMap = {};
  names.forEach((n, i) => (m[n] = randomTensor(dtype, shapes[i], r)));
  return m;
}
