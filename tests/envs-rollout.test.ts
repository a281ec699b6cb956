// SPDX-License-Identifier: MIT
// The control-policy data path: the rollout collector against a hand-written step loop on a twin env,
// episode bookkeeping against closed forms (distance = dt·Σv; Gymnasium's return = Σv − 0.1·Σa²),
// deterministic evaluation, and the filmstrip's geometry in pixels.
import { PNG } from 'pngjs';
import { describe, expect, it } from 'vitest';
import { SoupError } from '../src/errors.js';
import { evaluateEpisodes, filmstripPng, filmstripSvg, recordEpisodeFrames, RolloutCollector, type PolicyFn } from '../src/envs/index.js';
import { envFactory } from './helpers/envs.js';

const make = envFactory();

/** A deterministic batch policy: smooth, env- and step-dependent actions, some outside [-1, 1]. */
const wave: PolicyFn = (obs, act, t) => {
  for (let j = 0; j < act.length; j++) act[j] = 1.3 * Math.sin(0.7 * t + 1.1 * j) + 0.2 * obs[j % obs.length];
};

describe('RolloutCollector', () => {
  for (const env of ['Hopper-v5', 'HalfCheetah-v5'] as const) {
    it(`${env}: buffers equal a hand-written loop on a twin env, across two rollouts`, async () => {
      const N = 3;
      const T = 40;
      const opts = { env, numEnvs: N, seed: 8, maxEpisodeSteps: 33 };
      const vec = await make(opts);
      const twin = await make(opts);
      const { obsDim: O, actDim: A, rewardDim: R } = vec.info;
      const col = new RolloutCollector(vec, T);
      let calls = 0;
      const policy: PolicyFn = (obs, act, t) => {
        calls++;
        expect(obs.length).toBe(N * O); // the whole batch, once per step
        expect(act.length).toBe(N * A);
        wave(obs, act, t);
      };
      // reference bookkeeping
      const ret = new Float64Array(N * R);
      const len = new Int32Array(N);
      const episodes: { env: number; length: number; returns: number[]; terminated: boolean }[] = [];
      for (let round = 0; round < 2; round++) {
        const r = col.collect(policy);
        expect(calls).toBe(T * (round + 1));
        const seen: typeof episodes = [];
        for (let t = 0; t < T; t++) {
          const obs = Float32Array.from(twin.obs);
          expect(Array.from(r.obs.subarray(t * N * O, (t + 1) * N * O))).toEqual(Array.from(obs));
          const act = new Float32Array(N * A);
          wave(obs, act, t);
          expect(Array.from(r.actions.subarray(t * N * A, (t + 1) * N * A))).toEqual(Array.from(act));
          const s = twin.step(act);
          for (let i = 0; i < N; i++) {
            const row = t * N + i;
            for (let k = 0; k < R; k++) {
              expect(r.rewards[row * R + k]).toBe(Math.fround(s.rewards[i * R + k]));
              ret[i * R + k] += s.rewards[i * R + k];
            }
            expect(r.scalarRewards[row]).toBe(Math.fround(s.reward[i]));
            expect(r.terminated[row]).toBe(s.terminated[i]);
            expect(r.truncated[row]).toBe(s.truncated[i]);
            len[i]++;
            const fin = Array.from(r.finalObs.subarray(row * O, (row + 1) * O));
            if (s.terminated[i] || s.truncated[i]) {
              expect(fin).toEqual(Array.from(s.finalObs.subarray(i * O, (i + 1) * O)));
              seen.push({ env: i, length: len[i], returns: Array.from(ret.subarray(i * R, (i + 1) * R)), terminated: s.terminated[i] === 1 });
              ret.fill(0, i * R, (i + 1) * R);
              len[i] = 0;
            } else {
              expect(fin.every((x) => x === 0)).toBe(true);
            }
          }
        }
        expect(Array.from(r.lastObs)).toEqual(Array.from(twin.obs));
        expect(r.episodes.length).toBe(seen.length);
        r.episodes.forEach((e, k) => {
          expect(e.env).toBe(seen[k].env);
          expect(e.length).toBe(seen[k].length);
          expect(e.terminated).toBe(seen[k].terminated);
          for (let j = 0; j < R; j++) expect(e.returns[j]).toBeCloseTo(seen[k].returns[j], 9);
        });
        episodes.push(...seen);
        expect(r.timing.envS).toBeGreaterThan(0);
      }
      // the 33-step limit ended episodes inside the 80 steps (and Hopper's rule may end some earlier)
      expect(episodes.length).toBeGreaterThanOrEqual(N * 2);
      expect(col.totalSteps).toBe(2 * T * N);
    });
  }

  it('rejects a bad length', async () => {
    const vec = await make({ env: 'Hopper-v5' });
    expect(() => new RolloutCollector(vec, 0)).toThrow(SoupError);
  });
});

