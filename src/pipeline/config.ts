// SPDX-License-Identifier: MIT
// The experiment file (`rsoup run EXPERIMENT.yml`): one YAML with the base model, prompts, rewards, the
// LoRA/PPO settings shared by every run, the experts, the MORL grid, the λ sweep and the report. Every
// check that can fail is done here, before any training: unknown rewards, missing files, λ vectors of
// the wrong length, μ off the simplex.
import { TOPIC_KEYS, TOPIC_TYPE } from './topic.js';
import { existsSync, statSync } from 'node:fs';
import { dirname, isAbsolute, join, resolve } from 'node:path';
import { z } from 'zod';
import { SoupError } from '../errors.js';
import { REWARD_TYPES, checkRewardConfig } from '../rewards/index.js';
import { nearest, parseStrict, readConfigFile, unknownKeyMessage } from '../util/config.js';
import { dirichletSample, lambdaGrid, simplexGrid } from '../pareto/index.js';
import { PPOConfigSchema, parsePPOConfig, type PPOConfig } from '../train/index.js';
import { FORTUNE_DIR, readFortunes } from './corpus.js';

const PretrainSchema = z.strictObject({
  corpus_dir: z.string().default(FORTUNE_DIR),
  /** 1 entry in hold_every is held out of pre-training (PPO and evaluation prompts come from those). */
  hold_every: z.number().int().min(2).default(25),
  vocab_size: z.number().int().min(300).default(2048),
  hidden_size: z.number().int().positive().default(128),
  intermediate_size: z.number().int().positive().default(344),
  num_layers: z.number().int().positive().default(4),
  num_heads: z.number().int().positive().default(4),
  steps: z.number().int().positive().default(450),
  batch_size: z.number().int().positive().default(32),
  seq_len: z.number().int().positive().default(128),
  learning_rate: z.number().positive().default(3e-3),
  warmup_steps: z.number().int().nonnegative().default(30),
  weight_decay: z.number().nonnegative().default(0.1),
  threads: z.number().int().positive().optional(),
});

const BaseSchema = z.strictObject({
  /** A Hugging Face LLaMA dir (config.json, safetensors, tokenizer.json). */
  model: z.string().min(1).optional(),
  /** A PEFT adapter to start every run from (the paper's Alpaca LoRA). */
  adapter: z.string().min(1).optional(),
  /** Or: pre-train a tiny LLaMA on a text corpus (the demo). */
  pretrain: PretrainSchema.optional(),
  dtype: z.enum(['float32', 'bfloat16', 'float16']).default('float32'),
});

const PromptsSchema = z.strictObject({
  /** Text file, one prompt per line (or .jsonl with {"prompt": ...}); with a pre-trained base, omitted:
   *  beginnings of held-out corpus entries. */
  train: z.string().min(1).optional(),
  eval: z.string().min(1).optional(),
  /** Corpus prompts: this many tokens of each held-out entry. */
  prompt_tokens: z.number().int().positive().default(8),
  /** How many prompts to keep (corpus) or use (files): PPO prompts and evaluation prompts. */
  num_train: z.number().int().positive().default(384),
  num_eval: z.number().int().positive().default(128),
});

const LoraSchema = z.strictObject({
  r: z.number().int().positive().default(8),
  lora_alpha: z.number().positive().default(16),
  lora_dropout: z.number().min(0).max(0.99).default(0),
  target_modules: z.array(z.string()).min(1).default(['q_proj', 'v_proj']),
  use_rslora: z.boolean().default(false),
});

const LambdaSpec = z.union([z.number().int().min(2), z.array(z.union([z.number(), z.array(z.number())])).min(1)]);

