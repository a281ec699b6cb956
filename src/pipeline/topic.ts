// SPDX-License-Identifier: MIT
// `topic-classifier`: a learned reward of the paper's kind (a model scoring text), trained at run time on
// the corpus's own labels. Debian's fortunes come in topic files (love, computers, science, politics, …);
// the classifier is an L2-regularised logistic regression on word presence, trained on the
// pre-training split only (the held-out entries, which PPO and evaluation prompts come from, are never
// seen), classes weighted to balance. The reward is the classifier's log-odds logit P(topic | response)
// (`score: logit`, the default: reward models of the paper's kind output unnormalised scores, and a
// sigmoid's probability saturates where most responses sit) or P itself (`score: probability`). Training is
// deterministic and takes about a second, so every process (PPO workers, the sweep) trains its own copy
// instead of reading a cached model file.
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { basename, join } from 'node:path';
import { SoupError } from '../errors.js';
import { custom, type Reward, type Sample } from '../rewards/index.js';
import { FORTUNE_DIR, fnv1a } from './corpus.js';

export const TOPIC_TYPE = 'topic-classifier';
export const TOPIC_KEYS = ['type', 'name', 'topics', 'corpus_dir', 'hold_every', 'min_count', 'l2', 'epochs', 'score'] as const;

export interface TopicOptions {
  /** Fortune files (names) whose entries are the positive class. */
  topics: string[];
  corpus_dir?: string;
  /** The corpus split of the base stage: entries with fnv1a % hold_every === 0 are held out. */
  hold_every?: number;
  /** Words seen in fewer training entries are ignored. */
  min_count?: number;
  l2?: number;
  epochs?: number;
  /** What the reward returns: the classifier's log-odds (default) or its probability. */
  score?: 'logit' | 'probability';
}

