// SPDX-License-Identifier: MIT
// Text rewards on the response: VADER compound (vader-sentiment, a faithful port of Python VADER),
// AFINN-165 (sentiment), readability formulas (text-readability), a word-list toxicity penalty and
// a length/brevity reward toward a target length.
import vader from 'vader-sentiment';
import Sentiment from 'sentiment';
import readability from 'text-readability';
import { SoupError } from '../errors.js';
import { FnReward, type BatchingOptions, type Sample } from './types.js';

export type TextField = 'response' | 'prompt+response';

export interface TextRewardOptions extends BatchingOptions {
  name?: string;
  /** Which text to score (default 'response'). */
  field?: TextField;
}

function textOf(s: Sample, field: TextField = 'response'): string {
  return field === 'response' ? s.response : `${s.prompt}${s.response}`;
}

/** VADER compound score in [-1, 1]. */
export function vaderCompound(text: string): number {
  return vader.SentimentIntensityAnalyzer.polarity_scores(text).compound;
}

export function vaderReward(opts: TextRewardOptions = {}): FnReward {
  return new FnReward(opts.name ?? 'vader', (s) => vaderCompound(textOf(s, opts.field)), opts);
}

let afinn: Sentiment | null = null;
/** AFINN-165 via `sentiment`: the summed word valence ('score') or that sum per token ('comparative'). */
export function afinnScore(text: string, measure: 'score' | 'comparative' = 'comparative'): number {
  afinn ??= new Sentiment();
  const r = afinn.analyze(text);
  return measure === 'score' ? r.score : r.comparative;
}

export function afinnReward(opts: TextRewardOptions & { measure?: 'score' | 'comparative' } = {}): FnReward {
  return new FnReward(opts.name ?? 'afinn', (s) => afinnScore(textOf(s, opts.field), opts.measure), opts);
}

export const READABILITY_METRICS = [
  'fleschReadingEase',
  'fleschKincaidGrade',
  'smogIndex',
  'colemanLiauIndex',
  'automatedReadabilityIndex',
  'daleChallReadabilityScore',
  'gunningFog',
  'lix',
  'rix',
] as const;
export type ReadabilityMetric = (typeof READABILITY_METRICS)[number];

export function readabilityScore(text: string, metric: ReadabilityMetric = 'fleschReadingEase'): number {
  if (!READABILITY_METRICS.includes(metric)) {
    throw new SoupError('ERR_SOUP_INVALID_ARG', `unknown readability metric '${String(metric)}' (expected one of ${READABILITY_METRICS.join(', ')})`);
  }
  return readability[metric](text);
}

export function readabilityReward(opts: TextRewardOptions & { metric?: ReadabilityMetric } = {}): FnReward {
  const metric = opts.metric ?? 'fleschReadingEase';
  readabilityScore('x', metric); // validate now, not at the first batch
  return new FnReward(opts.name ?? `readability-${metric}`, (s) => readabilityScore(textOf(s, opts.field), metric), opts);
}

// A small list of insults, slurs-free profanity and violent words: a crude, transparent proxy for
// toxicity when no classifier is available. Users pass their own list for real use.
export const DEFAULT_TOXIC_WORDS: readonly string[] = [
  'idiot',
  'idiots',
  'idiotic',
  'stupid',
  'dumb',
  'moron',
  'morons',
  'moronic',
  'imbecile',
  'fool',
  'fools',
  'foolish',
  'loser',
  'losers',
  'jerk',
  'jerks',
  'scum',
  'trash',
  'garbage',
  'pathetic',
  'worthless',
  'useless',
  'disgusting',
  'hate',
  'hated',
  'hateful',
  'kill',
  'killing',
  'die',
  'shut',
  'ugly',
  'freak',
  'crap',
  'crappy',
  'damn',
  'damned',
  'hell',
  'suck',
  'sucks',
  'bastard',
  'bastards',
  'ass',
  'asshole',
  'assholes',
  'shit',
  'shitty',
  'bullshit',
  'fuck',
  'fucking',
  'fucked',
  'bitch',
  'bitches',
  'piss',
  'pissed',
  'dick',
  'dickhead',
  'prick',
  'screw',
  'screwed',
];

/** Fraction of word tokens (lower-cased, letters and apostrophes) on the list; 0 for an empty text.
 *  The toxicity reward's measure, and the experiment's `lexicon` reward's. */
export function wordListFraction(text: string, words: ReadonlySet<string>): number {
  const toks = text.toLowerCase().match(/[a-z']+/g) ?? [];
  if (toks.length === 0) return 0;
  let n = 0;
  for (const t of toks) if (words.has(t.replace(/^'+|'+$/g, ''))) n++;
  return n / toks.length;
}

export const toxicFraction = wordListFraction;

/** Reward = −(fraction of toxic tokens): 0 for a clean text, −1 when every word is on the list. */
export function toxicityReward(opts: TextRewardOptions & { words?: string[] } = {}): FnReward {
  const set = new Set((opts.words ?? DEFAULT_TOXIC_WORDS).map((w) => w.toLowerCase()));
  return new FnReward(opts.name ?? 'toxicity', (s) => 0 - toxicFraction(textOf(s, opts.field), set), opts);
}

export interface LengthOptions extends TextRewardOptions {
  /** Target length (> 0). */
  target: number;
  unit?: 'words' | 'chars';
  /** 'linear': −|len − target| / target; 'gaussian': exp(−(len − target)² / (2 width²)). */
  shape?: 'linear' | 'gaussian';
  width?: number;
}

export function textLength(text: string, unit: 'words' | 'chars' = 'words'): number {
  return unit === 'chars' ? [...text].length : text.split(/\s+/).filter((w) => w !== '').length;
}

export function lengthReward(opts: LengthOptions): FnReward {
  const { target } = opts;
  if (!(typeof target === 'number' && target > 0 && Number.isFinite(target))) {
    throw new SoupError('ERR_SOUP_INVALID_ARG', `length reward: 'target' must be a positive number, got ${String(target)}`);
  }
  const shape = opts.shape ?? 'linear';
  const width = opts.width ?? target / 2;
  if (!(width > 0)) throw new SoupError('ERR_SOUP_INVALID_ARG', `length reward: 'width' must be > 0, got ${width}`);
  return new FnReward(
    opts.name ?? 'length',
    (s) => {
      const len = textLength(textOf(s, opts.field), opts.unit);
      const d = len - target;
      return shape === 'linear' ? 0 - Math.abs(d) / target : Math.exp(-(d * d) / (2 * width * width));
    },
    opts,
  );
}
