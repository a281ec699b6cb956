// SPDX-License-Identifier: MIT
// Hypervolume and Pareto fronts against independent brute-force references written here (inclusion–
// exclusion, an exact grid decomposition, a z-slicing reference), in 1-6 dimensions and both senses.
import { mulberry32 } from '../src/util/random.js';
import { describe, expect, it } from 'vitest';
import { hypervolume, paretoFront, paperHypervolume, paperBox, nadirRef, dominates, SoupError, type Sense } from '../src/index.js';
import { staircaseArea } from './helpers/reference.js';

/** Box length of p over ref along k, in the raw space (0 when p is not strictly better). */
function len(p: number[], ref: number[], sense: Sense[], k: number, pk = p[k]): number {
  const l = sense[k] === 'max' ? pk - ref[k] : ref[k] - pk;
  return l > 0 ? l : 0;
}

/** Inclusion–exclusion over all non-empty subsets: the intersection of boxes is the box at their worst corner. */
function hvInclusionExclusion(points: number[][], ref: number[], sense: Sense[]): number {
  const n = points.length;
  const d = ref.length;
  let total = 0;
  for (let mask = 1; mask < 1 << n; mask++) {
    let vol = 1;
    let bits = 0;
    for (let k = 0; k < d; k++) {
      let worst = sense[k] === 'max' ? Infinity : -Infinity;
      for (let i = 0; i < n; i++) {
        if (!(mask & (1 << i))) continue;
        if (k === 0) bits++;
        worst = sense[k] === 'max' ? Math.min(worst, points[i][k]) : Math.max(worst, points[i][k]);
      }
      vol *= len([], ref, sense, k, worst);
    }
    total += (bits % 2 === 1 ? 1 : -1) * vol;
  }
  return total;
}

/** Exact grid decomposition: every cell between consecutive coordinates is wholly in or out of the union. */
function hvGrid(points: number[][], ref: number[], sense: Sense[]): number {
  const d = ref.length;
  const live = points.filter((p) => p.every((_, k) => len(p, ref, sense, k) > 0));
  const cuts = ref.map((r, k) => [...new Set([r, ...live.map((p) => p[k])])].sort((a, b) => a - b));
  const idx = new Array<number>(d).fill(0);
  let total = 0;
  for (;;) {
    let vol = 1;
    const mid: number[] = [];
    for (let k = 0; k < d; k++) {
      vol *= cuts[k][idx[k] + 1] - cuts[k][idx[k]];
      mid.push((cuts[k][idx[k] + 1] + cuts[k][idx[k]]) / 2);
    }
    const covered = live.some((p) => p.every((v, k) => (sense[k] === 'max' ? mid[k] > ref[k] && mid[k] < v : mid[k] < ref[k] && mid[k] > v)));
    if (covered) total += vol;
    let k = 0;
    while (k < d && ++idx[k] >= cuts[k].length - 1) idx[k++] = 0;
    if (k === d) break;
    if (cuts.some((c) => c.length < 2)) break;
  }
  return total;
}

/** O(n^2 log n) 3-D reference: integrate the 2-D union area between consecutive z levels. */
function hvSlices3(points: number[][], ref: number[]): number {
  const live = points.filter((p) => p.every((v, k) => v > ref[k]));
  const zs = [...new Set(live.map((p) => p[2]))].sort((a, b) => b - a);
  let vol = 0;
  for (let j = 0; j < zs.length; j++) {
    const area = staircaseArea(
      live.filter((p) => p[2] >= zs[j]),
      ref,
    );
    vol += area * (zs[j] - (j + 1 < zs.length ? zs[j + 1] : ref[2]));
  }
  return vol;
}

function randomSet(rand: () => number, n: number, d: number, opts: { ties?: boolean; sphere?: boolean } = {}): number[][] {
  return Array.from({ length: n }, () => {
    if (opts.ties) return Array.from({ length: d }, () => Math.floor(rand() * 4) - 1.5);
    if (opts.sphere) {
      // Mostly mutually non-dominated: points near the positive unit sphere, scaled and shifted.
      const v = Array.from({ length: d }, () => rand() + 1e-3);
      const norm = Math.hypot(...v);
      return v.map((x) => (3 * x) / norm - 1 + 0.05 * rand());
    }
    return Array.from({ length: d }, () => 4 * rand() - 2);
  });
}

function relClose(a: number, b: number, tol = 1e-12): void {
  expect(Math.abs(a - b)).toBeLessThanOrEqual(tol * Math.max(1, Math.abs(b)));
}

