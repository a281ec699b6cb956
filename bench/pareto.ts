// SPDX-License-Identifier: MIT
// Hypervolume speed against the targets: 2-D 10^6 points < 1 s, 3-D 10^5 < 2 s, 5-D 200 < 1 s.
// Cases: random shells (many points dominated), every point on the front (2-D line, 3-D plane).
// Run: `npx tsx bench/pareto.ts` or, without npm, `node --import tsx bench/pareto.ts` (add `--quick` for
// fewer repeats). Prints a table on stderr and one JSON line per case on stdout. Each case also times a
// same-run baseline so the figure can be read on a loaded machine: for 2-D, the textbook sweep with
// Array.prototype.sort; for the others, one pass reading every coordinate (the floor any exact method pays).
import { execSync } from 'node:child_process';
import { cpus } from 'node:os';
import { hypervolume, paretoFront } from '../src/pareto/index.js';
import { mulberry32 } from '../src/util/random.js';
import { staircaseArea } from '../tests/helpers/reference.js';

/** Points in a shell near the positive unit sphere: many of them mutually non-dominated. */
function shell(n: number, d: number, seed: number): number[][] {
  const rand = mulberry32(seed);
  return Array.from({ length: n }, () => {
    const v = Array.from({ length: d }, () => rand() + 1e-9);
    const norm = Math.hypot(...v);
    const r = 0.9 + 0.1 * rand();
    return v.map((x) => (r * x) / norm);
  });
}

/** Points on the plane Σ x = 1: every point is non-dominated (the 3-D sweep's worst case). */
function plane(n: number, seed: number): number[][] {
  const rand = mulberry32(seed);
  return Array.from({ length: n }, () => {
    const a = rand();
    const b = rand() * (1 - a);
    return [a, b, 1 - a - b];
  });
}

/** 10^6 points all on one 2-D front (shuffled): the pre-filter keeps everything, the sort does the work. */
function line2d(n: number, seed: number): number[][] {
  const rand = mulberry32(seed);
  const pts = Array.from({ length: n }, (_, i) => [i / n, 1 - i / n]);
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1));
    [pts[i], pts[j]] = [pts[j], pts[i]];
  }
  return pts;
}

const naive2d = staircaseArea;

function readAll(points: number[][]): number {
  let s = 0;
  for (const p of points) for (let k = 0; k < p.length; k++) s += p[k];
  return s;
}

/** Wall-clock p50/min and the process's CPU time p50 (the latter is less sensitive to a loaded machine). */
function timeMs(f: () => unknown, repeats: number): { p50: number; min: number; cpu: number; value: unknown } {
  let value = f(); // warm-up (JIT)
  const t: number[] = [];
  const c: number[] = [];
  for (let r = 0; r < repeats; r++) {
    const c0 = process.cpuUsage();
    const t0 = process.hrtime.bigint();
    value = f();
    t.push(Number(process.hrtime.bigint() - t0) / 1e6);
    const dc = process.cpuUsage(c0);
    c.push((dc.user + dc.system) / 1000);
  }
  t.sort((a, b) => a - b);
  c.sort((a, b) => a - b);
  return { p50: t[Math.floor(t.length / 2)], min: t[0], cpu: c[Math.floor(c.length / 2)], value };
}

const quick = process.argv.includes('--quick');
const repeats = quick ? 3 : 7;
let sha = 'unknown';
try {
  sha = execSync('git rev-parse --short HEAD', { stdio: ['ignore', 'pipe', 'ignore'] }).toString().trim();
} catch {
  /* not a git checkout */
}

interface Case {
  name: string;
  d: number;
  n: number;
  limitMs: number;
  points: number[][];
  ref: number[];
  baseline: { name: string; f: (p: number[][], r: number[]) => unknown };
}

const cases: Case[] = [
  { name: '2-D shell', d: 2, n: 1_000_000, limitMs: 1000, points: shell(1_000_000, 2, 1), ref: [0, 0], baseline: { name: 'Array.sort sweep', f: naive2d } },
  { name: '2-D line', d: 2, n: 1_000_000, limitMs: 1000, points: line2d(1_000_000, 5), ref: [-0.1, -0.1], baseline: { name: 'Array.sort sweep', f: naive2d } },
  { name: '3-D shell', d: 3, n: 100_000, limitMs: 2000, points: shell(100_000, 3, 2), ref: [0, 0, 0], baseline: { name: 'read pass', f: readAll } },
  { name: '3-D plane', d: 3, n: 100_000, limitMs: 2000, points: plane(100_000, 3), ref: [0, 0, 0], baseline: { name: 'read pass', f: readAll } },
  { name: '5-D shell', d: 5, n: 200, limitMs: 1000, points: shell(200, 5, 4), ref: [0, 0, 0, 0, 0], baseline: { name: 'read pass', f: readAll } },
];

const rows: string[][] = [];
let failed = false;
for (const c of cases) {
  const hv = timeMs(() => hypervolume(c.points, { ref: c.ref }), repeats);
  const base = timeMs(() => c.baseline.f(c.points, c.ref), repeats);
  const front = paretoFront(c.points).indices.length;
  const ok = hv.p50 < c.limitMs;
  failed ||= !ok;
  const rec = {
    bench: 'pareto.hypervolume',
    case: c.name,
    d: c.d,
    n: c.n,
    frontSize: front,
    hypervolume: hv.value,
    p50_ms: +hv.p50.toFixed(2),
    min_ms: +hv.min.toFixed(2),
    cpu_p50_ms: +hv.cpu.toFixed(2),
    limit_ms: c.limitMs,
    pass: ok,
    baseline: c.baseline.name,
    baseline_p50_ms: +base.p50.toFixed(2),
    // A baseline under 0.05 ms is too short to divide by.
    ratio_to_baseline: base.p50 >= 0.05 ? +(hv.p50 / base.p50).toFixed(2) : null,
    repeats,
    node: process.version,
    cpu: cpus()[0]?.model ?? 'unknown',
    sha,
  };
  process.stdout.write(`${JSON.stringify(rec)}\n`);
  rows.push([
    c.name,
    String(c.n),
    String(front),
    hv.p50.toFixed(1),
    hv.cpu.toFixed(1),
    String(c.limitMs),
    ok ? 'yes' : 'NO',
    `${c.baseline.name} ${base.p50.toFixed(1)}`,
    rec.ratio_to_baseline === null ? '-' : rec.ratio_to_baseline.toFixed(2),
  ]);
}

const head = ['case', 'n', 'front', 'p50 ms', 'cpu ms', 'limit ms', 'pass', 'baseline p50 ms', 'ratio'];
const widths = head.map((h, j) => Math.max(h.length, ...rows.map((r) => r[j].length)));
const line = (r: string[]) => r.map((v, j) => v.padStart(widths[j])).join('  ');
process.stderr.write(`${line(head)}\n${rows.map(line).join('\n')}\n`);
if (failed) process.exitCode = 1;
