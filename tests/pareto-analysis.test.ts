// SPDX-License-Identifier: MIT
// Indicators (morl-baselines definitions), LMC gaps, λ selection and the λ grids / Dirichlet sampler,
// checked against hand-computed values and loops written here.
import { mulberry32 } from '../src/util/random.js';
import { describe, expect, it } from 'vitest';
import {
  cardinality,
  defaultUtilityWeights,
  dirichletSample,
  expectedUtility,
  igd,
  lambdaGrid,
  lmcGaps,
  maximumUtilityLoss,
  selectLambda,
  simplexGrid,
  sparsity,
} from '../src/index.js';

describe('indicators', () => {
  const front = [
    [1, 5],
    [3, 3.5],
    [6, 1],
  ];

  it('expected utility: mean over weights of the best dot product', () => {
    const w = [
      [1, 0],
      [0, 1],
      [0.5, 0.5],
    ];
    // best per weight: 6, 5, max(3, 3.25, 3.5) = 3.5
    expect(expectedUtility(front, { weights: w })).toBeCloseTo((6 + 5 + 3.5) / 3, 14);
    // Default weights: a lattice of >= 100 vectors on the simplex.
    const dw = defaultUtilityWeights(2);
    expect(dw.length).toBe(100);
    const ref = dw.reduce((s, wt) => s + Math.max(...front.map((p) => wt[0] * p[0] + wt[1] * p[1])), 0) / dw.length;
    expect(expectedUtility(front)).toBeCloseTo(ref, 12);
    expect(defaultUtilityWeights(3).length).toBeGreaterThanOrEqual(100);
    expect(defaultUtilityWeights(3).length).toBe(105); // C(13 + 2, 2): steps = 13
    // sense 'min' negates: utilities of negated points.
    expect(
      expectedUtility(
        front.map((p) => p.map((v) => -v)),
        { weights: w, sense: 'min' },
      ),
    ).toBeCloseTo((6 + 5 + 3.5) / 3, 14);
  });

  it('maximum utility loss: worst gap to the reference set over weights', () => {
    const w = [
      [1, 0],
      [0, 1],
      [0.5, 0.5],
    ];
    const reference = [
      [7, 0],
      [0, 5],
      [4, 4],
    ];
    // gaps: 7-6 = 1, 5-5 = 0, 4-3.5 = 0.5
    expect(maximumUtilityLoss(front, reference, { weights: w })).toBeCloseTo(1, 14);
    expect(maximumUtilityLoss(reference, reference, { weights: w })).toBe(0);
  });

  it('IGD: mean distance from each known-front point to the nearest estimate point', () => {
    const known = [
      [0, 1],
      [1, 0],
    ];
    const est = [
      [0, 0.5],
      [3, 3],
    ];
    expect(igd(known, est)).toBeCloseTo((0.5 + Math.hypot(1, 0.5)) / 2, 14);
    expect(igd(known, known)).toBe(0);
    expect(() => igd(known, [[1, 2, 3]])).toThrow(/estimate\[0\] has 3 objectives but 2 were expected/);
  });

  it('sparsity: squared neighbour gaps per objective over n - 1; 0 below 2 points', () => {
    // objective 0 sorted 1,3,6: 4 + 9; objective 1 sorted 1,3.5,5: 6.25 + 2.25
    expect(sparsity(front)).toBeCloseTo((4 + 9 + 6.25 + 2.25) / 2, 14);
    expect(sparsity([[1, 2]])).toBe(0);
    expect(sparsity([])).toBe(0);
  });

  it('cardinality counts distinct non-dominated points', () => {
    expect(cardinality([...front, [1, 5], [0, 0], [2, 2]])).toBe(3);
    expect(cardinality([])).toBe(0);
  });
});

