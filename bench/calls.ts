// SPDX-License-Identifier: MIT
// npx tsx bench/calls.ts [--tensors 64,512,4096] [--n 2] [--dtype bfloat16] [--reps 41]
// What an in-memory soup costs outside its kernel, one-shot against prepared (src/bench/calls.ts).
// Under tsx every closure is wrapped for its name; `node dist/cli/main.js bench calls` measures the
// compiled code users run. Table on stderr, JSON lines on stdout.
import { benchCalls } from '../src/bench/calls.js';

const arg = (k: string) => {
  const i = process.argv.indexOf(`--${k}`);
  return i > 0 ? process.argv[i + 1] : undefined;
};
await benchCalls({
  tensors: arg('tensors')?.split(',').map(Number),
  n: arg('n') ? Number(arg('n')) : undefined,
  dtype: arg('dtype') as never,
  reps: arg('reps') ? Number(arg('reps')) : undefined,
  json: (o) => process.stdout.write(`${JSON.stringify(o)}\n`),
});
