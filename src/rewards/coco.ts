// SPDX-License-Identifier: MIT
// Caption metrics with coco-caption (pycocoevalcap) semantics, the scorers the paper's captioning
// experiments report: Bleu_1..4 (closest reference length, tiny = 1e-15 / small = 1e-9 epsilons),
// ROUGE_L (LCS F-measure with beta = 1.2, best precision and recall over references) and CIDEr-D
// (tf-idf n-grams 1..4 with document frequencies from the references of the scored corpus, clipping,
// Gaussian length penalty sigma = 6, mean over n, divided by #refs, x10). The scorers split captions
// on whitespace; pycocoevalcap first runs the Java PTBTokenizer, for which `tokenize: 'ptb'` is a
// close approximation (lowercase, punctuation dropped).
import { SoupError } from '../errors.js';
import { pySplit } from './bleu.js';

const SMALL = 1e-9;
const TINY = 1e-15;

export interface CocoScores {
  Bleu_1: number;
  Bleu_2: number;
  Bleu_3: number;
  Bleu_4: number;
  ROUGE_L: number;
  CIDEr: number;
}

export interface CocoResult {
  corpus: CocoScores;
  perImage: Record<string, CocoScores>;
}

export interface CocoOptions {
  /** 'none': captions are already tokenized (split on whitespace); 'ptb': lowercase and drop punctuation first. */
  tokenize?: 'none' | 'ptb';
  /** CIDEr-D Gaussian length penalty (default 6). */
  sigma?: number;
}

const PTB_PUNCT = new Set(["''", "'", '``', '`', '-lrb-', '-rrb-', '-lcb-', '-rcb-', '.', '?', '!', ',', ':', '-', '--', '...', ';']);

