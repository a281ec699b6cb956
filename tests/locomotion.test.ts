// SPDX-License-Identifier: MIT
// The locomotion experiment end to end at toy size (a few PPO updates, short episodes): stages, soups
// over λ with the shared frozen statistics, deterministic evaluation, the report's numbers checked
// against their definitions, the filmstrip, stage reuse, and configuration errors.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { SoupError } from '../src/errors.js';
import { hypervolume } from '../src/pareto/index.js';
import {
  FINETUNE_DEFAULTS,
  fineTuneStart,
  parseLocomotion,
  runLocomotion,
  runLocomotionDemo,
  type LocomotionEvent,
  type LocomotionInput,
  type LocomotionReport,
} from '../src/pipeline/tasks/locomotion/index.js';
import { ControlPolicy } from '../src/train/control.js';
import { microLocomotion } from './helpers/micro.js';

const dir = mkdtempSync(join(tmpdir(), 'rsoup-loco-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const tiny = (out: string): LocomotionInput => microLocomotion(out);

/** Mean and standard error of Σ cᵢ xᵢ[e] over episodes e, in a plain float64 loop. */
function pairedByHand(terms: Array<[number, number[]]>): { mean: number; se: number } {
  const n = terms[0][1].length;
  const d: number[] = [];
  for (let e = 0; e < n; e++) {
    let v = 0;
    for (const [c, x] of terms) v += c * x[e];
    d.push(v);
  }
  let m = 0;
  for (const v of d) m += v;
  m /= n;
  let ss = 0;
  for (const v of d) ss += (v - m) * (v - m);
  return { mean: m, se: Math.sqrt(ss / (n - 1) / n) };
}

/** The report's paired figures (gains, LMC gaps, soup − MORL) against a recomputation from its per-episode returns. */
function checkPaired(r: LocomotionReport): void {
  const model = (name: string) => r.models.find((m) => m.name === name)!;
  const pre = model('pretrained'),
    risky = model('risky'),
    cautious = model('cautious');
  const R = (m: typeof pre, k: number) => (k === 0 ? m.per_episode.r1 : m.per_episode.r2);
  for (const m of r.models) {
    expect(m.per_episode.r1).toHaveLength(r.evaluation.episodes);
    // the per-episode returns are the ones the means came from: R2 = R1 − α·Σa² (α = 1) per episode
    m.per_episode.r1.forEach((v, e) => expect(m.per_episode.r2[e]).toBeCloseTo(v - m.per_episode.sum_a2[e], 9));
    for (let k = 0; k < 2; k++) expect(R(m, k).reduce((a, b) => a + b, 0) / R(m, k).length).toBeCloseTo(m.rewards[k], 9);
  }
  let violations = 0,
    checked = 0;
  for (const row of r.lmc.rows) {
    const soup = r.models.find((m) => m.kind === 'soup' && m.lambda![1] === row.lambda[1])!;
    for (let k = 0; k < 2; k++) {
      const h = pairedByHand([
        [1, R(soup, k)],
        [-row.lambda[0], R(risky, k)],
        [-row.lambda[1], R(cautious, k)],
      ]);
      expect(row.gaps[k]).toBeCloseTo(h.mean, 9);
      expect(row.se[k]).toBeCloseTo(h.se, 9);
      if (row.lambda[1] > 0 && row.lambda[1] < 1) {
        checked++;
        if (h.mean < -2 * h.se) violations++;
        // a real spread over episodes, so the paired s.e. is not the independence bound by accident
        expect(h.se).toBeGreaterThan(0);
      }
    }
  }
  expect(checked).toBeGreaterThan(0);
  expect(r.verdict.h1.violations).toBe(violations);
  expect(r.verdict.h1.holds_within_noise).toBe(violations === 0);
  const g = r.experts.gains;
  const gr = pairedByHand([
    [1, risky.per_episode.r1],
    [-1, pre.per_episode.r1],
  ]);
  const gc = pairedByHand([
    [1, cautious.per_episode.r2],
    [-1, pre.per_episode.r2],
  ]);
  expect(g.risky.R1.mean).toBeCloseTo(gr.mean, 9);
  expect(g.risky.R1.se).toBeCloseTo(gr.se, 9);
  expect(g.cautious.R2.mean).toBeCloseTo(gc.mean, 9);
  expect(g.cautious.R2.se).toBeCloseTo(gc.se, 9);
  expect(r.verdict.experts_learned.risky).toBe(gr.mean >= 4 * gr.se);
  expect(r.verdict.experts_learned.cautious).toBe(gc.mean >= 4 * gc.se);
  // H2: MORL v − 0.5·Σa² against the soup at λ = 0.5/α = 0.5
  const [h2] = r.verdict.h2.soup_minus_morl;
  expect(h2.lambda).toBe(0.5);
  const soup = r.models.find((m) => m.kind === 'soup' && m.lambda![1] === 0.5)!,
    morl = model('morl-0.5');
  for (let k = 0; k < 2; k++) {
    const h = pairedByHand([
      [1, R(soup, k)],
      [-1, R(morl, k)],
    ]);
    const x = h2.soup_minus_morl[k === 0 ? 'R1' : 'R2'];
    expect(x.mean).toBeCloseTo(h.mean, 9);
    expect(x.se).toBeCloseTo(h.se, 9);
  }
  const own = (m: typeof pre) => m.per_episode.r1.map((v, e) => v - 0.5 * m.per_episode.sum_a2[e]);
  const ho = pairedByHand([
    [1, own(soup)],
    [-1, own(morl)],
  ]);
  expect(h2.soup_minus_morl['v − 0.5·Σa²'].mean).toBeCloseTo(ho.mean, 9);
  expect(h2.soup_minus_morl['v − 0.5·Σa²'].se).toBeCloseTo(ho.se, 9);
}

describe('fine-tuning starts (App. H)', () => {
  it('keep the pre-trained actor, log-std and observation statistics, and take a fresh critic', () => {
    const pre = ControlPolicy.create({ obsDim: 17, actDim: 6, hidden: [8, 8], seed: 1 });
    const fresh = ControlPolicy.create({ obsDim: 17, actDim: 6, hidden: [8, 8], seed: 2 });
    const p = pre.tensors(),
      f = fresh.tensors();
    // statistics as pre-training leaves them (not the prior, which both policies share)
    const mean = p['obs_rms.mean'].data;
    for (let i = 0; i < mean.length; i++) mean[i] = Math.sin(i + 1) * 3;
    const start = fineTuneStart(p, f);
    expect(Object.keys(start).sort()).toEqual(Object.keys(p).sort());
    const same = (a: { data: ArrayLike<number> }, b: { data: ArrayLike<number> }) => Array.from(a.data).every((v, i) => v === b.data[i]);
    let critics = 0;
    for (const n of Object.keys(p)) {
      if (n.startsWith('critic.')) {
        critics++;
        expect(same(start[n], f[n]), n).toBe(true);
        if (n.endsWith('weight')) expect(same(start[n], p[n]), n).toBe(false);
      } else {
        expect(same(start[n], p[n]), n).toBe(true);
      }
    }
    expect(critics).toBeGreaterThanOrEqual(4);
    expect(Object.keys(p).some((n) => n.startsWith('obs_rms'))).toBe(true);
    pre.dispose();
    fresh.dispose();
  });
});

describe('locomotion experiment', () => {
  it('runs every stage, and the report holds what its definitions say', async () => {
    const out = join(dir, 'a');
    const events: LocomotionEvent[] = [];
    const res = await runLocomotion(tiny(out), { onEvent: (e) => events.push(e) });
    const r = res.report;
    for (const f of [
      'report.json',
      'report.html',
      'front.svg',
      'front.png',
      'gaits.png',
      'gaits.svg',
      'rewards-vs-lambda.svg',
      'risky.safetensors',
      'cautious.safetensors',
      'morl-0.5.safetensors',
      'pretrained.safetensors',
      'timings.json',
    ])
      expect(existsSync(join(out, f))).toBe(true);
    const soups = r.models.filter((m) => m.kind === 'soup');
    expect(soups.map((s) => s.lambda![1])).toEqual([0, 0.25, 0.5, 0.75, 1]);
    const risky = r.models.find((m) => m.name === 'risky')!,
      cautious = r.models.find((m) => m.name === 'cautious')!;
    // λ = 0 and λ = 1 are the experts exactly (1·θ + 0·θ' is θ), evaluated on the same seeds
    expect(soups[0].rewards).toEqual(risky.rewards);
    expect(soups[4].rewards).toEqual(cautious.rewards);
    // R2 = Σv − α·Σa² for every model
    for (const m of r.models) {
      expect(m.rewards[0]).toBeCloseTo(m.sum_v, 9);
      expect(m.rewards[1]).toBeCloseTo(m.sum_v - m.sum_a2, 9);
    }
    // LMC gaps by hand; hypervolumes recomputed with the stated reference (below every model)
    for (const row of r.lmc.rows) {
      const l = row.lambda[1];
      for (let k = 0; k < 2; k++) expect(row.gaps[k]).toBeCloseTo(row.rewards[k] - ((1 - l) * risky.rewards[k] + l * cautious.rewards[k]), 9);
    }
    // beyond the experts' segment: the cross product with the segment, oriented towards higher rewards
    const d0 = cautious.rewards[0] - risky.rewards[0],
      d1 = cautious.rewards[1] - risky.rewards[1];
    for (const row of r.lmc.rows) {
      const cross = d0 * (row.rewards[1] - risky.rewards[1]) - d1 * (row.rewards[0] - risky.rewards[0]);
      const interior = row.lambda[1] > 0 && row.lambda[1] < 1;
      expect(row.beyond_segment).toBe(interior && cross * Math.sign(d0 - d1) > 0);
    }
    for (const m of r.models) for (let k = 0; k < 2; k++) expect(r.hypervolume.ref[k]).toBeLessThan(m.rewards[k]);
    expect(r.hypervolume.soups).toBeCloseTo(
      hypervolume(
        soups.map((s) => s.rewards),
        { ref: r.hypervolume.ref },
      ),
      6,
    );
    const morlSet = r.models.filter((m) => m.kind === 'expert' || m.kind === 'morl').map((m) => m.rewards);
    expect(r.hypervolume.morl).toBeCloseTo(hypervolume(morlSet, { ref: r.hypervolume.ref }), 6);
    expect(r.experts.ratio).toBeCloseTo(cautious.sum_a2 / risky.sum_a2, 12);
    expect(r.reading.join('\n')).toMatch(/reference point \[/);
    checkPaired(r);
    expect(r.protocol.finetune).toMatchObject(FINETUNE_DEFAULTS);
    // every fine-tune kept the pre-trained observation statistics bit for bit (pre-training moved them
    // off the prior, so equality means they stayed frozen through the fine-tune's rollouts)
    const pre = await ControlPolicy.load(join(out, 'pretrained.safetensors'));
    const pt = pre.tensors();
    expect(pt['obs_rms.count'].data[0]).toBeGreaterThan(100); // the prior's pseudo-count is 1e-4
    for (const run of ['risky', 'cautious', 'morl-0.5']) {
      const ex = await ControlPolicy.load(join(out, `${run}.safetensors`));
      const et = ex.tensors();
      for (const n of ['obs_rms.mean', 'obs_rms.var', 'obs_rms.count']) expect(Array.from(et[n].data), `${run} ${n}`).toEqual(Array.from(pt[n].data));
      expect(Array.from(et['actor_mean.0.weight'].data), run).not.toEqual(Array.from(pt['actor_mean.0.weight'].data));
      ex.dispose();
    }
    pre.dispose();
    const html = readFileSync(join(out, 'report.html'), 'utf8');
    expect(html).toContain('gaits.png');
    expect(html).toContain('LMC gaps per λ');
    expect(events.filter((e) => e.event === 'eval')).toHaveLength(1 + 3 + 5);
    expect(events.at(-1)!.event).toBe('finished');

    // a second run with the same settings reuses every policy and reproduces the evaluation
    const again: LocomotionEvent[] = [];
    const res2 = await runLocomotion(tiny(out), { onEvent: (e) => again.push(e) });
    expect(again.filter((e) => e.event === 'stage' && e.status === 'cached')).toHaveLength(4);
    expect(again.some((e) => e.event === 'update')).toBe(false);
    expect(res2.report.models).toEqual(r.models);

    // the fine-tunes train with finetune's settings, not pre-training's: another lr retrains them (the
    // pre-trained policy is reused), and at lr 1e-12 the actor stays the pre-trained one to float32 precision
    const third: LocomotionEvent[] = [];
    await runLocomotion({ ...tiny(out), finetune: { learning_rate: 1e-12 } }, { onEvent: (e) => third.push(e) });
    expect(third.filter((e) => e.event === 'stage' && e.status === 'cached').map((e) => (e as { stage: string }).stage)).toEqual(['pretrained']);
    const pre2 = await ControlPolicy.load(join(out, 'pretrained.safetensors'));
    const slow = await ControlPolicy.load(join(out, 'risky.safetensors'));
    const a = pre2.tensors()['actor_mean.0.weight'].data,
      b = slow.tensors()['actor_mean.0.weight'].data;
    let maxDiff = 0;
    for (let i = 0; i < a.length; i++) maxDiff = Math.max(maxDiff, Math.abs(a[i] - b[i]));
    expect(maxDiff).toBeLessThan(1e-6);
    pre2.dispose();
    slow.dispose();
  }, 180_000);

  it('the demo prints its plan with --dry-run and trains nothing', async () => {
    const lines: string[] = [];
    const res = await runLocomotionDemo({ dryRun: true, out: join(dir, 'dry'), log: (l) => lines.push(l) });
    expect(res).toBeUndefined();
    expect(lines.join('\n')).toMatch(/pre-train 400000 steps on v − 0.1·Σa²[\s\S]*150000 steps each: risky v, cautious v − 1·Σa², MORL v − 0.5·Σa²/);
    const ft = FINETUNE_DEFAULTS;
    expect(lines.join('\n')).toContain(
      `(lr ${ft.learning_rate} ${ft.anneal_lr ? 'annealed' : 'constant'}, entropy cost ${ft.ent_coef}, fresh critic, frozen observation statistics)`,
    );
    expect(lines.join('\n')).toContain('× 30 episodes');
    expect(existsSync(join(dir, 'dry', 'report.json'))).toBe(false);
  });

  it('rsoup demo --task locomotion --dry-run goes through the CLI', () => {
    const out = join(dir, 'cli');
    const r = spawnSync(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', 'demo', '--task', 'locomotion', '--dry-run', '--out', out], {
      encoding: 'utf8',
      cwd: new URL('..', import.meta.url).pathname,
    });
    expect(r.status, r.stderr).toBe(0);
    expect(r.stderr).toContain(`locomotion demo on HalfCheetah-v5 (8 envs, PPO batch 2048)`);
    expect(r.stderr).toContain(`report in ${out}`);
    expect(existsSync(out)).toBe(false);
  }, 60_000);

  it('bad settings are errors that name the field; an unknown env names the known ones', async () => {
    expect(() => parseLocomotion({ experts: { stepz: 3 } })).toThrow(SoupError);
    expect(() => parseLocomotion({ experts: { stepz: 3 } })).toThrow(/experts/);
    expect(() => parseLocomotion({ sweep: { lambdas: 1 } })).toThrow(/sweep\.lambdas/);
    expect(() => parseLocomotion({ sweep: { episodes: 1 } })).toThrow(/sweep\.episodes/);
    expect(() => parseLocomotion({ finetune: { learning_rate: 0 } })).toThrow(/finetune\.learning_rate/);
    expect(() => parseLocomotion({ finetune: { learning_rate: '1e-4' } })).toThrow(/finetune\.learning_rate/);
    expect(() => parseLocomotion({ finetune: { ent_coef: -1e-3 } })).toThrow(/finetune\.ent_coef/);
    expect(() => parseLocomotion({ finetune: { anneal_lr: 'no' } })).toThrow(/finetune\.anneal_lr/);
    expect(() => parseLocomotion({ finetune: { lr: 1e-4 } })).toThrow(/finetune\.lr: unknown key 'lr' \(accepted: learning_rate, anneal_lr, ent_coef\)/);
    expect(parseLocomotion({}).finetune).toEqual(FINETUNE_DEFAULTS);
    expect(parseLocomotion({ finetune: { ent_coef: 0 } }).finetune).toEqual({ ...FINETUNE_DEFAULTS, ent_coef: 0 });
    const err = await runLocomotion({ ...tiny(join(dir, 'bad')), env: { env: 'Humanoid-v5' } }).catch((e: unknown) => e);
    expect((err as SoupError).code).toBe('ERR_SOUP_INVALID_ARG');
    expect((err as SoupError).message).toMatch(/unknown env 'Humanoid-v5': expected one of HalfCheetah-v5, Hopper-v5/);
    expect(() => parseLocomotion({ env: { env: 'Hopper-v5' } })).toThrow(/env\.env: the locomotion experiment runs on HalfCheetah-v5/);
    expect(parseLocomotion({ env: { env: 'mo-halfcheetah-v5' } }).env.env).toBe('mo-halfcheetah-v5');
    expect(existsSync(join(dir, 'bad', 'report.json'))).toBe(false);
  });
});