describe('lmcGaps', () => {
  it('gives R_k(θ(λ)) − Σ λ_i R_k(θ_i) per soup and reward, and whether Hypothesis 1 holds', () => {
    const rand = mulberry32(3);
    const experts = [
      [1.3, -0.2],
      [0.1, 0.9],
    ];
    const soups = lambdaGrid(10).map((t) => {
      const base = [0, 1].map((k) => (1 - t) * experts[0][k] + t * experts[1][k]);
      const bump = 0.3 * t * (1 - t); // concave arc: above the segment
      return { lambda: t, rewards: base.map((b) => b + bump + 0.001 * rand()), name: `soup-${t}` };
    });
    const rep = lmcGaps(soups, experts);
    expect(rep.rows).toHaveLength(11);
    for (const row of rep.rows) {
      const t = row.lambda[1];
      expect(row.lambda[0]).toBeCloseTo(1 - t, 15);
      for (let k = 0; k < 2; k++) {
        const baseline = (1 - t) * experts[0][k] + t * experts[1][k];
        expect(row.baseline[k]).toBeCloseTo(baseline, 14);
        expect(row.gaps[k]).toBeCloseTo(soups[row.index].rewards[k] - baseline, 14);
      }
    }
    expect(rep.holds).toBe(true);
    expect(rep.fractionHolds).toBe(1);
    // A soup below the segment breaks it, and is named.
    const bad = [...soups, { lambda: [0.5, 0.5], rewards: [0.5, 0.3], name: 'dip' }];
    const rep2 = lmcGaps(
      bad,
      experts.map((r) => ({ rewards: r })),
    );
    expect(rep2.holds).toBe(false);
    expect(rep2.rows[11].name).toBe('dip');
    expect(rep2.rows[11].gaps[0]).toBeCloseTo(0.5 - 0.7, 14);
    expect(rep2.rows[11].gaps[1]).toBeCloseTo(0.3 - 0.35, 14);
    expect(rep2.minGap[0]).toBeCloseTo(-0.2, 14);
    expect(rep2.fractionHolds).toBeCloseTo(22 / 24, 14);
    // tolerance lets small negative gaps through
    expect(lmcGaps(bad, experts, { tolerance: 0.25 }).holds).toBe(true);
  });

  it('3 experts: vector λ', () => {
    const experts = [
      [1, 0, 0],
      [0, 2, 0],
      [0, 0, 3],
    ];
    const rep = lmcGaps([{ lambda: [0.2, 0.3, 0.5], rewards: [0.3, 0.5, 1.4] }], experts);
    expect(rep.rows[0].baseline).toEqual([0.2, 0.6, 1.5]);
    expect(rep.rows[0].gaps[0]).toBeCloseTo(0.1, 14);
    expect(rep.rows[0].holds).toBe(false);
  });

  it('errors name the soup and field', () => {
    const experts = [
      [1, 0],
      [0, 1],
    ];
    expect(() => lmcGaps([{ lambda: [0.5, 0.5, 0], rewards: [1, 1] }], experts)).toThrow(/soups\[0\]\.lambda has 3 entries but 2/);
    expect(() => lmcGaps([{ lambda: 0.5, rewards: [1, NaN] }], experts)).toThrow(/soups\[0\]\.rewards\[1\] is NaN/);
    expect(() => lmcGaps([{ lambda: 0.5, rewards: [1] }], experts)).toThrow(/has 1 objectives but 2 were expected/);
    expect(() => lmcGaps([], experts)).toThrow(/soups is empty/);
    expect(() => lmcGaps([{ lambda: 0.5, rewards: [1, 1] }], [])).toThrow(/experts is empty/);
    expect(() =>
      lmcGaps(
        [{ lambda: 0.5, rewards: [1, 1, 1] }],
        [
          [1, 0, 0],
          [0, 1, 0],
          [0, 0, 1],
        ],
      ),
    ).toThrow(/needs 2 experts, but there are 3/);
  });
});

describe('selectLambda', () => {
  const cands = lambdaGrid(10).map((t) => ({ lambda: t, rewards: [Math.cos((t * Math.PI) / 2), Math.sin((t * Math.PI) / 2)] }));

  it('argmax of a linear preference, and the λ = μ̂ rule beside it', () => {
    const mu = [0.2, 0.8];
    const sel = selectLambda(cands, mu);
    const us = cands.map((c) => 0.2 * c.rewards[0] + 0.8 * c.rewards[1]);
    const best = us.indexOf(Math.max(...us));
    expect(sel.best.index).toBe(best);
    expect(sel.best.utility).toBe(us[best]);
    expect(sel.utilities).toEqual(us);
    // μ̂ = [0.2, 0.8] is λ = 0.8 (the vector [1 − λ, λ]).
    expect(sel.muRule!.index).toBe(8);
    expect(sel.muRule!.distance).toBeLessThan(1e-15);
    expect(sel.muRule!.regret).toBeCloseTo(us[best] - us[8], 15);
    expect(sel.muRule!.regret).toBeGreaterThanOrEqual(0);
    // Unnormalised weights give the same choice.
    expect(selectLambda(cands, [1, 4]).best.index).toBe(best);
  });

  it('a function preference; no μ̂ rule', () => {
    const sel = selectLambda(cands, (r) => Math.min(r[0], r[1]));
    expect(sel.best.index).toBe(5);
    expect(sel.muRule).toBeUndefined();
  });

  it('rejects bad preferences', () => {
    expect(() => selectLambda(cands, [1, -1])).toThrow(/preference\[1\] = -1 is negative/);
    expect(() => selectLambda(cands, [1])).toThrow(/preference has 1 entries but 2/);
    expect(() => selectLambda(cands, () => NaN)).toThrow(/returned NaN/);
  });
});