const SIZES: Record<number, { ie: number; grid: number }> = {
  1: { ie: 10, grid: 30 },
  2: { ie: 12, grid: 60 },
  3: { ie: 12, grid: 25 },
  4: { ie: 11, grid: 14 },
  5: { ie: 10, grid: 8 },
  6: { ie: 9, grid: 6 },
};

describe('hypervolume against brute force', () => {
  for (let d = 1; d <= 6; d++) {
    for (const mode of ['max', 'min', 'mixed'] as const) {
      it(`d=${d}, sense ${mode}: inclusion–exclusion and grid decomposition`, () => {
        const rand = mulberry32(1000 * d + mode.length);
        const sense: Sense[] = Array.from({ length: d }, (_, k) => (mode === 'mixed' ? (k % 2 ? 'min' : 'max') : mode));
        const ref = sense.map((s) => (s === 'max' ? -1.7 : 1.7));
        for (let trial = 0; trial < 6; trial++) {
          const variant = trial % 3 === 0 ? { ties: true } : trial % 3 === 1 ? { sphere: true } : {};
          let pts = randomSet(rand, SIZES[d].ie, d, variant);
          // The sphere sets live in max orientation; mirror minimised objectives around 0.
          pts = pts.map((p) => p.map((v, k) => (sense[k] === 'min' ? -v : v)));
          const opts = { ref, sense: mode === 'mixed' ? sense : (mode as Sense), allowZero: true };
          const hv = hypervolume(pts, opts);
          relClose(hv, hvInclusionExclusion(pts, ref, sense), 1e-9);
          const big = randomSet(rand, SIZES[d].grid, d, variant).map((p) => p.map((v, k) => (sense[k] === 'min' ? -v : v)));
          relClose(hypervolume(big, opts), hvGrid(big, ref, sense), 1e-10);
        }
      });
    }
  }

  it('3-D sweep agrees with a z-slicing reference on 400 points (random, tied, near-sphere)', () => {
    const rand = mulberry32(7);
    for (const variant of [{}, { ties: true }, { sphere: true }]) {
      const pts = randomSet(rand, 400, 3, variant);
      const ref = [-1.9, -1.9, -1.9];
      relClose(hypervolume(pts, { ref }), hvSlices3(pts, ref));
    }
  });

  it('3-D: points on a plane (the worst case for the staircase) against z-slicing', () => {
    const rand = mulberry32(8);
    const pts = Array.from({ length: 600 }, () => {
      const a = rand();
      const b = rand() * (1 - a);
      return [a, b, 1 - a - b];
    });
    relClose(hypervolume(pts, { ref: [0, 0, 0] }), hvSlices3(pts, [0, 0, 0]));
  });
});

describe('hypervolume closed forms', () => {
  it('one point: the product of its distances to ref, in both senses', () => {
    expect(hypervolume([[3, 5, 7]], { ref: [1, 2, 3] })).toBe(2 * 3 * 4);
    expect(hypervolume([[1, 2, 3]], { ref: [3, 5, 7], sense: 'min' })).toBe(2 * 3 * 4);
    expect(hypervolume([[1, 5]], { ref: [3, 2], sense: ['min', 'max'] })).toBe(2 * 3);
  });

  it('2-D staircase (i, n + 1 - i): n(n + 1)/2', () => {
    for (const n of [1, 2, 7, 1000]) {
      const pts = Array.from({ length: n }, (_, i) => [i + 1, n - i]);
      expect(hypervolume(pts, { ref: [0, 0] })).toBe((n * (n + 1)) / 2);
    }
  });

  it('2-D linear front (i/n, 1 - i/n): (n - 1)/(2n)', () => {
    for (const n of [2, 10, 999]) {
      const pts = Array.from({ length: n + 1 }, (_, i) => [i / n, 1 - i / n]);
      relClose(hypervolume(pts, { ref: [0, 0] }), (n - 1) / (2 * n));
    }
  });

  it('d points 1 + e_k: union volume 1 + d, in 2-6 dimensions', () => {
    for (let d = 2; d <= 6; d++) {
      const pts = Array.from({ length: d }, (_, k) => Array.from({ length: d }, (_, j) => (j === k ? 2 : 1)));
      relClose(hypervolume(pts, { ref: new Array(d).fill(0) }), 1 + d);
    }
  });

  it('points that do not strictly dominate ref contribute nothing (on the boundary or outside)', () => {
    const base = [[2, 2, 2]];
    expect(hypervolume([...base, [5, 0, 5], [5, 5, -1], [-0.5, 9, 9]], { ref: [0, 0, 0] })).toBe(8);
  });
});

