// SPDX-License-Identifier: MIT
// Reward throughput: BLEU-4 and ROUGE-L per-sample rewards on 10 000 samples of 30 words (one
// 30-word reference each), VADER on 10 000 samples, plus a same-run baseline (13a tokenization +
// whitespace split of hypothesis and reference, the least any BLEU must do). Also the time to score
// one PPO batch of the demo (64 samples) with each reward.
//   npx tsx bench/rewards.ts [--n 10000] [--json]
import { mulberry32 } from '../src/util/random.js';
import { bleuReward, rougeReward, tokenize13a, vaderReward, meteorReward, CiderReward, type Reward, type Sample } from '../src/rewards/index.js';

const args = process.argv.slice(2);
const N = Number(args[args.indexOf('--n') + 1] || 10_000) || 10_000;
const asJson = args.includes('--json');

// mulberry32: exact 32-bit arithmetic (a float LCG would lose bits and cycle, making samples repeat).
const rnd = mulberry32(12345);
const base = 'the a of to and in is it that was for on are with as his they be at one have this from or had by word but what some we can out other were all there when up use your how said an each she which do their time if will way about many then them write would like so these her long make thing see him two has look more day could go come did number sound no most people my over know water than call first who may down side been now find good great bad happy sad terrible wonderful love hate nice awful best worst'.split(' ');
const vocab = [...base, ...Array.from({ length: 400 }, (_, i) => `w${i.toString(36)}`)];
const words = (n: number) => Array.from({ length: n }, () => vocab[Math.floor(rnd() * vocab.length)]);
function makeSamples(n: number): Sample[] {
  return Array.from({ length: n }, () => {
    const hyp = words(30);
    const ref = hyp.map((w) => (rnd() < 0.3 ? vocab[Math.floor(rnd() * vocab.length)] : w));
    return { prompt: 'Describe the image:', response: `${hyp.join(' ')}.`, references: [`${ref.join(' ')}.`] };
  });
}

// CPU seconds of this process (user + system): on a shared, loaded machine (other agents' builds),
// wall time mostly measures waiting for a core; CPU time measures the work. Wall time is kept too.
const wall = new Map<string, number[]>();
let lastWall = 0;
async function time(fn: () => Promise<unknown> | unknown): Promise<number> {
  const c0 = process.cpuUsage();
  const t0 = process.hrtime.bigint();
  await fn();
  lastWall = Number(process.hrtime.bigint() - t0) / 1e9;
  const c = process.cpuUsage(c0);
  return (c.user + c.system) / 1e6;
}

const samples = makeSamples(N);
// Every sample distinct, so the rewards' de-duplication cannot skip work.
if (new Set(samples.map((x) => x.response)).size !== N) throw new Error('bench samples are not distinct');
const ppoBatch = makeSamples(64);
const TRIALS = 5;
const median = (xs: number[]) => xs.slice().sort((a, b) => a - b)[Math.floor(xs.length / 2)];

// Same-run baseline: the tokenization every BLEU needs (13a on hypothesis and reference, then split).
function baseline(n: number): void {
  for (let i = 0; i < n; i++) {
    const s = samples[i];
    tokenize13a(s.response).split(' ');
    tokenize13a((s.references as string[])[0]).split(' ');
  }
}

const rewards: Array<[string, () => Reward, number]> = [
  ['bleu-4 (sacreBLEU sentence, 13a, exp)', () => bleuReward(), N],
  ['rougeL (rouge_score)', () => rougeReward({ variant: 'rougeL' }), N],
  ['rougeL + Porter stemmer', () => rougeReward({ variant: 'rougeL', stemmer: true }), N],
  ['vader compound', () => vaderReward(), N],
  ['CIDEr-D (df from 1000-sample batches)', () => new CiderReward({ batchSize: 1000 }), N],
  ['meteor (NLTK, WordNet)', () => meteorReward(), Math.min(N, 2000)],
];
const results: Array<{ reward: string; samples: number; seconds: number; samplesPerSec: number; wallSamplesPerSec: number; ppoBatch64Ms?: number; vsBaseline?: number }> = [];
baseline(N); // warm-up
for (const [, make] of rewards) await make().score(samples.slice(0, 500));
// Trials interleave all rewards so that load from other processes hits them alike; the median counts.
const times = new Map<string, number[]>([['baseline', []], ...rewards.map(([l]) => [l, []] as [string, number[]]), ...rewards.map(([l]) => [`ppo:${l}`, []] as [string, number[]])]);
for (let t = 0; t < TRIALS; t++) {
  (times.get('baseline') as number[]).push(await time(() => baseline(N)));
  wall.set('baseline', [...(wall.get('baseline') ?? []), lastWall]);
  for (const [label, make, n] of rewards) {
    const r = make(); // fresh instance: no cache carried over
    (times.get(label) as number[]).push(await time(() => r.score(samples.slice(0, n))));
    wall.set(label, [...(wall.get(label) ?? []), lastWall]);
    const p = make();
    (times.get(`ppo:${label}`) as number[]).push(await time(() => p.score(ppoBatch)));
  }
}
const bSec = median(times.get('baseline') as number[]);
results.push({ reward: 'baseline: 13a tokenize hyp+ref', samples: N, seconds: bSec, samplesPerSec: N / bSec, wallSamplesPerSec: N / median(wall.get('baseline') as number[]), vsBaseline: 1 });
for (const [label, , n] of rewards) {
  const sec = median(times.get(label) as number[]);
  results.push({ reward: label, samples: n, seconds: sec, samplesPerSec: n / sec, wallSamplesPerSec: n / median(wall.get(label) as number[]), vsBaseline: n / sec / (N / bSec), ppoBatch64Ms: median(times.get(`ppo:${label}`) as number[]) * 1e3 });
}

if (asJson) {
  for (const r of results) process.stdout.write(`${JSON.stringify({ ...r, trials: TRIALS, node: process.version })}\n`);
} else {
  console.log(`rewards bench: ${N} samples of 30 words (1 reference of 30 words), median of ${TRIALS} trials, node ${process.version}, load average ${(await import('node:os')).loadavg()[0].toFixed(1)}`);
  console.log(`${'reward'.padEnd(40)}${'samples/s (CPU)'.padStart(16)}${'(wall)'.padStart(9)}  vs baseline  64-sample PPO batch (CPU)`);
  for (const r of results) {
    console.log(`${r.reward.padEnd(40)}${r.samplesPerSec.toFixed(0).padStart(16)}${r.wallSamplesPerSec.toFixed(0).padStart(9)}  ${(r.vsBaseline as number).toFixed(3).padStart(11)}  ${r.ppoBatch64Ms === undefined ? '' : `${r.ppoBatch64Ms.toFixed(2)} ms`}`);
  }
  console.log('A demo PPO step takes ~1070 ms on one core (the demo's text setting): compare the last column with it.');
}