describe('λ grids and Dirichlet sampling', () => {
  it("lambdaGrid(10) is the paper's 11 values", () => {
    expect(lambdaGrid(10)).toEqual([0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1]);
    expect(lambdaGrid(4)).toEqual([0, 0.25, 0.5, 0.75, 1]);
    expect(() => lambdaGrid(0)).toThrow(/steps is 0/);
    expect(() => lambdaGrid(2.5)).toThrow(/integer/);
  });

  it('simplexGrid: all C(steps + n − 1, n − 1) lattice points, distinct, on the simplex', () => {
    for (const [n, steps] of [
      [2, 10],
      [3, 4],
      [4, 5],
      [5, 3],
      [1, 3],
    ]) {
      const g = simplexGrid(n, steps);
      let c = 1;
      for (let j = 1; j < n; j++) c = (c * (steps + j)) / j;
      expect(g.length).toBe(Math.round(c));
      expect(new Set(g.map((v) => v.join(','))).size).toBe(g.length);
      for (const v of g) {
        expect(v).toHaveLength(n);
        expect(Math.abs(v.reduce((a, b) => a + b, 0) - 1)).toBeLessThan(1e-12);
        for (const x of v) expect(Number.isInteger(Math.round(x * steps * 1e6) / 1e6)).toBe(true);
      }
    }
    expect(simplexGrid(2, 10).map((v) => v[1])).toEqual(lambdaGrid(10));
    expect(simplexGrid(2, 10)[3]).toEqual([0.7, 0.3]);
  });

  it('dirichletSample: seeded, on the simplex, uniform (marginal Beta(1, n − 1) by KS; centre of mass 1/n)', () => {
    expect(dirichletSample(3, 5, 42)).toEqual(dirichletSample(3, 5, 42));
    expect(dirichletSample(3, 5, 42)).not.toEqual(dirichletSample(3, 5, 43));
    const n = 3;
    const m = 4000;
    const s = dirichletSample(n, m, 2024);
    for (const v of s) {
      expect(Math.abs(v.reduce((a, b) => a + b, 0) - 1)).toBeLessThan(1e-12);
      for (const x of v) expect(x).toBeGreaterThanOrEqual(0);
    }
    for (let k = 0; k < n; k++) {
      const xs = s.map((v) => v[k]).sort((a, b) => a - b);
      // KS statistic against F(x) = 1 − (1 − x)^(n−1); 1.95/√m is the 0.1% critical value.
      let ks = 0;
      xs.forEach((x, i) => {
        const F = 1 - (1 - x) ** (n - 1);
        ks = Math.max(ks, Math.abs(F - i / m), Math.abs(F - (i + 1) / m));
      });
      expect(ks).toBeLessThan(1.95 / Math.sqrt(m));
      const mean = xs.reduce((a, b) => a + b, 0) / m;
      expect(Math.abs(mean - 1 / n)).toBeLessThan((4 * Math.sqrt(2 / (n * n * (n + 1)))) / Math.sqrt(m));
    }
    // Not uniform on each coordinate independently: a biased sampler (normalised uniforms) fails the KS test.
    const rand = mulberry32(1);
    const biased = Array.from({ length: m }, () => {
      const u = [rand(), rand(), rand()];
      const t = u[0] + u[1] + u[2];
      return u[0] / t;
    }).sort((a, b) => a - b);
    let ks = 0;
    biased.forEach((x, i) => {
      const F = 1 - (1 - x) ** 2;
      ks = Math.max(ks, Math.abs(F - i / m), Math.abs(F - (i + 1) / m));
    });
    expect(ks).toBeGreaterThan(1.95 / Math.sqrt(m));
  });
});