/** Lower-cased word tokens (letters and inner apostrophes), each counted once per text. */
export function wordSet(text: string): Set<string> {
  return new Set(text.toLowerCase().match(/[a-z]+(?:'[a-z]+)*/g) ?? []);
}

export interface TopicModel {
  vocab: Map<string, number>;
  weights: Float64Array;
  bias: number;
  /** Held-out entries (labelled by file) the classifier never saw: accuracy and ROC AUC. */
  heldOut: { entries: number; positives: number; accuracy: number; auc: number };
  trainEntries: number;
  trainPositives: number;
}

function entriesByFile(dir: string): Array<{ file: string; text: string }> {
  let names: string[];
  try {
    names = readdirSync(dir).sort();
  } catch (e) {
    throw new SoupError('ERR_SOUP_IO', `${TOPIC_TYPE}: cannot read ${dir} (${(e as Error).message}); install Debian's 'fortunes' package`);
  }
  const out: Array<{ file: string; text: string }> = [];
  for (const n of names) {
    if (n.endsWith('.dat') || n.endsWith('.u8') || n.startsWith('.')) continue;
    const p = join(dir, n);
    if (!statSync(p).isFile()) continue;
    // the corpus reader's entry rule (src/pipeline/corpus.ts), so the split matches the base stage's
    for (const raw of readFileSync(p, 'utf8').split(/^%$/m)) {
      const text = raw.replace(/^\n+|\s+$/g, '');
      if (text.length >= 20) out.push({ file: basename(p), text });
    }
  }
  return out;
}

const sigmoid = (z: number) => (z >= 0 ? 1 / (1 + Math.exp(-z)) : Math.exp(z) / (1 + Math.exp(z)));

/** ROC AUC by the rank-sum formula (ties count half). */
export function rocAuc(scores: ArrayLike<number>, labels: ArrayLike<number>): number {
  const idx = Array.from({ length: scores.length }, (_, i) => i).sort((a, b) => scores[a] - scores[b]);
  let pos = 0,
    neg = 0,
    rankSum = 0;
  for (let i = 0; i < idx.length; ) {
    let j = i;
    while (j + 1 < idx.length && scores[idx[j + 1]] === scores[idx[i]]) j++;
    const rank = (i + j) / 2 + 1;
    for (let k = i; k <= j; k++)
      if (labels[idx[k]]) {
        rankSum += rank;
        pos++;
      } else neg++;
    i = j + 1;
  }
  return pos && neg ? (rankSum - (pos * (pos + 1)) / 2) / (pos * neg) : NaN;
}

/** Trains the classifier (full-batch gradient descent with Adam on the balanced, L2-penalised log loss). */
export function trainTopicModel(o: TopicOptions): TopicModel {
  const dir = o.corpus_dir ?? FORTUNE_DIR;
  const hold = o.hold_every ?? 25;
  const all = entriesByFile(dir);
  const files = new Set(all.map((e) => e.file));
  const missing = o.topics.filter((t) => !files.has(t));
  if (missing.length)
    throw new SoupError(
      'ERR_SOUP_CONFIG',
      `${TOPIC_TYPE}: no fortune file ${missing.map((m) => `'${m}'`).join(', ')} in ${dir} (files: ${[...files].join(', ')})`,
    );
  const topics = new Set(o.topics);
  const train = all.filter((e) => fnv1a(e.text) % hold !== 0);
  const held = all.filter((e) => fnv1a(e.text) % hold === 0);
  const counts = new Map<string, number>();
  const sets = train.map((e) => wordSet(e.text));
  for (const s of sets) for (const w of s) counts.set(w, (counts.get(w) ?? 0) + 1);
  const vocab = new Map<string, number>();
  for (const [w, c] of [...counts].sort((a, b) => (a[0] < b[0] ? -1 : 1))) if (c >= (o.min_count ?? 3)) vocab.set(w, vocab.size);
  const X = sets.map((s) => Int32Array.from([...s].map((w) => vocab.get(w) ?? -1).filter((j) => j >= 0)));
  const y = Float64Array.from(train, (e) => (topics.has(e.file) ? 1 : 0));
  const nPos = y.reduce((a, b) => a + b, 0);
  if (nPos === 0 || nPos === y.length) throw new SoupError('ERR_SOUP_CONFIG', `${TOPIC_TYPE}: topics ${[...topics].join(', ')} leave one class empty`);
  // balanced: each class carries half the loss
  const wPos = 0.5 / nPos,
    wNeg = 0.5 / (y.length - nPos);
  const D = vocab.size,
    l2 = o.l2 ?? 1e-4;
  const w = new Float64Array(D + 1); // last = bias
  const m = new Float64Array(D + 1),
    v = new Float64Array(D + 1);
  const g = new Float64Array(D + 1);
  const lr = 0.05,
    b1 = 0.9,
    b2 = 0.999;
  for (let t = 1; t <= (o.epochs ?? 300); t++) {
    g.fill(0);
    for (let i = 0; i < X.length; i++) {
      let z = w[D];
      for (const j of X[i]) z += w[j];
      const r = (sigmoid(z) - y[i]) * (y[i] ? wPos : wNeg);
      for (const j of X[i]) g[j] += r;
      g[D] += r;
    }
    for (let j = 0; j < D; j++) g[j] += l2 * w[j];
    for (let j = 0; j <= D; j++) {
      m[j] = b1 * m[j] + (1 - b1) * g[j];
      v[j] = b2 * v[j] + (1 - b2) * g[j] * g[j];
      w[j] -= (lr * (m[j] / (1 - b1 ** t))) / (Math.sqrt(v[j] / (1 - b2 ** t)) + 1e-8);
    }
  }
  const model: TopicModel = {
    vocab,
    weights: w.subarray(0, D),
    bias: w[D],
    trainEntries: train.length,
    trainPositives: nPos,
    heldOut: { entries: held.length, positives: 0, accuracy: NaN, auc: NaN },
  };
  const hs = held.map((e) => topicProbability(model, e.text));
  const hy = held.map((e) => (topics.has(e.file) ? 1 : 0));
  model.heldOut = {
    entries: held.length,
    positives: hy.reduce((a: number, b) => a + b, 0),
    accuracy: hs.reduce((a, s, i) => a + ((s >= 0.5 ? 1 : 0) === hy[i] ? 1 : 0), 0) / Math.max(1, held.length),
    auc: rocAuc(hs, hy),
  };
  return model;
}

/** The classifier's log-odds z = b + Σ w_word over the response's distinct words. */
export function topicLogit(model: TopicModel, text: string): number {
  let z = model.bias;
  for (const word of wordSet(text)) {
    const j = model.vocab.get(word);
    if (j !== undefined) z += model.weights[j];
  }
  return z;
}

export function topicProbability(model: TopicModel, text: string): number {
  return sigmoid(topicLogit(model, text));
}

const trained = new Map<string, TopicModel>();

/** The reward (log-odds or P(topic | response)); models are trained once per process and options. */
export function topicReward(name: string, o: TopicOptions): Reward & { model: TopicModel } {
  const { score = 'logit', ...train } = o;
  const key = JSON.stringify({ ...train, topics: [...o.topics].sort() });
  let model = trained.get(key);
  if (!model) {
    model = trainTopicModel(train);
    trained.set(key, model);
  }
  const m = model;
  const scoreOf = score === 'probability' ? topicProbability : topicLogit;
  return Object.assign(
    custom(name, (s: Sample) => scoreOf(m, s.response), { cacheSize: 4096 }),
    { model: m },
  );
}