const SweepSchema = z.strictObject({
  /** 11 (the paper's grid for N = 2; for N >= 3, a simplex lattice with 1/(k-1) steps), or explicit λ vectors. */
  lambdas: LambdaSpec.default(11),
  /** Extra λ outside [0, 1] for two experts (Fig. 11c), e.g. [-0.2, 1.2]. */
  extrapolate: z.array(z.number()).default([]),
  /** 'lora' (the paper's: A and B interpolated separately) or 'dense' (ΔW = s Σ λᵢBᵢAᵢ exactly). */
  interpolation: z.enum(['lora', 'dense']).default('lora'),
  /** Also evaluate the prediction ensemble of the experts (Fig. 4c) at every λ on the simplex: the
   *  experts' next-token distributions averaged with weights λ (N forward passes per token). */
  ensemble: z.boolean().default(false),
  /** λ drawn from a symmetric Dirichlet on the simplex (the paper's Fig. 2f protocol), added to the grid. */
  dirichlet: z.strictObject({ samples: z.number().int().positive(), seed: z.number().int().nonnegative().default(0) }).optional(),
  /** Generation for evaluation, with one seed shared by every model: sampled (default: it measures the
   *  policy's distribution; greedy decoding of a tiny model falls into loops) or greedy (the paper's
   *  inference code). KL to the initialisation is always estimated on sampled responses. */
  max_new_tokens: z.number().int().positive().default(24),
  do_sample: z.boolean().default(true),
  /** Stop each response at EOS, as the paper's inference code (training rollouts keep a fixed length). */
  stop_at_eos: z.boolean().default(true),
  seed: z.number().int().nonnegative().default(1234),
  threads: z.number().int().positive().optional(),
});

const ReportSchema = z.strictObject({
  /** Preferences μ̂ for the λ selection (Lemma 1), one weight per reward. */
  preferences: z.array(z.array(z.number().nonnegative())).optional(),
  /** Hypervolume reference point (standard, higher-is-better); default: the nadir of every evaluated model minus 10% of the range. */
  ref: z.array(z.number()).optional(),
});

/** Where the PPO runs execute (docs/slurm.md). Never part of a stage hash: switching executors reuses every finished stage. */
const ExecutorSchema = z.strictObject({
  /** 'local': child processes of this machine; 'slurm': one job for the base, one array for the experts and MORL runs, one job for the sweep + report. */
  type: z.enum(['local', 'slurm']).default('local'),
  partition: z.string().min(1).optional(),
  account: z.string().min(1).optional(),
  /** Slurm's time limit of each job: minutes, [days-]hours:minutes[:seconds], or days-hours. */
  time: z
    .string()
    .regex(
      /^(\d+|\d+:\d{1,2}|\d+:\d{1,2}:\d{1,2}|\d+-\d+|\d+-\d+:\d{1,2}|\d+-\d+:\d{1,2}:\d{1,2}|UNLIMITED|INFINITE)$/i,
      'a Slurm time limit: minutes, MM:SS, HH:MM:SS, D-HH, D-HH:MM or D-HH:MM:SS',
    )
    .optional(),
  /** CPUs of each job (default: worker_threads, the libtorch threads each PPO run uses under either executor). */
  cpus_per_task: z.number().int().positive().optional(),
  /** Memory of each job, as sbatch --mem takes it (e.g. 64G). */
  mem: z
    .string()
    .regex(/^\d+[KMGT]?$/i, 'a size as sbatch --mem takes it, e.g. 16G or 4000M')
    .optional(),
  /** Generic resources of each job, e.g. gpu:1. */
  gres: z.string().min(1).optional(),
  /** At most this many array tasks at once (sbatch --array=…%k). */
  array_parallelism: z.number().int().positive().optional(),
  /** More sbatch options for every job, e.g. ['--qos=high', '--constraint=a100']. */
  extra_args: z.array(z.string().min(1)).default([]),
});

export const ExperimentSchema = z.strictObject({
  /** The experiment kind (src/pipeline/tasks/index.ts); this schema is the text task's. */
  task: z.literal('text').optional(),
  name: z.string().min(1).default('experiment'),
  seed: z.number().int().nonnegative().default(0),
  /** Run dir (relative to the working directory). */
  output: z.string().min(1).default('runs/experiment'),
  base: BaseSchema,
  prompts: PromptsSchema.prefault({}),
  rewards: z.array(z.unknown()).min(2),
  lora: LoraSchema.prefault({}),
  /** trl 0.4.x PPOConfig fields shared by experts and MORL runs (seed comes from `seed`). */
  ppo: PPOConfigSchema.omit({ seed: true }).prefault({}),
  /** `steps` PPO steps, or `epochs` passes over the training prompts (the paper's Table 1 "epochs";
   *  steps = ceil(epochs × prompts / batch_size)); ppo.ppo_epochs stays trl's optimisation epochs per batch. */
  experts: z.strictObject({ steps: z.number().int().positive().optional(), epochs: z.number().positive().optional() }),
  morl: z
    .strictObject({
      /** μ vectors (each on the simplex, one entry per reward); [] for no MORL baseline. */
      mu: z.array(z.array(z.number())).default([[0.5, 0.5]]),
      steps: z.number().int().positive().optional(),
    })
    .prefault({}),
  sweep: SweepSchema.prefault({}),
  report: ReportSchema.prefault({}),
  /** PPO runs side by side as single-thread worker processes: 'auto' = all at once, up to 2x the cores. */
  workers: z.union([z.literal('auto'), z.number().int().positive()]).default('auto'),
  /** libtorch threads of each PPO worker (1: the fastest layout here, docs/experiment.md). */
  worker_threads: z.number().int().positive().default(1),
  executor: ExecutorSchema.prefault({}),
});

