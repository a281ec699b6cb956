// SPDX-License-Identifier: MIT
// Peak memory of a file-to-file merge: N sources of S GiB each (default 4 × 4 GiB, bf16, LLaMA layer
// shapes), merged in a fresh child process whose peak RSS (VmHWM) is read from /proc at the end.
//   npx tsx bench/merge-memory.ts [--n 4] [--gib 4] [--dir /var/tmp/soup-mem] [--keep]
// Needs N × S GiB (+ S for the output) of free disk. Prints one JSON line on stdout.
import { spawnSync } from 'node:child_process';
import { mkdirSync, rmSync, existsSync, openSync, writeSync, closeSync, readFileSync, statfsSync } from 'node:fs';
import { join } from 'node:path';
import { buildHeader } from '../src/io/safetensors.js';

const arg = (k: string, d: string) => {
  const i = process.argv.indexOf(`--${k}`);
  return i > 0 ? process.argv[i + 1] : d;
};
const n = Number(arg('n', '4'));
const gib = Number(arg('gib', '4'));
const dir = arg('dir', '/var/tmp/soup-mem');
mkdirSync(dir, { recursive: true });
const fsinfo = statfsSync(dir);
const need = (n + 1) * gib * 2 ** 30;
if (fsinfo.bavail * fsinfo.bsize < need * 1.05) throw new Error(`need ${(need / 2 ** 30).toFixed(1)} GiB free in ${dir}`);

// Sources: bf16 4096x4096 and 11008x4096 matrices up to `gib` GiB, written straight from a pattern buffer.
const shapes: number[][] = [];
let bytes = 0;
for (let i = 0; bytes < gib * 2 ** 30; i++) {
  const s = i % 3 === 2 ? [11008, 4096] : [4096, 4096];
  shapes.push(s);
  bytes += s[0] * s[1] * 2;
}
const pattern = Buffer.alloc(64 << 20);
for (let i = 0; i < pattern.length / 2; i++) pattern.writeUInt16LE(0x3c00 + ((i * 40503) & 0x3ff), i * 2);
const sources: string[] = [];
for (let k = 0; k < n; k++) {
  const p = join(dir, `src-${k}.safetensors`);
  sources.push(p);
  if (existsSync(p)) continue;
  const { bytes: header } = buildHeader(shapes.map((s, i) => ({ name: `model.layers.${i}.w`, dtype: 'bfloat16', shape: s })));
  const fd = openSync(p, 'w');
  writeSync(fd, header);
  let left = bytes;
  while (left > 0) left -= writeSync(fd, pattern, 0, Math.min(pattern.length, left));
  closeSync(fd);
  process.stderr.write(`wrote ${p} (${(bytes / 2 ** 30).toFixed(2)} GiB)\n`);
}
const out = join(dir, 'soup.safetensors');
rmSync(out, { force: true });
// The child merges and reports its own peak RSS.
const child = `
import { merge } from ${JSON.stringify(join(process.cwd(), 'src', 'soup', 'merge.ts'))};
import { readFileSync } from 'node:fs';
const r = await merge({ sources: ${JSON.stringify(sources)}, weights: ${JSON.stringify(sources.map(() => 1 / n))}, out: ${JSON.stringify(out)} });
const hwm = Number(/VmHWM:\\s+(\\d+) kB/.exec(readFileSync('/proc/self/status', 'utf8'))[1]) * 1024;
console.log(JSON.stringify({ ...r, peakRssBytes: hwm }));
`;
const childPath = join(dir, 'child.mts');
await import('node:fs').then((fs) => fs.writeFileSync(childPath, child));
const r = spawnSync(process.execPath, ['--import', 'tsx', childPath], { encoding: 'utf8', cwd: process.cwd() });
if (r.status !== 0) throw new Error(r.stderr);
const rep = JSON.parse(r.stdout.trim().split('\n').at(-1)!);
const line = { event: 'merge-memory', sources: n, gibPerSource: gib, bytesRead: rep.bytesRead, seconds: rep.seconds, peakRssGiB: rep.peakRssBytes / 2 ** 30, readSeconds: rep.readSeconds, kernelSeconds: rep.kernelSeconds, writeSeconds: rep.writeSeconds };
process.stderr.write(`merged ${n} × ${gib} GiB in ${rep.seconds.toFixed(1)} s; peak RSS ${(rep.peakRssBytes / 2 ** 30).toFixed(2)} GiB (limit claimed: 1.5 GiB)\n`);
console.log(JSON.stringify(line));
if (!process.argv.includes('--keep')) rmSync(dir, { recursive: true, force: true });
void readFileSync;
