// SPDX-License-Identifier: MIT
// Exact hypervolume. Every point is first turned into its box lengths y_k = s_k (p_k - ref_k) (s = +1
// for 'max', -1 for 'min'); a point contributes only when every y_k > 0, and the indicator is the volume
// of the union of the boxes [0, y]. 2-D: one sort and a sweep. 3-D: sweep down the third objective
// keeping the 2-D staircase in an ordered set of x-ranks (O(n log n), Beume et al. 2009's bound).
// d >= 4: WFG (While, Bradstreet & Barone 2012): sort by the last objective, sum exclusive
// contributions, each a (d-1)-dimensional hypervolume of a non-dominated limit set; 3-D base case.
import { RankSet } from './rankset.js';
import { rankBy, sortByKey, weaklyDominatedBy } from './sort.js';
import { checkPoints, checkVector, invalid, senseSigns, type Points, type SenseOption } from './validate.js';

export interface HypervolumeOptions {
  /** Reference point (required): the worst corner of the measured region, e.g. below every reward. */
  ref: ArrayLike<number>;
  /** 'max' (default, rewards), 'min', or one per objective. */
  sense?: SenseOption;
  /**
   * By default an empty set, or a set where no point strictly dominates `ref`, is an error (almost
   * always a wrong ref or sense). With allowZero those cases return 0.
   */
  allowZero?: boolean;
}

/** The standard (higher-is-better) hypervolume indicator of `points` with respect to `opts.ref`. */
export function hypervolume(points: Points, opts: HypervolumeOptions): number {
  if (opts === null || typeof opts !== 'object' || opts.ref === undefined) {
    throw invalid('hypervolume: opts.ref is required (the reference point, worse than every point you want to count)');
  }
  const empty = Array.isArray(points) && points.length === 0;
  // Only the shape of the set is checked here; boxLengths checks every value on its way.
  const d = checkPoints(empty || !Array.isArray(points) ? points : [points[0]], 'points', {
    allowEmpty: opts.allowZero === true,
    dim: empty ? opts.ref.length : undefined,
  });
  const ref = checkVector(opts.ref, 'ref', d);
  const s = senseSigns(opts.sense, d);
  const { flat, m } = boxLengths(points, ref, s, d);
  if (m === 0) {
    if (opts.allowZero || points.length === 0) return 0;
    throw invalid(noPointDominates(points, ref, s));
  }
  return hypervolumeOfLengths(flat, m, d);
}

/**
 * Flattened box lengths of the points that strictly dominate ref (row-major, m rows of d). Also checks
 * every value in the same pass (one walk over 10^6 point objects, not two); on any bad value it defers
 * to checkPoints for the precise message.
 */
export function boxLengths(points: Points, ref: ArrayLike<number>, s: Float64Array, d: number): { flat: Float64Array; m: number } {
  const flat = new Float64Array(points.length * d);
  let m = 0;
  for (let i = 0; i < points.length; i++) {
    const p = points[i];
    if (p === null || typeof p !== 'object' || p.length !== d) checkPoints(points);
    const o = m * d;
    let inside = true;
    for (let k = 0; k < d; k++) {
      const v = p[k];
      if (typeof v !== 'number' || v - v !== 0) checkPoints(points);
      const y = s[k] * (v - ref[k]);
      if (!(y > 0)) inside = false;
      flat[o + k] = y;
    }
    if (inside) m++;
  }
  return { flat, m };
}

function noPointDominates(points: Points, ref: ArrayLike<number>, s: Float64Array): string {
  const d = s.length;
  const better = (k: number) => (s[k] > 0 ? '>' : '<');
  // Name the point that comes closest: the fewest objectives on the wrong side of ref.
  let best = 0;
  let bestBad = d + 1;
  let bestK = 0;
  for (let i = 0; i < points.length; i++) {
    let bad = 0;
    let firstK = -1;
    for (let k = 0; k < d; k++) {
      if (!(s[k] * (points[i][k] - ref[k]) > 0)) {
        bad++;
        if (firstK < 0) firstK = k;
      }
    }
    if (bad < bestBad) {
      bestBad = bad;
      best = i;
      bestK = firstK;
    }
  }
  const senses = Array.from(s, (v) => (v > 0 ? 'max' : 'min')).join(',');
  return (
    `ref [${Array.from(ref).join(', ')}] is not strictly dominated by any point (sense ${senses}), so the hypervolume ` +
    `would be 0: e.g. points[${best}][${bestK}] = ${points[best][bestK]} is not ${better(bestK)} ref[${bestK}] = ${ref[bestK]}. ` +
    `Choose a ref worse than every point (e.g. the nadir minus 10% of the range), or pass allowZero`
  );
}

