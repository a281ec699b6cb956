// SPDX-License-Identifier: MIT
// rsoup pareto end to end (spawned from source with tsx, as a user runs it): JSON output against values
// recomputed here, the human report, plot files, and every bad-input case with its exit code and a
// message naming the line/field or flag.
import { mkdtempSync, readFileSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { rmSync } from 'node:fs';
import { PNG } from 'pngjs';
import { rsoup } from './helpers/cli.js';
import { hypervolume, SoupError } from '../src/index.js';
import { paretoCommand, type ParetoCommandOptions } from '../src/cli/commands/pareto.js';
import { UsageError } from '../src/cli/output.js';

const dir = mkdtempSync(join(tmpdir(), 'rsoup-pareto-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

// A small result set: two experts, 5 soups (above the experts' segment except one), 3 MORL, an init.
const e1 = [0.9, 0.1];
const e2 = [0.15, 0.85];
const bumps = [0, 0.08, 0.11, -0.03, 0];
const soups = [0, 0.25, 0.5, 0.75, 1].map((t, i) => ({
  name: `rs-${t}`,
  kind: 'soup',
  lambda: t,
  rewards: { a: (1 - t) * e1[0] + t * e2[0] + bumps[i], b: (1 - t) * e1[1] + t * e2[1] + bumps[i] },
}));
const morl = [0.25, 0.5, 0.75].map((mu) => ({ name: `morl-${mu}`, kind: 'morl', mu, rewards: { a: 0.85 - 0.6 * mu, b: 0.2 + 0.6 * mu } }));
const models = [
  { name: 'expert-A', kind: 'expert', lambda: 0, rewards: { a: e1[0], b: e1[1] } },
  { name: 'expert-B', kind: 'expert', lambda: 1, rewards: { a: e2[0], b: e2[1] } },
  ...soups,
  ...morl,
  { name: 'sft', kind: 'init', rewards: { a: 0.3, b: 0.2 } },
];
const results = join(dir, 'results.jsonl');
writeFileSync(results, models.map((m) => JSON.stringify(m)).join('\n') + '\n');

function write(name: string, lines: string[]): string {
  const f = join(dir, name);
  writeFileSync(f, lines.join('\n') + '\n');
  return f;
}

describe('rsoup pareto', () => {
  it('--json: fronts, both hypervolumes per kind, LMC gaps and λ selection match values computed here', () => {
    const r = rsoup(['pareto', results, '--objectives', 'a,b', '--ref', '0,0', '--json', '--prefer', '1,3']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const recs = r.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    const hv = (kind: string) => recs.find((x) => x.type === 'hypervolume' && x.kind === kind);
    const vec = (ms: typeof models) => ms.map((m) => [m.rewards.a, m.rewards.b]);
    expect(hv('soup').hypervolume).toBeCloseTo(hypervolume(vec(soups), { ref: [0, 0] }), 12);
    expect(hv('morl').hypervolume).toBeCloseTo(hypervolume(vec(morl), { ref: [0, 0] }), 12);
    // Paper hypervolume: box from the worst/best of each objective over all models.
    const all = vec(models);
    const lower = [0, 1].map((k) => Math.min(...all.map((p) => p[k])));
    const utopia = [0, 1].map((k) => Math.max(...all.map((p) => p[k])));
    expect(hv('soup').box).toEqual({ utopia, lower });
    const boxVol = (utopia[0] - lower[0]) * (utopia[1] - lower[1]);
    expect(hv('soup').paperHypervolume).toBeCloseTo(boxVol - hypervolume(vec(soups), { ref: lower, allowZero: true }), 12);
    // The soup front drops rs-0.75 (below rs-0.5 and rs-1? check by dominance here).
    const front = recs.find((x) => x.type === 'front' && x.kind === 'soup').front.map((f: { name: string }) => f.name);
    const dominated = (p: number[], q: number[]) => q[0] >= p[0] && q[1] >= p[1] && (q[0] > p[0] || q[1] > p[1]);
    const expected = soups.filter((s) => !soups.some((o) => dominated([s.rewards.a, s.rewards.b], [o.rewards.a, o.rewards.b]))).map((s) => s.name);
    expect(front).toEqual(expected);
    // LMC: gap = the bump we added; rs-0.75 breaks Hypothesis 1.
    const lmc = recs.find((x) => x.type === 'lmc');
    expect(lmc.experts).toEqual(['expert-A', 'expert-B']);
    lmc.rows.forEach((row: { gaps: { a: number; b: number }; holds: boolean }, i: number) => {
      expect(row.gaps.a).toBeCloseTo(bumps[i], 12);
      expect(row.gaps.b).toBeCloseTo(bumps[i], 12);
      expect(row.holds).toBe(bumps[i] >= 0);
    });
    expect(lmc.holds).toBe(false);
    // Selection for μ̂ ∝ (1, 3): argmax of a + 3b over soups; the λ = μ̂ rule asks for λ = 0.75.
    const sel = recs.find((x) => x.type === 'selection');
    const us = soups.map((s) => s.rewards.a + 3 * s.rewards.b);
    expect(sel.best.name).toBe(soups[us.indexOf(Math.max(...us))].name);
    expect(sel.muRule.name).toBe('rs-0.75');
    expect(sel.muRule.distance).toBeLessThan(1e-12);
  });

  it('human report and plots (--svg, --png, --plots-dir)', () => {
    const svg = join(dir, 'front.svg');
    const png = join(dir, 'front.png');
    const plots = join(dir, 'plots');
    const r = rsoup(['pareto', results, '--objectives', 'a,b', '--ref', '0,0', '--svg', svg, '--png', png, '--plots-dir', plots]);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/soup: 5 models, \d on the front; hypervolume [\d.]+, paper hypervolume [\d.]+ \(lower is better\)/);
    expect(r.stdout).toMatch(/does NOT hold/);
    expect(r.stdout).toMatch(/λ = μ̂ rule: rs-0.5 \(λ=0.5, exact\)/);
    expect(readFileSync(svg, 'utf8')).toContain('MORL (labels: μ)');
    const img = PNG.sync.read(readFileSync(png));
    expect(img.width).toBeGreaterThan(600);
    for (const f of ['front.svg', 'front.png', 'reward-vs-lambda.svg', 'reward-vs-lambda.png']) expect(existsSync(join(plots, f))).toBe(true);
  });

  it('3 objectives: a spider map; --sense per objective', () => {
    const f = write('three.jsonl', [
      JSON.stringify({ name: 'x', kind: 'soup', lambda: [0.5, 0.5], rewards: { a: 1, b: 2, c: 3 } }),
      JSON.stringify({ name: 'y', kind: 'morl', mu: [0.5, 0.5], rewards: { a: 2, b: 1, c: 2 } }),
    ]);
    const svg = join(dir, 'spider.svg');
    const r = rsoup(['pareto', f, '--objectives', 'a,b,c', '--ref', '0,0,9', '--sense', 'max,max,min', '--svg', svg, '--json']);
    expect(r.code).toBe(0);
    const hv = r.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l))
      .find((x) => x.type === 'hypervolume' && x.kind === 'all');
    // Union of [0,1]x[0,2]x[3,9] and [0,2]x[0,1]x[2,9]: 12 + 14 - 1*1*6.
    expect(hv.hypervolume).toBeCloseTo(12 + 14 - 6, 12);
    expect(readFileSync(svg, 'utf8')).toContain('Spider map');
  });

  it('bad data exits 1 naming the line and field; bad flags exit 2', () => {
    const nan = write('nan.jsonl', [
      '{"name":"e","kind":"expert","rewards":{"a":1,"b":0}}',
      '{"name":"s1","kind":"soup","lambda":0.5,"rewards":{"a":NaN,"b":0.5}}',
    ]);
    let r = rsoup(['pareto', nan, '--objectives', 'a,b', '--ref', '0,0']);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('nan.jsonl:2 ("s1"): rewards.a is NaN');

    r = rsoup(['pareto', results, '--objectives', 'a,zz', '--ref', '0,0']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('unknown objective "zz" in --objectives: the rewards in');

    r = rsoup(['pareto', results, '--objectives', 'a,b']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain("required option '--ref <values>'");
  });

  // The same command body in-process (spawning costs seconds per case): UsageError means exit 2,
  // SoupError exit 1, as the spawned cases above show.
  const fails = async (file: string, opts: ParetoCommandOptions): Promise<Error> => {
    try {
      await paretoCommand(file, opts);
    } catch (e) {
      return e as Error;
    }
    throw new Error('expected the command to fail');
  };

  it('data errors (SoupError, exit 1) name file:line, model and field', async () => {
    const cases: Array<[string[], RegExp]> = [
      [['{"name":"s2","kind":"soup","lambda":0.5,"rewards":{"a":1,"b":-Infinity}}'], /inf\.jsonl:1 \("s2"\): rewards\.b is -Infinity/],
      [
        ['{"name":"s3","kind":"soup","lambda":0.5,"rewards":{"a":1,"b":2}}', '{"name":"s4","kind":"soup","lambda":0.5,"rewards":{"a":1}}'],
        /inf\.jsonl:2 \("s4"\): rewards\.b is missing/,
      ],
      [['{"name":"s5","kind":"soup","rewards":{"a":1,"b":2}}'], /inf\.jsonl:1 \("s5"\): a soup needs lambda/],
      [['{"name":"s6","kind":"soupe","rewards":{"a":1,"b":2}}'], /inf\.jsonl:1 \("s6"\): kind is "soupe"/],
      [['{"name":"s7","kind":"soup","lambda":0.5,"rewards":{"a":1,"b":"2"}}'], /inf\.jsonl:1 \("s7"\): rewards\.b is "2"/],
      [['{"name":"s8","kind":"soup","lambda":[0.5,null],"rewards":{"a":1,"b":2}}'], /inf\.jsonl:1 \("s8"\): lambda\[1\] is null/],
      [['{"name":"s9","kind":"soup","lambda":0.5,"rewards":{"a":1,"b":2}'], /inf\.jsonl:1: not valid JSON/],
      [[''], /inf\.jsonl: no models/],
      [
        [
          '{"name":"s10","kind":"soup","lambda":[0.2,0.3,0.5],"rewards":{"a":1,"b":2}}',
          '{"name":"e1","kind":"expert","rewards":{"a":1,"b":0}}',
          '{"name":"e2","kind":"expert","rewards":{"a":0,"b":1}}',
        ],
        /LMC check: soups\[0\]\.lambda has 3 entries but 2/,
      ],
    ];
    for (const [lines, re] of cases) {
      const e = await fails(write('inf.jsonl', lines), { objectives: 'a,b', ref: '-1,-1' });
      expect(e).toBeInstanceOf(SoupError);
      expect(e.message).toMatch(re);
    }
  });

  it('flag errors (UsageError, exit 2)', async () => {
    const cases: Array<[Partial<ParetoCommandOptions>, RegExp]> = [
      [{ ref: '0' }, /--ref has 1 values but --objectives names 2/],
      [{ ref: '0,abc' }, /--ref: value 2 \("abc"\) is not a finite number/],
      [{ ref: '5,5' }, /--ref 5,5 is not strictly dominated by any model .* e\.g\. --ref [\d.-]+,[\d.-]+/],
      [{ objectives: 'a,a' }, /names a reward twice/],
      [{ sense: 'up' }, /--sense: "up" is not 'max' or 'min'/],
      [{ prefer: '1,-1' }, /--prefer weights must be >= 0/],
    ];
    for (const [o, re] of cases) {
      const e = await fails(results, { objectives: 'a,b', ref: '0,0', ...o });
      expect(e).toBeInstanceOf(UsageError);
      expect(e.message).toMatch(re);
    }
  });
});
