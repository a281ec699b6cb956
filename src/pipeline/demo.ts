// SPDX-License-Identifier: MIT
// The built-in demo experiment (`rsoup demo`, `npm run demo`): the same settings as examples/demo.yml,
// kept in code so the demo needs no file outside the package. A test checks the two agree.
// Settings chosen by the regime sweep of docs/experiment.md ("Choosing the demo's regime"): adaptive KL
// control as trl's (init 0.05, target 4, horizon 1000), a small learning rate, two learned rewards of the
// paper's kind (topic classifiers trained on the corpus's own topic files, scored as log-odds like a
// reward model's logit), MORL at three weightings.
import type { ExperimentInput } from './config.js';

export const DEMO_EXPERIMENT: ExperimentInput = {
  name: 'demo',
  seed: 0,
  output: 'runs/demo',
  base: {
    pretrain: {
      vocab_size: 2048,
      hidden_size: 128,
      intermediate_size: 344,
      num_layers: 4,
      num_heads: 4,
      steps: 450,
      batch_size: 32,
      seq_len: 128,
      learning_rate: 0.003,
      warmup_steps: 30,
      hold_every: 15,
    },
  },
  prompts: { prompt_tokens: 8, num_train: 384, num_eval: 512 },
  rewards: [
    { type: 'topic-classifier', name: 'love', topics: ['love', 'men-women'] },
    { type: 'topic-classifier', name: 'computers', topics: ['computers', 'linux', 'science'] },
  ],
  lora: { r: 8, lora_alpha: 16, lora_dropout: 0, target_modules: ['q_proj', 'v_proj'] },
  ppo: {
    learning_rate: 0.001,
    batch_size: 64,
    mini_batch_size: 16,
    ppo_epochs: 4,
    init_kl_coef: 0.05,
    adap_kl_ctrl: true,
    target: 4,
    horizon: 1000,
    save_every: 10,
    generation: { output_min_length: 16, output_max_length: 32 },
  },
  experts: { steps: 150 },
  morl: {
    mu: [
      [0.75, 0.25],
      [0.5, 0.5],
      [0.25, 0.75],
    ],
  },
  sweep: { lambdas: 11, max_new_tokens: 24, seed: 1234 },
};

/** The demo; `--full` adds a third reward (politics) with its expert, so the report draws the spider
 *  map (the paper's Fig. 2f), and λ drawn on the simplex besides the lattice. */
export function demoExperiment(o: { full?: boolean; output?: string } = {}): ExperimentInput {
  const x = structuredClone(DEMO_EXPERIMENT);
  if (o.full) {
    x.rewards.push({ type: 'topic-classifier', name: 'politics', topics: ['politics', 'law'] });
    x.morl = { mu: [[1 / 3, 1 / 3, 1 / 3]] };
    x.sweep = { ...x.sweep, lambdas: 4, dirichlet: { samples: 6, seed: 1 } };
  }
  if (o.output) x.output = o.output;
  return x;
}