/** Hypervolume of the union of boxes [0, y_i] for m rows of d positive lengths. */
export function hypervolumeOfLengths(flat: Float64Array, m: number, d: number): number {
  if (m === 0) return 0;
  if (d === 1) {
    let mx = 0;
    for (let i = 0; i < m; i++) mx = Math.max(mx, flat[i]);
    return mx;
  }
  if (d === 2) return hv2d(flat, m);
  if (d === 3) return hv3d(flat, m);
  const rows: Float64Array[] = [];
  for (let i = 0; i < m; i++) rows.push(flat.subarray(i * d, i * d + d));
  return wfg(nonDominatedRows(rows, d), d);
}

function hv2d(flat: Float64Array, m: number): number {
  // Pre-filter in O(m) before sorting: bucket the points by x (a monotone map), and drop every point
  // whose y does not exceed the best y found in a bucket strictly to its right; such a point's box lies
  // inside another's, so the result is exact. Random sets keep ~|front| points; the sort then handles
  // whatever is left (all of it in the worst case, still O(m log m)).
  let xmin = Infinity;
  let xmax = -Infinity;
  for (let i = 0; i < m; i++) {
    const x = flat[2 * i];
    if (x < xmin) xmin = x;
    if (x > xmax) xmax = x;
  }
  // 2^16 buckets: their table stays in cache even when the points arrive in random x order.
  const nb = Math.min(m, 1 << 16);
  const scale = xmax > xmin ? (nb - 1) / (xmax - xmin) : 0;
  const bucketTop = new Float64Array(nb + 1).fill(-Infinity);
  for (let i = 0; i < m; i++) {
    const b = Math.floor((flat[2 * i] - xmin) * scale);
    const y = flat[2 * i + 1];
    if (y > bucketTop[b]) bucketTop[b] = y;
  }
  // bucketTop[b] becomes the best y in buckets > b.
  let run = -Infinity;
  for (let b = nb; b >= 0; b--) {
    const here = bucketTop[b];
    bucketTop[b] = run;
    if (here > run) run = here;
  }
  let c = 0;
  const keys = new Float64Array(m);
  const idx = new Int32Array(m);
  for (let i = 0; i < m; i++) {
    const x = flat[2 * i];
    if (flat[2 * i + 1] > bucketTop[Math.floor((x - xmin) * scale)]) {
      keys[c] = -x;
      idx[c++] = i;
    }
  }
  sortByKey(keys, idx, 0, c);
  // x descending: each point adds x * (the part of its height not yet covered).
  let area = 0;
  let top = 0;
  for (let j = 0; j < c; j++) {
    const y = flat[2 * idx[j] + 1];
    if (y > top) {
      area += -keys[j] * (y - top);
      top = y;
    }
  }
  return area;
}

