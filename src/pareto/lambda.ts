// SPDX-License-Identifier: MIT
// Interpolation coefficients: the paper's λ grid, simplex lattices for N experts, and seeded uniform
// sampling on the simplex. Convention for N = 2 (the official code's): θ(λ) = (1 - λ) θ_1 + λ θ_2, so the
// scalar λ is the weight of the *second* expert and the vector is [1 - λ, λ].
import { invalid } from './validate.js';
import { splitmix32, Xoshiro128 } from '../util/random.js';

function checkInt(v: unknown, what: string, min: number): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min) {
    throw invalid(`${what} is ${typeof v === 'number' ? v : JSON.stringify(v)}; expected an integer >= ${min}`);
  }
  return v;
}

/** steps + 1 equally spaced scalars i / steps in [0, 1]; lambdaGrid(10) is the paper's 11 values 0, 0.1, …, 1. */
export function lambdaGrid(steps = 10): number[] {
  checkInt(steps, 'steps', 1);
  return Array.from({ length: steps + 1 }, (_, i) => i / steps);
}

const MAX_GRID = 10_000_000;

/**
 * Every λ on the n-simplex whose entries are multiples of 1/steps: C(steps + n - 1, n - 1) vectors,
 * entries exactly k / steps (so their sum may differ from 1 by an ulp). Order: the last entry varies
 * slowest, so simplexGrid(2, 10) is [[1, 0], [0.9, 0.1], …, [0, 1]], matching lambdaGrid(10) in the
 * second entry.
 */
export function simplexGrid(n: number, steps: number): number[][] {
  checkInt(n, 'n', 1);
  checkInt(steps, 'steps', 1);
  let count = 1;
  for (let j = 1; j < n; j++) count = (count * (steps + j)) / j;
  if (Math.round(count) > MAX_GRID) {
    throw invalid(`simplexGrid(${n}, ${steps}) would have ${Math.round(count)} vectors (limit ${MAX_GRID}); use dirichletSample instead`);
  }
  const out: number[][] = [];
  const k = new Array<number>(n).fill(0);
  const rec = (dim: number, remaining: number) => {
    if (dim === 0) {
      k[0] = remaining;
      out.push(k.map((v) => v / steps));
      return;
    }
    for (let v = 0; v <= remaining; v++) {
      k[dim] = v;
      rec(dim - 1, remaining - v);
    }
  };
  rec(n - 1, steps);
  return out;
}

/**
 * A small, seedable PRNG (xoshiro128**, state from splitmix32 of the seed), returning doubles in [0, 1)
 * with 53 random bits. Same seed, same sequence, on every platform.
 */
export function seededRandom(seed: number): () => number {
  if (typeof seed !== 'number' || !Number.isFinite(seed)) throw invalid(`seed is ${seed}; expected a finite number`);
  const st = { s: ((Math.trunc(seed) >>> 0) ^ Math.trunc(seed / 4294967296)) | 0 };
  const gen = new Xoshiro128(splitmix32(st), splitmix32(st), splitmix32(st), splitmix32(st));
  return () => gen.random();
}

/**
 * m vectors drawn uniformly on the n-simplex (Dirichlet(1, …, 1)), reproducibly from `seed`: normalised
 * standard exponentials. This is how the paper samples the M soups to evaluate for N > 2.
 */
export function dirichletSample(n: number, m: number, seed: number): number[][] {
  checkInt(n, 'n', 1);
  checkInt(m, 'm', 0);
  const rand = seededRandom(seed);
  const out: number[][] = [];
  for (let j = 0; j < m; j++) {
    const e = new Array<number>(n);
    let sum = 0;
    for (let i = 0; i < n; i++) {
      // 1 - U lies in (0, 1], so the log is finite.
      e[i] = -Math.log(1 - rand());
      sum += e[i];
    }
    // All n draws being exactly 0 has probability 2^(-53 n); fall back to the centre.
    out.push(sum > 0 ? e.map((v) => v / sum) : e.map(() => 1 / n));
  }
  return out;
}