/** An approximation of pycocoevalcap's PTBTokenizer step (Stanford PTB tokenizer, lower-cased, punctuation removed). */
export function ptbLite(s: string): string {
  const t = s
    .toLowerCase()
    .replace(/\s+/g, ' ')
    .replace(/([^\s\w'-]|(?<=\s|^)['-]+|['-]+(?=\s|$))/g, ' $1 ')
    .replace(/(\w)('s|'re|'ve|'ll|'d|'m|n't)\b/g, '$1 $2');
  return t
    .split(/\s+/)
    .filter((w) => w !== '' && !PTB_PUNCT.has(w) && !/^[^\w]+$/.test(w))
    .join(' ');
}

// s.split() as Python does it (the scorers' precook).
const words = pySplit;

function precook(ws: string[], n = 4): Map<string, number> {
  const m = new Map<string, number>();
  for (let k = 1; k <= n; k++) {
    for (let i = 0; i + k <= ws.length; i++) {
      const key = `${k}\u0000${ws.slice(i, i + k).join(' ')}`;
      m.set(key, (m.get(key) ?? 0) + 1);
    }
  }
  return m;
}

function order(key: string): number {
  return Number(key.slice(0, key.indexOf('\u0000')));
}

function checkInputs(hyps: Record<string, string>, refs: Record<string, string[]>): string[] {
  if (hyps === null || typeof hyps !== 'object' || refs === null || typeof refs !== 'object') {
    throw new SoupError('ERR_SOUP_INVALID_ARG', 'cocoCaptionScores: hyps and refs must be objects keyed by image id');
  }
  const ids = Object.keys(hyps);
  const refIds = new Set(Object.keys(refs));
  if (ids.length === 0) throw new SoupError('ERR_SOUP_INVALID_ARG', 'cocoCaptionScores: no hypotheses');
  for (const id of ids) {
    if (typeof hyps[id] !== 'string') throw new SoupError('ERR_SOUP_INVALID_ARG', `cocoCaptionScores: hyps['${id}'] must be one caption string`);
    const r = refs[id];
    if (!refIds.has(id) || !Array.isArray(r) || r.length === 0)
      throw new SoupError('ERR_SOUP_INVALID_ARG', `cocoCaptionScores: refs['${id}'] is missing or empty (every image needs >= 1 reference)`);
    refIds.delete(id);
  }
  if (refIds.size > 0) throw new SoupError('ERR_SOUP_INVALID_ARG', `cocoCaptionScores: refs has ids with no hypothesis: ${[...refIds].slice(0, 5).join(', ')}`);
  return ids;
}

/** pycocoevalcap Bleu(4).compute_score with option 'closest': corpus values and per-image lists. */
export function cocoBleu(hyps: string[][], refs: string[][][], n = 4): { corpus: number[]; perImage: number[][] } {
  const perImage: number[][] = Array.from({ length: n }, () => []);
  const guessT = new Array<number>(n).fill(0);
  const correctT = new Array<number>(n).fill(0);
  let testLenT = 0;
  let refLenT = 0;
  for (let i = 0; i < hyps.length; i++) {
    const maxCounts = new Map<string, number>();
    const refLens: number[] = [];
    for (const r of refs[i]) {
      refLens.push(r.length);
      for (const [k, c] of precook(r, n)) if (c > (maxCounts.get(k) ?? 0)) maxCounts.set(k, c);
    }
    const testLen = hyps[i].length;
    // closest: min over (|l - testlen|, l) tuples
    let refLen = refLens[0];
    for (const l of refLens) {
      const d = Math.abs(l - testLen);
      const bd = Math.abs(refLen - testLen);
      if (d < bd || (d === bd && l < refLen)) refLen = l;
    }
    const guess = Array.from({ length: n }, (_, k) => Math.max(0, testLen - k));
    const correct = new Array<number>(n).fill(0);
    for (const [k, c] of precook(hyps[i], n)) correct[order(k) - 1] += Math.min(maxCounts.get(k) ?? 0, c);
    testLenT += testLen;
    refLenT += refLen;
    for (let k = 0; k < n; k++) {
      guessT[k] += guess[k];
      correctT[k] += correct[k];
    }
    let b = 1;
    for (let k = 0; k < n; k++) {
      b *= (correct[k] + TINY) / (guess[k] + SMALL);
      perImage[k].push(b ** (1 / (k + 1)));
    }
    const ratio = (testLen + TINY) / (refLen + SMALL);
    if (ratio < 1) for (let k = 0; k < n; k++) perImage[k][i] *= Math.exp(1 - 1 / ratio);
  }
  const corpus: number[] = [];
  let b = 1;
  for (let k = 0; k < n; k++) {
    b *= (correctT[k] + TINY) / (guessT[k] + SMALL);
    corpus.push(b ** (1 / (k + 1)));
  }
  const ratio = (testLenT + TINY) / (refLenT + SMALL);
  if (ratio < 1) for (let k = 0; k < n; k++) corpus[k] *= Math.exp(1 - 1 / ratio);
  return { corpus, perImage };
}

/** pycocoevalcap Rouge().calc_score for one caption: tokens split on single spaces, beta = 1.2. */
export function cocoRougeL(hyp: string, refs: string[], beta = 1.2): number {
  const c = hyp.split(' ');
  let pMax = 0;
  let rMax = 0;
  for (const ref of refs) {
    const r = ref.split(' ');
    const l = lcsLen(r, c);
    pMax = Math.max(pMax, l / c.length);
    rMax = Math.max(rMax, l / r.length);
  }
  if (pMax === 0 || rMax === 0) return 0;
  return ((1 + beta * beta) * pMax * rMax) / (rMax + beta * beta * pMax);
}

function lcsLen(a: string[], b: string[]): number {
  let prev: number[] = new Array<number>(b.length + 1).fill(0);
  let cur: number[] = new Array<number>(b.length + 1).fill(0);
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) cur[j] = a[i - 1] === b[j - 1] ? prev[j - 1] + 1 : Math.max(prev[j], cur[j - 1]);
    [prev, cur] = [cur, prev];
  }
  return prev[b.length];
}

/** Document frequencies of n-grams over a corpus of reference sets (one set per image). */
export function ciderDocFreq(refSets: string[][][]): { df: Map<string, number>; numImages: number } {
  const df = new Map<string, number>();
  for (const refs of refSets) {
    const seen = new Set<string>();
    for (const r of refs) for (const k of precook(r).keys()) seen.add(k);
    for (const k of seen) df.set(k, (df.get(k) ?? 0) + 1);
  }
  return { df, numImages: refSets.length };
}

interface Vec {
  vec: Array<Map<string, number>>;
  norm: number[];
  length: number;
}

function counts2vec(cnts: Map<string, number>, df: Map<string, number>, refLen: number, n: number): Vec {
  const vec = Array.from({ length: n }, () => new Map<string, number>());
  const norm = new Array<number>(n).fill(0);
  let length = 0;
  for (const [k, tf] of cnts) {
    const d = Math.log(Math.max(1, df.get(k) ?? 0));
    const o = order(k) - 1;
    const v = tf * (refLen - d);
    vec[o].set(k, v);
    norm[o] += v * v;
    // pycocoevalcap counts bigrams here (n == 1 is the bigram slot): kept for identical numbers.
    if (o === 1) length += tf;
  }
  return { vec, norm: norm.map(Math.sqrt), length };
}

/** CIDEr-D per image, given document frequencies (pycocoevalcap CiderScorer.compute_cider). */
export function ciderD(hyps: string[][], refs: string[][][], dfInfo = ciderDocFreq(refs), sigma = 6, n = 4): number[] {
  const refLen = Math.log(dfInfo.numImages);
  const out: number[] = [];
  for (let i = 0; i < hyps.length; i++) {
    const h = counts2vec(precook(hyps[i], n), dfInfo.df, refLen, n);
    const score = new Array<number>(n).fill(0);
    for (const r of refs[i]) {
      const rv = counts2vec(precook(r, n), dfInfo.df, refLen, n);
      const delta = h.length - rv.length;
      for (let k = 0; k < n; k++) {
        let val = 0;
        for (const [g, hv] of h.vec[k]) {
          const refV = rv.vec[k].get(g) ?? 0;
          val += Math.min(hv, refV) * refV;
        }
        if (h.norm[k] !== 0 && rv.norm[k] !== 0) val /= h.norm[k] * rv.norm[k];
        val *= Math.exp(-(delta * delta) / (2 * sigma * sigma));
        score[k] += val;
      }
    }
    let avg = score.reduce((a, b) => a + b, 0) / n;
    avg /= refs[i].length;
    out.push(avg * 10);
  }
  return out;
}

/** coco-caption's Bleu_1..4, ROUGE_L and CIDEr (CIDEr-D), for the corpus and per image. */
export function cocoCaptionScores(hyps: Record<string, string>, refs: Record<string, string[]>, opts: CocoOptions = {}): CocoResult {
  const ids = checkInputs(hyps, refs);
  const tok = opts.tokenize === 'ptb' ? ptbLite : (s: string) => s;
  if (opts.tokenize !== undefined && opts.tokenize !== 'none' && opts.tokenize !== 'ptb') {
    throw new SoupError('ERR_SOUP_INVALID_ARG', `cocoCaptionScores: unknown tokenize '${String(opts.tokenize)}' (expected 'none' or 'ptb')`);
  }
  const hStr = ids.map((id) => tok(hyps[id]));
  const rStr = ids.map((id) =>
    refs[id].map((r) => {
      if (typeof r !== 'string') throw new SoupError('ERR_SOUP_INVALID_ARG', `cocoCaptionScores: refs['${id}'] must contain strings`);
      return tok(r);
    }),
  );
  const hW = hStr.map(words);
  const rW = rStr.map((rs) => rs.map(words));
  const bleu = cocoBleu(hW, rW);
  const rougeL = hStr.map((h, i) => cocoRougeL(h, rStr[i]));
  const cider = ciderD(hW, rW, ciderDocFreq(rW), opts.sigma ?? 6);
  const mean = (a: number[]) => a.reduce((x, y) => x + y, 0) / a.length;
  const perImage: Record<string, CocoScores> = {};
  ids.forEach((id, i) => {
    perImage[id] = {
      Bleu_1: bleu.perImage[0][i],
      Bleu_2: bleu.perImage[1][i],
      Bleu_3: bleu.perImage[2][i],
      Bleu_4: bleu.perImage[3][i],
      ROUGE_L: rougeL[i],
      CIDEr: cider[i],
    };
  });
  return {
    corpus: { Bleu_1: bleu.corpus[0], Bleu_2: bleu.corpus[1], Bleu_3: bleu.corpus[2], Bleu_4: bleu.corpus[3], ROUGE_L: mean(rougeL), CIDEr: mean(cider) },
    perImage,
  };
}