function hv3d(flat: Float64Array, m: number): number {
  if (m === 1) return flat[0] * flat[1] * flat[2];
  // Ranks by x; the staircase holds ranks with x strictly increasing and y strictly decreasing.
  const { byRank: byX, rank } = rankBy(m, (i) => flat[3 * i]);
  const rx = new Float64Array(m);
  const ry = new Float64Array(m);
  for (let r = 0; r < m; r++) {
    rx[r] = flat[3 * byX[r]];
    ry[r] = flat[3 * byX[r] + 1];
  }
  const keys = new Float64Array(m);
  const byZ = new Int32Array(m);
  for (let i = 0; i < m; i++) {
    keys[i] = -flat[3 * i + 2];
    byZ[i] = i;
  }
  sortByKey(keys, byZ);

  const set = new RankSet(m);
  let area = 0;
  let vol = 0;
  for (let j = 0; j < m; j++) {
    const r = rank[byZ[j]];
    const a = rx[r];
    const b = ry[r];
    const pr = set.prev(r);
    const sc = set.next(r);
    // The staircase point with the smallest x >= a has the largest y among x >= a.
    const cand = pr >= 0 && rx[pr] === a ? pr : sc;
    if (!(cand >= 0 && ry[cand] >= b)) {
      // Remove what (a, b) dominates and add the area it uncovers over (xl, a].
      let upper = a;
      let hUpper = 0;
      if (sc >= 0) {
        if (rx[sc] === a) {
          hUpper = ry[sc];
          set.delete(sc);
        } else hUpper = ry[sc];
      }
      let old = 0;
      let q = pr;
      while (q >= 0 && ry[q] <= b) {
        old += (upper - rx[q]) * hUpper;
        upper = rx[q];
        hUpper = ry[q];
        const p2 = set.prev(q);
        set.delete(q);
        q = p2;
      }
      const xl = q >= 0 ? rx[q] : 0;
      old += (upper - xl) * hUpper;
      area += (a - xl) * b - old;
      set.add(r);
    }
    const zNext = j + 1 < m ? -keys[j + 1] : 0;
    vol += area * (-keys[j] - zNext);
  }
  return vol;
}

/** Lexicographically descending order: any point that weakly dominates p comes before p. */
function lexDesc(a: ArrayLike<number>, b: ArrayLike<number>, d: number): number {
  for (let k = 0; k < d; k++) if (a[k] !== b[k]) return b[k] - a[k];
  return 0;
}

/** Non-dominated rows (maximisation), duplicates kept once. */
function nonDominatedRows(rows: Float64Array[], d: number): Float64Array[] {
  rows.sort((a, b) => lexDesc(a, b, d));
  const kept: Float64Array[] = [];
  for (const p of rows) if (!weaklyDominatedBy(p, kept, d)) kept.push(p);
  return kept;
}

function wfg(rows: Float64Array[], d: number): number {
  const m = rows.length;
  if (m === 0) return 0;
  if (m === 1) {
    let v = 1;
    for (let k = 0; k < d; k++) v *= rows[0][k];
    return v;
  }
  if (d === 3 || d === 2) {
    const flat = new Float64Array(m * d);
    for (let i = 0; i < m; i++) flat.set(rows[i].subarray(0, d), i * d);
    return d === 3 ? hv3d(flat, m) : hv2d(flat, m);
  }
  const last = d - 1;
  rows.sort((a, b) => a[last] - b[last]);
  // Points after i have a last coordinate >= p's, so their limit against p shares p's last
  // coordinate: the exclusive volume of p is p_last times a (d-1)-dimensional one.
  let total = 0;
  for (let i = 0; i < m; i++) {
    const p = rows[i];
    let own = 1;
    for (let k = 0; k < last; k++) own *= p[k];
    const limit: Float64Array[] = [];
    let covered = false;
    for (let j = i + 1; j < m && !covered; j++) {
      const q = rows[j];
      const l = new Float64Array(last);
      let eq = true;
      for (let k = 0; k < last; k++) {
        const v = q[k] < p[k] ? q[k] : p[k];
        l[k] = v;
        if (v !== p[k]) eq = false;
      }
      if (eq) covered = true;
      limit.push(l);
    }
    if (covered) continue;
    const inner = limit.length === 0 ? 0 : wfg(last > 3 ? nonDominatedRows(limit, last) : limit, last);
    total += p[last] * (own - inner);
  }
  return total;
}

export interface PaperHypervolumeOptions {
  /** The "optimal point": at least as good as every point on every objective. */
  utopia: ArrayLike<number>;
  /** The worst corner of the integration box; points not strictly better on every objective add nothing. */
  lower: ArrayLike<number>;
  /** 'max' (default) or 'min' or one per objective. */
  sense?: SenseOption;
  /** Divide by the box volume so the result lies in [0, 1]. */
  normalize?: boolean;
}

