// SPDX-License-Identifier: MIT
// Rewards declared in YAML/JSON experiment configs by `type` plus options, validated with zod:
//   rewards:
//     - type: vader
//     - { type: onnx, model: rm/model.onnx, format: "1-0", input: pair }
//     - { type: http, url: http://127.0.0.1:8000/score, batch_size: 32 }
//     - { type: weighted, weights: [0.4, 0.6], rewards: [{type: vader}, {type: rouge, variant: rougeL}] }
// Field names are snake_case in files (camelCase also accepted).
import { dirname, isAbsolute, resolve } from 'node:path';
import { z } from 'zod';
import { SoupError } from '../errors.js';
import { nearest, parseStrict, readConfigFile } from '../util/config.js';
import { bleuReward, cocoBleuReward, cocoRougeReward, CiderReward, meteorReward, rougeReward } from './metric-rewards.js';
import { afinnReward, lengthReward, readabilityReward, toxicityReward, vaderReward, READABILITY_METRICS } from './text.js';
import { onnxReward } from './onnx.js';
import { httpReward } from './http.js';
import { clip, runningNorm, weighted } from './combinators.js';
import { locomotionReward } from './control.js';
import { WordNet } from './wordnet.js';
import type { Reward } from './types.js';

const batching = {
  name: z.string().min(1).optional(),
  batch_size: z.number().int().positive().optional(),
  concurrency: z.number().int().positive().optional(),
  cache_size: z.number().int().nonnegative().optional(),
};
const field = z.enum(['response', 'prompt+response']).optional();

const leaf = {
  bleu: z.strictObject({
    type: z.literal('bleu'),
    ...batching,
    tokenize: z.enum(['13a', 'none']).optional(),
    smooth_method: z.enum(['exp', 'floor', 'add-k', 'none']).optional(),
    smooth_value: z.number().optional(),
    lowercase: z.boolean().optional(),
    max_ngram_order: z.number().int().positive().optional(),
    effective_order: z.boolean().optional(),
    scale: z.enum(['unit', 'percent']).optional(),
  }),
  'coco-bleu': z.strictObject({
    type: z.literal('coco-bleu'),
    ...batching,
    n: z.number().int().min(1).max(4).optional(),
    tokenize: z.enum(['none', 'ptb']).optional(),
  }),
  rouge: z.strictObject({
    type: z.literal('rouge'),
    ...batching,
    variant: z
      .string()
      .regex(/^rouge([1-9]|L|Lsum)$/, 'expected rouge1..rouge9, rougeL or rougeLsum')
      .optional(),
    stemmer: z.boolean().optional(),
    measure: z.enum(['fmeasure', 'precision', 'recall']).optional(),
  }),
  'coco-rouge': z.strictObject({ type: z.literal('coco-rouge'), ...batching, tokenize: z.enum(['none', 'ptb']).optional() }),
  cider: z.strictObject({ type: z.literal('cider'), ...batching, tokenize: z.enum(['none', 'ptb']).optional(), sigma: z.number().positive().optional() }),
  meteor: z.strictObject({
    type: z.literal('meteor'),
    ...batching,
    alpha: z.number().optional(),
    beta: z.number().optional(),
    gamma: z.number().optional(),
    wordnet_dir: z.string().optional(),
  }),
  vader: z.strictObject({ type: z.literal('vader'), ...batching, field }),
  afinn: z.strictObject({ type: z.literal('afinn'), ...batching, field, measure: z.enum(['score', 'comparative']).optional() }),
  readability: z.strictObject({ type: z.literal('readability'), ...batching, field, metric: z.enum(READABILITY_METRICS).optional() }),
  toxicity: z.strictObject({ type: z.literal('toxicity'), ...batching, field, words: z.array(z.string()).optional() }),
  length: z.strictObject({
    type: z.literal('length'),
    ...batching,
    field,
    target: z.number().positive(),
    unit: z.enum(['words', 'chars']).optional(),
    shape: z.enum(['linear', 'gaussian']).optional(),
    width: z.number().positive().optional(),
  }),
  onnx: z.strictObject({
    type: z.literal('onnx'),
    ...batching,
    model: z.string().min(1),
    tokenizer: z.string().optional(),
    format: z.union([z.string(), z.number()]).optional(),
    input: z.string().optional(),
    response: z.enum(['full', 'first-sentence']).optional(),
    max_length: z.number().int().positive().optional(),
    output: z.string().optional(),
    pad_id: z.number().int().nonnegative().optional(),
    threads: z.number().int().positive().optional(),
    special_tokens: z.strictObject({ sep: z.string().optional(), bos: z.string().optional(), eos: z.string().optional() }).optional(),
  }),
  http: z.strictObject({
    type: z.literal('http'),
    ...batching,
    url: z.string().url(),
    timeout_ms: z.number().positive().optional(),
    retries: z.number().int().nonnegative().optional(),
    backoff_ms: z.number().nonnegative().optional(),
    max_backoff_ms: z.number().nonnegative().optional(),
    headers: z.record(z.string(), z.string()).optional(),
  }),
  locomotion: z.strictObject({
    type: z.literal('locomotion'),
    ...batching,
    alpha: z.number().nonnegative(),
    forward_weight: z.number().optional(),
    healthy_reward: z.number().optional(),
    always_healthy: z.boolean().optional(),
  }),
};

