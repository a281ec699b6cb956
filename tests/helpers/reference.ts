// Independent float64 references and tolerance checks for the merge engine.
import { elementAt, f64ToBf16, f64ToF16, type DType, type Tensor } from '../../src/io/index.js';

/** out = Σ λᵢ xᵢ in float64, and Σ |λᵢ xᵢ| (the scale the accumulation error is bounded by). */
export function referenceSum(sources: Tensor[], w: number[]): { ref: Float64Array; scale: Float64Array } {
  const n = sources[0].data.length;
  const ref = new Float64Array(n),
    scale = new Float64Array(n);
  for (let i = 0; i < sources.length; i++) {
    for (let k = 0; k < n; k++) {
      const v = w[i] * elementAt(sources[i], k);
      ref[k] += v;
      scale[k] += Math.abs(v);
    }
  }
  return { ref, scale };
}

/** Orders 16-bit float patterns as integers so that adjacent representable values differ by 1. */
function ordinal(h: number): number {
  return h & 0x8000 ? -(h & 0x7fff) : h;
}

export interface CheckResult {
  worst: number; // fp32/fp64: max relative error (vs Σ|λx|); halves: max ulp distance
  relaxed: number; // halves: elements within the fp32 accumulation bound but > 1 ulp (cancellation)
}

export function checkAgainst(out: Tensor, sources: Tensor[], w: number[]): CheckResult {
  const { ref, scale } = referenceSum(sources, w);
  const n = ref.length;
  let worst = 0,
    relaxed = 0;
  if (out.dtype === 'float32' || out.dtype === 'float64') {
    for (let k = 0; k < n; k++) {
      const v = out.data[k];
      if (!Number.isFinite(v)) return { worst: Infinity, relaxed };
      const e = Math.abs(v - ref[k]) / (scale[k] || 1);
      if (e > worst) worst = e;
    }
    return { worst, relaxed };
  }
  const round = out.dtype === 'bfloat16' ? f64ToBf16 : f64ToF16;
  // fp32 accumulation error bound for N terms (N roundings of at most 2^-24 of the partial sums)
  const accBound = (sources.length + 1) * 2 ** -23;
  for (let k = 0; k < n; k++) {
    const d = Math.abs(ordinal(out.data[k]) - ordinal(round(ref[k])));
    if (d <= 1) {
      worst = Math.max(worst, d);
      continue;
    }
    const got = elementAt(out, k);
    if (Math.abs(got - ref[k]) <= accBound * scale[k] + 2 ** -24 * Math.abs(ref[k]) * 512) {
      relaxed++;
      continue;
    }
    return { worst: d, relaxed };
  }
  return { worst, relaxed };
}

export function sameBits(a: Tensor, b: Tensor): boolean {
  const x = Buffer.from(a.data.buffer, a.data.byteOffset, a.data.byteLength);
  const y = Buffer.from(b.data.buffer, b.data.byteOffset, b.data.byteLength);
  return x.equals(y);
}

export function poisoned(dtype: DType, shape: number[]): Tensor {
  const n = shape.reduce((a, b) => a * b, 1);
  if (dtype === 'float32') return { dtype, shape, data: new Float32Array(n).fill(NaN) };
  if (dtype === 'float64') return { dtype, shape, data: new Float64Array(n).fill(NaN) };
  return { dtype, shape, data: new Uint16Array(n).fill(dtype === 'bfloat16' ? 0x7fc1 : 0x7e01) };
}

// The naive 2-D hypervolume lives with the benchmark that uses it as its baseline (one copy).
export { staircaseArea } from '../../src/bench/pareto.js';