/**
 * The paper's lower-is-better hypervolume (§3.1: "the area over the curve w.r.t. an optimal point"):
 * the volume of the box [lower, utopia] that the points do NOT dominate, i.e.
 * volume(box) - hypervolume(points, { ref: lower }). Fronts compared with the same box rank exactly
 * in reverse of the standard indicator with ref = lower. See docs/pareto.md for the box choice.
 */
export function paperHypervolume(points: Points, opts: PaperHypervolumeOptions): number {
  if (opts === null || typeof opts !== 'object' || opts.utopia === undefined || opts.lower === undefined) {
    throw invalid('paperHypervolume: opts.utopia and opts.lower are required (use paperBox(sets) for the usual choice)');
  }
  const d = checkPoints(points);
  const u = checkVector(opts.utopia, 'utopia', d);
  const L = checkVector(opts.lower, 'lower', d);
  const s = senseSigns(opts.sense, d);
  let box = 1;
  for (let k = 0; k < d; k++) {
    const len = s[k] * (u[k] - L[k]);
    if (!(len > 0)) throw invalid(`utopia[${k}] = ${u[k]} must be strictly better than lower[${k}] = ${L[k]}`);
    box *= len;
  }
  for (let i = 0; i < points.length; i++) {
    for (let k = 0; k < d; k++) {
      if (s[k] * (points[i][k] - u[k]) > 0) {
        throw invalid(`points[${i}][${k}] = ${points[i][k]} is better than utopia[${k}] = ${u[k]}; the utopia point must be at least as good as every point`);
      }
    }
  }
  const { flat, m } = boxLengths(points, L, s, d);
  const v = box - hypervolumeOfLengths(flat, m, d);
  // Rounding can leave -1e-17 when the points fill the box.
  const out = Math.max(0, v);
  return opts.normalize ? out / box : out;
}

/**
 * The box used for comparing several fronts with paperHypervolume: utopia = the best value of each
 * objective over all points of all sets, lower = the worst.
 */
export function paperBox(sets: ReadonlyArray<Points>, opts: { sense?: SenseOption } = {}): { utopia: number[]; lower: number[] } {
  if (!Array.isArray(sets) || sets.length === 0) throw invalid('paperBox: sets is empty; pass at least one point set');
  const d = checkPoints(sets[0], 'sets[0]');
  const s = senseSigns(opts.sense, d);
  const utopia = new Array<number>(d).fill(NaN);
  const lower = new Array<number>(d).fill(NaN);
  sets.forEach((set, j) => {
    checkPoints(set, `sets[${j}]`, { dim: d });
    for (const p of set) {
      for (let k = 0; k < d; k++) {
        const v = p[k];
        if (Number.isNaN(utopia[k]) || s[k] * (v - utopia[k]) > 0) utopia[k] = v;
        if (Number.isNaN(lower[k]) || s[k] * (v - lower[k]) < 0) lower[k] = v;
      }
    }
  });
  for (let k = 0; k < d; k++) {
    if (utopia[k] === lower[k]) {
      throw invalid(`paperBox: every point has the same value ${utopia[k]} on objective ${k}, so the box is flat; pass utopia and lower yourself`);
    }
  }
  return { utopia, lower };
}

/**
 * A conventional reference point: the nadir (worst value of each objective over the points) moved
 * `margin` (default 0.1) of the objective's range further towards worse. Every point with no
 * objective at the nadir strictly dominates it.
 */
export function nadirRef(points: Points, opts: { sense?: SenseOption; margin?: number } = {}): number[] {
  const d = checkPoints(points);
  const s = senseSigns(opts.sense, d);
  const margin = opts.margin ?? 0.1;
  if (!(margin >= 0) || !Number.isFinite(margin)) throw invalid(`margin is ${margin}; expected a finite number >= 0`);
  const out: number[] = [];
  for (let k = 0; k < d; k++) {
    let worst = points[0][k];
    let best = points[0][k];
    for (const p of points) {
      if (s[k] * (p[k] - worst) < 0) worst = p[k];
      if (s[k] * (p[k] - best) > 0) best = p[k];
    }
    const range = Math.abs(best - worst) || Math.abs(worst) || 1;
    out.push(worst - s[k] * margin * range);
  }
  return out;
}