export const REWARD_TYPES = [...Object.keys(leaf), 'weighted', 'clip', 'normalize'] as const;

export type RewardConfig = Record<string, unknown> & { type: string };

const toSnake = (k: string) => k.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);

function snakeKeys(v: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, x] of Object.entries(v)) out[toSnake(k)] = x;
  return out;
}

function configError(path: string, msg: string): SoupError {
  return new SoupError('ERR_SOUP_CONFIG', `${path}: ${msg}`);
}

const combinators = {
  weighted: z.strictObject({
    type: z.literal('weighted'),
    name: z.string().optional(),
    weights: z.array(z.number()).min(1),
    rewards: z.array(z.unknown()).min(1),
    normalize: z.boolean().optional(),
  }),
  clip: z.strictObject({ type: z.literal('clip'), name: z.string().optional(), min: z.number(), max: z.number(), reward: z.unknown() }),
  normalize: z.strictObject({
    type: z.literal('normalize'),
    name: z.string().optional(),
    reward: z.unknown(),
    eps: z.number().positive().optional(),
    center: z.boolean().optional(),
  }),
};

/** Checks one reward config against its type's strict schema (not the rewards it nests). */
function parseOne(cfg: unknown, path: string): { type: string; c: Record<string, unknown> } {
  if (cfg === null || typeof cfg !== 'object' || Array.isArray(cfg)) throw configError(path, 'expected a mapping with a `type` field');
  const raw = snakeKeys(cfg as Record<string, unknown>);
  const type = raw.type;
  if (typeof type !== 'string' || !(REWARD_TYPES as readonly string[]).includes(type)) {
    const near = typeof type === 'string' ? nearest(type, REWARD_TYPES) : undefined;
    throw configError(
      `${path}.type`,
      `unknown reward type ${JSON.stringify(type)}${near ? `, did you mean '${near}'?` : ''} (valid types: ${REWARD_TYPES.join(', ')})`,
    );
  }
  const schema: z.ZodType = type in combinators ? combinators[type as keyof typeof combinators] : leaf[type as keyof typeof leaf];
  return { type, c: parseStrict(schema, raw, '', { prefix: path, all: true }) as Record<string, unknown> };
}

/** Checks a reward config, nested rewards included, without building it (no model is loaded, no
 *  connection made): what `rsoup run --dry-run` checks, with the messages of rewardFromConfig. */
export function checkRewardConfig(cfg: unknown, path = 'reward'): void {
  const { type, c } = parseOne(cfg, path);
  if (type === 'weighted') {
    const rs = c.rewards as unknown[];
    const ws = c.weights as number[];
    if (rs.length !== ws.length) throw configError(`${path}.weights`, `${ws.length} weights for ${rs.length} rewards`);
    rs.forEach((r, i) => checkRewardConfig(r, `${path}.rewards[${i}]`));
  } else if (type === 'clip' || type === 'normalize') {
    checkRewardConfig(c.reward, `${path}.reward`);
  }
}

export interface RewardConfigContext {
  /** Folder that relative paths (model, tokenizer, wordnet_dir) are resolved against. */
  baseDir?: string;
  /** Field path used in messages (default 'reward'). */
  path?: string;
}

function abs(p: string | undefined, base: string | undefined): string | undefined {
  if (p === undefined || base === undefined || isAbsolute(p)) return p;
  return resolve(base, p);
}