describe('evaluateEpisodes', () => {
  it('HalfCheetah: seeded and repeatable; distance = dt·Σv; Gymnasium return = Σv − 0.1·Σa² on clipped actions', async () => {
    const vec = await make({ env: 'HalfCheetah-v5', numEnvs: 4, maxEpisodeSteps: 60 });
    const a = evaluateEpisodes(vec, wave, { seed: 3 });
    const b = evaluateEpisodes(vec, wave, { seed: 3 });
    const c = evaluateEpisodes(vec, wave, { seed: 4 });
    expect(b).toEqual(a);
    expect(c.episodes[0].returns[0]).not.toBe(a.episodes[0].returns[0]);
    expect(a.episodes.map((e) => e.env)).toEqual([0, 1, 2, 3]);
    for (const e of a.episodes) {
      expect(e.length).toBe(60);
      expect(e.terminated).toBe(false);
      expect(e.distance).toBeCloseTo(e.returns[0] * vec.info.dt, 9);
      expect(e.scalarReturn).toBeCloseTo(e.returns[0] + 0.1 * e.returns[1], 9);
      // actions reach ±1.5: clipped to ±1, so Σa² ≤ 6 per step
      expect(-e.returns[1]).toBeLessThanOrEqual(6 * 60 + 1e-9);
      expect(-e.returns[1]).toBeGreaterThan(60);
    }
    expect(a.meanReturns[0]).toBeCloseTo(a.episodes.reduce((s, e) => s + e.returns[0], 0) / 4, 12);
  });

  it('Hopper: episodes end by termination with their own lengths', async () => {
    const vec = await make({ env: 'Hopper-v5', numEnvs: 3 });
    const res = evaluateEpisodes(vec, (obs, act) => act.fill(1), { seed: 0 });
    for (const e of res.episodes) {
      expect(e.terminated).toBe(true);
      expect(e.length).toBeLessThan(1000);
      // every step before the last earned the healthy bonus: returns[0] − Σv = (length − 1)
      expect(e.returns[0] - e.distance / vec.info.dt).toBeCloseTo(e.length - 1, 6);
    }
  });
});

describe('frames and filmstrips', () => {
  it('frame geometry: cheetah torso capsule spans x ∈ [-0.5, 0.5] at z = 0.7 in the rest pose', async () => {
    const vec = await make({ env: 'HalfCheetah-v5' });
    vec.setState(0, new Array(9).fill(0), new Array(9).fill(0));
    const f = vec.frame(0);
    expect(f.capsules.length).toBe(8); // 9 geoms minus the floor
    const torso = f.capsules[0];
    const ends = [
      [torso.ax, torso.az],
      [torso.bx, torso.bz],
    ].sort((p, q) => p[0] - q[0]);
    expect(ends.flat().concat(torso.r)).toEqual([-0.5, 0.7, 0.5, 0.7, 0.046].map((x) => expect.closeTo(x, 12)) as unknown as number[]);
    // moved root: rootx 2, rootz 0.1, pitched by 0.3 rad → the torso follows
    vec.setState(0, [2, 0.1, 0.3, 0, 0, 0, 0, 0, 0], new Array(9).fill(0));
    const g = vec.frame(0);
    expect(g.x).toBe(2);
    const t = g.capsules[0];
    expect((t.ax + t.bx) / 2).toBeCloseTo(2, 12);
    expect((t.az + t.bz) / 2).toBeCloseTo(0.8, 12);
    const [back, front] = [
      [t.ax, t.az],
      [t.bx, t.bz],
    ].sort((p, q) => p[0] - q[0]);
    // a positive rotation about +y turns +x towards −z: the nose goes down by 0.3 rad
    expect(Math.atan2(back[1] - front[1], front[0] - back[0])).toBeCloseTo(0.3, 12);
    expect(Math.hypot(front[0] - back[0], front[1] - back[1])).toBeCloseTo(1, 12);
  });

  it('the PNG puts the torso where the projection says, and the SVG has one stroke per capsule', async () => {
    const vec = await make({ env: 'HalfCheetah-v5' });
    const rec = recordEpisodeFrames(vec, wave, { seed: 1, every: 10, maxFrames: 4, maxSteps: 40 });
    expect(rec.frames.length).toBe(4);
    expect(rec.frames.map((f) => f.time)).toEqual([0, 0.5, 1, 1.5].map((x) => expect.closeTo(x, 12)) as unknown as number[]);
    vec.setState(0, new Array(9).fill(0), new Array(9).fill(0));
    const rest = vec.frame(0);
    const rows = [
      { label: 'moving', frames: rec.frames },
      { label: 'rest', frames: [rest], note: 'qpos = 0' },
    ];
    const svg = filmstripSvg(rows);
    expect(svg.match(/stroke-linecap="round"/g)?.length).toBe(8 * 5);
    const png = PNG.sync.read(filmstripPng(rows));
    // layout defaults: label column 130, panels 150 × 110, rows 128 apart, ground 16 px above the panel bottom
    expect(png.width).toBe(130 + 4 * 150);
    expect(png.height).toBe(2 * 128 + 4);
    const px = (x: number, y: number) => Array.from(png.data.subarray((y * png.width + x) * 4, (y * png.width + x) * 4 + 3));
    const cx = 130 + 146 / 2;
    const y0 = 128 + 2;
    const torsoY = Math.round(y0 + 94 - 0.7 * 55);
    expect(px(Math.round(cx), torsoY)).toEqual([0x2f, 0x3e, 0x4e]); // torso colour at its centre
    expect(px(Math.round(cx + 0.25 * 55), torsoY)).toEqual([0x2f, 0x3e, 0x4e]); // and a quarter metre either side
    expect(px(Math.round(cx - 0.25 * 55), torsoY)).toEqual([0x2f, 0x3e, 0x4e]);
    expect(px(Math.round(cx + 0.7 * 55), torsoY)).toEqual([0xf4, 0xf6, 0xf8]); // beyond the torso's end: sky
    expect(px(Math.round(cx), torsoY - 20)).toEqual([0xf4, 0xf6, 0xf8]); // sky above it
    expect(px(Math.round(cx), y0 + 100)).toEqual([0xdf, 0xe6, 0xd8]); // ground below
  });

  it('rejects empty input', () => {
    expect(() => filmstripSvg([])).toThrow(/at least one row/);
    expect(() => filmstripSvg([{ label: 'x', frames: [] }])).toThrow(SoupError);
  });
});
