// SPDX-License-Identifier: MIT
// PPO math (trl 0.4.x) on fixed random tensors, against trl 0.4.x's formulas (docs/training.md, "Semantics") computed here by
// hand in float64: per-token KL penalties, score on the last response token, GAE (γ, λ), whitening with
// the unbiased masked variance, clipped policy and value losses, clip fractions, approx/policy KL; and the
// adaptive KL controller.
import { describe, expect, it } from 'vitest';
import { AdaptiveKLController, FixedKLController, mulberry32, parsePPOConfig, ppoMath } from '../src/train/index.js';

const B = 3,
  T = 6;
const rnd = mulberry32(77);
const rand = (lo: number, hi: number) => Float64Array.from({ length: B * T }, () => lo + rnd() * (hi - lo));
const lens = [6, 2, 4]; // ragged responses: mask is 1 on the first lens[b] tokens
const mask = Float64Array.from({ length: B * T }, (_, i) => (i % T < lens[Math.floor(i / T)] ? 1 : 0));
const oldLogp = rand(-3, -0.5),
  ref = rand(-3, -0.5),
  oldValues = rand(-1, 1);
// new log-probs far enough from the old ones that some ratios clip, value predictions too
const logp = oldLogp.map((v, i) => v + (i % 3 === 0 ? 0.5 : -0.1) * (rnd() + 0.2));
const vpred = oldValues.map((v) => v + (rnd() - 0.5) * 0.9);
const score = Float64Array.from([1.5, -0.7, 0.3]);

function hand(penalty: string, beta: number, gamma: number, lam: number, cr: number, crv: number) {
  const at = (a: Float64Array, b: number, t: number) => a[b * T + t];
  const kl = new Float64Array(B * T),
    rewards = new Float64Array(B * T),
    adv = new Float64Array(B * T),
    ret = new Float64Array(B * T);
  for (let b = 0; b < B; b++) {
    for (let t = 0; t < T; t++) {
      const d = at(oldLogp, b, t) - at(ref, b, t);
      const k = penalty === 'kl' ? d : penalty === 'abs' ? Math.abs(d) : penalty === 'mse' ? 0.5 * d * d : Math.exp(-d) - 1 + d;
      kl[b * T + t] = k;
      rewards[b * T + t] = -beta * k * at(mask, b, t);
    }
    rewards[b * T + lens[b] - 1] += score[b];
    let last = 0;
    for (let t = T - 1; t >= 0; t--) {
      const v = at(oldValues, b, t) * at(mask, b, t);
      const next = t + 1 < T ? at(oldValues, b, t + 1) * at(mask, b, t + 1) : 0;
      const delta = rewards[b * T + t] + gamma * next - v;
      last = delta + gamma * lam * last;
      adv[b * T + t] = last;
      ret[b * T + t] = last + v;
    }
  }
  let n = 0,
    s = 0;
  for (let i = 0; i < B * T; i++) {
    n += mask[i];
    s += adv[i] * mask[i];
  }
  const mean = s / n;
  let v2 = 0;
  for (let i = 0; i < B * T; i++) v2 += (adv[i] - mean) ** 2 * mask[i];
  const variance = (v2 / n) * (n / (n - 1));
  const white = adv.map((a) => (a - mean) / Math.sqrt(variance + 1e-8));
  let pg = 0,
    pgc = 0,
    vf = 0,
    vfc = 0,
    akl = 0,
    pkl = 0;
  for (let i = 0; i < B * T; i++) {
    if (!mask[i]) continue;
    const ratio = Math.exp(logp[i] - oldLogp[i]);
    const l1 = -white[i] * ratio,
      l2 = -white[i] * Math.min(Math.max(ratio, 1 - cr), 1 + cr);
    pg += Math.max(l1, l2);
    pgc += l2 > l1 ? 1 : 0;
    const vOld = oldValues[i];
    const vc = Math.min(Math.max(vpred[i], vOld - crv), vOld + crv);
    const f1 = (vpred[i] - ret[i]) ** 2,
      f2 = (vc - ret[i]) ** 2;
    vf += Math.max(f1, f2);
    vfc += f2 > f1 ? 1 : 0;
    akl += (logp[i] - oldLogp[i]) ** 2;
    pkl += oldLogp[i] - logp[i];
  }
  const pgLoss = pg / n,
    vfLoss = (0.5 * vf) / n;
  return {
    kl,
    rewards,
    advantages: white,
    returns: ret,
    pgLoss,
    vfLoss,
    pgClipfrac: pgc / n,
    vfClipfrac: vfc / n,
    approxKl: (0.5 * akl) / n,
    policyKl: pkl / n,
  };
}

const close = (a: ArrayLike<number>, b: ArrayLike<number>, tol = 1e-12) => {
  expect(a.length).toBe(b.length);
  for (let i = 0; i < a.length; i++) expect(Math.abs(a[i] - b[i])).toBeLessThan(tol * (1 + Math.abs(b[i])));
};

