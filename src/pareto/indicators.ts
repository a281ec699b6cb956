// SPDX-License-Identifier: MIT
// Multi-objective quality indicators with morl-baselines' definitions
// (LucasAlegre/morl-baselines: morl_baselines/common/performance_indicators.py). All assume
// maximisation of linear utilities u(w, p) = w . p; pass `sense` to negate minimised objectives first.
import { paretoFront } from './front.js';
import { simplexGrid } from './lambda.js';
import { checkPoints, senseSigns, type Points, type SenseOption } from './validate.js';

export interface IndicatorOptions {
  sense?: SenseOption;
}

export interface UtilityOptions extends IndicatorOptions {
  /**
   * Weight vectors (each of the points' dimension). Default: the simplex lattice with the fewest steps
   * giving at least 100 weights (morl-baselines uses 100 "equally spaced" pymoo energy directions;
   * a lattice is deterministic and needs no optimiser).
   */
  weights?: ReadonlyArray<ArrayLike<number>>;
}

/** The default weight set: simplexGrid(d, steps) with the smallest steps giving >= 100 vectors. */
export function defaultUtilityWeights(d: number): number[][] {
  if (d === 1) return [[1]];
  let steps = 1;
  // Count of lattice points C(steps + d - 1, d - 1).
  const count = (st: number) => {
    let c = 1;
    for (let j = 1; j < d; j++) c = (c * (st + j)) / j;
    return Math.round(c);
  };
  while (count(steps) < 100) steps++;
  return simplexGrid(d, steps);
}

function signed(points: Points, what: string, sense: SenseOption | undefined, dim?: number): { rows: Float64Array[]; d: number } {
  const d = checkPoints(points, what, { dim });
  const s = senseSigns(sense, d);
  const rows = points.map((p) => {
    const r = new Float64Array(d);
    for (let k = 0; k < d; k++) r[k] = s[k] * p[k];
    return r;
  });
  return { rows, d };
}

function weightSet(weights: ReadonlyArray<ArrayLike<number>> | undefined, d: number): ArrayLike<number>[] {
  if (weights === undefined) return defaultUtilityWeights(d);
  checkPoints(weights, 'weights', { dim: d });
  return weights as ArrayLike<number>[];
}

function bestUtility(rows: Float64Array[], w: ArrayLike<number>, d: number): number {
  let best = -Infinity;
  for (const r of rows) {
    let u = 0;
    for (let k = 0; k < d; k++) u += w[k] * r[k];
    if (u > best) best = u;
  }
  return best;
}

/** Expected utility (EUM, Zintgraf et al. 2015): the mean over weights w of max_p w . p. Higher is better. */
export function expectedUtility(points: Points, opts: UtilityOptions = {}): number {
  const { rows, d } = signed(points, 'points', opts.sense);
  const ws = weightSet(opts.weights, d);
  let sum = 0;
  for (const w of ws) sum += bestUtility(rows, w, d);
  return sum / ws.length;
}

/**
 * Maximum utility loss: max over weights of (best utility in `reference` - best utility in `points`).
 * Lower is better; 0 when the points are as good as the reference for every weight.
 */
export function maximumUtilityLoss(points: Points, reference: Points, opts: UtilityOptions = {}): number {
  const a = signed(points, 'points', opts.sense);
  const b = signed(reference, 'reference', opts.sense, a.d);
  const ws = weightSet(opts.weights, a.d);
  let worst = -Infinity;
  for (const w of ws) worst = Math.max(worst, bestUtility(b.rows, w, a.d) - bestUtility(a.rows, w, a.d));
  return worst;
}

/**
 * Inverted generational distance as pymoo computes it (and morl-baselines calls it): the mean, over
 * the points of the known front, of the Euclidean distance to the nearest point of `estimate`. Lower is
 * better. (morl-baselines' docstring describes the reverse direction; the code does this.)
 */
export function igd(knownFront: Points, estimate: Points): number {
  const d = checkPoints(knownFront, 'knownFront');
  checkPoints(estimate, 'estimate', { dim: d });
  let sum = 0;
  for (const f of knownFront) {
    let best = Infinity;
    for (const e of estimate) {
      let s2 = 0;
      for (let k = 0; k < d; k++) s2 += (f[k] - e[k]) ** 2;
      if (s2 < best) best = s2;
    }
    sum += Math.sqrt(best);
  }
  return sum / knownFront.length;
}

/**
 * Sparsity (PGMORL, as in morl-baselines): for each objective, sort the values and sum the squared gaps
 * between neighbours; the total over objectives divided by (n - 1). 0 for fewer than 2 points, which is
 * why it misleads when comparing algorithms (one point looks "perfectly dense"). Pass a front: the
 * points are used as given (no filtering), like morl-baselines.
 */
export function sparsity(front: Points): number {
  const d = checkPoints(front, 'front', { allowEmpty: true });
  const n = front.length;
  if (n < 2) return 0;
  let total = 0;
  const col = new Float64Array(n);
  for (let k = 0; k < d; k++) {
    for (let i = 0; i < n; i++) col[i] = front[i][k];
    col.sort();
    for (let i = 1; i < n; i++) total += (col[i] - col[i - 1]) ** 2;
  }
  return total / (n - 1);
}

/**
 * Cardinality: the number of distinct non-dominated points. morl-baselines returns len(front) of
 * whatever it is given and filters dominated points before logging; this filters (and drops
 * duplicates) itself, so it is the same number on a filtered front.
 */
export function cardinality(points: Points, opts: IndicatorOptions = {}): number {
  if (Array.isArray(points) && points.length === 0) return 0;
  return paretoFront(points, opts).indices.length;
}
