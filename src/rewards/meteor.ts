// SPDX-License-Identifier: MIT
// METEOR as NLTK defines it (nltk.translate.meteor_score, Lavie & Agarwal 2007): unigram alignment
// in three stages (exact, Porter stem, WordNet synonym), F-mean with alpha = 0.9, fragmentation
// penalty gamma * (chunks / matches)^beta with beta = 3, gamma = 0.5; best score over references.
// Not Java METEOR 1.5 (no paraphrase tables, different parameters): its numbers differ.
import { SoupError } from '../errors.js';
import { porterStem } from './porter.js';
import { defaultWordNet, type WordNet } from './wordnet.js';

export interface MeteorOptions {
  alpha?: number;
  beta?: number;
  gamma?: number;
  /** Turn words into tokens (default: lowercase, split on whitespace, like NLTK's callers with str.split). */
  tokenize?: (s: string) => string[];
  wordnet?: WordNet;
}

type Enum = Array<[number, string]>;

function matchEnums(hyp: Enum, ref: Enum, eq: (h: string, r: string) => boolean): Array<[number, number]> {
  const matches: Array<[number, number]> = [];
  for (let i = hyp.length - 1; i >= 0; i--) {
    for (let j = ref.length - 1; j >= 0; j--) {
      if (eq(hyp[i][1], ref[j][1])) {
        matches.push([hyp[i][0], ref[j][0]]);
        hyp.splice(i, 1);
        ref.splice(j, 1);
        break;
      }
    }
  }
  return matches;
}

function countChunks(m: Array<[number, number]>): number {
  let chunks = 1;
  for (let i = 0; i < m.length - 1; i++) {
    if (!(m[i + 1][0] === m[i][0] + 1 && m[i + 1][1] === m[i][1] + 1)) chunks++;
  }
  return chunks;
}

const defaultTokenize = (s: string) => s.split(/\s+/).filter((w) => w !== '');

/** NLTK single_meteor_score on token lists (lower-cased first, as NLTK's default preprocess). */
export function singleMeteor(reference: string[], hypothesis: string[], opts: MeteorOptions = {}): number {
  const alpha = opts.alpha ?? 0.9;
  const beta = opts.beta ?? 3;
  const gamma = opts.gamma ?? 0.5;
  const hyp: Enum = hypothesis.map((w, i) => [i, w.toLowerCase()]);
  const ref: Enum = reference.map((w, i) => [i, w.toLowerCase()]);
  const tLen = hyp.length;
  const rLen = ref.length;
  const exact = matchEnums(hyp, ref, (a, b) => a === b);
  // Stem stage: compare stems, but the unmatched lists keep the stemmed words (as NLTK's do).
  const hypS: Enum = hyp.map(([i, w]) => [i, porterStem(w)]);
  const refS: Enum = ref.map(([i, w]) => [i, porterStem(w)]);
  const stem = matchEnums(hypS, refS, (a, b) => a === b);
  const wn = opts.wordnet ?? defaultWordNet();
  const syn = matchEnums(hypS, refS, (h, r) => h === r || wn.synonyms(h).has(r));
  const matches = [...exact, ...stem, ...syn].sort((a, b) => a[0] - b[0]);
  const m = matches.length;
  if (m === 0 || tLen === 0 || rLen === 0) return 0;
  const precision = m / tLen;
  const recall = m / rLen;
  const fmean = (precision * recall) / (alpha * precision + (1 - alpha) * recall);
  const frag = countChunks(matches) / m;
  return (1 - gamma * frag ** beta) * fmean;
}

/** METEOR of one hypothesis string against several references: the best single-reference score. */
export function meteor(hypothesis: string, references: string[], opts: MeteorOptions = {}): number {
  if (typeof hypothesis !== 'string') throw new SoupError('ERR_SOUP_INVALID_ARG', 'meteor: hypothesis must be a string');
  if (!Array.isArray(references) || references.length === 0)
    throw new SoupError('ERR_SOUP_INVALID_ARG', 'meteor: references must be a non-empty array of strings');
  const tok = opts.tokenize ?? defaultTokenize;
  const h = tok(hypothesis);
  let best = 0;
  for (const r of references) best = Math.max(best, singleMeteor(tok(r), h, opts));
  return best;
}
