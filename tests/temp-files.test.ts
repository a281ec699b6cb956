// SPDX-License-Identifier: MIT
// Temporary files name their host and pid; a writer removes the stale temps of dead processes of its
// own host for its target (never another host's, never a live process's); SIGKILL mid-merge followed by
// the same merge leaves no temp; `rsoup doctor --clean DIR` lists them and removes the stale ones.
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, writeFileSync, existsSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { tempPathFor, parseTempName, tempFilesIn, removeStaleTemps, writeSafetensors, atomicWriteFile } from '../src/io/index.js';
import { rsoup, rsoupAsync } from './helpers/cli.js';
import { randomMap, rng } from './helpers/random.js';

const tmp = () => mkdtempSync(join(tmpdir(), 'soup-temps-'));

/** The pid of a process that has exited (so no process of this host has it, for now). */
function deadPid(): number {
  const r = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], { encoding: 'utf8' });
  return Number(r.stdout);
}

describe('temp file names', () => {
  it('carry host and pid, and parse back', () => {
    const t = tempPathFor('/x/y/out.safetensors');
    expect(t).toMatch(new RegExp(`^/x/y/\\.out\\.safetensors\\.tmp-${hostname().replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}-${process.pid}-[0-9a-f]{8}$`));
    const p = parseTempName('/x/y', t.slice('/x/y/'.length))!;
    expect(p).toMatchObject({ target: '/x/y/out.safetensors', host: hostname(), pid: process.pid, stale: false });
    expect(parseTempName('/x', '.a-b.tmp-some-host.example-42-0123abcd.old')).toMatchObject({ target: '/x/a-b', host: 'some-host.example', pid: 42 });
    expect(parseTempName('/x', 'out.safetensors')).toBeUndefined();
  });

  it("a writer removes dead processes' temps for its own target only, never a live one's or another host's", async () => {
    const d = tmp();
    const target = join(d, 'w.safetensors');
    const dead = deadPid();
    const mine = `.w.safetensors.tmp-${hostname()}-${dead}-0badc0de`;
    const mineOld = `.w.safetensors.tmp-${hostname()}-${dead}-0badc0df.old`;
    const live = `.w.safetensors.tmp-${hostname()}-${process.pid}-11111111`;
    const other = `.w.safetensors.tmp-another-host-${dead}-22222222`;
    const otherTarget = `.v.safetensors.tmp-${hostname()}-${dead}-33333333`;
    for (const n of [mine, live, other, otherTarget]) writeFileSync(join(d, n), 'partial');
    mkdirSync(join(d, mineOld));
    writeFileSync(join(d, mineOld, 'model.safetensors'), 'old');
    expect(
      tempFilesIn(d, target)
        .filter((t) => t.stale)
        .map((t) => t.path)
        .sort(),
    ).toEqual([join(d, mine), join(d, mineOld)].sort());
    await atomicWriteFile(target, [new Uint8Array([1, 2, 3])]);
    expect(readdirSync(d).sort()).toEqual([live, other, otherTarget, 'w.safetensors'].sort());
    expect(await removeStaleTemps(join(d, 'v.safetensors'))).toHaveLength(1);
    expect(existsSync(join(d, otherTarget))).toBe(false);
  });
});

describe('SIGKILL mid-merge, then the same merge', () => {
  it('leaves no .tmp- file in the directory', async () => {
    const d = tmp();
    const r = rng(3);
    const big = randomMap(['w'], [[48, 1 << 20]], 'float32', r); // 192 MiB per source
    await writeSafetensors(join(d, 'a.safetensors'), big);
    (big.w.data as Float32Array).reverse();
    await writeSafetensors(join(d, 'b.safetensors'), big);
    const outDir = join(d, 'o');
    mkdirSync(outDir);
    const args = [
      'merge',
      '--sources',
      join(d, 'a.safetensors'),
      join(d, 'b.safetensors'),
      '--weights',
      '0.5',
      '0.5',
      '--out',
      join(outDir, 'soup.safetensors'),
      '--threads',
      '1',
    ];
    const child = rsoupAsync(args);
    const exit = new Promise<number | null>((res) => child.on('exit', (c) => res(c)));
    const t0 = Date.now();
    while (!readdirSync(outDir).some((f) => f.includes('.tmp-')) && Date.now() - t0 < 60_000) await new Promise((res) => setTimeout(res, 5));
    child.kill('SIGKILL');
    await exit;
    const left = readdirSync(outDir).filter((f) => f.includes('.tmp-'));
    expect(left).toHaveLength(1); // what SIGKILL leaves, which no process can clean up after itself
    expect(parseTempName(outDir, left[0])).toMatchObject({ pid: child.pid, stale: true });
    const again = rsoup(args);
    expect(again.code, again.stderr).toBe(0);
    expect(readdirSync(outDir)).toEqual(['soup.safetensors']);
  });
});

describe('rsoup doctor --clean DIR', () => {
  it('lists the temps under DIR and removes only the stale ones', () => {
    const d = tmp();
    mkdirSync(join(d, 'run', 'experts'), { recursive: true });
    const dead = deadPid();
    const stale = join(d, 'run', 'experts', `.adapter.tmp-${hostname()}-${dead}-0badc0de`);
    mkdirSync(stale);
    writeFileSync(join(stale, 'adapter_model.safetensors'), 'x');
    const foreign = join(d, 'run', `.report.json.tmp-node-b-${dead}-44444444`);
    writeFileSync(foreign, '{');
    const r = rsoup(['doctor', '--clean', d, '--json']);
    expect(r.code, r.stderr).toBe(0);
    const rows = r.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    expect(rows.map((x) => [x.path, x.removed]).sort()).toEqual(
      [
        [foreign, false],
        [stale, true],
      ].sort(),
    );
    expect(existsSync(stale)).toBe(false);
    expect(existsSync(foreign)).toBe(true);
    const human = rsoup(['doctor', '--clean', d]);
    expect(human.stderr).toMatch(/written on host node-b, whose processes this host cannot see/);
    expect(human.stderr).toMatch(/1 temporary file\(s\) under .*, 0 removed/);
    expect(rsoup(['doctor', '--clean', join(d, 'nope')]).stderr).toMatch(/--clean: '.*nope' does not exist/);
  });
});
