// SPDX-License-Identifier: MIT
// Pareto dominance and the non-dominated subset.
import { RankSet } from './rankset.js';
import { rankBy, sortByKey, weaklyDominatedBy } from './sort.js';
import { checkPoints, senseSigns, type Points, type SenseOption } from './validate.js';

export interface ParetoOptions {
  /** 'max' (default, rewards), 'min', or one per objective. */
  sense?: SenseOption;
}

export interface ParetoFront<P extends ArrayLike<number> = number[]> {
  /** Indices into the input of the non-dominated points, ascending; of equal points, the first only. */
  indices: number[];
  /** The non-dominated points themselves (the input arrays, not copies), in `indices` order. */
  points: P[];
}

/**
 * True when a Pareto-dominates b: at least as good on every objective and strictly better on one
 * (morl-baselines' definition; 'max' by default).
 */
export function dominates(a: ArrayLike<number>, b: ArrayLike<number>, opts: ParetoOptions = {}): boolean {
  const d = checkPoints([a, b], '[a, b]');
  const s = senseSigns(opts.sense, d);
  let strict = false;
  for (let k = 0; k < d; k++) {
    const diff = s[k] * (a[k] - b[k]);
    if (diff < 0) return false;
    if (diff > 0) strict = true;
  }
  return strict;
}

/**
 * The non-dominated subset of `points`. Points equal on every objective are kept once (the first).
 * 2-D and 3-D: O(n log n) sweeps; d >= 4: lexicographic sort then a scan against the front found so
 * far, O(n log n + n * |front| * d).
 */
export function paretoFront<P extends ArrayLike<number>>(points: ReadonlyArray<P>, opts: ParetoOptions = {}): ParetoFront<P> {
  const d = checkPoints(points);
  const s = senseSigns(opts.sense, d);
  const n = points.length;
  const keep: number[] = [];
  if (d === 2) {
    // Sort by x descending; points with equal x are grouped below, so ties need no secondary key.
    const keys = new Float64Array(n);
    const idx = new Int32Array(n);
    for (let i = 0; i < n; i++) {
      keys[i] = -s[0] * points[i][0];
      idx[i] = i;
    }
    sortByKey(keys, idx);
    let top = -Infinity;
    let j = 0;
    while (j < n) {
      // One group of equal x: only its best y (first index among equals) can be on the front.
      let g = j;
      let bestY = -Infinity;
      let bestI = -1;
      while (g < n && keys[g] === keys[j]) {
        const i = idx[g];
        const y = s[1] * points[i][1];
        if (y > bestY || (y === bestY && i < bestI)) {
          bestY = y;
          bestI = i;
        }
        g++;
      }
      if (bestY > top) {
        keep.push(bestI);
        top = bestY;
      }
      j = g;
    }
  } else if (d === 3) {
    for (const i of front3d(points, s)) keep.push(i);
  } else {
    const order = lexOrder(points, s, d);
    // Anything that weakly dominates p sorts before p, so the front only grows.
    const front: number[] = [];
    const frontPoints: ArrayLike<number>[] = [];
    for (const i of order) {
      if (weaklyDominatedBy(points[i], frontPoints, d, s)) continue;
      front.push(i);
      frontPoints.push(points[i]);
    }
    for (const i of front) keep.push(i);
  }
  keep.sort((a, b) => a - b);
  return { indices: keep, points: keep.map((i) => points[i]) };
}

/** Indices sorted lexicographically best-first (ties by index): a weak dominator always comes first. */
function lexOrder(points: Points, s: Float64Array, d: number): number[] {
  const order = Array.from({ length: points.length }, (_, i) => i);
  order.sort((a, b) => {
    const p = points[a];
    const q = points[b];
    for (let k = 0; k < d; k++) {
      const diff = s[k] * (q[k] - p[k]);
      if (diff !== 0) return diff;
    }
    return a - b;
  });
  return order;
}

/**
 * 3-D: visit points best-first in (z, x, y); p is weakly dominated iff some earlier point is at least as
 * good in x and y, which a 2-D staircase of the earlier points answers in O(log n).
 */
function front3d(points: Points, s: Float64Array): number[] {
  const n = points.length;
  const order = lexOrder(
    points.map((p) => [s[2] * p[2], s[0] * p[0], s[1] * p[1]]),
    new Float64Array([1, 1, 1]),
    3,
  );
  // Ranks by x (ascending) so the staircase is an ordered set of ranks.
  const { sorted: rx, byRank: byX, rank } = rankBy(n, (i) => s[0] * points[i][0]);
  const ry = new Float64Array(n);
  for (let r = 0; r < n; r++) ry[r] = s[1] * points[byX[r]][1];
  const set = new RankSet(n);
  const out: number[] = [];
  for (const i of order) {
    const r = rank[i];
    const a = rx[r];
    const b = ry[r];
    const pr = set.prev(r);
    const sc = set.next(r);
    const cand = pr >= 0 && rx[pr] === a ? pr : sc;
    if (cand >= 0 && ry[cand] >= b) continue;
    out.push(i);
    // Keep the staircase minimal: drop earlier points that (a, b) covers in x and y.
    if (sc >= 0 && rx[sc] === a) set.delete(sc);
    let q = pr;
    while (q >= 0 && ry[q] <= b) {
      const p2 = set.prev(q);
      set.delete(q);
      q = p2;
    }
    set.add(r);
  }
  return out;
}
