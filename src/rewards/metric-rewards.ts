// SPDX-License-Identifier: MIT
// Per-sample rewards from the reference-based metrics: response vs sample.references.
import { SentenceBleuScorer, pySplit, type BleuOptions } from './bleu.js';
import { rougeMulti, type RougeType } from './rouge.js';
import { cocoBleu, cocoRougeL, ciderD, ciderDocFreq, ptbLite } from './coco.js';
import { meteor, type MeteorOptions } from './meteor.js';
import { BatchedReward, FnReward, requireReferences, type BatchingOptions, type Sample } from './types.js';

export interface BleuRewardOptions extends BleuOptions, BatchingOptions {
  name?: string;
  /** 'unit' (default) divides sacreBLEU's 0..100 by 100. */
  scale?: 'unit' | 'percent';
}

/** Sentence BLEU (sacreBLEU semantics, effective order and exp smoothing by default) per sample. */
export function bleuReward(opts: BleuRewardOptions = {}): FnReward {
  const scorer = new SentenceBleuScorer(opts);
  const div = (opts.scale ?? 'unit') === 'unit' ? 100 : 1;
  const name = opts.name ?? 'bleu';
  return new FnReward(name, (s, i) => scorer.score(s.response, requireReferences(name, s, i)).score / div, opts);
}

export interface RougeRewardOptions extends BatchingOptions {
  name?: string;
  variant?: RougeType;
  stemmer?: boolean;
  measure?: 'fmeasure' | 'precision' | 'recall';
}

/** rouge_score per sample; several references -> the best F-measure (score_multi). */
export function rougeReward(opts: RougeRewardOptions = {}): FnReward {
  const variant = opts.variant ?? 'rougeL';
  const measure = opts.measure ?? 'fmeasure';
  const name = opts.name ?? variant;
  rougeMulti(['x'], 'x', { type: variant }); // validate the variant now
  return new FnReward(name, (s, i) => rougeMulti(requireReferences(name, s, i), s.response, { type: variant, stemmer: opts.stemmer })[measure], opts);
}

export interface CocoRewardOptions extends BatchingOptions {
  name?: string;
  tokenize?: 'none' | 'ptb';
}

/** pycocoevalcap per-image Bleu_n (n = 1..4) per sample, e.g. the paper's captioning "bleu1"/"bleu4". */
export function cocoBleuReward(opts: CocoRewardOptions & { n?: number } = {}): FnReward {
  const n = opts.n ?? 4;
  const tok = opts.tokenize === 'ptb' ? ptbLite : (x: string) => x;
  const name = opts.name ?? `Bleu_${n}`;
  const words = (x: string) => pySplit(tok(x));
  return new FnReward(name, (s, i) => cocoBleu([words(s.response)], [requireReferences(name, s, i).map(words)], n).perImage[n - 1][0], opts);
}

/** pycocoevalcap ROUGE_L (beta 1.2) per sample. */
export function cocoRougeReward(opts: CocoRewardOptions = {}): FnReward {
  const tok = opts.tokenize === 'ptb' ? ptbLite : (x: string) => x;
  const name = opts.name ?? 'ROUGE_L';
  return new FnReward(name, (s, i) => cocoRougeL(tok(s.response), requireReferences(name, s, i).map(tok)), opts);
}

/**
 * CIDEr-D per sample. Document frequencies come from `corpus` (reference sets, one per image: what
 * SCST trainers precompute on the training split) or, by default, from the references in the batch.
 */
export class CiderReward extends BatchedReward {
  private readonly tok: (x: string) => string;
  private readonly df: ReturnType<typeof ciderDocFreq> | null;
  constructor(private readonly opts: CocoRewardOptions & { corpus?: string[][]; sigma?: number } = {}) {
    super(opts.name ?? 'CIDEr', opts);
    this.tok = opts.tokenize === 'ptb' ? ptbLite : (x: string) => x;
    this.df = opts.corpus ? ciderDocFreq(opts.corpus.map((rs) => rs.map((r) => this.words(r)))) : null;
  }
  private words(x: string): string[] {
    return pySplit(this.tok(x));
  }
  protected async scoreBatch(batch: Sample[], offsets: number[]): Promise<number[]> {
    const refs = batch.map((s, i) => requireReferences(this.name, s, offsets[i]).map((r) => this.words(r)));
    const hyps = batch.map((s) => this.words(s.response));
    return ciderD(hyps, refs, this.df ?? ciderDocFreq(refs), this.opts.sigma ?? 6);
  }
}

export function meteorReward(opts: MeteorOptions & BatchingOptions & { name?: string } = {}): FnReward {
  const name = opts.name ?? 'meteor';
  return new FnReward(name, (s, i) => meteor(s.response, requireReferences(name, s, i), opts), opts);
}
