// SPDX-License-Identifier: MIT
// rsoup bench memory: peak memory of a file-to-file merge. N sources of S GiB each (default 4 × 4 GiB,
// bf16, LLaMA layer shapes) are written once (kept when present), then merged in a fresh child process
// whose peak RSS (VmHWM) is read from /proc at the end. Needs N × S GiB (+ S for the output) of free disk.
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, rmdirSync, rmSync, statfsSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { buildHeader } from '../io/safetensors.js';
import { merge } from '../soup/merge.js';
import { SoupError } from '../errors.js';
import { runChild } from './child.js';

export interface MemoryBenchOptions {
  /** Sources (default 4). */
  n?: number;
  /** GiB per source (default 4). */
  gib?: number;
  /** Where the sources and the soup are written (default /var/tmp/soup-mem). */
  dir?: string;
  /** Keep the files this bench wrote. */
  keep?: boolean;
  log?: (line: string) => void;
  json?: (obj: Record<string, unknown>) => void;
}

export interface MemoryTrial {
  sources: string[];
  out: string;
}

export interface MemoryTrialResult {
  bytesRead: number;
  seconds: number;
  readSeconds: number;
  kernelSeconds: number;
  writeSeconds: number;
  peakRssBytes: number;
}

export interface MemoryBenchRow {
  event: 'merge-memory';
  sources: number;
  gibPerSource: number;
  bytesRead: number;
  seconds: number;
  peakRssGiB: number;
  readSeconds: number;
  kernelSeconds: number;
  writeSeconds: number;
}

/** The merge (the child process's side): equal weights, then this process's VmHWM. */
export async function memoryTrial(t: MemoryTrial): Promise<MemoryTrialResult> {
  const r = await merge({ sources: t.sources, weights: t.sources.map(() => 1 / t.sources.length), out: t.out });
  const hwm = Number(/VmHWM:\s+(\d+) kB/.exec(readFileSync('/proc/self/status', 'utf8'))?.[1]) * 1024;
  return {
    bytesRead: r.bytesRead,
    seconds: r.seconds,
    readSeconds: r.readSeconds,
    kernelSeconds: r.kernelSeconds,
    writeSeconds: r.writeSeconds,
    peakRssBytes: hwm,
  };
}

export async function benchMemory(o: MemoryBenchOptions = {}): Promise<MemoryBenchRow> {
  const n = o.n ?? 4,
    gib = o.gib ?? 4,
    dir = o.dir ?? '/var/tmp/soup-mem';
  const log = o.log ?? ((l: string) => process.stderr.write(`${l}\n`));
  const madeDir = mkdirSync(dir, { recursive: true }) !== undefined;
  // Sources: bf16 4096x4096 and 11008x4096 matrices up to `gib` GiB, written straight from a pattern buffer.
  const shapes: number[][] = [];
  let bytes = 0;
  for (let i = 0; bytes < gib * 2 ** 30; i++) {
    const s = i % 3 === 2 ? [11008, 4096] : [4096, 4096];
    shapes.push(s);
    bytes += s[0] * s[1] * 2;
  }
  const sources = Array.from({ length: n }, (_, k) => join(dir, `src-${k}.safetensors`));
  const out = join(dir, 'soup.safetensors');
  const fsinfo = statfsSync(dir);
  const need = sources.filter((p) => !existsSync(p)).length * bytes + bytes;
  if (fsinfo.bavail * fsinfo.bsize < need * 1.05) throw new SoupError('ERR_SOUP_INVALID_ARG', `need ${(need / 2 ** 30).toFixed(1)} GiB free in ${dir}`);
  const written: string[] = [];
  const pattern = Buffer.alloc(64 << 20);
  for (let i = 0; i < pattern.length / 2; i++) pattern.writeUInt16LE(0x3c00 + ((i * 40503) & 0x3ff), i * 2);
  for (const p of sources) {
    if (existsSync(p)) continue;
    const { bytes: header } = buildHeader(shapes.map((s, i) => ({ name: `model.layers.${i}.w`, dtype: 'bfloat16', shape: s })));
    const fd = openSync(p, 'w');
    written.push(p);
    writeSync(fd, header);
    let left = bytes;
    while (left > 0) left -= writeSync(fd, pattern, 0, Math.min(pattern.length, left));
    closeSync(fd);
    log(`wrote ${p} (${(bytes / 2 ** 30).toFixed(2)} GiB)`);
  }
  rmSync(out, { force: true });
  try {
    const rep = await runChild<MemoryTrialResult>('memory', { sources, out } satisfies MemoryTrial);
    const row: MemoryBenchRow = {
      event: 'merge-memory',
      sources: n,
      gibPerSource: gib,
      bytesRead: rep.bytesRead,
      seconds: rep.seconds,
      peakRssGiB: rep.peakRssBytes / 2 ** 30,
      readSeconds: rep.readSeconds,
      kernelSeconds: rep.kernelSeconds,
      writeSeconds: rep.writeSeconds,
    };
    log(`merged ${n} × ${gib} GiB in ${rep.seconds.toFixed(1)} s; peak RSS ${row.peakRssGiB.toFixed(2)} GiB (limit claimed: 1.5 GiB)`);
    o.json?.({ ...row });
    return row;
  } finally {
    // Only what this run wrote (sources that were there stay), and the dir when this run made it.
    if (!o.keep) {
      for (const p of [...written, out]) rmSync(p, { force: true });
      if (madeDir)
        try {
          rmdirSync(dir);
        } catch {
          /* not empty: someone else's files */
        }
    }
  }
}