export type ExperimentInput = z.input<typeof ExperimentSchema>;
export type ExperimentFile = z.output<typeof ExperimentSchema>;

export interface Experiment extends Omit<ExperimentFile, 'experts'> {
  /** PPO steps of each expert (given, or computed from `epochs`). */
  experts: { steps: number; epochs?: number };
  /** The file it came from ('' for an object). */
  path: string;
  /** Folder that relative paths are resolved against. */
  baseDir: string;
  /** Absolute run dir. */
  runDir: string;
  rewardNames: string[];
  /** λ vectors of the sweep (each of length N = number of rewards), extrapolation included. */
  lambdas: number[][];
  ppoConfig: PPOConfig;
  /** Files the experiment reads, absolute, with whether they exist. */
  files: Array<{ field: string; path: string; exists: boolean; kind: 'dir' | 'file' }>;
}

export const LEXICON_TYPE = 'lexicon';
export { TOPIC_TYPE } from './topic.js';

const bad = (src: string, msg: string) => new SoupError('ERR_SOUP_CONFIG', `${src}: ${msg}`);

function rewardName(r: Record<string, unknown>, i: number): string {
  if (typeof r.name === 'string' && r.name) return r.name;
  return typeof r.type === 'string' ? r.type : `reward${i}`;
}

