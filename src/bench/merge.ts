// SPDX-License-Identifier: MIT
// The merge benchmark (`rsoup bench merge`, `npx tsx bench/merge.ts`): effective GB/s = (N+1)·bytes/time
// of the fused kernel for N = 2, 4, 8, fp32 and bf16, in two regimes (many small LoRA tensors; full-model
// LLaMA-7B layer shapes), against baselines measured in the same run: the core addon's bandwidth probe
// (a triad with the same threads and streaming stores), a plain JS loop, and PyTorch (Debian's
// python3-torch) per-tensor sum(l*t) — how mergekit and model-soups do it — and in-place mul_/add_.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { cpus } from 'node:os';
import { join } from 'node:path';
import { coreAddon, packageRoot } from '../native/index.js';
import { interpolate, allocateTensors } from '../soup/interpolate.js';
import { DTYPE_CODE, type DType, type TensorMap } from '../io/tensor.js';
import { median, percentile, table, gitSha } from './stats.js';

export interface MergeBenchOptions {
  /** Approximate bytes per source in the full-model regime (default 1 GiB). */
  fullBytes?: number;
  ns?: number[];
  dtypes?: DType[];
  reps?: number;
  threads?: number;
  torch?: boolean;
  js?: boolean;
  regimes?: ('lora' | 'full')[];
  log?: (line: string) => void;
  json?: (obj: Record<string, unknown>) => void;
}

export interface BenchRow {
  regime: string;
  dtype: DType;
  n: number;
  method: string;
  gbps: number;
  ms: number;
  p90ms: number;
  [k: string]: string | number;
}

/** Tensor shapes of one regime. LoRA: 256 A/B pairs (4096×16 and 16×4096) = 512 tensors. Full: LLaMA-7B
 *  decoder-layer matrices (q,k,v,o 4096², gate/up 11008×4096, down 4096×11008) up to `bytes`. */
export function regimeShapes(regime: 'lora' | 'full', dtype: DType, bytes: number): number[][] {
  if (regime === 'lora') return Array.from({ length: 512 }, (_, i) => (i % 2 ? [16, 4096] : [4096, 16]));
  const layer = [[4096, 4096], [4096, 4096], [4096, 4096], [4096, 4096], [11008, 4096], [11008, 4096], [4096, 11008]];
  const size = dtype === 'float32' ? 4 : 2;
  const out: number[][] = [];
  let total = 0;
  for (let i = 0; total < bytes; i++) {
    const s = layer[i % layer.length];
    out.push(s);
    total += s[0] * s[1] * size;
  }
  return out;
}

function fillSource(t: TensorMap, seed: number): void {
  // Cheap deterministic non-zero values (content does not change the kernel's speed).
  for (const x of Object.values(t)) {
    const d = x.data;
    if (d instanceof Float32Array) for (let i = 0; i < d.length; i++) d[i] = ((i * 2654435761 + seed) % 1000) / 997 - 0.5 + 1e-3;
    else if (d instanceof Uint16Array) for (let i = 0; i < d.length; i++) d[i] = 0x3c00 + ((i * 40503 + seed) & 0x3ff);
  }
}

function jsLoop(srcs: TensorMap[], w: number[], out: TensorMap, dtype: DType): void {
  const names = Object.keys(out);
  const f = new Float32Array(1), u = new Uint32Array(f.buffer);
  for (const n of names) {
    const o = out[n].data;
    const ss = srcs.map((s) => s[n].data);
    if (dtype === 'float32') {
      for (let i = 0; i < o.length; i++) {
        let acc = 0;
        for (let j = 0; j < ss.length; j++) acc += w[j] * ss[j][i];
        o[i] = acc;
      }
    } else {
      for (let i = 0; i < o.length; i++) {
        let acc = 0;
        for (let j = 0; j < ss.length; j++) {
          u[0] = ss[j][i] << 16;
          acc += w[j] * f[0];
        }
        f[0] = acc;
        o[i] = (u[0] + 0x7fff + ((u[0] >>> 16) & 1)) >>> 16;
      }
    }
  }
}

async function time(reps: number, fn: () => Promise<void> | void): Promise<number[]> {
  await fn(); // warm-up: page faults and caches outside the timing
  const ts: number[] = [];
  for (let r = 0; r < reps; r++) {
    const t0 = performance.now();
    await fn();
    ts.push((performance.now() - t0) / 1000);
  }
  return ts;
}

export function torchAvailable(): boolean {
  return existsSync('/usr/bin/python3') && spawnSync('/usr/bin/python3', ['-c', 'import torch'], { stdio: 'ignore' }).status === 0;
}

