// SPDX-License-Identifier: MIT
// The built-in demo experiment (`rsoup demo`, `npm run demo`): the same settings as examples/demo.yml,
// kept in code so the demo needs no file outside the package. A test checks the two agree.
import type { ExperimentInput } from './config.js';

export const DEMO_TOPIC_WORDS = ['life', 'world', 'man', 'men', 'woman', 'women', 'people', 'time', 'day', 'work', 'law', 'computer', 'system', 'god', 'money', 'year', 'years', 'mind', 'thing', 'things'];

export const DEMO_EXPERIMENT: ExperimentInput = {
  name: 'demo',
  seed: 0,
  output: 'runs/demo',
  base: {
    pretrain: { vocab_size: 2048, hidden_size: 128, intermediate_size: 344, num_layers: 4, num_heads: 4, steps: 450, batch_size: 32, seq_len: 128, learning_rate: 0.003, warmup_steps: 30 },
  },
  prompts: { prompt_tokens: 8, num_train: 384, num_eval: 128 },
  rewards: [
    { type: 'vader', name: 'vader' },
    { type: 'lexicon', name: 'topic', words: DEMO_TOPIC_WORDS },
  ],
  lora: { r: 8, lora_alpha: 16, lora_dropout: 0, target_modules: ['q_proj', 'v_proj'] },
  ppo: {
    learning_rate: 0.003, batch_size: 64, mini_batch_size: 16, ppo_epochs: 4, init_kl_coef: 0.01, adap_kl_ctrl: false, save_every: 10,
    generation: { output_min_length: 16, output_max_length: 32 },
  },
  experts: { steps: 150 },
  morl: { mu: [[0.5, 0.5]] },
  sweep: { lambdas: 11, max_new_tokens: 24, seed: 1234 },
};

/** The demo, with `--full` adding MORL at μ ∈ {0.25, 0.75} (the paper's denser baseline). */
export function demoExperiment(o: { full?: boolean; output?: string } = {}): ExperimentInput {
  const x = structuredClone(DEMO_EXPERIMENT);
  if (o.full) x.morl = { mu: [[0.75, 0.25], [0.5, 0.5], [0.25, 0.75]] };
  if (o.output) x.output = o.output;
  return x;
}
