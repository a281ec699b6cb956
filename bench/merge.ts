// SPDX-License-Identifier: MIT
// npx tsx bench/merge.ts [--full-gib 1] [--reps 15] [--n 2,4,8] [--dtypes float32,bfloat16] [--regimes lora,full]
//   [--no-torch] [--no-js] [--no-fresh] [--huge-pages 0|1 (the bench's own buffers; default 0)]
// Prints progress and a table on stderr, JSON lines on stdout.
import { benchMerge } from '../src/bench/merge.js';

const arg = (k: string) => {
  const i = process.argv.indexOf(`--${k}`);
  return i > 0 ? process.argv[i + 1] : undefined;
};
await benchMerge({
  fullBytes: arg('full-gib') ? Number(arg('full-gib')) * 2 ** 30 : undefined,
  reps: arg('reps') ? Number(arg('reps')) : undefined,
  ns: arg('n')?.split(',').map(Number),
  dtypes: arg('dtypes')?.split(',') as never,
  regimes: arg('regimes')?.split(',') as never,
  torch: !process.argv.includes('--no-torch'),
  js: !process.argv.includes('--no-js'),
  freshOutputs: !process.argv.includes('--no-fresh'),
  hugePages: arg('huge-pages') === '1',
  json: (o) => process.stdout.write(`${JSON.stringify(o)}\n`),
});