/** Builds one reward from its config object. */
export async function rewardFromConfig(cfg: unknown, ctx: RewardConfigContext = {}): Promise<Reward> {
  const path = ctx.path ?? 'reward';
  const { type, c: parsed } = parseOne(cfg, path);
  const b = (c: { name?: string; batch_size?: number; concurrency?: number; cache_size?: number }) => ({
    name: c.name,
    batchSize: c.batch_size,
    concurrency: c.concurrency,
    cacheSize: c.cache_size,
  });
  if (type === 'weighted' || type === 'clip' || type === 'normalize') {
    const c = parsed;
    if (type === 'weighted') {
      const rs = c.rewards as unknown[];
      const ws = c.weights as number[];
      if (rs.length !== ws.length) throw configError(`${path}.weights`, `${ws.length} weights for ${rs.length} rewards`);
      const built = await Promise.all(rs.map((r, i) => rewardFromConfig(r, { ...ctx, path: `${path}.rewards[${i}]` })));
      return weighted(built, ws, { name: c.name as string | undefined, normalize: c.normalize as boolean | undefined });
    }
    const inner = await rewardFromConfig(c.reward, { ...ctx, path: `${path}.reward` });
    if (type === 'clip') return clip(inner, c.min as number, c.max as number, c.name as string | undefined);
    return runningNorm(inner, { name: c.name as string | undefined, eps: c.eps as number | undefined, center: c.center as boolean | undefined });
  }
  const c = parsed as z.output<(typeof leaf)[keyof typeof leaf]>;
  switch (c.type) {
    case 'bleu':
      return bleuReward({
        ...b(c),
        tokenize: c.tokenize,
        smoothMethod: c.smooth_method,
        smoothValue: c.smooth_value,
        lowercase: c.lowercase,
        maxNgramOrder: c.max_ngram_order,
        effectiveOrder: c.effective_order,
        scale: c.scale,
      });
    case 'coco-bleu':
      return cocoBleuReward({ ...b(c), n: c.n, tokenize: c.tokenize });
    case 'rouge':
      return rougeReward({ ...b(c), variant: c.variant as never, stemmer: c.stemmer, measure: c.measure });
    case 'coco-rouge':
      return cocoRougeReward({ ...b(c), tokenize: c.tokenize });
    case 'cider':
      return new CiderReward({ ...b(c), tokenize: c.tokenize, sigma: c.sigma });
    case 'meteor': {
      const dir = abs(c.wordnet_dir, ctx.baseDir);
      return meteorReward({ ...b(c), alpha: c.alpha, beta: c.beta, gamma: c.gamma, wordnet: dir ? new WordNet(dir) : undefined });
    }
    case 'vader':
      return vaderReward({ ...b(c), field: c.field });
    case 'afinn':
      return afinnReward({ ...b(c), field: c.field, measure: c.measure });
    case 'readability':
      return readabilityReward({ ...b(c), field: c.field, metric: c.metric });
    case 'toxicity':
      return toxicityReward({ ...b(c), field: c.field, words: c.words });
    case 'length':
      return lengthReward({ ...b(c), field: c.field, target: c.target, unit: c.unit, shape: c.shape, width: c.width });
    case 'onnx':
      return onnxReward({
        ...b(c),
        model: abs(c.model, ctx.baseDir) as string,
        tokenizer: abs(c.tokenizer, ctx.baseDir),
        format: c.format,
        input: c.input,
        response: c.response,
        maxLength: c.max_length,
        output: c.output,
        padId: c.pad_id,
        threads: c.threads,
        specialTokens: c.special_tokens,
      });
    case 'http':
      return httpReward({
        ...b(c),
        url: c.url,
        timeoutMs: c.timeout_ms,
        retries: c.retries,
        backoffMs: c.backoff_ms,
        maxBackoffMs: c.max_backoff_ms,
        headers: c.headers,
      });
    case 'locomotion':
      return locomotionReward({ ...b(c), alpha: c.alpha, forwardWeight: c.forward_weight, healthyReward: c.healthy_reward, alwaysHealthy: c.always_healthy });
  }
  throw configError(`${path}.type`, `unhandled type ${type}`);
}

/** Builds a list of rewards; messages name `rewards[i]`. */
export async function rewardsFromConfig(list: unknown, ctx: RewardConfigContext = {}): Promise<Reward[]> {
  const path = ctx.path ?? 'rewards';
  if (!Array.isArray(list)) throw configError(path, 'expected a list of rewards');
  if (list.length === 0) throw configError(path, 'expected at least one reward');
  const out = await Promise.all(list.map((c, i) => rewardFromConfig(c, { ...ctx, path: `${path}[${i}]` })));
  const names = new Set<string>();
  out.forEach((r, i) => {
    if (names.has(r.name)) throw configError(`${path}[${i}].name`, `duplicate reward name '${r.name}' (set 'name' to tell them apart)`);
    names.add(r.name);
  });
  return out;
}

/** Reads a YAML/JSON file holding `rewards: [...]`, a list, or one reward mapping. */
export async function loadRewardsFile(file: string): Promise<Reward[]> {
  const doc = readConfigFile(file, 'reward config');
  const ctx = { baseDir: dirname(resolve(file)) };
  if (Array.isArray(doc)) return rewardsFromConfig(doc, { ...ctx, path: `${file}: rewards` });
  if (doc && typeof doc === 'object' && 'rewards' in doc) return rewardsFromConfig((doc as { rewards: unknown }).rewards, { ...ctx, path: `${file}: rewards` });
  return [await rewardFromConfig(doc, { ...ctx, path: `${file}: reward` })];
}