export async function benchMerge(o: MergeBenchOptions = {}): Promise<BenchRow[]> {
  const log = o.log ?? ((s: string) => process.stderr.write(`${s}\n`));
  const emit = o.json ?? (() => {});
  const reps = o.reps ?? 5;
  const threads = o.threads ?? cpus().length;
  const fullBytes = o.fullBytes ?? 2 ** 30;
  const ns = o.ns ?? [2, 4, 8];
  const dtypes = o.dtypes ?? ['float32', 'bfloat16'];
  const regimes = o.regimes ?? ['lora', 'full'];
  const info = coreAddon().info();
  const meta = { sha: gitSha(packageRoot), cpu: cpus()[0]?.model, threads, simd: info.simd, node: process.version };
  emit({ event: 'meta', ...meta });
  log(`merge bench: ${meta.cpu}, ${threads} threads, kernel ${info.simd}, ${reps} reps (medians)`);
  const rows: BenchRow[] = [];
  const add = (r: BenchRow) => {
    rows.push(r);
    emit({ event: 'result', ...meta, ...r });
    log(`  ${r.regime.padEnd(4)} ${r.dtype.padEnd(8)} N=${r.n} ${r.method.padEnd(18)} ${r.gbps.toFixed(2).padStart(7)} GB/s  ${r.ms.toFixed(1)} ms`);
  };
  const useTorch = (o.torch ?? true) && torchAvailable();
  if (!useTorch) log('  (PyTorch baseline skipped: /usr/bin/python3 -c "import torch" failed)');

  for (const regime of regimes) {
    for (const dtype of dtypes) {
      const shapes = regimeShapes(regime, dtype, regime === 'full' ? fullBytes : 0);
      const specs = shapes.map((s, i) => ({ name: `t${i}`, dtype, shape: s }));
      const bytes = shapes.reduce((a, s) => a + s[0] * s[1], 0) * (dtype === 'float32' ? 4 : 2);
      // bandwidth probe over the same number of bytes per stream
      const probe = (await (coreAddon().bandwidthProbe as (b: Record<string, unknown>) => Promise<{ seconds: number[]; bytesPerRep: number }>)({ bytes, reps, threads, nonTemporal: true }));
      const pMed = median(probe.seconds);
      add({ regime, dtype, n: 0, method: 'probe (triad)', gbps: probe.bytesPerRep / pMed / 1e9, ms: pMed * 1e3, p90ms: percentile(probe.seconds, 90) * 1e3 });
      for (const n of ns) {
        const srcs = Array.from({ length: n }, (_, j) => {
          const t = allocateTensors(specs);
          fillSource(t, j + 1);
          return t;
        });
        const w = Array.from({ length: n }, () => 1 / n);
        const out = allocateTensors(specs);
        const moved = (n + 1) * bytes;
        const kt = await time(reps, async () => {
          await interpolate(srcs, w, { out, threads });
        });
        add({ regime, dtype, n, method: `soup (${info.simd})`, gbps: moved / median(kt) / 1e9, ms: median(kt) * 1e3, p90ms: percentile(kt, 90) * 1e3 });
        if (o.js ?? true) {
          const jt = await time(Math.min(reps, 2), () => jsLoop(srcs, w, out, dtype));
          add({ regime, dtype, n, method: 'plain JS loop', gbps: moved / median(jt) / 1e9, ms: median(jt) * 1e3, p90ms: percentile(jt, 90) * 1e3 });
        }
        srcs.length = 0;
        if (useTorch) {
          const r = spawnSync('/usr/bin/python3', [join(packageRoot, 'bench', 'torch_merge.py')], {
            input: JSON.stringify({ shapes, dtype, n, reps, threads }),
            encoding: 'utf8',
            env: { ...process.env, OMP_NUM_THREADS: String(threads) },
            maxBuffer: 1 << 20,
          });
          if (r.status !== 0) log(`  torch baseline failed: ${r.stderr.trim().split('\n').at(-1)}`);
          else {
            for (const line of r.stdout.trim().split('\n')) {
              const t = JSON.parse(line) as { method: string; seconds: number[] };
              add({ regime, dtype, n, method: t.method, gbps: moved / median(t.seconds) / 1e9, ms: median(t.seconds) * 1e3, p90ms: percentile(t.seconds, 90) * 1e3 });
            }
          }
        }
      }
    }
  }
  log('');
  log(table(rows.map((r) => ({ ...r, 'GB/s': r.gbps, 'p50 ms': r.ms, 'p90 ms': r.p90ms })), ['regime', 'dtype', 'n', 'method', 'GB/s', 'p50 ms', 'p90 ms']));
  log('');
  log(summarize(rows));
  void DTYPE_CODE;
  return rows;
}

/** The ratios the README claims: soup vs probe, vs torch sum(l*t), vs torch in-place. */
export function summarize(rows: BenchRow[]): string {
  const lines: string[] = ['ratios (same run):'];
  const groups = new Map<string, BenchRow[]>();
  for (const r of rows) {
    const k = `${r.regime} ${r.dtype}`;
    if (!groups.has(k)) groups.set(k, []);
    groups.get(k)!.push(r);
  }
  for (const [k, rs] of groups) {
    const probe = rs.find((r) => r.method.startsWith('probe'));
    for (const n of [...new Set(rs.filter((r) => r.n > 0).map((r) => r.n))]) {
      const soup = rs.find((r) => r.n === n && r.method.startsWith('soup'));
      const sum = rs.find((r) => r.n === n && r.method === 'torch sum(l*t)');
      const inplace = rs.find((r) => r.n === n && r.method === 'torch mul_/add_');
      const js = rs.find((r) => r.n === n && r.method === 'plain JS loop');
      if (!soup || !probe) continue;
      const parts = [`${k} N=${n}: ${(100 * soup.gbps / probe.gbps).toFixed(0)}% of probe`];
      if (sum) parts.push(`${(sum.ms / soup.ms).toFixed(1)}x torch sum(l*t)`);
      if (inplace) parts.push(`${(inplace.ms / soup.ms).toFixed(1)}x torch in-place`);
      if (js) parts.push(`${(js.ms / soup.ms).toFixed(1)}x JS loop`);
      lines.push(`  ${parts.join(', ')}`);
    }
  }
  return lines.join('\n');
}
