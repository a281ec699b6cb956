// SPDX-License-Identifier: MIT
// The package as a consumer gets it: `npm pack`, then `npm install` of the tarball in an empty folder with
// no network beyond the registry (onnxruntime-node's NuGet fetch is pointed at a closed port, so it fails
// as it does offline), then interpolate() and a file merge() at once, and `rsoup doctor` naming the torch
// addon's state and the command that builds it. The torch build at install is skipped (RSOUP_SKIP_TORCH:
// it takes minutes), which is the state of a machine without libtorch.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ROOT } from './helpers/cli.js';
import { needs } from './helpers/fixtures.js';

const d = mkdtempSync(join(tmpdir(), 'rsoup-pack-'));
afterAll(() => rmSync(d, { recursive: true, force: true }));

/** The environment without the outer npm's npm_* variables (npm_config_local_prefix would point the inner
 *  npm at this checkout). */
function cleanEnv(extra: Record<string, string>): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!/^npm_/i.test(k) && k !== 'ONNXRUNTIME_NODE_INSTALL' && k !== 'INIT_CWD') env[k] = v;
  return { ...env, ...extra };
}

const CONSUMER = `import { interpolate, merge, writeSafetensors, readSafetensors } from 'rewarded-soups';
import { onnxReward } from 'rewarded-soups/rewards';
const t = (...v) => ({ dtype: 'float32', shape: [v.length], data: Float32Array.from(v) });
const mid = await interpolate([{ w: t(1, 2, 3) }, { w: t(3, 2, 1) }], [0.25, 0.75]);
await writeSafetensors('a.safetensors', { w: t(1, 2, 3, 4) });
await writeSafetensors('b.safetensors', { w: t(4, 3, 2, 1) });
const rep = await merge({ sources: ['a.safetensors', 'b.safetensors'], weights: [0.5, 0.5], out: 'soup.safetensors' });
const soup = (await readSafetensors('soup.safetensors')).tensors.w;
let onnx = 'loaded';
try { await onnxReward({ model: 'rm.onnx', tokenizer: 'tokenizer.json' }); } catch (e) { onnx = e.code + ': ' + e.message; }
console.log(JSON.stringify({ mid: Array.from(mid.w.data), soup: Array.from(soup.data), tensors: rep.tensors, onnx }));
`;

describe('the packed package, installed as a consumer installs it', () => {
  it('npm install of the tarball succeeds without network beyond the registry; interpolate() and merge() work at once; rsoup doctor names the torch addon state and `npx rsoup setup`', async (ctx) => {
    const pack = spawnSync('npm', ['pack', '--pack-destination', d], { cwd: ROOT, encoding: 'utf8', env: cleanEnv({}), timeout: 240_000 });
    expect(pack.status, pack.stderr).toBe(0);
    expect(existsSync(join(ROOT, 'prebuilds')), 'postpack removes the copied prebuilt').toBe(false);
    const tgz = join(d, readdirSync(d).find((f) => f.endsWith('.tgz'))!);
    const files = spawnSync('tar', ['tzf', tgz], { encoding: 'utf8' }).stdout.split('\n');
    expect(files).toContain(`package/prebuilds/${process.platform}-${process.arch}/soup_core.node`);
    expect(files.filter((f) => /^package\/(build|build-torch|node_modules)\//.test(f))).toEqual([]);

    const app = join(d, 'app');
    mkdirSync(app);
    writeFileSync(join(app, 'package.json'), JSON.stringify({ name: 'consumer', version: '1.0.0', private: true, type: 'module' }));
    const env = cleanEnv({ RSOUP_SKIP_TORCH: '1', GLOBAL_AGENT_HTTPS_PROXY: 'http://127.0.0.1:9', GLOBAL_AGENT_HTTP_PROXY: 'http://127.0.0.1:9' });
    const inst = spawnSync('npm', ['install', tgz, '--no-audit', '--no-fund', '--prefer-offline', '--foreground-scripts'], {
      cwd: app,
      encoding: 'utf8',
      env,
      timeout: 300_000,
    });
    const log = `${inst.stdout}\n${inst.stderr}`;
    needs(
      ctx,
      inst.status === 0 || !/E(NOTFOUND|AI_AGAIN|TIMEDOUT|CONNRESET)\b.*registry|network request to https?:\/\/registry/i.test(log),
      'the npm registry is not reachable from here',
    );
    expect(inst.status, log).toBe(0);
    expect(log).toMatch(/rewarded-soups: core addon: prebuilt for linux-x64 \(N-API 8\)/);
    expect(log).toMatch(/rewarded-soups: torch addon: not built .*'npx rsoup setup' builds it/);
    // onnxruntime-node is optional: its failed CUDA download drops it and the install goes on
    const pkg = JSON.parse(readFileSync(join(app, 'node_modules', 'rewarded-soups', 'package.json'), 'utf8'));
    expect(pkg.optionalDependencies).toHaveProperty('onnxruntime-node');
    expect(pkg.dependencies).not.toHaveProperty('onnxruntime-node');

    writeFileSync(join(app, 'try.mjs'), CONSUMER);
    const r = spawnSync(process.execPath, ['try.mjs'], { cwd: app, encoding: 'utf8', env });
    expect(r.status, r.stderr).toBe(0);
    const out = JSON.parse(r.stdout);
    expect(out.mid).toEqual([2.5, 2, 1.5]);
    expect(out.soup).toEqual([2.5, 2.5, 2.5, 2.5]);
    expect(out.tensors).toBe(1);
    // the ONNX reward loads onnxruntime-node lazily: absent, it says how to install it
    if (!existsSync(join(app, 'node_modules', 'onnxruntime-node')))
      expect(out.onnx).toMatch(/^ERR_SOUP_NATIVE_LOAD: .*optional dependency onnxruntime-node.*npm install onnxruntime-node/);

    const rsoup = join(app, 'node_modules', '.bin', 'rsoup');
    const doc = spawnSync(rsoup, ['doctor'], { cwd: app, encoding: 'utf8', env });
    expect(doc.status, doc.stderr).toBe(0);
    expect(doc.stderr).toMatch(/torch addon: not built; build it with: npx rsoup setup/);
    const json = JSON.parse(spawnSync(rsoup, ['doctor', '--json'], { cwd: app, encoding: 'utf8', env }).stdout);
    expect(json.core.simd).toBeTruthy();
    expect(json.torch).toMatchObject({ state: 'not built', build: expect.stringContaining('npx rsoup setup') });
    expect(spawnSync(rsoup, ['setup', '--help'], { cwd: app, encoding: 'utf8', env }).stdout).toMatch(/torch addon/);
  }, 600_000);
});
