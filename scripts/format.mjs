#!/usr/bin/env node
// SPDX-License-Identifier: MIT
// One formatter per language, both pinned in package-lock.json: Biome for TypeScript and the scripts
// (biome.json), clang-format for the C++ and CUDA of native/ and bench/ (.clang-format).
//   node scripts/format.mjs           rewrite every file in place
//   node scripts/format.mjs --check   list what is not formatted and exit 1 (npm test runs this)
import { spawnSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const check = process.argv.includes('--check');
const require = createRequire(import.meta.url);

function biomeBin() {
  return join(dirname(require.resolve('@biomejs/biome/package.json')), 'bin', 'biome');
}

function clangFormatBin() {
  const dir = dirname(require.resolve('clang-format/package.json'));
  const arch = { x64: 'x64', arm64: 'arm64' }[process.arch];
  if (process.platform === 'linux' && arch === 'x64') return join(dir, 'bin', 'linux_x64', 'clang-format');
  if (process.platform === 'darwin') return join(dir, 'bin', `darwin_${arch}`, 'clang-format');
  throw new Error(`format: clang-format from npm has no binary for ${process.platform}-${process.arch}`);
}

const CXX = /\.(cc|h|cu|cuh)$/;
function cxxFiles(dir) {
  const out = [];
  for (const e of readdirSync(join(root, dir), { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) out.push(...cxxFiles(p));
    else if (CXX.test(e.name)) out.push(p);
  }
  return out;
}

let failed = false;
const runBiome = (args) => spawnSync(process.execPath, [biomeBin(), 'format', ...args, '--no-errors-on-unmatched', '.'], { cwd: root, encoding: 'utf8' });
// A few member chains take Biome two passes to settle: write until a check passes (at most three).
if (!check) for (let pass = 0; pass < 3 && runBiome(['--write']).status === 0 && runBiome([]).status !== 0; pass++);
const biome = runBiome(check ? ['--reporter=summary'] : []);
if (biome.status !== 0) {
  failed = true;
  process.stderr.write(biome.stdout + biome.stderr);
}
const files = [...cxxFiles('native'), ...cxxFiles('bench')].sort();
const clang = spawnSync(clangFormatBin(), check ? ['--dry-run', '-Werror', '--style=file', ...files] : ['-i', '--style=file', ...files], {
  cwd: root,
  encoding: 'utf8',
});
if (clang.status !== 0) {
  failed = true;
  const bad = [...new Set([...clang.stderr.matchAll(/^([^:\n]+):\d+:\d+: error/gm)].map((m) => relative(root, join(root, m[1]))))];
  process.stderr.write(bad.length ? `clang-format: not formatted: ${bad.join(', ')}\n` : clang.stderr);
}
if (failed && check) process.stderr.write("format: run 'npm run format' to fix\n");
process.exit(failed ? 1 : 0);
