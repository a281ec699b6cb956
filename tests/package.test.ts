import { describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT } from './helpers/cli.js';

// `npm test` builds dist/ first (scripts/bootstrap.mjs), so this checks the package as users import it.
describe('package', () => {
  it("self-references through exports: import { merge, interpolate } from 'rewarded-soups'", () => {
    const code = `import { merge, interpolate, readSafetensors, SoupError } from 'rewarded-soups';
      const ok = [merge, interpolate, readSafetensors].every((f) => typeof f === 'function') && typeof SoupError === 'function';
      const out = await interpolate([{ w: { dtype: 'float32', shape: [3], data: Float32Array.of(1, 2, 3) } }, { w: { dtype: 'float32', shape: [3], data: Float32Array.of(3, 2, 1) } }], [0.25, 0.75]);
      console.log(JSON.stringify({ ok, w: Array.from(out.w.data) }));`;
    const r = spawnSync(process.execPath, ['--input-type=module', '-e', code], { cwd: ROOT, encoding: 'utf8' });
    expect(r.status, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)).toEqual({ ok: true, w: [2.5, 2, 1.5] });
  });

  it("subpaths: import { CausalLM } from 'rewarded-soups/train' (and /rewards, /pipeline, /envs, /report, /serve), types first", () => {
    const code = `import { CausalLM, PPOTrainer } from 'rewarded-soups/train';
      const subs = await Promise.all(['rewards', 'pipeline', 'envs', 'report', 'serve'].map((s) => import('rewarded-soups/' + s)));
      console.log(JSON.stringify({ train: typeof CausalLM === 'function' && typeof PPOTrainer === 'function', subs: subs.map((m) => Object.keys(m).length > 0), report: typeof subs[3].frontPlot, serve: typeof subs[4].serve }));`;
    const r = spawnSync(process.execPath, ['--input-type=module', '-e', code], { cwd: ROOT, encoding: 'utf8' });
    expect(r.status, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)).toEqual({ train: true, subs: [true, true, true, true, true], report: 'function', serve: 'function' });
    const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8'));
    for (const s of ['train', 'rewards', 'pipeline', 'envs', 'report', 'serve']) expect(Object.keys(pkg.exports[`./${s}`])[0], s).toBe('types');
  });

  it('the root holds soup, io, pareto and the errors only; the other areas are subpaths', () => {
    const code = `const root = await import('rewarded-soups');
      const has = (n) => n in root;
      console.log(JSON.stringify({ soup: ['merge', 'interpolate', 'prepareInterpolation'].every(has), io: ['readSafetensors', 'saveModelDir', 'readPeftAdapter'].every(has), pareto: ['paretoFront', 'hypervolume', 'lmcGaps', 'analyse'].every(has), errors: has('SoupError'), moved: ['CausalLM', 'vaderReward', 'runExperiment', 'VecEnv', 'frontPlot', 'serve', 'torchAddon'].filter(has) }));`;
    const r = spawnSync(process.execPath, ['--input-type=module', '-e', code], { cwd: ROOT, encoding: 'utf8' });
    expect(r.status, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)).toEqual({ soup: true, io: true, pareto: true, errors: true, moved: [] });
  });

  it('declares types first in the exports map, a bin, and the native build files', () => {
    const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8'));
    expect(Object.keys(pkg.exports['.'])[0]).toBe('types');
    expect(pkg.bin.rsoup).toBe('dist/cli/main.js');
    expect(pkg.files).toEqual(expect.arrayContaining(['native/**', 'binding.gyp', 'CMakeLists.txt']));
    expect(pkg.binary.napi_versions).toEqual([8]);
  });
});
