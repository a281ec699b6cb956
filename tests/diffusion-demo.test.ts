// SPDX-License-Identifier: MIT
// The text-to-image experiment end to end on a tiny UNet (seconds): every stage runs, the report has the
// front, MORL's point, both hypervolumes, LMC gaps, the expert/control checks and the image grid; the
// base is cached on a second run; `rsoup demo --task diffusion --dry-run` prints the plan; bad settings
// fail before any training.
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { PNG } from 'pngjs';
import { DIFFUSION_DEMO, expertChecks, runDiffusionExperiment, type DiffusionEvent, type DiffusionSettings } from '../src/pipeline/tasks/diffusion/index.js';
import { rsoup } from './helpers/cli.js';

const tmp = mkdtempSync(join(tmpdir(), 'rsoup-diffusion-demo-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const tiny = (out: string): DiffusionSettings => ({
  ...structuredClone(DIFFUSION_DEMO),
  name: 'tiny',
  output: out,
  threads: 1,
  unet: { imageSize: 8, ch0: 8, ch1: 16, tembDim: 16, textDim: 8, heads: 2, groups: 4, T: 50 },
  pretrain: { steps: 3, batch_size: 8, learning_rate: 1e-3, ema: 0.9 },
  samples: { count: 16, ddim_steps: 3, guidance: 1 },
  finetune: { steps: 2, batch_size: 4, learning_rate: 1e-3, ema: 0, concurrency: 2 },
  eval: { captions: 4, ddim_steps: 3, seed: 5, lambdas: 3, grid_captions: 2 },
});

describe('diffusion experiment', () => {
  it('runs every stage and writes the report with the grid', async () => {
    const out = join(tmp, 'run');
    const events: DiffusionEvent[] = [];
    const res = await runDiffusionExperiment(tiny(out), { onEvent: (e) => events.push(e) });
    expect(events.filter((e) => e.event === 'stage' && e.status === 'done').map((e) => (e as { stage: string }).stage)).toEqual([
      'base',
      'samples',
      'experts',
      'sweep',
      'report',
    ]);
    const r = JSON.parse(readFileSync(res.reportPath, 'utf8'));
    expect(r.rewards).toEqual(['colourfulness', 'brightness']);
    const kinds = r.models.map((m: { kind: string }) => m.kind);
    expect(kinds.filter((k: string) => k === 'soup').length).toBe(3);
    expect(kinds.filter((k: string) => k === 'expert').length).toBe(2);
    expect(kinds.filter((k: string) => k === 'morl').length).toBe(1);
    expect(typeof r.hypervolume.soups).toBe('number');
    expect(typeof r.hypervolume.morl).toBe('number');
    expect(r.lmc.rows.length).toBe(3);
    // soups at λ = eᵢ are the experts
    const soup0 = r.models.find((m: { name: string }) => m.name === 'soup λ=[1, 0]');
    expect(soup0.rewards).toEqual(r.models.find((m: { name: string }) => m.name === 'expert colourfulness').rewards);
    expect(r.diffusion.expert_checks.length).toBe(2);
    expect(typeof r.diffusion.expert_checks[0].paired_z_vs_control).toBe('number');
    expect(r.diffusion.control.rewards.length).toBe(2);
    expect(r.diffusion.finetune_set.fraction).toBeGreaterThan(0);
    expect(r.diffusion.finetune_set.fraction).toBeLessThan(0.5);
    for (const f of ['report.html', 'front.png', 'rewards-vs-lambda.png', 'grid.png', 'grid.svg', 'base/model.safetensors', 'base/config.json'])
      expect(existsSync(join(out, f))).toBe(true);
    const grid = PNG.sync.read(readFileSync(join(out, 'grid.png')));
    expect(grid.width).toBeGreaterThan(200);
    const html = readFileSync(res.htmlPath, 'utf8');
    expect(html).toContain('grid.png');
    expect(html).toContain('LMC gap');

    // Second run: the base is cached, and every number is the same (seeded end to end).
    const ev2: DiffusionEvent[] = [];
    const res2 = await runDiffusionExperiment(tiny(out), { onEvent: (e) => ev2.push(e) });
    expect(ev2.some((e) => e.event === 'stage' && e.stage === 'base' && e.status === 'cached')).toBe(true);
    const r2 = JSON.parse(readFileSync(res2.reportPath, 'utf8'));
    expect(r2.models.map((m: { rewards: number[] }) => m.rewards)).toEqual(r.models.map((m: { rewards: number[] }) => m.rewards));
  }, 120_000);

  it('compares each expert with the initialisation and the control, paired over captions', () => {
    const e = (kind: string, name: string, a: number[], b: number[]) => {
      const ms = [a, b].map((x) => x.reduce((p, q) => p + q, 0) / x.length);
      const se = [a, b].map((x, k) => Math.sqrt(x.reduce((p, q) => p + (q - ms[k]) ** 2, 0) / (x.length - 1) / x.length));
      return { kind, name, rewards: ms, stderr: se, samples: [], images: [], scores: [a, b] } as never;
    };
    const checks = expertChecks(
      ['r1', 'r2'],
      [
        e('init', 'init', [1, 5, 9], [0, 0, 0]),
        e('expert', 'e1', [2, 7, 10], [0, 0, 0]),
        e('expert', 'e2', [1, 5, 9], [1, 2, 3]),
        e('control', 'control', [1.5, 6, 9.5], [1, 2, 4]),
      ],
    );
    // e1 − init per caption: 1, 2, 1 → mean 4/3, sd √(1/3), se √(1/9) = 1/3 → z = 4
    expect(checks[0].paired_z_vs_init).toBeCloseTo(4, 12);
    // e1 − control: 0.5, 1, 0.5 → mean 2/3, se 1/6 → z = 4
    expect(checks[0].paired_z_vs_control).toBeCloseTo(4, 12);
    expect(checks[0].holds).toBe(true);
    // e2 on r2: 2 vs control 7/3 → not above the control
    expect(checks[1].above_init).toBe(true);
    expect(checks[1].above_control).toBe(false);
    expect(checks[1].holds).toBe(false);
  });

  it('refuses unknown rewards and bad MORL weights before training', async () => {
    await expect(runDiffusionExperiment({ ...tiny(join(tmp, 'bad')), rewards: ['colourfulness', 'aesthetic'] })).rejects.toThrow(
      /reward 'aesthetic': unknown image reward/,
    );
    await expect(runDiffusionExperiment({ ...tiny(join(tmp, 'bad')), morl: { mu: [[0.7, 0.7]] } })).rejects.toThrow(
      /morl\.mu\[0\]: expected 2 weights >= 0 summing to 1/,
    );
    expect(existsSync(join(tmp, 'bad', 'base'))).toBe(false);
  });

  it('rsoup demo --task diffusion --dry-run prints the plan', async () => {
    const r = rsoup(['demo', '--task', 'diffusion', '--dry-run', '--json', '--out', join(tmp, 'dry')]);
    expect(r.code).toBe(0);
    const plan = JSON.parse(r.stdout.trim().split('\n')[0]);
    expect(plan.stages.map((s: { stage: string }) => s.stage)).toEqual(['base', 'samples', 'experts', 'sweep']);
    expect(existsSync(join(tmp, 'dry'))).toBe(false);
  }, 60_000);
});
