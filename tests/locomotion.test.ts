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
import { fineTuneStart, parseLocomotion, runLocomotion, runLocomotionDemo, type LocomotionEvent, type LocomotionInput } from '../src/pipeline/tasks/locomotion/index.js';
import { ControlPolicy } from '../src/train/control.js';

const dir = mkdtempSync(join(tmpdir(), 'rsoup-loco-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const tiny = (out: string): LocomotionInput => ({
  output: out,
  env: { num_envs: 4, max_episode_steps: 60 },
  ppo: { num_steps: 32, num_minibatches: 4, update_epochs: 2 },
  pretrain: { steps: 256 },
  experts: { steps: 128 },
  sweep: { lambdas: 5, episodes: 3, seed: 7 },
  render: { every: 10, frames: 3 },
});

describe('fine-tuning starts (App. H)', () => {
  it('keep the pre-trained actor, log-std and observation statistics, and take a fresh critic', () => {
    const pre = ControlPolicy.create({ obsDim: 17, actDim: 6, hidden: [8, 8], seed: 1 });
    const fresh = ControlPolicy.create({ obsDim: 17, actDim: 6, hidden: [8, 8], seed: 2 });
    const p = pre.tensors(), f = fresh.tensors();
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
    for (const f of ['report.json', 'report.html', 'front.svg', 'front.png', 'gaits.png', 'gaits.svg', 'rewards-vs-lambda.svg', 'risky.safetensors', 'cautious.safetensors', 'morl-0.5.safetensors', 'pretrained.safetensors', 'timings.json'])
      expect(existsSync(join(out, f))).toBe(true);
    const soups = r.models.filter((m) => m.kind === 'soup');
    expect(soups.map((s) => s.lambda![1])).toEqual([0, 0.25, 0.5, 0.75, 1]);
    const risky = r.models.find((m) => m.name === 'risky')!, cautious = r.models.find((m) => m.name === 'cautious')!;
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
    const d0 = cautious.rewards[0] - risky.rewards[0], d1 = cautious.rewards[1] - risky.rewards[1];
    for (const row of r.lmc.rows) {
      const cross = d0 * (row.rewards[1] - risky.rewards[1]) - d1 * (row.rewards[0] - risky.rewards[0]);
      const interior = row.lambda[1] > 0 && row.lambda[1] < 1;
      expect(row.beyond_segment).toBe(interior && cross * Math.sign(d0 - d1) > 0);
    }
    for (const m of r.models) for (let k = 0; k < 2; k++) expect(r.hypervolume.ref[k]).toBeLessThan(m.rewards[k]);
    expect(r.hypervolume.soups).toBeCloseTo(hypervolume(soups.map((s) => s.rewards), { ref: r.hypervolume.ref }), 6);
    const morlSet = r.models.filter((m) => m.kind === 'expert' || m.kind === 'morl').map((m) => m.rewards);
    expect(r.hypervolume.morl).toBeCloseTo(hypervolume(morlSet, { ref: r.hypervolume.ref }), 6);
    expect(r.experts.ratio).toBeCloseTo(cautious.sum_a2 / risky.sum_a2, 12);
    expect(r.reading.join('\n')).toMatch(/reference point \[/);
    // the soups' statistics are the pre-trained ones; the experts kept them frozen
    const pre = await ControlPolicy.load(join(out, 'pretrained.safetensors'));
    const ex = await ControlPolicy.load(join(out, 'cautious.safetensors'));
    expect(Array.from(ex.tensors()['obs_rms.mean'].data)).toEqual(Array.from(pre.tensors()['obs_rms.mean'].data));
    expect(Array.from(ex.tensors()['actor_mean.0.weight'].data)).not.toEqual(Array.from(pre.tensors()['actor_mean.0.weight'].data));
    pre.dispose();
    ex.dispose();
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
  }, 180_000);

  it('the demo prints its plan with --dry-run and trains nothing', async () => {
    const lines: string[] = [];
    const res = await runLocomotionDemo({ dryRun: true, out: join(dir, 'dry'), log: (l) => lines.push(l) });
    expect(res).toBeUndefined();
    expect(lines.join('\n')).toMatch(/pre-train 400000 steps on v − 0.1·Σa²[\s\S]*150000 steps each: risky v, cautious v − 1·Σa², MORL v − 0.5·Σa²/);
    expect(existsSync(join(dir, 'dry', 'report.json'))).toBe(false);
  });

  it('rsoup demo --task locomotion --dry-run goes through the CLI', () => {
    const out = join(dir, 'cli');
    const r = spawnSync(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', 'demo', '--task', 'locomotion', '--dry-run', '--out', out], { encoding: 'utf8', cwd: new URL('..', import.meta.url).pathname });
    expect(r.status, r.stderr).toBe(0);
    expect(r.stderr).toContain(`locomotion demo on HalfCheetah-v5 (8 envs, PPO batch 2048)`);
    expect(r.stderr).toContain(`report in ${out}`);
    expect(existsSync(out)).toBe(false);
  }, 60_000);

  it('bad settings are errors that name the field; an unknown env names the known ones', async () => {
    expect(() => parseLocomotion({ experts: { stepz: 3 } })).toThrow(SoupError);
    expect(() => parseLocomotion({ experts: { stepz: 3 } })).toThrow(/experts/);
    expect(() => parseLocomotion({ sweep: { lambdas: 1 } })).toThrow(/sweep\.lambdas/);
    const err = await runLocomotion({ ...tiny(join(dir, 'bad')), env: { env: 'Humanoid-v5' } }).catch((e: unknown) => e);
    expect((err as SoupError).code).toBe('ERR_SOUP_INVALID_ARG');
    expect((err as SoupError).message).toMatch(/unknown env 'Humanoid-v5': expected one of HalfCheetah-v5, Hopper-v5/);
    expect(() => parseLocomotion({ env: { env: 'Hopper-v5' } })).toThrow(/env\.env: the locomotion experiment runs on HalfCheetah-v5/);
    expect(parseLocomotion({ env: { env: 'mo-halfcheetah-v5' } }).env.env).toBe('mo-halfcheetah-v5');
    expect(existsSync(join(dir, 'bad', 'report.json'))).toBe(false);
  });
});
