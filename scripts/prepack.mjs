#!/usr/bin/env node
// `npm pack` / `npm publish`: builds dist/ and the core addon (incrementally), then places the core addon
// where an installed package looks for its prebuilt: prebuilds/<platform>-<arch>/soup_core.node (N-API 8).
// Published packages are packed on linux-x64 (Debian 12: glibc >= 2.33, libstdc++ of GCC >= 12 at run
// time); elsewhere scripts/install.mjs builds from source. postpack removes the copy again.
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const dir = join(root, 'prebuilds');
if (process.argv.includes('--clean')) {
  rmSync(dir, { recursive: true, force: true });
  process.exit(0);
}
const r = spawnSync(process.execPath, [join(root, 'scripts', 'build.mjs'), 'ts', 'core'], { cwd: root, stdio: 'inherit' });
if (r.status !== 0) process.exit(r.status ?? 1);
const target = join(dir, `${process.platform}-${process.arch}`);
rmSync(dir, { recursive: true, force: true });
mkdirSync(target, { recursive: true });
copyFileSync(join(root, 'build', 'Release', 'soup_core.node'), join(target, 'soup_core.node'));
console.error(`prepack: prebuilds/${process.platform}-${process.arch}/soup_core.node`);
