// SPDX-License-Identifier: MIT
// Per-call cost of an in-memory soup outside its kernel (`rsoup bench calls`):
// wall time of interpolate() and of a prepared run() minus the kernel's own time (stats.seconds), for
// T tensors per source, called back to back or right after a triad has streamed 192 MiB through the
// caches (as a λ sweep's evaluation does between two soups). The one-shot call checks every tensor and
// resolves T × (N+1) arrays to pointers; the prepared run passes only the weights.
import { coreAddon, packageRoot } from '../native/index.js';
import { interpolate, prepareInterpolation, type InterpolateStats } from '../soup/interpolate.js';
import { viewAs, type DType, type TensorMap } from '../io/tensor.js';
import { median, table, gitSha } from './stats.js';
import { SoupError } from '../errors.js';

export interface CallBenchOptions {
  /** Tensors per source (default 64, 512, 4096); each source holds 32 MiB whatever the count. */
  tensors?: number[];
  n?: number;
  dtype?: DType;
  reps?: number;
  threads?: number;
  log?: (line: string) => void;
  json?: (obj: Record<string, unknown>) => void;
}

export async function benchCalls(o: CallBenchOptions = {}): Promise<Record<string, string | number>[]> {
  const counts = o.tensors ?? [64, 512, 4096];
  const n = o.n ?? 2;
  const dtype = o.dtype ?? 'bfloat16';
  const reps = o.reps ?? 41;
  const threads = o.threads;
  const log = o.log ?? ((l: string) => process.stderr.write(`${l}\n`));
  const addon = coreAddon();
  const size = dtype === 'float32' ? 4 : dtype === 'float64' ? 8 : 2;
  const perSource = 32 << 20;
  const probeBytes = 64 << 20;
  const probeArrays = [0, 1, 2].map((k) => new Float32Array(addon.allocBuffer(probeBytes)).fill(0.5 + k));
  const evict = () => addon.bandwidthProbe({ bytes: probeBytes, reps: 1, threads, nonTemporal: true, arrays: probeArrays });
  const rows: Record<string, string | number>[] = [];
  for (const t of counts) {
    const numel = Math.floor(perSource / size / t / 64) * 64;
    if (numel < 64) throw new SoupError('ERR_SOUP_INVALID_ARG', `tensors: ${t} per source leave fewer than 64 elements each in ${perSource >> 20} MiB`);
    const make = (seed: number): TensorMap => {
      const buf = addon.allocBuffer(t * numel * size);
      const map: TensorMap = {};
      for (let k = 0; k < t; k++) {
        // own shape arrays, as tensors read from files have
        const data = viewAs(dtype, buf, k * numel * size, numel);
        if (data instanceof Uint16Array) for (let i = 0; i < numel; i++) data[i] = 0x3c00 + ((i * 40503 + seed) & 0x3ff);
        else for (let i = 0; i < numel; i++) data[i] = ((i * 7 + seed) % 13) / 13 + 0.01;
        map[`model.layers.${k >> 3}.proj_${k & 7}.lora_${k & 1 ? 'B' : 'A'}.weight`] = { dtype, shape: [16, numel / 16], data };
      }
      return map;
    };
    const srcs = Array.from({ length: n }, (_, j) => make(j + 1));
    const out = make(99);
    const w = Array.from({ length: n }, () => 1 / n);
    const prepared = prepareInterpolation(srcs, { out, threads });
    // ms of one call outside the kernel: its wall time minus the kernel's own (stats.seconds)
    const outsideKernel = async (call: (stats: InterpolateStats) => Promise<unknown>) => {
      const stats: InterpolateStats = { seconds: 0, bytes: 0, kernel: '', nonTemporal: false };
      const t0 = performance.now();
      await call(stats);
      return performance.now() - t0 - stats.seconds * 1e3;
    };
    const calls = {
      'interpolate()': () => outsideKernel((stats) => interpolate(srcs, w, { out, threads, stats })),
      'prepared run()': () => outsideKernel((stats) => prepared.run(w, { stats })),
    };
    for (const fn of Object.values(calls)) for (let r = 0; r < 5; r++) await fn(); // warm-up: JIT, pages
    for (const state of ['back to back', 'after a probe'] as const) {
      const got: Record<string, number[]> = { 'interpolate()': [], 'prepared run()': [] };
      for (let r = 0; r < reps; r++)
        for (const [call, fn] of Object.entries(calls)) {
          if (state === 'after a probe') await evict();
          got[call].push(await fn());
        }
      for (const [call, ms] of Object.entries(got)) {
        const m = median(ms);
        const row = { tensors: t, n, dtype, state, call, 'overhead ms': m, 'µs per array': (m * 1e3) / (t * (n + 1)) };
        rows.push(row);
        o.json?.({ bench: 'calls', sha: gitSha(packageRoot), ...row, samples: ms.length });
      }
    }
    log(`  ${t} tensors done`);
  }
  log(table(rows, ['tensors', 'n', 'dtype', 'state', 'call', 'overhead ms', 'µs per array']));
  return rows;
}
