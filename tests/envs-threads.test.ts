// SPDX-License-Identifier: MIT
// VecEnv with worker threads: the same numbers as one thread (each env owns its random stream), for
// odd splits, automatic resets and reseeding; workers stop on close.
import { describe, expect, it } from 'vitest';
import { VecEnv, type EnvName } from '../src/envs/index.js';

function lcg(seed: number): () => number {
  let s = seed;
  return () => {
    s = (s * 16807) % 2147483647;
    return (s / 2147483647) * 2 - 1;
  };
}

async function run(env: EnvName, threads: number, numEnvs: number, steps: number): Promise<number[][]> {
  const vec = await VecEnv.create({ env, numEnvs, threads, seed: 99, maxEpisodeSteps: 120 });
  expect(vec.threads).toBe(threads);
  const rnd = lcg(123);
  const a = new Float32Array(numEnvs * vec.info.actDim);
  const out: number[][] = [];
  try {
    for (let t = 0; t < steps; t++) {
      if (t === steps / 2) vec.reset(7); // reseeding reaches every thread
      for (let j = 0; j < a.length; j++) a[j] = 1.3 * rnd();
      const r = vec.step(a);
      out.push([...r.obs, ...r.rewards, ...r.reward, ...r.terminated, ...r.truncated, ...r.episodeStep, ...r.xPosition]);
      // finalObs is only meaningful where an episode ended
      for (let i = 0; i < numEnvs; i++) {
        if (r.terminated[i] || r.truncated[i]) out.push(Array.from(r.finalObs.subarray(i * vec.info.obsDim, (i + 1) * vec.info.obsDim)));
      }
    }
  } finally {
    await vec.close();
  }
  return out;
}

describe('VecEnv threads', () => {
  it('Hopper, 5 envs: 2 and 3 threads give bit-identical buffers to 1 thread, with terminations', async () => {
    const one = await run('Hopper-v5', 1, 5, 300);
    const two = await run('Hopper-v5', 2, 5, 300);
    const three = await run('Hopper-v5', 3, 5, 300);
    expect(two).toEqual(one);
    expect(three).toEqual(one);
    // episodes did end (terminations and the 120-step limit), so resets were exercised
    expect(one.length - 300).toBeGreaterThan(10);
  });

  it('HalfCheetah, 3 envs on 2 threads: truncation at the limit and the same numbers', async () => {
    const one = await run('HalfCheetah-v5', 1, 3, 130);
    const two = await run('HalfCheetah-v5', 2, 3, 130);
    expect(two).toEqual(one);
  });

  it('frame() and state() are for envs on the main thread; a closed env refuses to step', async () => {
    const vec = await VecEnv.create({ env: 'HalfCheetah-v5', numEnvs: 4, threads: 2 });
    expect(vec.state(1).qpos.length).toBe(9);
    expect(() => vec.state(2)).toThrow(/env index 2 is not on this thread \(envs 0\.\.1\)/);
    await vec.close();
    expect(() => vec.step(new Float32Array(24))).toThrow(/closed/);
    await vec.close(); // twice is fine
  });
});
