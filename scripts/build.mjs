#!/usr/bin/env node
// Builds TypeScript and both addons, incrementally: a no-op build takes a few seconds.
//   core addon  (node-gyp, binding.gyp)     -> build/Release/soup_core.node   (no libtorch)
//   torch addon (cmake-js, CMakeLists.txt)  -> build-torch/Release/soup_torch.node
import { spawnSync } from 'node:child_process';
import { existsSync, statSync, readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { cpus } from 'node:os';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const bin = (name) => join(root, 'node_modules', '.bin', name);
const jobs = String(Math.max(1, cpus().length));
const args = process.argv.slice(2);
// --addons: the addons only, not the CUDA test and bench executables (what `npm run demo` needs; the tests
// build everything)
const addonsOnly = args.includes('--addons');
const only = args.filter((a) => !a.startsWith('--')); // optional subset: ts core torch

function run(cmd, args, env = {}) {
  const t0 = Date.now();
  const r = spawnSync(cmd, args, { stdio: 'inherit', cwd: root, env: { ...process.env, ...env } });
  if (r.status !== 0) {
    console.error(`build: '${cmd} ${args.join(' ')}' failed (exit ${r.status})`);
    process.exit(r.status ?? 1);
  }
  return Date.now() - t0;
}

function newest(paths) {
  let t = 0;
  const walk = (p) => {
    if (!existsSync(p)) return;
    const s = statSync(p);
    if (s.isDirectory()) for (const e of readdirSync(p)) walk(join(p, e));
    else t = Math.max(t, s.mtimeMs);
  };
  paths.forEach((p) => walk(join(root, p)));
  return t;
}

// Build against the installed Node headers (npm's `nodedir`), never a download.
const nodedir = process.env.npm_config_nodedir || (existsSync('/usr/include/node/node_api.h') ? '/usr' : undefined);
const gypArgs = nodedir ? [`--nodedir=${nodedir}`] : [];

const want = (what) => only.length === 0 || only.includes(what);

if (want('ts')) run(bin('tsc'), ['-p', 'tsconfig.json']);

if (want('core')) {
  const out = join(root, 'build', 'Release', 'soup_core.node');
  if (!existsSync(join(root, 'build', 'Makefile')) || newest(['binding.gyp']) > statSync(join(root, 'build', 'Makefile')).mtimeMs) {
    run(bin('node-gyp'), ['configure', '--release', ...gypArgs]);
  }
  if (!existsSync(out) || newest(['native/core', 'native/addon/core', 'native/addon/common', 'binding.gyp']) > statSync(out).mtimeMs) {
    run(bin('node-gyp'), ['build', '--release', '-j', jobs, ...gypArgs]);
  }
}

if (want('torch')) {
  const dir = join(root, 'build-torch');
  if (!existsSync(join(dir, 'CMakeCache.txt'))) {
    run(bin('cmake-js'), ['configure', '--out', 'build-torch', '--config', 'Release']);
  }
  // cmake itself knows what is stale; this is fast when nothing changed.
  run('cmake', ['--build', dir, '--config', 'Release', '-j', jobs, ...(addonsOnly ? ['--target', 'soup_torch'] : [])]);
}
