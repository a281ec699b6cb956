// SPDX-License-Identifier: MIT
// rsoup bench rewards: reward throughput. BLEU-4 and ROUGE-L per-sample rewards on 10 000 samples of 30
// words (one 30-word reference each), VADER, CIDEr-D and METEOR (at most 2000 samples), plus a same-run
// baseline (13a tokenization + whitespace split of hypothesis and reference, the least any BLEU must do).
// Also the time to score one PPO batch of the demo (64 samples) with each reward. CPU seconds of this
// process (user + system) are the main figure: on a shared, loaded machine wall time mostly measures
// waiting for a core; wall time is kept too.
import { loadavg } from 'node:os';
import { mulberry32 } from '../util/random.js';
import { bleuReward, rougeReward, tokenize13a, vaderReward, meteorReward, CiderReward, type Reward, type Sample } from '../rewards/index.js';

export interface RewardsBenchOptions {
  /** Samples scored per trial (default 10 000; METEOR scores at most 2000). */
  n?: number;
  /** Trials, all rewards interleaved in each; medians reported (default 5). */
  trials?: number;
  log?: (line: string) => void;
  json?: (obj: Record<string, unknown>) => void;
}

export interface RewardsBenchRow {
  reward: string;
  samples: number;
  /** Median CPU seconds to score `samples`. */
  seconds: number;
  samplesPerSec: number;
  wallSamplesPerSec: number;
  /** CPU time to score the demo's 64-sample PPO batch, ms (absent for the baseline). */
  ppoBatch64Ms?: number;
  vsBaseline: number;
}

const WORDS =
  'the a of to and in is it that was for on are with as his they be at one have this from or had by word but what some we can out other were all there when up use your how said an each she which do their time if will way about many then them write would like so these her long make thing see him two has look more day could go come did number sound no most people my over know water than call first who may down side been now find good great bad happy sad terrible wonderful love hate nice awful best worst'.split(
    ' ',
  );

export async function benchRewards(o: RewardsBenchOptions = {}): Promise<RewardsBenchRow[]> {
  const N = o.n ?? 10_000;
  const TRIALS = o.trials ?? 5;
  const log = o.log ?? ((l: string) => process.stderr.write(`${l}\n`));
  // mulberry32: exact 32-bit arithmetic (a float LCG would lose bits and cycle, making samples repeat).
  const rnd = mulberry32(12345);
  const vocab = [...WORDS, ...Array.from({ length: 400 }, (_, i) => `w${i.toString(36)}`)];
  const words = (n: number) => Array.from({ length: n }, () => vocab[Math.floor(rnd() * vocab.length)]);
  const makeSamples = (n: number): Sample[] =>
    Array.from({ length: n }, () => {
      const hyp = words(30);
      const ref = hyp.map((w) => (rnd() < 0.3 ? vocab[Math.floor(rnd() * vocab.length)] : w));
      return { prompt: 'Describe the image:', response: `${hyp.join(' ')}.`, references: [`${ref.join(' ')}.`] };
    });

  let lastWall = 0;
  const time = async (fn: () => Promise<unknown> | unknown): Promise<number> => {
    const c0 = process.cpuUsage();
    const t0 = process.hrtime.bigint();
    await fn();
    lastWall = Number(process.hrtime.bigint() - t0) / 1e9;
    const c = process.cpuUsage(c0);
    return (c.user + c.system) / 1e6;
  };

  const samples = makeSamples(N);
  // Every sample distinct, so the rewards' de-duplication cannot skip work.
  if (new Set(samples.map((x) => x.response)).size !== N) throw new Error('bench samples are not distinct');
  const ppoBatch = makeSamples(64);
  const median = (xs: number[]) => xs.slice().sort((a, b) => a - b)[Math.floor(xs.length / 2)];

  // Same-run baseline: the tokenization every BLEU needs (13a on hypothesis and reference, then split).
  const baseline = (n: number): void => {
    for (let i = 0; i < n; i++) {
      const s = samples[i];
      tokenize13a(s.response).split(' ');
      tokenize13a((s.references as string[])[0]).split(' ');
    }
  };

  const rewards: Array<[string, () => Reward, number]> = [
    ['bleu-4 (sacreBLEU sentence, 13a, exp)', () => bleuReward(), N],
    ['rougeL (rouge_score)', () => rougeReward({ variant: 'rougeL' }), N],
    ['rougeL + Porter stemmer', () => rougeReward({ variant: 'rougeL', stemmer: true }), N],
    ['vader compound', () => vaderReward(), N],
    ['CIDEr-D (df from 1000-sample batches)', () => new CiderReward({ batchSize: 1000 }), N],
    ['meteor (NLTK, WordNet)', () => meteorReward(), Math.min(N, 2000)],
  ];
  baseline(N); // warm-up
  for (const [, make] of rewards) await make().score(samples.slice(0, 500));
  // Trials interleave all rewards so that load from other processes hits them alike; the median counts.
  const cpu = new Map<string, number[]>();
  const wall = new Map<string, number[]>();
  const push = (m: Map<string, number[]>, k: string, v: number) => m.set(k, [...(m.get(k) ?? []), v]);
  for (let t = 0; t < TRIALS; t++) {
    push(cpu, 'baseline', await time(() => baseline(N)));
    push(wall, 'baseline', lastWall);
    for (const [label, make, n] of rewards) {
      const r = make(); // fresh instance: no cache carried over
      push(cpu, label, await time(() => r.score(samples.slice(0, n))));
      push(wall, label, lastWall);
      const p = make();
      push(cpu, `ppo:${label}`, await time(() => p.score(ppoBatch)));
    }
  }
  const bSec = median(cpu.get('baseline')!);
  const results: RewardsBenchRow[] = [
    {
      reward: 'baseline: 13a tokenize hyp+ref',
      samples: N,
      seconds: bSec,
      samplesPerSec: N / bSec,
      wallSamplesPerSec: N / median(wall.get('baseline')!),
      vsBaseline: 1,
    },
  ];
  for (const [label, , n] of rewards) {
    const sec = median(cpu.get(label)!);
    results.push({
      reward: label,
      samples: n,
      seconds: sec,
      samplesPerSec: n / sec,
      wallSamplesPerSec: n / median(wall.get(label)!),
      vsBaseline: n / sec / (N / bSec),
      ppoBatch64Ms: median(cpu.get(`ppo:${label}`)!) * 1e3,
    });
  }
  for (const r of results) o.json?.({ bench: 'rewards', ...r, trials: TRIALS, node: process.version });
  log(
    `rewards bench: ${N} samples of 30 words (1 reference of 30 words), median of ${TRIALS} trials, node ${process.version}, load average ${loadavg()[0].toFixed(1)}`,
  );
  log(`${'reward'.padEnd(40)}${'samples/s (CPU)'.padStart(16)}${'(wall)'.padStart(9)}  vs baseline  64-sample PPO batch (CPU)`);
  for (const r of results) {
    log(
      `${r.reward.padEnd(40)}${r.samplesPerSec.toFixed(0).padStart(16)}${r.wallSamplesPerSec.toFixed(0).padStart(9)}  ${r.vsBaseline.toFixed(3).padStart(11)}  ${r.ppoBatch64Ms === undefined ? '' : `${r.ppoBatch64Ms.toFixed(2)} ms`}`,
    );
  }
  log("A demo PPO step takes ~1070 ms on one core (the demo's text setting): compare the last column with it.");
  return results;
}
