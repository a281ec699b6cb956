// SPDX-License-Identifier: MIT
// The micro experiment the `rsoup run` tests share: a 1-layer d=16 model pre-trained for 4 steps on a
// 60 kB slice of the fortunes corpus, two rewards, 2 experts + 1 MORL run of a few PPO steps: seconds.
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

const FORTUNES = '/usr/share/games/fortunes';

/** The micro config (`corpus` relative to the config's folder; see writeMicroCorpus). */
export const microConfig = (steps = 3, extra = '') => `name: micro
seed: 3
output: run
base:
  pretrain: { corpus_dir: corpus, hold_every: 4, vocab_size: 320, hidden_size: 16, intermediate_size: 32, num_layers: 1, num_heads: 2, steps: 4, batch_size: 4, seq_len: 32, warmup_steps: 2, threads: 1 }
prompts: { prompt_tokens: 6, num_train: 16, num_eval: 8 }
rewards:
  - { type: vader, name: vader }
  - { type: lexicon, name: topic, words: [life, world, man, time, computer, the, a] }
lora: { r: 2, lora_alpha: 4, target_modules: [q_proj, v_proj] }
ppo: { learning_rate: 0.01, batch_size: 4, mini_batch_size: 2, ppo_epochs: 1, init_kl_coef: 0.01, save_every: 2, generation: { output_min_length: 4, output_max_length: 6 } }
experts: { steps: ${steps} }
morl: { mu: [[0.5, 0.5]] }
sweep: { lambdas: 3, max_new_tokens: 5, threads: 1 }
${extra}`;

/** A slice of the real corpus in `dir`/corpus: keeps the tokenizer and pre-training to a second. */
export function writeMicroCorpus(dir: string): void {
  mkdirSync(join(dir, 'corpus'));
  writeFileSync(
    join(dir, 'corpus', 'fortunes'),
    readFileSync(join(FORTUNES, 'fortunes'), 'utf8')
      .slice(0, 60_000)
      .replace(/\n%\n[^%]*$/, '\n'),
  );
}

/** A report without what differs between identical runs (seconds, CPU seconds, the cost sentence). */
export function stripTimes(r: Record<string, unknown>): Record<string, unknown> {
  const c = structuredClone(r) as { cost: Record<string, { seconds?: number; cpu_seconds?: number }>; reading: string[] };
  for (const k of Object.keys(c.cost)) {
    delete c.cost[k].seconds;
    delete c.cost[k].cpu_seconds;
  }
  c.reading = c.reading.filter((l) => !l.startsWith('Training cost'));
  return c;
}

/** A locomotion experiment of a few seconds (tiny envs, episodes and PPO). */
export const microLocomotion = (out: string) => ({
  output: out,
  env: { num_envs: 4, max_episode_steps: 60 },
  ppo: { num_steps: 32, num_minibatches: 4, update_epochs: 2 },
  pretrain: { steps: 256 },
  experts: { steps: 128 },
  sweep: { lambdas: 5, episodes: 3, seed: 7 },
  render: { every: 10, frames: 3 },
});
