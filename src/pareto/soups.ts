// SPDX-License-Identifier: MIT
// Rewarded-soup analysis: the linear-mode-connectivity check (the paper's Working Hypothesis 1) and the
// choice of λ for a user's preference (Lemma 1: for a linear preference μ̂ some λ is optimal; the paper
// finds λ = μ̂ close to optimal, Fig. 4a).
import { checkFinite, checkPoints, checkVector, invalid, type Points } from './validate.js';

/** One evaluated soup (or any model): its interpolation coefficients and its rewards. */
export interface Candidate {
  /**
   * λ on the simplex, one entry per expert. A number t is shorthand for two experts: [1 - t, t]
   * (θ(t) = (1 - t) θ_1 + t θ_2, the paper's convention).
   */
  lambda: ArrayLike<number> | number;
  /** The rewards R_1..R_K of the model, in a fixed objective order. */
  rewards: ArrayLike<number>;
  /** Optional label used in messages and reports. */
  name?: string;
}

/** An expert's rewards, given bare or as an object with a `rewards` field. */
export type ExpertRewards = ArrayLike<number> | { rewards: ArrayLike<number>; name?: string };

export interface LmcRow {
  /** Index of the soup in the input. */
  index: number;
  name?: string;
  lambda: number[];
  /** R_k(θ(λ)). */
  rewards: number[];
  /** Σ_i λ_i R_k(θ_i): the rewards interpolated linearly between the experts (the LMC lower bound). */
  baseline: number[];
  /** rewards - baseline, per reward k. Hypothesis 1 holds for this λ and reward when gap >= -tolerance. */
  gaps: number[];
  /** Every gap >= -tolerance. */
  holds: boolean;
}

export interface LmcReport {
  rows: LmcRow[];
  /** The smallest gap of each reward over all soups. */
  minGap: number[];
  /** Hypothesis 1 holds for every soup and reward (within tolerance). */
  holds: boolean;
  /** Fraction of (soup, reward) pairs where it holds. */
  fractionHolds: number;
}

/** λ as a vector of `n` finite entries (a scalar t means [1 - t, t] and needs n = 2). */
export function lambdaVector(lambda: unknown, n: number, what: string): number[] {
  if (typeof lambda === 'number') {
    checkFinite(lambda, what);
    if (n !== 2) throw invalid(`${what} is the scalar ${lambda}, which stands for [1 - λ, λ] and needs 2 experts, but there are ${n}`);
    return [1 - lambda, lambda];
  }
  return Array.from(checkVector(lambda, what, n));
}

function expertRows(experts: ReadonlyArray<ExpertRewards>): number[][] {
  if (!Array.isArray(experts) || experts.length === 0) throw invalid('experts is empty; pass the rewards of each expert θ_i');
  const rows = experts.map((e, i) => {
    const r = e !== null && typeof e === 'object' && 'rewards' in e ? e.rewards : e;
    if (r === null || typeof r !== 'object') throw invalid(`experts[${i}] is ${JSON.stringify(r)}; expected an array of rewards`);
    return Array.from(r as ArrayLike<number>);
  });
  checkPoints(rows, 'experts');
  return rows;
}

function candidateRows(cands: ReadonlyArray<Candidate>, what: string, nLambda: number | undefined, d: number | undefined) {
  if (!Array.isArray(cands) || cands.length === 0) throw invalid(`${what} is empty; pass at least one evaluated soup`);
  const rewards: number[][] = [];
  const lambdas: number[][] = [];
  let n = nLambda;
  cands.forEach((c, j) => {
    if (c === null || typeof c !== 'object') throw invalid(`${what}[${j}] is ${JSON.stringify(c)}; expected { lambda, rewards }`);
    if (c.lambda === undefined) throw invalid(`${what}[${j}]${c.name ? ` (${c.name})` : ''}.lambda is missing`);
    if (n === undefined) n = typeof c.lambda === 'number' ? 2 : (c.lambda as ArrayLike<number>).length;
    lambdas.push(lambdaVector(c.lambda, n, `${what}[${j}].lambda`));
    rewards.push(Array.from(checkVector(c.rewards, `${what}[${j}].rewards`) as ArrayLike<number>));
  });
  checkPoints(rewards as Points, `${what}[*].rewards`, { dim: d });
  return { rewards, lambdas };
}

/**
 * LMC gaps R_k(θ(λ)) − Σ_i λ_i R_k(θ_i) for every soup and reward. `experts[i]` holds the rewards of
 * θ_i, in the order of λ's entries. Gaps >= 0 mean Working Hypothesis 1 holds (the soup is at least as
 * good as the linear interpolation of the experts' rewards).
 */