describe('PPO math (trl 0.4.x) vs hand computation in float64', () => {
  const cases = [
    { penalty: 'kl', beta: 0.2, gamma: 1, lam: 0.95, cr: 0.2, crv: 0.2, vfc: 0.1 },
    { penalty: 'abs', beta: 0.05, gamma: 0.99, lam: 0.9, cr: 0.1, crv: 0.3, vfc: 0.5 },
    { penalty: 'mse', beta: 0.5, gamma: 1, lam: 1, cr: 0.3, crv: 0.05, vfc: 0.1 },
    { penalty: 'k3', beta: 0.1, gamma: 1, lam: 0.95, cr: 0.2, crv: 0.2, vfc: 0.2 },
  ] as const;
  for (const c of cases) {
    it(`${c.penalty}, β=${c.beta}, γ=${c.gamma}, λ=${c.lam}, ε=${c.cr}, ε_v=${c.crv}, vf_coef=${c.vfc}`, () => {
      const h = hand(c.penalty, c.beta, c.gamma, c.lam, c.cr, c.crv);
      const r = ppoMath({
        B,
        T,
        logp,
        ref,
        oldLogp,
        oldValues,
        vpred,
        mask,
        score,
        beta: c.beta,
        klPenalty: c.penalty,
        gamma: c.gamma,
        lam: c.lam,
        cliprange: c.cr,
        cliprangeValue: c.crv,
        vfCoef: c.vfc,
      });
      close(r.kl, h.kl);
      close(r.rewards, h.rewards);
      close(r.returns, h.returns);
      // whitened advantages: compared on the response tokens (outside they are only whitening artefacts)
      close(
        r.advantages.filter((_, i) => mask[i]),
        h.advantages.filter((_, i) => mask[i]),
      );
      expect(r.pgLoss).toBeCloseTo(h.pgLoss, 12);
      expect(r.vfLoss).toBeCloseTo(h.vfLoss, 12);
      expect(r.loss).toBeCloseTo(h.pgLoss + c.vfc * h.vfLoss, 12);
      expect(r.pgClipfrac).toBeCloseTo(h.pgClipfrac, 14);
      expect(r.vfClipfrac).toBeCloseTo(h.vfClipfrac, 14);
      expect(r.approxKl).toBeCloseTo(h.approxKl, 14);
      expect(r.policyKl).toBeCloseTo(h.policyKl, 14);
      // the fixture exercises both branches of both clips
      expect(h.pgClipfrac).toBeGreaterThan(0);
      expect(h.pgClipfrac).toBeLessThan(1);
      // the score sits on the last response token only
      expect(r.rewards[1 * T + 1]).toBeCloseTo(-c.beta * h.kl[1 * T + 1] + score[1], 14);
      expect(Math.abs(r.rewards[1 * T + 2])).toBe(0);
    });
  }

  it('rejects an unknown KL penalty and mismatched sizes', () => {
    expect(() => ppoMath({ B, T, logp, ref, oldLogp, oldValues, vpred, mask, score, beta: 0.1, klPenalty: 'full' as 'kl' })).toThrow(/kl_penalty/);
    expect(() => ppoMath({ B, T: T + 1, logp, ref, oldLogp, oldValues, vpred, mask, score, beta: 0.1 })).toThrow(/wrong length/);
  });
});

describe('KL controllers', () => {
  it('adaptive: β ← β(1 + clip(KL/target − 1, ±0.2)·n/horizon), by hand', () => {
    const k = new AdaptiveKLController(0.2, 6, 10000);
    k.update(9, 128); // error 0.5 → clipped to 0.2
    expect(k.value).toBeCloseTo(0.2 * (1 + (0.2 * 128) / 10000), 15);
    const v = k.value;
    k.update(5.4, 64); // error −0.1
    expect(k.value).toBeCloseTo(v * (1 - (0.1 * 64) / 10000), 15);
    k.update(0, 100); // error −1 → −0.2
    expect(k.value).toBeCloseTo(v * (1 - (0.1 * 64) / 10000) * (1 - (0.2 * 100) / 10000), 15);
    const f = new FixedKLController(0.05);
    f.update();
    expect(f.value).toBe(0.05);
  });

  it('config: trl defaults and field names, clear errors', () => {
    const c = parsePPOConfig({});
    expect(c).toMatchObject({
      init_kl_coef: 0.2,
      adap_kl_ctrl: true,
      target: 6,
      horizon: 10000,
      gamma: 1,
      lam: 0.95,
      cliprange: 0.2,
      cliprange_value: 0.2,
      vf_coef: 0.1,
      ppo_epochs: 4,
    });
    expect(c.generation).toMatchObject({ fixed_length: true, output_min_length: 16, output_max_length: 32, top_k: 0, top_p: 1 });
    expect(() => parsePPOConfig({ cliprange: -1 })).toThrow(/cliprange/);
    expect(() => parsePPOConfig({ init_kl: 0.1 })).toThrow(/init_kl/);
    expect(() => parsePPOConfig({ batch_size: 4, mini_batch_size: 8 })).toThrow(/mini_batch_size/);
  });
});
