// SPDX-License-Identifier: MIT
// The environments' own seeded random streams: xoshiro128** seeded through splitmix32, one stream per
// env, derived from (seed, env index) so a vector of envs gives the same numbers whatever the thread
// split. Gymnasium's numpy PCG64 streams are not reproduced: same distributions, other samples.

import { splitmix32, Xoshiro128 } from '../util/random.js';

export class Rng {
  private gen = new Xoshiro128(1, 0, 0, 0);
  private spare = NaN;

  /** `seed` is any integer (up to 2^53); `stream` picks an independent stream (the env index). */
  constructor(seed: number, stream = 0) {
    this.reseed(seed, stream);
  }

  reseed(seed: number, stream = 0): void {
    if (!Number.isSafeInteger(seed) || !Number.isSafeInteger(stream)) {
      throw new RangeError(`seed and stream must be safe integers, got ${seed} and ${stream}`);
    }
    const lo = seed >>> 0;
    const hi = Math.floor(seed / 4294967296) >>> 0;
    const st = { s: lo ^ Math.imul(hi, 0x27d4eb2d) };
    st.s = (splitmix32(st) ^ Math.imul(stream + 1, 0x165667b1)) | 0;
    this.gen = new Xoshiro128(splitmix32(st), splitmix32(st), splitmix32(st), splitmix32(st));
    this.spare = NaN;
  }

  /** Next 32 random bits (xoshiro128**). */
  nextU32(): number {
    return this.gen.nextU32();
  }

  /** Uniform double in [0, 1) with 53 random bits. */
  random(): number {
    return this.gen.random();
  }

  uniform(low: number, high: number): number {
    return low + (high - low) * this.random();
  }

  /** Standard normal (Box–Muller; the second value is kept for the next call). */
  normal(): number {
    if (!Number.isNaN(this.spare)) {
      const v = this.spare;
      this.spare = NaN;
      return v;
    }
    let u = 0;
    while (u === 0) u = this.random();
    const v = this.random();
    const r = Math.sqrt(-2 * Math.log(u));
    this.spare = r * Math.sin(2 * Math.PI * v);
    return r * Math.cos(2 * Math.PI * v);
  }
}