export function lmcGaps(soups: ReadonlyArray<Candidate>, experts: ReadonlyArray<ExpertRewards>, opts: { tolerance?: number } = {}): LmcReport {
  const ex = expertRows(experts);
  const n = ex.length;
  const d = ex[0].length;
  const tol = opts.tolerance ?? 0;
  checkFinite(tol, 'tolerance');
  const { rewards, lambdas } = candidateRows(soups, 'soups', n, d);
  const minGap = new Array<number>(d).fill(Infinity);
  let holdCount = 0;
  const rows: LmcRow[] = rewards.map((r, j) => {
    const lam = lambdas[j];
    const baseline = new Array<number>(d).fill(0);
    for (let i = 0; i < n; i++) for (let k = 0; k < d; k++) baseline[k] += lam[i] * ex[i][k];
    const gaps = r.map((v, k) => v - baseline[k]);
    let holds = true;
    gaps.forEach((g, k) => {
      if (g < minGap[k]) minGap[k] = g;
      if (g >= -tol) holdCount++;
      else holds = false;
    });
    const row: LmcRow = { index: j, lambda: lam, rewards: r, baseline, gaps, holds };
    if (soups[j].name !== undefined) row.name = soups[j].name;
    return row;
  });
  return { rows, minGap, holds: rows.every((r) => r.holds), fractionHolds: holdCount / (rows.length * d) };
}

/** A user's reward over the K rewards: linear weights μ̂ (Σ μ̂_k R_k) or any function. */
export type Preference = ArrayLike<number> | ((rewards: number[]) => number);

export interface Selected {
  index: number;
  name?: string;
  lambda: number[];
  rewards: number[];
  /** The preference's value at this candidate. */
  utility: number;
}

export interface MuRuleSelection extends Selected {
  /** μ̂ normalised to sum to 1: the λ the rule asks for. */
  mu: number[];
  /** Euclidean distance between the asked λ and the nearest evaluated one (0 when it was evaluated). */
  distance: number;
  /** best.utility − this utility (>= 0). */
  regret: number;
}

export interface LambdaSelection {
  /** argmax over the candidates of the preference (first of ties). */
  best: Selected;
  /**
   * The λ = μ̂ rule (linear preferences with one expert per reward, same order): the evaluated
   * candidate nearest to μ̂ / Σ μ̂. Absent for function preferences or when #experts != #rewards.
   */
  muRule?: MuRuleSelection;
  /** The preference's value for every candidate, in input order. */
  utilities: number[];
}

/**
 * Picks the evaluated soup that maximises the user's reward (selection is inference only: evaluate
 * soups on validation data, then take the argmax), and, for a linear preference, reports what the
 * λ = μ̂ rule would have chosen.
 */
export function selectLambda(candidates: ReadonlyArray<Candidate>, preference: Preference): LambdaSelection {
  const { rewards, lambdas } = candidateRows(candidates, 'candidates', undefined, undefined);
  const d = rewards[0].length;
  let utilityOf: (r: number[]) => number;
  let mu: number[] | undefined;
  if (typeof preference === 'function') {
    utilityOf = preference;
  } else {
    const w = Array.from(checkVector(preference, 'preference', d));
    w.forEach((v, k) => {
      if (v < 0) throw invalid(`preference[${k}] = ${v} is negative; linear preference weights must be >= 0`);
    });
    const sum = w.reduce((a, b) => a + b, 0);
    if (!(sum > 0)) throw invalid('preference weights are all 0');
    mu = w.map((v) => v / sum);
    utilityOf = (r) => r.reduce((acc, v, k) => acc + w[k] * v, 0);
  }
  const utilities = rewards.map((r, j) => {
    const u = utilityOf(r);
    if (typeof u !== 'number' || Number.isNaN(u)) {
      throw invalid(`preference(candidates[${j}].rewards) returned ${String(u)}; expected a number`);
    }
    return u;
  });
  const pick = (j: number): Selected => {
    const s: Selected = { index: j, lambda: lambdas[j], rewards: rewards[j], utility: utilities[j] };
    if (candidates[j].name !== undefined) s.name = candidates[j].name;
    return s;
  };
  let bestJ = 0;
  utilities.forEach((u, j) => {
    if (u > utilities[bestJ]) bestJ = j;
  });
  const out: LambdaSelection = { best: pick(bestJ), utilities };
  if (mu !== undefined && lambdas[0].length === d) {
    let nearJ = 0;
    let nearD = Infinity;
    lambdas.forEach((lam, j) => {
      const dist = Math.hypot(...lam.map((v, k) => v - mu![k]));
      if (dist < nearD) {
        nearD = dist;
        nearJ = j;
      }
    });
    out.muRule = { ...pick(nearJ), mu, distance: nearD, regret: utilities[bestJ] - utilities[nearJ] };
  }
  return out;
}
