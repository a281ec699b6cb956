// SPDX-License-Identifier: MIT
// A merge whose output is one of its sources, however spelled, lies inside a source dir, or contains a
// source exits 1 before writing anything, naming both; the sources' bytes are unchanged (checksums).
import { createHash } from 'node:crypto';
import { linkSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { describe, expect, it } from 'vitest';
import { merge, saveModelDir, writeSafetensors } from '../src/index.js';
import { checkOutputDisjoint, realTarget } from '../src/io/overlap.js';
import { rsoup } from './helpers/cli.js';
import { randomMap, rng } from './helpers/random.js';

/** sha256 of every file under `dir`, by relative path (the sources' state). */
function checksums(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (d: string) => {
    for (const f of readdirSync(d)) {
      const p = join(d, f);
      if (statSync(p).isDirectory()) walk(p);
      else out[relative(dir, p)] = createHash('sha256').update(readFileSync(p)).digest('hex');
    }
  };
  walk(dir);
  return out;
}

async function workspace() {
  const d = mkdtempSync(join(tmpdir(), 'soup-overlap-'));
  const r = rng(77);
  const names = ['w', 'v'],
    shapes = [[6, 5], [7]];
  await writeSafetensors(join(d, 'a.safetensors'), randomMap(names, shapes, 'float32', r));
  await writeSafetensors(join(d, 'b.safetensors'), randomMap(names, shapes, 'float32', r));
  await saveModelDir(join(d, 'hfA'), randomMap(names, shapes, 'float32', r), { config: { model_type: 'x' } });
  await saveModelDir(join(d, 'hfB'), randomMap(names, shapes, 'float32', r), { config: { model_type: 'x' } });
  symlinkSync(join(d, 'a.safetensors'), join(d, 'link-a.safetensors'));
  mkdirSync(join(d, 'sub'));
  return d;
}

describe('rsoup merge refuses outputs that would overwrite a source', () => {
  const cases: [string, string[], RegExp][] = [
    [
      './a.safetensors from the sources dir',
      ['--sources', 'a.safetensors', 'b.safetensors', '--weights', '0.5', '0.5', '--out', './a.safetensors'],
      /out '\.\/a\.safetensors' is sources\[0\] 'a\.safetensors'/,
    ],
    [
      'sub/../b.safetensors',
      ['--sources', 'a.safetensors', 'b.safetensors', '--weights', '0.5', '0.5', '--out', 'sub/../b.safetensors'],
      /out 'sub\/\.\.\/b\.safetensors' is sources\[1\] 'b\.safetensors'/,
    ],
    [
      'a file inside a source dir',
      ['--sources', 'hfA', 'hfB', '--weights', '0.5', '0.5', '--out', 'hfA/model.safetensors'],
      /out 'hfA\/model\.safetensors' is (inside )?sources\[0\] 'hfA'/,
    ],
    ['a source dir with a trailing slash', ['--sources', 'hfA', 'hfB', '--weights', '0.5', '0.5', '--out', 'hfB/'], /out 'hfB\/' is sources\[1\] 'hfB'/],
    [
      'a symlink to a source',
      ['--sources', 'a.safetensors', 'b.safetensors', '--weights', '0.5', '0.5', '--out', 'link-a.safetensors'],
      /out 'link-a\.safetensors' is sources\[0\] 'a\.safetensors'.*real paths/,
    ],
    [
      'a source through a symlink, out the real file',
      ['--sources', 'link-a.safetensors', 'b.safetensors', '--weights', '0.5', '0.5', '--out', 'a.safetensors'],
      /out 'a\.safetensors' is sources\[0\] 'link-a\.safetensors'/,
    ],
    [
      'an output dir that contains a source file',
      ['--sources', 'hfA/model.safetensors', 'b.safetensors', '--weights', '0.5', '0.5', '--out', 'hfA'],
      /out 'hfA' contains sources\[0\] 'hfA\/model\.safetensors'/,
    ],
    [
      'the dir holding both sources',
      ['--sources', 'a.safetensors', 'b.safetensors', '--weights', '0.5', '0.5', '--out', '.'],
      /out '\.' contains sources\[0\]/,
    ],
  ];
  for (const [name, args, msg] of cases) {
    it(name, async () => {
      const d = await workspace();
      const before = checksums(d);
      const r = rsoup(['merge', ...args], { cwd: d });
      expect(r.stderr, r.stderr).toMatch(msg);
      expect(r.code, r.stderr).toBe(1);
      expect(checksums(d)).toEqual(before);
      expect(readdirSync(d).filter((f) => f.includes('.tmp-'))).toEqual([]);
    });
  }

  it('a hard link to a source is the source; a new file beside the sources is fine', async () => {
    const d = await workspace();
    linkSync(join(d, 'b.safetensors'), join(d, 'hard-b.safetensors'));
    const before = checksums(d);
    await expect(
      merge({ sources: [join(d, 'a.safetensors'), join(d, 'b.safetensors')], weights: [0.5, 0.5], out: join(d, 'hard-b.safetensors') }),
    ).rejects.toMatchObject({ code: 'ERR_SOUP_INVALID_ARG', message: expect.stringMatching(/hard-b\.safetensors' is sources\[1\]/) });
    expect(checksums(d)).toEqual(before);
    const rep = await merge({ sources: [join(d, 'a.safetensors'), join(d, 'b.safetensors')], weights: [0.5, 0.5], out: join(d, 'soup.safetensors') });
    expect(rep.tensors).toBe(2);
  });

  it('a LoRA base is an input too', async () => {
    const d = await workspace();
    expect(() => checkOutputDisjoint(join(d, 'hfA', 'x'), [{ label: 'base', path: join(d, 'hfA') }])).toThrow(/is inside base/);
  });

  it('realTarget resolves a symlinked parent of a path that does not exist yet', async () => {
    const d = await workspace();
    symlinkSync(join(d, 'sub'), join(d, 'sublink'));
    expect(realTarget(join(d, 'sublink', 'new', 'x.safetensors'))).toBe(join(realTarget(join(d, 'sub')), 'new', 'x.safetensors'));
    writeFileSync(join(d, 'sub', 'f'), 'x');
    expect(realTarget(join(d, 'sublink', 'f') + '/')).toBe(join(realTarget(d), 'sub', 'f'));
  });
});