describe('hypervolume invariances', () => {
  for (const d of [2, 3, 4, 5]) {
    it(`d=${d}: permutation, dominated points and duplicates leave it unchanged`, () => {
      const rand = mulberry32(99 + d);
      const pts = randomSet(rand, d >= 4 ? 40 : 300, d, { sphere: true });
      const ref = new Array(d).fill(-1.5);
      const hv = hypervolume(pts, { ref });
      const shuffled = [...pts];
      for (let i = shuffled.length - 1; i > 0; i--) {
        const j = Math.floor(rand() * (i + 1));
        [shuffled[i], shuffled[j]] = [shuffled[j], shuffled[i]];
      }
      relClose(hypervolume(shuffled, { ref }), hv);
      const dominated = pts.slice(0, 50).map((p) => p.map((v) => v - 0.3 * rand()));
      const dups = pts.slice(0, 20).map((p) => [...p]);
      relClose(hypervolume([...dominated, ...pts, ...dups], { ref }), hv);
      // Mirrored into 'min' gives the same volume.
      relClose(
        hypervolume(
          pts.map((p) => p.map((v) => -v)),
          { ref: ref.map((v) => -v), sense: 'min' },
        ),
        hv,
      );
    });
  }
});

describe('hypervolume errors name the point or field', () => {
  const err = (f: () => unknown): SoupError => {
    try {
      f();
    } catch (e) {
      expect(e).toBeInstanceOf(SoupError);
      return e as SoupError;
    }
    throw new Error('expected a SoupError');
  };
  it('NaN, Infinity, mismatched dimensions, empty set, missing ref, ref nothing dominates', () => {
    expect(
      err(() =>
        hypervolume(
          [
            [1, 2],
            [3, NaN],
          ],
          { ref: [0, 0] },
        ),
      ).message,
    ).toMatch(/points\[1\]\[1\] is NaN/);
    expect(
      err(() =>
        hypervolume(
          [
            [1, 2],
            [Infinity, 1],
          ],
          { ref: [0, 0] },
        ),
      ).message,
    ).toMatch(/points\[1\]\[0\] is Infinity/);
    expect(
      err(() =>
        hypervolume(
          [
            [1, 2],
            [1, 2, 3],
          ],
          { ref: [0, 0] },
        ),
      ).message,
    ).toMatch(/points\[1\] has 3 objectives but points\[0\] has 2/);
    expect(err(() => hypervolume([[1, 2]], { ref: [0, 0, 0] })).message).toMatch(/ref has 3 entries but 2/);
    expect(err(() => hypervolume([[1, 2]], { ref: [0, -Infinity] })).message).toMatch(/ref\[1\] is -Infinity/);
    expect(err(() => hypervolume([], { ref: [0, 0] })).message).toMatch(/points is empty/);
    expect(err(() => hypervolume([[1, 2]], {} as never)).message).toMatch(/ref is required/);
    const e = err(() =>
      hypervolume(
        [
          [1, 2],
          [3, 0.5],
        ],
        { ref: [2, 2] },
      ),
    );
    expect(e.code).toBe('ERR_SOUP_INVALID_ARG');
    expect(e.message).toMatch(/ref \[2, 2\] is not strictly dominated by any point/);
    expect(e.message).toMatch(/points\[\d\]\[\d\]/);
    expect(hypervolume([[1, 2]], { ref: [2, 2], allowZero: true })).toBe(0);
    expect(hypervolume([], { ref: [2, 2], allowZero: true })).toBe(0);
    expect(err(() => hypervolume([[1, 2]], { ref: [0, 0], sense: ['max'] })).message).toMatch(/sense has 1 entries/);
    expect(err(() => hypervolume([[1, 2]], { ref: [0, 0], sense: 'up' as never })).message).toMatch(/sense is "up"/);
  });
});

/** O(n^2 d) reference front: first occurrences of the points nothing dominates. */
function bruteFront(points: number[][], sense: Sense[]): number[] {
  const better = (a: number[], b: number[]) => {
    let strict = false;
    for (let k = 0; k < a.length; k++) {
      const diff = sense[k] === 'max' ? a[k] - b[k] : b[k] - a[k];
      if (diff < 0) return false;
      if (diff > 0) strict = true;
    }
    return strict;
  };
  const out: number[] = [];
  points.forEach((p, i) => {
    if (points.some((q) => better(q, p))) return;
    if (points.slice(0, i).some((q) => q.every((v, k) => v === p[k]))) return;
    out.push(i);
  });
  return out;
}

