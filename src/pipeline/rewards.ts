// SPDX-License-Identifier: MIT
// Builds an experiment's rewards: every type of src/rewards (rewardsFromConfig), plus `lexicon`, the
// demo's topic-word reward (measured beforehand: a lexicon of frequent topic words is a reward a tiny model
// can move, unlike VADER alone): the fraction of the response's words that are on the list; and
// `topic-classifier` (src/pipeline/topic.ts), a classifier trained on the corpus's topic files.
import { custom, rewardFromConfig, type Reward, type Sample } from '../rewards/index.js';
import { wordListFraction } from '../rewards/text.js';
import { LEXICON_TYPE } from './config.js';
import { TOPIC_TYPE, topicReward, type TopicOptions } from './topic.js';

/** Fraction of word tokens (lower-cased letters and apostrophes) in `words`; 0 for a text with no word. */
export const lexiconFraction = wordListFraction;

export function lexiconReward(name: string, words: string[]): Reward {
  const set = new Set(words.map((w) => w.toLowerCase()));
  return custom(name, (s: Sample) => lexiconFraction(s.response, set), { cacheSize: 4096 });
}

/** The rewards in config order; `specs` were checked by loadExperiment. */
export async function buildRewards(specs: unknown[], baseDir: string, where = 'experiment'): Promise<Reward[]> {
  return Promise.all(
    specs.map(async (r, i) => {
      const o = r as Record<string, unknown>;
      if (o.type === LEXICON_TYPE) return lexiconReward(typeof o.name === 'string' ? o.name : LEXICON_TYPE, o.words as string[]);
      if (o.type === TOPIC_TYPE) {
        const num = (k: string) => (typeof o[k] === 'number' ? (o[k] as number) : undefined);
        const opts: TopicOptions = {
          topics: o.topics as string[],
          corpus_dir: typeof o.corpus_dir === 'string' ? o.corpus_dir : undefined,
          hold_every: num('hold_every'),
          min_count: num('min_count'),
          l2: num('l2'),
          epochs: num('epochs'),
          score: o.score as TopicOptions['score'],
        };
        return topicReward(typeof o.name === 'string' ? o.name : TOPIC_TYPE, opts);
      }
      return rewardFromConfig(o, { baseDir, path: `${where}: rewards[${i}]` });
    }),
  );
}
