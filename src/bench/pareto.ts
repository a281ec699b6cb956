// SPDX-License-Identifier: MIT
// rsoup bench pareto: hypervolume speed against the targets: 2-D 10^6 points < 1 s, 3-D 10^5 < 2 s,
// 5-D 200 < 1 s. Cases: random shells (many points dominated), every point on the front (2-D line, 3-D
// plane). Each case also times a same-run baseline so the figure can be read on a loaded machine: for
// 2-D, the textbook sweep with Array.prototype.sort; for the others, one pass reading every coordinate
// (the floor any exact method pays). A table on stderr, one JSON line per case.
import { cpus } from 'node:os';
import { packageRoot } from '../native/index.js';
import { hypervolume, paretoFront } from '../pareto/index.js';
import { mulberry32 } from '../util/random.js';
import { gitSha } from './stats.js';

export interface ParetoBenchOptions {
  /** Timed repeats per case (after one warm-up call); default 7. */
  repeats?: number;
  /** Fraction of each case's point count (default 1: the sizes). The limits are checked at 1 only. */
  scale?: number;
  log?: (line: string) => void;
  json?: (obj: Record<string, unknown>) => void;
}

export interface ParetoBenchRow {
  bench: 'pareto.hypervolume';
  case: string;
  d: number;
  n: number;
  frontSize: number;
  hypervolume: number;
  p50_ms: number;
  min_ms: number;
  cpu_p50_ms: number;
  /** The target at the full size; null when scaled. */
  limit_ms: number | null;
  pass: boolean | null;
  baseline: string;
  baseline_p50_ms: number;
  ratio_to_baseline: number | null;
  repeats: number;
  node: string;
  cpu: string;
  sha: string;
}

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

/** n points all on one 2-D front (shuffled): the pre-filter keeps everything, the sort does the work. */
function line2d(n: number, seed: number): number[][] {
  const rand = mulberry32(seed);
  const pts = Array.from({ length: n }, (_, i) => [i / n, 1 - i / n]);
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1));
    [pts[i], pts[j]] = [pts[j], pts[i]];
  }
  return pts;
}

/** Naive 2-D hypervolume (maximisation): the union area of the boxes [ref, p] of the points above `ref`,
 *  by a sweep in descending x with Array.sort — this benchmark's baseline and the tests' independent
 *  reference (tests/helpers/reference.ts). Only the first two coordinates are read. */
export function staircaseArea(points: number[][], ref: number[]): number {
  const live = points.filter((p) => p[0] > ref[0] && p[1] > ref[1]).sort((p, q) => q[0] - p[0]);
  let area = 0;
  let top = ref[1];
  for (const p of live) {
    if (p[1] > top) {
      area += (p[0] - ref[0]) * (p[1] - top);
      top = p[1];
    }
  }
  return area;
}

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

interface Case {
  name: string;
  d: number;
  n: number;
  limitMs: number;
  points: (n: number) => number[][];
  ref: number[];
  baseline: { name: string; f: (p: number[][], r: number[]) => unknown };
}

const CASES: Case[] = [
  {
    name: '2-D shell',
    d: 2,
    n: 1_000_000,
    limitMs: 1000,
    points: (n) => shell(n, 2, 1),
    ref: [0, 0],
    baseline: { name: 'Array.sort sweep', f: staircaseArea },
  },
  {
    name: '2-D line',
    d: 2,
    n: 1_000_000,
    limitMs: 1000,
    points: (n) => line2d(n, 5),
    ref: [-0.1, -0.1],
    baseline: { name: 'Array.sort sweep', f: staircaseArea },
  },
  { name: '3-D shell', d: 3, n: 100_000, limitMs: 2000, points: (n) => shell(n, 3, 2), ref: [0, 0, 0], baseline: { name: 'read pass', f: readAll } },
  { name: '3-D plane', d: 3, n: 100_000, limitMs: 2000, points: (n) => plane(n, 3), ref: [0, 0, 0], baseline: { name: 'read pass', f: readAll } },
  { name: '5-D shell', d: 5, n: 200, limitMs: 1000, points: (n) => shell(n, 5, 4), ref: [0, 0, 0, 0, 0], baseline: { name: 'read pass', f: readAll } },
];

/** The bench: every case once; rows with `pass` false (a target missed at full size) are returned too. */
export function benchPareto(o: ParetoBenchOptions = {}): ParetoBenchRow[] {
  const repeats = o.repeats ?? 7;
  const scale = o.scale ?? 1;
  const log = o.log ?? ((l: string) => process.stderr.write(`${l}\n`));
  const sha = gitSha(packageRoot);
  const out: ParetoBenchRow[] = [];
  const rows: string[][] = [];
  for (const c of CASES) {
    const n = scale === 1 ? c.n : Math.max(2, Math.round(c.n * scale));
    const points = c.points(n);
    const hv = timeMs(() => hypervolume(points, { ref: c.ref }), repeats);
    const base = timeMs(() => c.baseline.f(points, c.ref), repeats);
    const front = paretoFront(points).indices.length;
    const pass = scale === 1 ? hv.p50 < c.limitMs : null;
    const rec: ParetoBenchRow = {
      bench: 'pareto.hypervolume',
      case: c.name,
      d: c.d,
      n,
      frontSize: front,
      hypervolume: hv.value as number,
      p50_ms: +hv.p50.toFixed(2),
      min_ms: +hv.min.toFixed(2),
      cpu_p50_ms: +hv.cpu.toFixed(2),
      limit_ms: scale === 1 ? c.limitMs : null,
      pass,
      baseline: c.baseline.name,
      baseline_p50_ms: +base.p50.toFixed(2),
      // A baseline under 0.05 ms is too short to divide by.
      ratio_to_baseline: base.p50 >= 0.05 ? +(hv.p50 / base.p50).toFixed(2) : null,
      repeats,
      node: process.version,
      cpu: cpus()[0]?.model ?? 'unknown',
      sha,
    };
    out.push(rec);
    o.json?.({ ...rec });
    rows.push([
      c.name,
      String(n),
      String(front),
      hv.p50.toFixed(1),
      hv.cpu.toFixed(1),
      rec.limit_ms === null ? '-' : String(rec.limit_ms),
      pass === null ? '-' : pass ? 'yes' : 'NO',
      `${c.baseline.name} ${base.p50.toFixed(1)}`,
      rec.ratio_to_baseline === null ? '-' : rec.ratio_to_baseline.toFixed(2),
    ]);
  }
  const head = ['case', 'n', 'front', 'p50 ms', 'cpu ms', 'limit ms', 'pass', 'baseline p50 ms', 'ratio'];
  const widths = head.map((h, j) => Math.max(h.length, ...rows.map((r) => r[j].length)));
  const line = (r: string[]) => r.map((v, j) => v.padStart(widths[j])).join('  ');
  log(`${line(head)}\n${rows.map(line).join('\n')}`);
  return out;
}