describe('paretoFront', () => {
  for (const d of [1, 2, 3, 4, 6]) {
    for (const mode of ['max', 'min', 'mixed'] as const) {
      it(`d=${d}, ${mode}: equals the O(n^2) reference, duplicates once, with ties`, () => {
        const rand = mulberry32(d * 31 + mode.length);
        const sense: Sense[] = Array.from({ length: d }, (_, k) => (mode === 'mixed' ? (k % 2 ? 'min' : 'max') : mode));
        for (const variant of [{ ties: true }, { sphere: true }, {}]) {
          const pts = randomSet(rand, 150, d, variant);
          const f = paretoFront(pts, { sense: mode === 'mixed' ? sense : (mode as Sense) });
          expect(f.indices).toEqual(bruteFront(pts, sense));
          expect(f.points).toEqual(f.indices.map((i) => pts[i]));
        }
      });
    }
  }

  it('3-D sweep on 3000 points on a plane plus copies and dominated points', () => {
    const rand = mulberry32(77);
    const plane = Array.from({ length: 3000 }, () => {
      const a = Math.round(rand() * 40) / 40;
      const b = Math.round(rand() * (1 - a) * 40) / 40;
      return [a, b, 1 - a - b];
    });
    const pts = [...plane, ...plane.slice(0, 200).map((p) => p.map((v) => v - 0.01)), ...plane.slice(0, 100)];
    for (const sense of ['max', 'min'] as const) {
      const f = paretoFront(pts, { sense });
      expect(f.indices).toEqual(bruteFront(pts, [sense, sense, sense]));
    }
  });

  it('keeps one of several equal points (the first), drops weakly dominated ones', () => {
    const f = paretoFront([
      [0, 0],
      [1, 2],
      [2, 1],
      [1, 2],
      [1, 1],
      [2, 1],
      [2, 0.5],
    ]);
    expect(f.indices).toEqual([1, 2]);
  });

  it('dominates() follows a ≻ b iff all(a ≥ b) and any(a > b)', () => {
    expect(dominates([1, 2], [1, 1])).toBe(true);
    expect(dominates([1, 1], [1, 1])).toBe(false);
    expect(dominates([1, 1], [1, 2], { sense: 'min' })).toBe(true);
    expect(dominates([2, 0], [1, 1])).toBe(false);
  });

  it('rejects bad points with the index', () => {
    expect(() =>
      paretoFront([
        [1, 2],
        [null as unknown as number, 1],
      ]),
    ).toThrow(/points\[1\]\[0\] is null/);
    expect(() => paretoFront([])).toThrow(/points is empty/);
  });
});

describe('paperHypervolume (lower is better)', () => {
  it('is box volume minus the standard hypervolume with ref = lower', () => {
    expect(paperHypervolume([[1, 1]], { utopia: [2, 2], lower: [0, 0] })).toBe(3);
    expect(paperHypervolume([[1, 1]], { utopia: [2, 2], lower: [0, 0], normalize: true })).toBe(0.75);
    expect(paperHypervolume([[2, 2]], { utopia: [2, 2], lower: [0, 0] })).toBe(0);
    // Minimisation mirrors it.
    expect(paperHypervolume([[-1, -1]], { utopia: [-2, -2], lower: [0, 0], sense: 'min' })).toBe(3);
  });

  it('ranks fronts in reverse of the standard indicator with the same box', () => {
    const rand = mulberry32(5);
    const a = randomSet(rand, 20, 2, { sphere: true });
    const b = randomSet(rand, 20, 2, { sphere: true }).map((p) => p.map((v) => v - 0.05));
    const box = paperBox([a, b]);
    const ha = hypervolume(a, { ref: box.lower, allowZero: true });
    const hb = hypervolume(b, { ref: box.lower, allowZero: true });
    const pa = paperHypervolume(a, box);
    const pb = paperHypervolume(b, box);
    expect(Math.sign(pa - pb)).toBe(-Math.sign(ha - hb));
    relClose(pa + ha, pb + hb);
  });

  it('rejects a utopia that a point beats, and a flat box', () => {
    expect(() => paperHypervolume([[1, 3]], { utopia: [2, 2], lower: [0, 0] })).toThrow(/points\[0\]\[1\] = 3 is better than utopia\[1\]/);
    expect(() => paperHypervolume([[1, 1]], { utopia: [2, 0], lower: [0, 0] })).toThrow(/utopia\[1\] = 0 must be strictly better/);
  });

  it('nadirRef is strictly dominated by every point off the nadir', () => {
    const pts = [
      [1, 5],
      [3, 2],
      [2, 4],
    ];
    expect(nadirRef(pts)).toEqual([1 - 0.2, 2 - 0.3]);
    expect(nadirRef(pts, { sense: 'min' })).toEqual([3 + 0.2, 5 + 0.3]);
  });
});
