#!/usr/bin/env node
// The native addons of an installed package (as sharp and better-sqlite3 do it):
//   core addon   a prebuilt ships in prebuilds/<platform>-<arch>/soup_core.node (N-API 8, so any Node >= 20);
//                where none matches or it does not load (another libc), it is built from source with
//                node-gyp; no compiler gives a clear message and a failed install.
//   torch addon  built from source (cmake) when libtorch is found; else skipped with a message, and
//                `rsoup setup` builds it later. Never fails the install.
// Runs as the package's `install` script. In the project's own checkout (not under node_modules) it does
// nothing: `npm run build` (scripts/build.mjs) builds there. `node scripts/install.mjs --setup` (what
// `rsoup setup` runs) builds whatever is missing, the torch addon included, and fails when it cannot.
// Environment: RSOUP_SKIP_TORCH=1 skips the torch build at install; RSOUP_BUILD_FROM_SOURCE=1 ignores
// the prebuilt core addon.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { cpus } from 'node:os';
import { dirname, join, sep } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const require = createRequire(join(root, 'package.json'));
const setup = process.argv.includes('--setup');
const jobs = String(Math.max(1, cpus().length));
const say = (msg) => console.error(`rewarded-soups: ${msg}`);
const platform = `${process.platform}-${process.arch}`;

/** Loads an addon in a child process (a bad one can abort, and this process must report, not crash). */
function loads(file) {
  if (!existsSync(file)) return { ok: false, why: 'not present' };
  const r = spawnSync(process.execPath, ['-e', `require(${JSON.stringify(file)}).info()`], { encoding: 'utf8' });
  return r.status === 0
    ? { ok: true }
    : {
        ok: false,
        why:
          (r.stderr || `exit ${r.status}`)
            .trim()
            .split('\n')
            .find((l) => /Error|error/.test(l)) ?? `exit ${r.status}`,
      };
}

function run(cmd, args, env = {}) {
  const r = spawnSync(cmd, args, { cwd: root, stdio: ['ignore', 'inherit', 'inherit'], env: { ...process.env, ...env } });
  return r.status === 0;
}

const has = (cmd, args = ['--version']) => spawnSync(cmd, args, { stdio: 'ignore' }).status === 0;

/** Node's own headers, so node-gyp and cmake never download them. */
function nodeInclude() {
  const cands = [
    process.env.npm_config_nodedir && join(process.env.npm_config_nodedir, 'include', 'node'),
    join(dirname(process.execPath), '..', 'include', 'node'),
    '/usr/include/node',
  ].filter(Boolean);
  return cands.find((d) => existsSync(join(d, 'node_api.h')));
}

