// SPDX-License-Identifier: MIT
// Argument checks shared by the Pareto functions: every failure names the point and objective
// ("points[3][1] is NaN"), so a user can find the bad row in their results.
import { SoupError } from '../errors.js';

/** Direction of one objective: rewards are maximised ('max', the default); costs are minimised. */
export type Sense = 'max' | 'min';
/** One sense for every objective, or one per objective. */
export type SenseOption = Sense | readonly Sense[];
/** A set of objective vectors: `points[i][k]` is objective k of point i. */
export type Points = ReadonlyArray<ArrayLike<number>>;

export function invalid(message: string): SoupError {
  return new SoupError('ERR_SOUP_INVALID_ARG', message);
}

export function describeNumber(v: unknown): string {
  if (typeof v === 'number') return Number.isNaN(v) ? 'NaN' : String(v);
  if (v === undefined) return 'missing';
  if (v === null) return 'null';
  return `${typeof v} ${JSON.stringify(v)}`;
}

/** Checks a finite number; `what` is the field path used in the message. */
export function checkFinite(v: unknown, what: string): number {
  if (typeof v !== 'number' || !Number.isFinite(v)) {
    throw invalid(`${what} is ${describeNumber(v)}; expected a finite number`);
  }
  return v;
}

/** Checks one vector of finite numbers, of length `dim` when given. */
export function checkVector(v: unknown, what: string, dim?: number): ArrayLike<number> {
  if (v === null || typeof v !== 'object' || typeof (v as ArrayLike<number>).length !== 'number') {
    throw invalid(`${what} is ${describeNumber(v)}; expected an array of numbers`);
  }
  const a = v as ArrayLike<number>;
  if (dim !== undefined && a.length !== dim) {
    throw invalid(`${what} has ${a.length} entries but ${dim} were expected`);
  }
  for (let k = 0; k < a.length; k++) checkFinite(a[k], `${what}[${k}]`);
  return a;
}

/**
 * Checks a point set: non-empty (unless allowEmpty), every point an array of finite numbers, all of one
 * dimension (>= 1). Returns that dimension (0 for an allowed empty set).
 */
export function checkPoints(points: unknown, what = 'points', opts: { allowEmpty?: boolean; dim?: number } = {}): number {
  if (!Array.isArray(points)) throw invalid(`${what} is ${describeNumber(points)}; expected an array of points`);
  if (points.length === 0) {
    if (opts.allowEmpty) return opts.dim ?? 0;
    throw invalid(`${what} is empty; at least one point is needed`);
  }
  const first = points[0] as unknown;
  if (first === null || typeof first !== 'object' || typeof (first as ArrayLike<number>).length !== 'number') {
    throw invalid(`${what}[0] is ${describeNumber(first)}; expected an array of numbers`);
  }
  const dim = opts.dim ?? (first as ArrayLike<number>).length;
  if (dim < 1) throw invalid(`${what}[0] has no objectives`);
  for (let i = 0; i < points.length; i++) {
    const p = points[i] as ArrayLike<number>;
    if (p === null || typeof p !== 'object' || typeof p.length !== 'number') {
      throw invalid(`${what}[${i}] is ${describeNumber(p)}; expected an array of numbers`);
    }
    if (p.length !== dim) {
      const base = opts.dim !== undefined ? `${dim} were expected` : `${what}[0] has ${dim}`;
      throw invalid(`${what}[${i}] has ${p.length} objectives but ${base}`);
    }
    for (let k = 0; k < dim; k++) {
      const v = p[k];
      // Inline fast path: this loop runs over 10^6 points in the 2-D benchmark.
      if (typeof v !== 'number' || v - v !== 0) checkFinite(v, `${what}[${i}][${k}]`);
    }
  }
  return dim;
}

/** +1 for a maximised objective, -1 for a minimised one; throws on a bad sense or wrong length. */
export function senseSigns(sense: SenseOption | undefined, dim: number, what = 'sense'): Float64Array {
  const s = new Float64Array(dim);
  if (sense === undefined || typeof sense === 'string') {
    const one = sense ?? 'max';
    if (one !== 'max' && one !== 'min') throw invalid(`${what} is ${JSON.stringify(one)}; expected 'max' or 'min'`);
    s.fill(one === 'max' ? 1 : -1);
    return s;
  }
  if (!Array.isArray(sense)) throw invalid(`${what} must be 'max', 'min' or an array of them`);
  if (sense.length !== dim) throw invalid(`${what} has ${sense.length} entries but the points have ${dim} objectives`);
  for (let k = 0; k < dim; k++) {
    const v = sense[k];
    if (v !== 'max' && v !== 'min') throw invalid(`${what}[${k}] is ${JSON.stringify(v)}; expected 'max' or 'min'`);
    s[k] = v === 'max' ? 1 : -1;
  }
  return s;
}
