// SPDX-License-Identifier: MIT
// The λ rules shared by every merge: one weight per source, finite; `normalize` divides by the sum
// (mergekit's default); the result must lie on the simplex unless `allowExtrapolation` (Fig. 11c of the
// paper), in which case the weights are used exactly as given.
import { SoupError } from '../errors.js';

export interface WeightRules {
  normalize?: boolean;
  allowExtrapolation?: boolean;
}

export function resolveWeights(weights: readonly number[], nSources: number, rules: WeightRules = {}): Float64Array {
  if (!Array.isArray(weights) && !(weights instanceof Float64Array)) throw new SoupError('ERR_SOUP_WEIGHTS', 'weights must be an array of numbers');
  if (weights.length !== nSources)
    throw new SoupError(
      'ERR_SOUP_WEIGHTS',
      `got ${weights.length} weight${weights.length === 1 ? '' : 's'} for ${nSources} source${nSources === 1 ? '' : 's'}: give one weight per source`,
    );
  if (nSources === 0) throw new SoupError('ERR_SOUP_WEIGHTS', 'at least one source is needed');
  weights.forEach((w, i) => {
    if (typeof w !== 'number' || !Number.isFinite(w)) throw new SoupError('ERR_SOUP_WEIGHTS', `weights[${i}] is ${w}: weights must be finite numbers`);
  });
  const w = Float64Array.from(weights);
  if (rules.allowExtrapolation) return w;
  if (rules.normalize ?? true) {
    const sum = w.reduce((a, b) => a + b, 0);
    if (!(Math.abs(sum) > 0))
      throw new SoupError('ERR_SOUP_WEIGHTS', `weights sum to ${sum}: cannot normalize (use allowExtrapolation to pass weights as given)`);
    for (let i = 0; i < w.length; i++) w[i] /= sum;
  }
  const neg = w.findIndex((x) => x < 0);
  if (neg >= 0)
    throw new SoupError(
      'ERR_SOUP_WEIGHTS',
      `weights[${neg}] = ${weights[neg]} puts λ off the simplex (λᵢ ≥ 0, Σλ = 1); pass allowExtrapolation to extrapolate`,
    );
  const sum = w.reduce((a, b) => a + b, 0);
  if (Math.abs(sum - 1) > 1e-6)
    throw new SoupError('ERR_SOUP_WEIGHTS', `weights sum to ${sum}, not 1: λ is off the simplex; normalize them or pass allowExtrapolation`);
  return w;
}

// the cancel slots and the abort error of native calls live with the call wrapper (src/native/call.ts)
export { controlFor, abortedError } from '../native/call.js';