function nodeGyp() {
  const cands = [process.env.npm_config_node_gyp];
  try {
    cands.push(require.resolve('node-gyp/bin/node-gyp.js'));
  } catch {}
  cands.push(join(dirname(process.execPath), '..', 'lib', 'node_modules', 'npm', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js'));
  return cands.find((p) => p && existsSync(p));
}

function ensureCore() {
  const built = join(root, 'build', 'Release', 'soup_core.node');
  const prebuilt = join(root, 'prebuilds', platform, 'soup_core.node');
  if (loads(built).ok) return say(`core addon: built from source (${built})`);
  if (!process.env.RSOUP_BUILD_FROM_SOURCE) {
    const p = loads(prebuilt);
    if (p.ok) return say(`core addon: prebuilt for ${platform} (N-API 8)`);
    say(
      existsSync(prebuilt)
        ? `the prebuilt core addon for ${platform} does not load here (${p.why}): building from source`
        : `no prebuilt core addon for ${platform}: building from source`,
    );
  }
  const missing = [
    ['c++', 'a C++20 compiler (g++ 10+ or clang)'],
    ['make', 'make'],
    ['python3', 'python3 (node-gyp runs gyp)'],
  ]
    .filter(([c]) => !has(c))
    .map(([, what]) => what);
  const gyp = nodeGyp();
  if (!gyp) missing.push('node-gyp (it ships with npm)');
  if (missing.length) {
    say(
      `cannot build the core addon: missing ${missing.join(', ')}.\n  Install them (Debian/Ubuntu: apt-get install -y g++ make python3) and reinstall, or run 'npx rsoup setup'.`,
    );
    process.exit(1);
  }
  const inc = nodeInclude();
  const args = [gyp, 'rebuild', '--release', '-j', jobs, ...(inc ? [`--nodedir=${join(inc, '..', '..')}`] : [])];
  if (!run(process.execPath, args) || !loads(built).ok) {
    say(`building the core addon from source failed (see node-gyp's output above); 'npx rsoup doctor' reports what loads`);
    process.exit(1);
  }
  say(`core addon: built from source (${built})`);
}

/** libtorch's CMake package, where Debian (libtorch-dev), a LIBTORCH unzip or pip's torch put it. */
function findTorch() {
  const cands = [process.env.Torch_DIR, process.env.LIBTORCH && join(process.env.LIBTORCH, 'share', 'cmake', 'Torch')];
  for (const lib of ['/usr/lib/x86_64-linux-gnu', '/usr/lib/aarch64-linux-gnu', '/usr/lib', '/usr/local/lib']) cands.push(join(lib, 'cmake', 'Torch'));
  cands.push('/usr/share/cmake/Torch', '/usr/local/libtorch/share/cmake/Torch', '/opt/libtorch/share/cmake/Torch');
  return cands.find((d) => d && existsSync(join(d, 'TorchConfig.cmake')));
}

function buildTorch(torchDir) {
  const cmakeJs = join(root, 'node_modules', '.bin', 'cmake-js');
  if (existsSync(cmakeJs) && existsSync(join(root, 'scripts', 'build.mjs')) && !root.split(sep).includes('node_modules')) {
    return run(process.execPath, [join(root, 'scripts', 'build.mjs'), 'torch']); // the project's checkout
  }
  const inc = nodeInclude();
  let napi;
  try {
    napi = require('node-addon-api').include_dir.replace(/^"|"$/g, '');
  } catch {}
  if (!inc || !napi) {
    say(`cannot build the torch addon: ${!inc ? "Node's headers (node_api.h) were not found beside this node" : 'node-addon-api is not installed'}`);
    return false;
  }
  const out = join(root, 'build-torch');
  const configure = [
    '-S',
    root,
    '-B',
    out,
    '-DCMAKE_BUILD_TYPE=Release',
    `-DCMAKE_JS_INC=${inc};${napi}`,
    '-DCMAKE_CXX_FLAGS=-DBUILDING_NODE_EXTENSION',
    `-DCMAKE_LIBRARY_OUTPUT_DIRECTORY=${join(out, 'Release')}`,
    `-DTorch_DIR=${torchDir}`,
  ];
  return run('cmake', configure) && run('cmake', ['--build', out, '--config', 'Release', '-j', jobs]);
}

function ensureTorch() {
  const built = join(root, 'build-torch', 'Release', 'soup_torch.node');
  const later = "'npx rsoup setup' builds it (needs cmake, g++ and libtorch: apt-get install -y cmake g++ libtorch-dev)";
  if (!setup && loads(built).ok) {
    say('torch addon: built');
    return true;
  }
  if (!setup && process.env.RSOUP_SKIP_TORCH) {
    say(`torch addon: not built (RSOUP_SKIP_TORCH); ${later}`);
    return true;
  }
  const torchDir = findTorch();
  if (!torchDir || !has('cmake')) {
    say(`torch addon: not built (${!torchDir ? 'libtorch not found' : 'cmake not found'}); merges, safetensors and rewards work without it; ${later}`);
    return !setup;
  }
  say(`torch addon: building against libtorch in ${torchDir} (a few minutes)`);
  if (buildTorch(torchDir) && loads(built).ok) {
    say('torch addon: built');
    return true;
  }
  say(`torch addon: the build failed (see the output above); merges work without it; ${later}`);
  return !setup;
}

const underNodeModules = root.split(sep).includes('node_modules');
if (!setup && !underNodeModules) process.exit(0); // the project's own checkout: `npm run build` builds
ensureCore();
if (!ensureTorch()) process.exit(1);
