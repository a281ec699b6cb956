#!/usr/bin/env node
// Sets up whatever a fresh Debian 12 + Node 20 machine lacks, then builds. Idempotent and fast when
// everything is in place: `npm run demo` and `npm test` both run it first.
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
// libtorch-dev: the torch addon; libopenblas0-pthread: without it Debian's torch uses reference BLAS
// (~20x slower matmul); python3-torch: same-run baselines and float64 references in tests/benches;
// fortunes: the demo's offline text corpus; tmpfs/mount (util-linux) is part of the base system.
export const APT_PACKAGES = ['libtorch-dev', 'libopenblas0-pthread', 'python3-torch', 'fortunes', 'fortunes-min', 'cmake', 'g++', 'fonts-dejavu-core'];
// `--test` (npm test) also installs what only the tests drive: Debian's Chromium, for the browser checks
// of report.html and the playground (puppeteer-core drives it; it downloads no browser); Slurm's
// controller, node daemon, client commands and munge, for the private one-node cluster of
// tests/slurm-executor.test.ts (installed only: the tests start and stop their own daemons).
export const TEST_APT_PACKAGES = ['chromium', 'slurmctld', 'slurmd', 'slurm-client', 'munge'];
const wanted = process.argv.includes('--test') ? [...APT_PACKAGES, ...TEST_APT_PACKAGES] : APT_PACKAGES;

function missingApt() {
  const r = spawnSync('dpkg-query', ['-W', '-f=${Package} ${Status}\n', ...wanted], { encoding: 'utf8' });
  const ok = new Set(
    r.stdout
      .split('\n')
      .filter((l) => l.endsWith('install ok installed'))
      .map((l) => l.split(' ')[0]),
  );
  return wanted.filter((p) => !ok.has(p));
}

function run(cmd, args, opts = {}) {
  const r = spawnSync(cmd, args, { stdio: 'inherit', cwd: root, ...opts });
  if (r.status !== 0) {
    console.error(`bootstrap: '${cmd} ${args.join(' ')}' failed (exit ${r.status})`);
    process.exit(r.status ?? 1);
  }
}

const missing = missingApt();
if (missing.length) {
  const isRoot = process.getuid?.() === 0;
  const cmd = `apt-get update && apt-get install -y ${missing.join(' ')}`;
  if (!isRoot) {
    console.error(`bootstrap: missing Debian packages: ${missing.join(', ')}\nRun as root:\n  ${cmd}\nthen run this command again.`);
    process.exit(1);
  }
  console.error(`bootstrap: installing ${missing.join(', ')}`);
  run('sh', ['-c', `apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq ${missing.join(' ')}`]);
}

if (!existsSync(join(root, 'node_modules', '.package-lock.json'))) {
  console.error('bootstrap: npm ci');
  // onnxruntime-node's install script reads ONNXRUNTIME_NODE_INSTALL (npm 11 rejects unknown .npmrc keys):
  // skip keeps it from fetching CUDA binaries from NuGet; its CPU build ships in the package.
  run('npm', ['ci', '--no-audit', '--no-fund'], { env: { ...process.env, ONNXRUNTIME_NODE_INSTALL: 'skip' } });
}

// the demo needs the addons; the tests also drive the CUDA test binaries (compiled when nvcc is present)
run(process.execPath, [join(root, 'scripts', 'build.mjs'), ...(process.argv.includes('--test') ? [] : ['--addons'])]);
void execFileSync;
