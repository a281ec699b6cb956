// SPDX-License-Identifier: MIT
// The merge benchmark (`rsoup bench merge`): effective GB/s = (N+1)·bytes/time
// of the fused kernel for N = 2, 4, 8, fp32 and bf16, in two regimes (many small LoRA tensors; full-model
// LLaMA-7B layer shapes), against baselines measured in the same run: the core addon's bandwidth probe
// (a triad with the same threads and streaming stores), a plain JS loop, and PyTorch (Debian's
// python3-torch) per-tensor sum(l*t) — how mergekit and model-soups do it — and in-place mul_/add_.
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { createInterface } from 'node:readline';
import { cpus, totalmem } from 'node:os';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { coreAddon, packageRoot } from '../native/index.js';
import { interpolate, prepareInterpolation } from '../soup/interpolate.js';
import { viewAs, type DType, type TensorMap } from '../io/tensor.js';
import { median, percentile, table, gitSha } from './stats.js';
import { harnessPath, torchMissingReason } from './child.js';

export interface MergeBenchOptions {
  /** Approximate bytes per source in the full-model regime (default 1 GiB). */
  fullBytes?: number;
  ns?: number[];
  dtypes?: DType[];
  reps?: number;
  threads?: number;
  torch?: boolean;
  js?: boolean;
  /** Time interpolate() allocating its outputs, huge pages against 4 KiB pages (full regime, first N). */
  freshOutputs?: boolean;
  /** The bench's own buffers (sources, outputs, probe arrays) on huge pages. Default false: 4 KiB pages,
   *  like sources mapped from files; the triad gains more from huge pages than the soups (docs/notes/merge-measuring.md). */
  hugePages?: boolean;
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
  const layer = [
    [4096, 4096],
    [4096, 4096],
    [4096, 4096],
    [4096, 4096],
    [11008, 4096],
    [11008, 4096],
    [4096, 11008],
  ];
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
  const f = new Float32Array(1),
    u = new Uint32Array(f.buffer);
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

/** A full collection now: the fresh-output runs drop a gigabyte per call, which the GC would otherwise
 *  free late enough to run this 24 GiB machine out of memory. */
function collectGarbage(): void {
  setFlagsFromString('--expose-gc');
  (runInNewContext('gc') as () => void)();
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

/** bench/torch_merge.py kept open: one timed rep per request (its protocol is in the script). */
class TorchBaseline {
  private lines: string[] = [];
  private waiting: ((line: string | Error) => void) | undefined;
  private stderr = '';
  private constructor(private proc: ChildProcessWithoutNullStreams) {
    createInterface({ input: proc.stdout }).on('line', (l) => {
      if (this.waiting) {
        const w = this.waiting;
        this.waiting = undefined;
        w(l);
      } else this.lines.push(l);
    });
    proc.stderr.on('data', (d: Buffer) => (this.stderr = (this.stderr + d.toString()).slice(-4000)));
    proc.on('exit', (code) => this.waiting?.(new Error(`torch_merge.py exited with ${code}: ${this.stderr.trim().split('\n').at(-1) ?? ''}`)));
  }
  static async start(cfg: { shapes: number[][]; dtype: DType; n: number; threads: number }): Promise<TorchBaseline> {
    const proc = spawn('/usr/bin/python3', [harnessPath('torch_merge.py')], { env: { ...process.env, OMP_NUM_THREADS: String(cfg.threads) } });
    const t = new TorchBaseline(proc);
    proc.stdin.write(`${JSON.stringify(cfg)}\n`);
    const ready = JSON.parse(await t.next()) as { ready?: boolean };
    if (!ready.ready) throw new Error('torch_merge.py did not start');
    return t;
  }
  private next(): Promise<string> {
    const l = this.lines.shift();
    if (l !== undefined) return Promise.resolve(l);
    if (this.proc.exitCode !== null) return Promise.reject(new Error(`torch_merge.py exited: ${this.stderr.trim().split('\n').at(-1) ?? ''}`));
    return new Promise((res, rej) => (this.waiting = (x) => (x instanceof Error ? rej(x) : res(x))));
  }
  async run(method: 'sum' | 'inplace'): Promise<number> {
    this.proc.stdin.write(`${method}\n`);
    return (JSON.parse(await this.next()) as { seconds: number }).seconds;
  }
  /** Ends the process and waits for it, so its memory is back before the next group allocates. */
  async close(): Promise<void> {
    if (this.proc.exitCode !== null) return;
    const exited = new Promise<void>((res) => this.proc.once('exit', () => res()));
    this.proc.stdin.end();
    const timer = setTimeout(() => this.proc.kill('SIGKILL'), 10_000);
    await exited;
    clearTimeout(timer);
  }
}

export async function benchMerge(o: MergeBenchOptions = {}): Promise<BenchRow[]> {
  const log = o.log ?? ((s: string) => process.stderr.write(`${s}\n`));
  const emit = o.json ?? (() => {});
  const reps = o.reps ?? 15; // ratios are medians of same-pair reps; the slow baselines cap their own reps
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
    log(
      `  ${r.regime.padEnd(4)} ${r.dtype.padEnd(8)} N=${r.n} ${r.method.padEnd(24)} ${r.gbps.toFixed(2).padStart(7)} GB/s  ${r.ms.toFixed(1)} ms${typeof r.ofProbe === 'number' ? `  ${(100 * r.ofProbe).toFixed(0)}% of probe` : ''}`,
    );
  };
  const core = coreAddon();
  const alloc = (n: number, hugePages?: boolean) => core.allocBuffer(n, hugePages);
  const probeFn = core.bandwidthProbe;
  const wantTorch = o.torch ?? true;
  const torchMissing = wantTorch ? torchMissingReason('torch_merge.py') : '--no-torch';
  const useTorch = !torchMissing;
  if (torchMissing) log(`  (PyTorch baseline skipped: ${torchMissing})`);

  // Every group's buffers are views into one set allocated up front (N+1 tensor slots and 3 probe
  // arrays of the largest group's size): freeing gigabytes per group is left to the GC, which ran too
  // late when groups followed each other without pause (a 24 GiB machine ran out of memory).
  const sizeOf = (regime: 'lora' | 'full', dtype: DType) => {
    const shapes = regimeShapes(regime, dtype, regime === 'full' ? fullBytes : 0);
    return shapes.reduce((a, s) => a + Math.ceil((s[0] * s[1] * (dtype === 'float32' ? 4 : 2)) / 64) * 64, 0);
  };
  const slotBytes = Math.max(...regimes.flatMap((r) => dtypes.map((d) => sizeOf(r, d))));
  const slots = Array.from({ length: Math.max(...ns) + 1 }, () => alloc(slotBytes, o.hugePages ?? false));
  const probeSlots = [0, 1, 2].map(() => alloc(slotBytes, o.hugePages ?? false));
  const tensorsIn = (buf: ArrayBuffer, specs: { name: string; dtype: DType; shape: number[] }[]): TensorMap => {
    const out: TensorMap = {};
    let off = 0;
    for (const sp of specs) {
      const numel = sp.shape[0] * sp.shape[1];
      out[sp.name] = { dtype: sp.dtype, shape: sp.shape, data: viewAs(sp.dtype, buf, off, numel) };
      off += Math.ceil((numel * (sp.dtype === 'float32' ? 4 : 2)) / 64) * 64;
    }
    return out;
  };

  for (const regime of regimes) {
    for (const dtype of dtypes) {
      const shapes = regimeShapes(regime, dtype, regime === 'full' ? fullBytes : 0);
      const specs = shapes.map((s, i) => ({ name: `t${i}`, dtype, shape: s }));
      const bytes = shapes.reduce((a, s) => a + s[0] * s[1], 0) * (dtype === 'float32' ? 4 : 2);
      // The probe runs on three arrays allocated once, like the soup's buffers, interleaved with the soup
      // (probe, soup, probe, prepared soup; rep after rep): this VM's bandwidth drifts by ±20 % over seconds,
      // so a ratio is only meaningful within one pair, and allocating gigabytes per probe call slowed the
      // next kernel (docs/notes/merge-measuring.md, "Measuring"). Each probe call times its first and only pass, as each soup
      // call is timed: with the addon's default untimed warm-up pass the probe ran right after a triad while
      // every soup ran after a probe and a pause, and the same process measured the warm probe 8 % faster
      // at N = 8 (docs/notes/merge-measuring.md, "Probe and soup timed alike").
      const probeArrays = probeSlots.map((b, k) => new Float32Array(b, 0, bytes / 4).fill(0.5 + k));
      const probeGbps = (t: number) => (3 * bytes) / t;
      const probeOnce = async () => {
        const p = await probeFn({ bytes, reps: 1, threads, nonTemporal: true, arrays: probeArrays, warmup: false });
        return p.seconds[0];
      };
      // The read-only probe reads the group's N source buffers as the soup does (interleaved), nothing
      // written: a soup reads the same bytes and writes one more stream, so this is about its ceiling where
      // reads bound it (not a hard one: on this VM reads and writes add up, docs/notes/merge-measuring.md "What bounds N = 8").
      const readOnce = async (arrays: Float32Array[]) => {
        const p = await probeFn({ bytes, reps: 1, threads, arrays, kind: 'read', warmup: false });
        return p.seconds[0];
      };
      for (const n of ns) {
        const srcs = Array.from({ length: n }, (_, j) => {
          const t = tensorsIn(slots[j + 1], specs);
          fillSource(t, j + 1);
          return t;
        });
        const readArrays = Array.from({ length: n }, (_, j) => new Float32Array(slots[j + 1], 0, bytes / 4));
        const w = Array.from({ length: n }, () => 1 / n);
        const out = tensorsIn(slots[0], specs);
        const moved = (n + 1) * bytes;
        const prepared = prepareInterpolation(srcs, { out, threads });
        const oneShot = () => interpolate(srcs, w, { out, threads });
        await probeOnce(); // warm-up: page faults and caches outside the timing
        await oneShot();
        await prepared.run(w);
        await readOnce(readArrays);
        // Each timed run sits between two probes (probe, soup, probe, prepared soup, probe, read, probe, …)
        // and is compared with their geometric mean: every run starts from the same cache state (a soup
        // right after another finds part of its working set in the last-level cache), and a drift of the
        // bandwidth during the pair shows in both neighbours instead of one.
        const ps: number[] = [],
          ks: number[] = [],
          pk: number[] = [],
          rd: number[] = [];
        const timed = async (into: number[], fn: () => Promise<unknown>) => {
          const t0 = performance.now();
          await fn();
          into.push((performance.now() - t0) / 1000);
          ps.push(await probeOnce());
        };
        ps.push(await probeOnce());
        for (let r = 0; r < reps; r++) {
          await timed(ks, oneShot);
          await timed(pk, () => prepared.run(w));
          rd.push(await readOnce(readArrays));
          ps.push(await probeOnce());
        }
        const around = (k: number) => Math.sqrt(probeGbps(ps[k]) * probeGbps(ps[k + 1]));
        // ofProbe: median over reps of (GB/s) / (geometric mean GB/s of the probes on either side)
        const ofProbe = (ts: number[], slot: number, bytesMoved: number) => median(ts.map((t, r) => bytesMoved / t / around(3 * r + slot)));
        const readBytes = n * bytes;
        add({ regime, dtype, n, method: `probe (triad)`, gbps: (3 * bytes) / median(ps) / 1e9, ms: median(ps) * 1e3, p90ms: percentile(ps, 90) * 1e3 });
        add({
          regime,
          dtype,
          n,
          method: `read ${n} sources`,
          gbps: readBytes / median(rd) / 1e9,
          ms: median(rd) * 1e3,
          p90ms: percentile(rd, 90) * 1e3,
          ofProbe: ofProbe(rd, 2, readBytes),
        });
        add({
          regime,
          dtype,
          n,
          method: `soup (${info.simd})`,
          gbps: moved / median(ks) / 1e9,
          ms: median(ks) * 1e3,
          p90ms: percentile(ks, 90) * 1e3,
          ofProbe: ofProbe(ks, 0, moved),
        });
        add({
          regime,
          dtype,
          n,
          method: `soup prepared (${info.simd})`,
          gbps: moved / median(pk) / 1e9,
          ms: median(pk) * 1e3,
          p90ms: percentile(pk, 90) * 1e3,
          ofProbe: ofProbe(pk, 1, moved),
        });
        if (regime === 'full' && n === ns[0] && (o.freshOutputs ?? true)) {
          // interpolate() without opts.out allocates its outputs: on 4 KiB pages every page faults on first
          // touch, so the allocator advises huge pages (native/core/large_buffer.h). Both timed the same
          // way, interleaved: allocate, interpolate into it, free.
          const outBytes = sizeOf(regime, dtype);
          const fresh = async (huge: boolean) => {
            const t0 = performance.now();
            if (huge) await interpolate(srcs, w, { threads });
            else await interpolate(srcs, w, { out: tensorsIn(alloc(outBytes, false), specs), threads });
            const t = (performance.now() - t0) / 1000;
            collectGarbage(); // gigabytes per call: free them now, not when the GC gets round to it
            return t;
          };
          const huge: number[] = [],
            small: number[] = [];
          for (let r = 0; r < Math.min(reps, 5); r++) {
            huge.push(await fresh(true));
            small.push(await fresh(false));
          }
          const speedup = median(small.map((t, r) => t / huge[r]));
          add({
            regime,
            dtype,
            n,
            method: 'interpolate() new outputs',
            gbps: moved / median(huge) / 1e9,
            ms: median(huge) * 1e3,
            p90ms: percentile(huge, 90) * 1e3,
            vs4k: speedup,
          });
          add({
            regime,
            dtype,
            n,
            method: 'new outputs, 4 KiB pages',
            gbps: moved / median(small) / 1e9,
            ms: median(small) * 1e3,
            p90ms: percentile(small, 90) * 1e3,
          });
        }
        if (o.js ?? true) {
          const jt = await time(Math.min(reps, 2), () => jsLoop(srcs, w, out, dtype));
          add({ regime, dtype, n, method: 'plain JS loop', gbps: moved / median(jt) / 1e9, ms: median(jt) * 1e3, p90ms: percentile(jt, 90) * 1e3 });
        }
        srcs.length = 0;
        // PyTorch needs its own N sources, an output and a temporary; skip rather than risk the OOM killer
        const torchNeeds = (n + 2) * bytes,
          held = (slots.length + probeSlots.length) * slotBytes;
        const torchFits = torchNeeds + held < 0.9 * totalmem();
        if (useTorch && !torchFits)
          log(
            `  torch baseline skipped for N=${n}: needs ~${(torchNeeds / 2 ** 30).toFixed(1)} GiB beside the ${(held / 2 ** 30).toFixed(1)} GiB this bench holds`,
          );
        if (useTorch && torchFits) {
          // One rep at a time, each between two probes like the soups (torch_merge.py): its ratio to the
          // probe is comparable with the soup's, whatever the bandwidth did in between.
          let torch: TorchBaseline | undefined;
          try {
            torch = await TorchBaseline.start({ shapes, dtype, n, threads });
            const torchReps = Math.min(reps, 3); // 100–200× slower than the soup for sum(l*t): 3 reps tell enough
            for (const [method, name] of [
              ['sum', 'torch sum(l*t)'],
              ['inplace', 'torch mul_/add_'],
            ] as const) {
              await torch.run(method); // warm-up: first-touch of its temporaries and outputs
              const ts: number[] = [],
                ratios: number[] = [];
              let before = await probeOnce();
              for (let r = 0; r < torchReps; r++) {
                const t = await torch.run(method);
                const after = await probeOnce();
                ts.push(t);
                ratios.push(moved / t / Math.sqrt(probeGbps(before) * probeGbps(after)));
                before = after;
              }
              add({
                regime,
                dtype,
                n,
                method: name,
                gbps: moved / median(ts) / 1e9,
                ms: median(ts) * 1e3,
                p90ms: percentile(ts, 90) * 1e3,
                ofProbe: median(ratios),
              });
            }
          } catch (e) {
            log(`  torch baseline failed: ${(e as Error).message}`);
          } finally {
            if (torch) {
              await torch.close();
              // The exiting Python process hands back gigabytes; kernels timed in the next second ran up to
              // 2× slower (the LoRA group after a torch run: 34 % of the probe against 54–56 % without it).
              await new Promise((r) => setTimeout(r, 3000));
            }
          }
        }
      }
    }
  }
  log('');
  log(
    table(
      rows.map((r) => ({ ...r, 'GB/s': r.gbps, 'p50 ms': r.ms, 'p90 ms': r.p90ms, '% probe': typeof r.ofProbe === 'number' ? 100 * r.ofProbe : '' })),
      ['regime', 'dtype', 'n', 'method', 'GB/s', 'p50 ms', 'p90 ms', '% probe'],
    ),
  );
  log('');
  log(summarize(rows));
  return rows;
}

/** The ratios the README claims: soup vs probe (median of same-rep ratios), vs torch sum(l*t), vs torch
 *  in-place, vs a JS loop. */
export function summarize(rows: BenchRow[]): string {
  const lines: string[] = ['ratios (same run):'];
  const groups = new Map<string, BenchRow[]>();
  for (const r of rows) {
    const k = `${r.regime} ${r.dtype}`;
    if (!groups.has(k)) groups.set(k, []);
    groups.get(k)!.push(r);
  }
  for (const [k, rs] of groups) {
    for (const n of [...new Set(rs.filter((r) => r.n > 0).map((r) => r.n))]) {
      const soup = rs.find((r) => r.n === n && r.method.startsWith('soup ('));
      const prepared = rs.find((r) => r.n === n && r.method.startsWith('soup prepared'));
      const sum = rs.find((r) => r.n === n && r.method === 'torch sum(l*t)');
      const inplace = rs.find((r) => r.n === n && r.method === 'torch mul_/add_');
      const js = rs.find((r) => r.n === n && r.method === 'plain JS loop');
      const read = rs.find((r) => r.n === n && r.method === `read ${n} sources`);
      const fresh = rs.find((r) => r.n === n && r.method === 'interpolate() new outputs');
      if (!soup) continue;
      const pct = (r: BenchRow) => `${(100 * Number(r.ofProbe)).toFixed(0)}%`;
      const parts = [`${k} N=${n}: interpolate() ${pct(soup)} of probe${prepared ? `, prepared ${pct(prepared)}` : ''}`];
      // Against reading the N sources alone (a time ratio, from the two same-run %-of-probe figures): near
      // 1 where reads bound the soup and its write and arithmetic hide behind them
      if (read)
        parts.push(
          `time ${((Number(read.ofProbe) / Number(soup.ofProbe)) * ((n + 1) / n)).toFixed(2)}x reading its ${n} sources alone (read probe ${pct(read)} of probe)`,
        );
      // vs PyTorch: the ratio of the two %-of-probe figures (each rep of either between two probes), so a
      // bandwidth drift between the soup's reps and PyTorch's does not count for either side
      const vs = (t: BenchRow) =>
        typeof t.ofProbe === 'number' && typeof soup.ofProbe === 'number' ? soup.ofProbe / t.ofProbe : soup.ms === 0 ? NaN : t.ms / soup.ms;
      if (sum) parts.push(`${vs(sum).toFixed(1)}x torch sum(l*t)`);
      if (inplace) parts.push(`${vs(inplace).toFixed(1)}x torch in-place (times alone: ${(inplace.ms / soup.ms).toFixed(1)}x)`);
      if (js) parts.push(`${(js.ms / soup.ms).toFixed(1)}x JS loop`);
      if (fresh) parts.push(`new outputs on huge pages ${Number(fresh.vs4k).toFixed(1)}x faster than on 4 KiB pages`);
      lines.push(`  ${parts.join(', ')}`);
    }
  }
  return lines.join('\n');
}
