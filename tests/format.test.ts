// SPDX-License-Identifier: MIT
// The tree is formatted (Biome for TypeScript and scripts, clang-format for C++/CUDA; both pinned in
// package-lock.json): `npm run format` rewrites, this runs the same script in check mode.
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdtempSync, readFileSync, rmSync, symlinkSync, mkdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

const root = join(import.meta.dirname, '..');

describe('formatting', () => {
  it('every TypeScript, script and C++ file is formatted (npm run format fixes it)', () => {
    const r = spawnSync(process.execPath, [join(root, 'scripts', 'format.mjs'), '--check'], { cwd: root, encoding: 'utf8' });
    expect(r.stderr, r.stderr).toBe('');
    expect(r.status).toBe(0);
  });

  it('the check fails on a badly formatted file of either language, naming it', () => {
    // a scratch tree with the project's settings and one file of each kind, badly laid out
    const d = mkdtempSync(join(tmpdir(), 'rsoup-format-'));
    try {
      for (const f of ['biome.json', '.clang-format']) copyFileSync(join(root, f), join(d, f));
      mkdirSync(join(d, 'scripts'));
      copyFileSync(join(root, 'scripts', 'format.mjs'), join(d, 'scripts', 'format.mjs'));
      symlinkSync(join(root, 'node_modules'), join(d, 'node_modules'));
      for (const dir of ['src', 'native', 'bench', 'tests']) mkdirSync(join(d, dir));
      writeFileSync(join(d, 'src', 'bad.ts'), 'export   const  x = {a:1,\n b:  "two"}\n');
      writeFileSync(join(d, 'native', 'bad.cc'), 'int   f( int a ){return a+1;}\n');
      const r = spawnSync(process.execPath, [join(d, 'scripts', 'format.mjs'), '--check'], { cwd: d, encoding: 'utf8' });
      expect(r.status).toBe(1);
      expect(r.stderr).toMatch(/src\/bad\.ts/);
      expect(r.stderr).toMatch(/clang-format: not formatted: native\/bad\.cc/);
      // and the write mode fixes both, after which the check passes
      expect(spawnSync(process.execPath, [join(d, 'scripts', 'format.mjs')], { cwd: d }).status).toBe(0);
      expect(readFileSync(join(d, 'src', 'bad.ts'), 'utf8')).toBe("export const x = { a: 1, b: 'two' };\n");
      expect(readFileSync(join(d, 'native', 'bad.cc'), 'utf8')).toBe('int f(int a) { return a + 1; }\n');
      expect(spawnSync(process.execPath, [join(d, 'scripts', 'format.mjs'), '--check'], { cwd: d }).status).toBe(0);
    } finally {
      rmSync(d, { recursive: true, force: true });
    }
  });
});