/** Parses and checks an experiment (file path or object). Throws SoupError('ERR_SOUP_CONFIG') naming the field. */
export function loadExperiment(src: string | ExperimentInput, opts: { output?: string; cwd?: string } = {}): Experiment {
  let raw: unknown = src;
  let path = '';
  let baseDir = opts.cwd ?? process.cwd();
  if (typeof src === 'string') {
    path = resolve(src);
    raw = readConfigFile(path, 'experiment');
    baseDir = dirname(path);
  }
  const where = path || 'experiment';
  const c = parseStrict(ExperimentSchema, raw, where);
  const at = (x: string) => (isAbsolute(x) ? x : resolve(baseDir, x));
  const files: Experiment['files'] = [];
  const need = (field: string, x: string, kind: 'dir' | 'file') => {
    const abs = at(x);
    const exists = existsSync(abs) && (kind === 'dir' ? statSync(abs).isDirectory() : statSync(abs).isFile());
    files.push({ field, path: abs, exists, kind });
    return abs;
  };

  // base: exactly one of model / pretrain
  if (!c.base.model === !c.base.pretrain)
    throw bad(where, 'base: give either `model` (a Hugging Face LLaMA dir) or `pretrain` (the built-in tiny pre-training), not both or neither');
  if (c.base.model) {
    const dir = need('base.model', c.base.model, 'dir');
    files.push({ field: 'base.model/config.json', path: join(dir, 'config.json'), exists: existsSync(join(dir, 'config.json')), kind: 'file' });
    files.push({ field: 'base.model/tokenizer.json', path: join(dir, 'tokenizer.json'), exists: existsSync(join(dir, 'tokenizer.json')), kind: 'file' });
    if (!c.prompts.train || !c.prompts.eval) throw bad(where, 'prompts: a Hugging Face base needs prompt files `prompts.train` and `prompts.eval`');
  } else {
    c.base.pretrain!.corpus_dir = need('base.pretrain.corpus_dir', c.base.pretrain!.corpus_dir, 'dir');
    if (c.base.pretrain!.hidden_size % c.base.pretrain!.num_heads !== 0)
      throw bad(where, `base.pretrain: hidden_size ${c.base.pretrain!.hidden_size} is not a multiple of num_heads ${c.base.pretrain!.num_heads}`);
    // the run's own check, done here so that --dry-run refuses what the run refuses (a missing corpus
    // dir is listed as a missing file instead)
    if (files.at(-1)!.exists) {
      const held = readFortunes(c.base.pretrain!.corpus_dir, c.base.pretrain!.hold_every).heldOut.length;
      const needed = c.prompts.num_train + c.prompts.num_eval;
      if (held < needed)
        throw bad(
          where,
          `prompts: ${needed} prompts asked (num_train + num_eval) but the corpus holds out only ${held} entries (lower hold_every or the counts)`,
        );
    }
  }
  if (c.base.adapter) need('base.adapter', c.base.adapter, 'dir');
  if (c.prompts.train) need('prompts.train', c.prompts.train, 'file');
  if (c.prompts.eval) need('prompts.eval', c.prompts.eval, 'file');

  // rewards: known types, unique names, files they name
  const names: string[] = [];
  c.rewards.forEach((r, i) => {
    if (r === null || typeof r !== 'object' || Array.isArray(r)) throw bad(where, `rewards[${i}]: expected a mapping with a \`type\` field`);
    // a copy: defaults filled in below must not reach the caller's object
    const o = { ...(r as Record<string, unknown>) };
    c.rewards[i] = o;
    const known = [...REWARD_TYPES, LEXICON_TYPE, TOPIC_TYPE];
    if (typeof o.type !== 'string' || !known.includes(o.type)) {
      const near = typeof o.type === 'string' ? nearest(o.type, known) : undefined;
      throw bad(
        where,
        `rewards[${i}].type: unknown reward type ${JSON.stringify(o.type)}${near ? `, did you mean '${near}'?` : ''} (valid types: ${known.join(', ')})`,
      );
    }
    if (o.type === LEXICON_TYPE) {
      for (const k of Object.keys(o))
        if (!['type', 'name', 'words'].includes(k))
          throw bad(where, `rewards[${i}].${k}: ${unknownKeyMessage(k, ['type', 'name', 'words'], ' for a lexicon reward')}`);
      const w = o.words;
      if (!Array.isArray(w) || w.length === 0 || w.some((x) => typeof x !== 'string' || !/^[a-z']+$/i.test(x)))
        throw bad(where, `rewards[${i}].words: a lexicon reward needs a non-empty list of words (letters and apostrophes)`);
    } else if (o.type === TOPIC_TYPE) {
      for (const k of Object.keys(o))
        if (!(TOPIC_KEYS as readonly string[]).includes(k))
          throw bad(where, `rewards[${i}].${k}: ${unknownKeyMessage(k, TOPIC_KEYS, ' for a topic-classifier reward')}`);
      const t = o.topics;
      if (!Array.isArray(t) || t.length === 0 || t.some((x) => typeof x !== 'string' || !x))
        throw bad(where, `rewards[${i}].topics: a topic-classifier reward needs a non-empty list of fortune file names (e.g. [love, men-women])`);
      for (const k of ['hold_every', 'min_count', 'epochs'] as const)
        if (o[k] !== undefined && !(Number.isInteger(o[k]) && (o[k] as number) >= 1)) throw bad(where, `rewards[${i}].${k}: must be a positive integer`);
      if (o.l2 !== undefined && !(typeof o.l2 === 'number' && o.l2 >= 0)) throw bad(where, `rewards[${i}].l2: must be a non-negative number`);
      if (o.score !== undefined && o.score !== 'logit' && o.score !== 'probability')
        throw bad(where, `rewards[${i}].score: must be 'logit' or 'probability', got ${JSON.stringify(o.score)}`);
      // explicit, so it enters the stage hashes: a cached run scored otherwise is never reused
      o.score ??= 'logit';
      // trained on the base stage's pre-training split unless told otherwise
      if (c.base.pretrain) {
        o.corpus_dir ??= c.base.pretrain.corpus_dir;
        o.hold_every ??= c.base.pretrain.hold_every;
      }
    } else {
      // the reward's own strict schema, as the real run builds it: --dry-run and the run reject alike
      checkRewardConfig(o, `${where}: rewards[${i}]`);
    }
    if (o.type === 'onnx') {
      if (typeof o.model === 'string') need(`rewards[${i}].model`, o.model, 'file');
      if (typeof o.tokenizer === 'string') need(`rewards[${i}].tokenizer`, o.tokenizer, 'file');
    }
    const n = rewardName(o, i);
    if (names.includes(n)) throw bad(where, `rewards[${i}].name: duplicate reward name '${n}' (set 'name' to tell them apart)`);
    names.push(n);
  });
  const N = names.length;

  const ppoConfig = parsePPOConfig({ ...c.ppo, seed: c.seed }, `${where}: ppo`);
  if ((c.experts.steps === undefined) === (c.experts.epochs === undefined))
    throw bad(where, 'experts: give exactly one of steps (PPO steps) and epochs (passes over the training prompts)');
  const numTrain = c.prompts.num_train;
  const expertSteps = c.experts.steps ?? Math.ceil((c.experts.epochs! * numTrain) / ppoConfig.batch_size);

  // μ: one entry per reward, on the simplex
  c.morl.mu.forEach((mu, j) => {
    if (mu.length !== N) throw bad(where, `morl.mu[${j}] has ${mu.length} entries for ${N} rewards (${names.join(', ')})`);
    if (mu.some((v) => !(v >= 0))) throw bad(where, `morl.mu[${j}] = [${mu.join(', ')}] has a negative entry: μ must lie on the simplex`);
    const s = mu.reduce((a, b) => a + b, 0);
    if (Math.abs(s - 1) > 1e-6) throw bad(where, `morl.mu[${j}] = [${mu.join(', ')}] sums to ${s}, not 1: μ must lie on the simplex`);
  });

  // λ: a grid size or explicit vectors of length N on the simplex
  let lambdas: number[][];
  const L = c.sweep.lambdas;
  if (typeof L === 'number') {
    lambdas = N === 2 ? lambdaGrid(L - 1).map((t) => [1 - t, t]) : simplexGrid(N, L - 1);
  } else {
    lambdas = L.map((l, j) => {
      const v = typeof l === 'number' ? (N === 2 ? [1 - l, l] : null) : l;
      if (v === null) throw bad(where, `sweep.lambdas[${j}] is the scalar ${l}, which stands for [1 - λ, λ] and needs 2 rewards, but there are ${N}`);
      if (v.length !== N) throw bad(where, `sweep.lambdas[${j}] has ${v.length} entries but there are ${N} experts (one per reward: ${names.join(', ')})`);
      if (v.some((x) => !(x >= 0)) || Math.abs(v.reduce((a, b) => a + b, 0) - 1) > 1e-6)
        throw bad(where, `sweep.lambdas[${j}] = [${v.join(', ')}] is off the simplex (λᵢ >= 0, Σλ = 1); use sweep.extrapolate for λ outside [0, 1]`);
      return v;
    });
  }
  // the uniform soup is always evaluated (N >= 3: the spider map's centre, the paper's N = 4 and N = 5 soups)
  if (N >= 3 && !lambdas.some((l) => l.every((v) => Math.abs(v - 1 / N) < 1e-9))) lambdas.push(Array(N).fill(1 / N));
  if (c.sweep.dirichlet) lambdas.push(...dirichletSample(N, c.sweep.dirichlet.samples, c.sweep.dirichlet.seed));
  if (c.sweep.extrapolate.length) {
    if (N !== 2) throw bad(where, `sweep.extrapolate needs 2 experts, there are ${N}`);
    for (const t of c.sweep.extrapolate) {
      if (t >= 0 && t <= 1) throw bad(where, `sweep.extrapolate: ${t} lies inside [0, 1]; put it in sweep.lambdas`);
      lambdas.push([1 - t, t]);
    }
  }
  if (c.sweep.interpolation === 'dense' && c.base.adapter)
    throw bad(where, 'sweep.interpolation: dense interpolation is not available with a starting adapter (base.adapter); use lora');
  for (const [j, mu] of (c.report.preferences ?? []).entries()) {
    if (mu.length !== N) throw bad(where, `report.preferences[${j}] has ${mu.length} entries for ${N} rewards`);
  }
  if (c.report.ref && c.report.ref.length !== N) throw bad(where, `report.ref has ${c.report.ref.length} entries for ${N} rewards`);

  const runDir = resolve(opts.cwd ?? process.cwd(), opts.output ?? c.output);
  return { ...c, experts: { ...c.experts, steps: expertSteps }, path, baseDir, runDir, rewardNames: names, lambdas, ppoConfig, files };
}

/** Throws naming every missing file (the run needs them all). */
export function checkFiles(x: Experiment): void {
  const missing = x.files.filter((f) => !f.exists);
  if (missing.length) {
    throw new SoupError('ERR_SOUP_IO', `${x.path || 'experiment'}: missing ${missing.map((f) => `${f.field} (${f.kind}) ${f.path}`).join('; ')}`);
  }
}
