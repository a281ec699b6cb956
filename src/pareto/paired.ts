// SPDX-License-Identifier: MIT
// Paired statistics over evaluation prompts. Every model of a sweep is scored on the same prompts (and
// sampling seed), so a contrast between models — a gain over the initialisation, an LMC gap
// R_k(θ(λ)) − Σ λᵢ R_k(θᵢ), a soup against a MORL run — is estimated per prompt and its standard error
// taken from the spread of those per-prompt contrasts: the prompt-to-prompt variation that all models
// share cancels, where the independence bound √(Σ cᵢ² seᵢ²) counts it once per model.

export interface Paired {
  mean: number;
  /** Standard error of the mean of the per-prompt contrasts. */
  se: number;
  /** mean / se (±Infinity when se is 0 and the mean is not). */
  z: number;
  n: number;
}

/** Σₘ cₘ xₘ[p] per prompt p, then its mean and standard error. */
export function pairedContrast(terms: Array<[coef: number, perPrompt: ArrayLike<number>]>, idx?: readonly number[]): Paired {
  const P = terms[0][1].length;
  for (const [, x] of terms) if (x.length !== P) throw new RangeError(`paired contrast: ${x.length} prompts against ${P}`);
  const rows = idx ?? Array.from({ length: P }, (_, i) => i);
  const n = rows.length;
  const d = new Float64Array(n);
  rows.forEach((p, i) => {
    let v = 0;
    for (const [c, x] of terms) v += c * x[p];
    d[i] = v;
  });
  let m = 0;
  for (const v of d) m += v;
  m /= n;
  let s = 0;
  for (const v of d) s += (v - m) ** 2;
  const se = n > 1 ? Math.sqrt(s / (n - 1) / n) : 0;
  return { mean: m, se, n, z: se > 0 ? m / se : m === 0 ? 0 : m > 0 ? Infinity : -Infinity };
}

/** Mean and standard error of the mean (sample s.d. / √n; 0 for one value). */
export function meanStderr(x: ArrayLike<number>): [number, number] {
  const n = x.length;
  let m = 0;
  for (let i = 0; i < n; i++) m += x[i];
  m /= n;
  let s = 0;
  for (let i = 0; i < n; i++) s += (x[i] - m) * (x[i] - m);
  return [m, n > 1 ? Math.sqrt(s / (n - 1) / n) : 0];
}

/** Sample standard deviation of the values at `idx` (all by default). */
export function sampleSd(x: ArrayLike<number>, idx?: readonly number[]): number {
  const rows = idx ?? Array.from({ length: x.length }, (_, i) => i);
  const n = rows.length;
  let m = 0;
  for (const p of rows) m += x[p];
  m /= n;
  let s = 0;
  for (const p of rows) s += (x[p] - m) ** 2;
  return n > 1 ? Math.sqrt(s / (n - 1)) : 0;
}

/** Splits prompt indices 0..P-1 into validation (even) and test (odd) halves: interleaved, so an order
 *  in the prompt list cannot put different kinds of prompts on each side. */
export function validationTestSplit(P: number): { validation: number[]; test: number[] } {
  const validation: number[] = [],
    test: number[] = [];
  for (let p = 0; p < P; p++) (p % 2 === 0 ? validation : test).push(p);
  return { validation, test };
}
