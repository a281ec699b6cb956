// SPDX-License-Identifier: MIT
// `rsoup run` takes every task through the one task table (src/pipeline/tasks/index.ts): a locomotion and a
// diffusion config (tiny, seconds) run from YAML through the CLI and give the same report numbers as the
// same settings run through the library; config errors name the file and field; flags that only text
// experiments take are refused by name.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { DIFFUSION_DEMO } from '../src/pipeline/tasks/diffusion/index.js';
import { runDiffusionExperiment } from '../src/pipeline/tasks/diffusion/run.js';
import { runLocomotion, type LocomotionInput } from '../src/pipeline/tasks/locomotion/index.js';
import { diffusionSettings, taskOf } from '../src/pipeline/tasks/index.js';
import { rsoup } from './helpers/cli.js';
import { microLocomotion } from './helpers/micro.js';

const dir = mkdtempSync(join(tmpdir(), 'rsoup-tasks-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

type Model = { name: string; rewards: number[] };
const models = (file: string): Model[] =>
  (JSON.parse(readFileSync(file, 'utf8')) as { models: Model[] }).models.map((m) => ({ name: m.name, rewards: m.rewards }));

describe('rsoup run with a task other than text', () => {
  it('runs a locomotion config: the report equals the library run with the same settings', async () => {
    const settings: LocomotionInput = microLocomotion(join(dir, 'loco-cli'));
    const file = join(dir, 'loco.yml');
    writeFileSync(file, stringify({ task: 'locomotion', name: 'loco-tiny', ...settings }));
    const r = rsoup(['run', file]);
    expect(r.code, r.stderr).toBe(0);
    const lib = await runLocomotion({ ...settings, name: 'loco-tiny', output: join(dir, 'loco-lib') });
    const cli = models(join(dir, 'loco-cli', 'report.json'));
    expect(cli.length).toBe(lib.report.models.length);
    expect(cli).toEqual(lib.report.models.map((m: Model) => ({ name: m.name, rewards: m.rewards })));
    // a flag only text experiments take is refused by name, before anything runs
    const slurm = rsoup(['run', file, '--executor', 'slurm']);
    expect(slurm.code).toBe(2);
    expect(slurm.stderr).toContain('--executor: a locomotion experiment runs here, in one process');
  }, 300_000);

  it('runs a diffusion config: the report equals the library run with the same settings', async () => {
    const settings = {
      name: 'diffusion-tiny',
      threads: 1,
      unet: { imageSize: 8, ch0: 8, ch1: 16, tembDim: 16, textDim: 8, heads: 2, groups: 4, T: 50 },
      pretrain: { steps: 2, batch_size: 8 },
      samples: { count: 8, ddim_steps: 2 },
      finetune: { steps: 1, batch_size: 4 },
      eval: { captions: 4, ddim_steps: 2, lambdas: 3, grid_captions: 2 },
    };
    const file = join(dir, 'diffusion.yml');
    writeFileSync(file, stringify({ task: 'diffusion', output: join(dir, 'diff-cli'), ...settings }));
    const r = rsoup(['run', file]);
    expect(r.code, r.stderr).toBe(0);
    const lib = await runDiffusionExperiment(diffusionSettings({ ...settings, output: join(dir, 'diff-lib') }, 'test'));
    expect(models(join(dir, 'diff-cli', 'report.json'))).toEqual(models(lib.reportPath));
  }, 300_000);

  it('merges a diffusion config over the demo settings, strictly', () => {
    const s = diffusionSettings({ pretrain: { steps: 7 }, rewards: ['brightness', 'colourfulness'] }, 'x.yml');
    expect(s.pretrain).toEqual({ ...DIFFUSION_DEMO.pretrain, steps: 7 });
    expect(s.rewards).toEqual(['brightness', 'colourfulness']);
    expect(s.finetune).toEqual(DIFFUSION_DEMO.finetune);
    expect(() => diffusionSettings({ pretrain: { stpes: 7 } }, 'x.yml')).toThrow("x.yml: pretrain.stpes: unknown key 'stpes', did you mean 'steps'?");
    expect(() => diffusionSettings({ pretrain: 3 }, 'x.yml')).toThrow('x.yml: pretrain: expected a mapping');
    expect(() => diffusionSettings({ rewards: 'brightness' }, 'x.yml')).toThrow('x.yml: rewards: expected a list, got "brightness"');
    expect(() => diffusionSettings({ seed: '1' }, 'x.yml')).toThrow('x.yml: seed: expected a number, got "1"');
  });

  it('names an unknown task, and a text config may say task: text', () => {
    expect(() => taskOf({ task: 'robotics' }, 'x.yml')).toThrow('x.yml: task: unknown task "robotics" (tasks: text, locomotion, diffusion)');
    expect(taskOf({ name: 'a' }, 'x.yml')).toEqual({ task: 'text', config: { name: 'a' } });
    const file = join(dir, 'bad-task.yml');
    writeFileSync(file, 'task: robotics\n');
    const r = rsoup(['run', file]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('task: unknown task "robotics"');
  }, 120_000);
});
