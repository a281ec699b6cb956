// SPDX-License-Identifier: MIT
// BLEU with sacreBLEU 2.x semantics (mjpost/sacrebleu, sacrebleu/metrics/bleu.py): tokenizers '13a'
// (mteval-v13a.pl) and 'none', smoothing 'exp' | 'floor' | 'add-k' | 'none', closest reference length
// (ties -> shorter), effective order, scores in 0..100. Written from the documented algorithm.
import { SoupError } from '../errors.js';

export type BleuTokenizer = '13a' | 'none';
export type BleuSmoothing = 'exp' | 'floor' | 'add-k' | 'none';

export interface BleuOptions {
  tokenize?: BleuTokenizer;
  smoothMethod?: BleuSmoothing;
  /** 'floor' default 0.1, 'add-k' default 1 (sacreBLEU's SMOOTH_DEFAULTS). */
  smoothValue?: number;
  lowercase?: boolean;
  maxNgramOrder?: number;
  effectiveOrder?: boolean;
}

export interface BleuResult {
  /** 0..100, as sacreBLEU reports it. */
  score: number;
  /** Matched n-grams per order (add-k smoothing adds k for n >= 2, as sacreBLEU's returned counts do). */
  counts: number[];
  totals: number[];
  /** Percentages per order. */
  precisions: number[];
  bp: number;
  sysLen: number;
  refLen: number;
}

const SMOOTH_DEFAULTS: Record<BleuSmoothing, number | null> = { none: null, floor: 0.1, 'add-k': 1, exp: null };

// Python's str.split() whitespace (str.isspace): unlike JS \s it includes \x1c-\x1f and \x85 and
// excludes U+FEFF.
const PY_WS_CLASS = '\\t\\n\\v\\f\\r\\x1c-\\x1f \\x85\\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000';
const PY_WS = new RegExp(`[${PY_WS_CLASS}]+`);
const PY_WS_END = new RegExp(`[${PY_WS_CLASS}]+$`);
export function pySplit(s: string): string[] {
  const t = s.split(PY_WS);
  let a = 0;
  let b = t.length;
  if (b > 0 && t[0] === '') a = 1;
  if (b > a && t[b - 1] === '') b--;
  return a === 0 && b === t.length ? t : t.slice(a, b);
}

// mteval-v13a punctuation classes: { | } ~ [ \ ] ^ _ ` space ! " # $ % & ( ) * + : ; < = > ? @ /
const RE_PUNCT = /([{-~[-` -&(-+:-@/])/g;
const RE_PERIOD_COMMA_A = /([^0-9])([.,])/g;
const RE_PERIOD_COMMA_B = /([.,])([^0-9])/g;
const RE_DASH = /([0-9])(-)/g;

export function tokenize13a(line: string): string {
  let s = line.replaceAll('<skipped>', '').replaceAll('-\n', '').replaceAll('\n', ' ');
  if (s.includes('&')) s = s.replaceAll('&quot;', '"').replaceAll('&amp;', '&').replaceAll('&lt;', '<').replaceAll('&gt;', '>');
  s = ` ${s} `;
  s = s.replace(RE_PUNCT, ' $1 ').replace(RE_PERIOD_COMMA_A, '$1 $2 ').replace(RE_PERIOD_COMMA_B, ' $1 $2').replace(RE_DASH, '$1 $2 ');
  return pySplit(s).join(' ');
}

function pyRstrip(s: string): string {
  return s.replace(PY_WS_END, '');
}

function preprocess(sent: string, o: Required<Pick<BleuOptions, 'tokenize' | 'lowercase'>>): string {
  const s = o.lowercase ? sent.toLowerCase() : sent;
  return o.tokenize === '13a' ? tokenize13a(pyRstrip(s)) : pyRstrip(s);
}

// N-grams are keyed by the ids of their tokens in the references' vocabulary (V distinct tokens):
// key = Σ id_j · V^j, exact in a double while V^maxN < 2^53; beyond that, ids joined as a string.
// Hypothesis n-grams with a token absent from every reference can never match and are skipped.
// (Plain arrays, not Int32Array: small typed arrays get off-heap backing stores that cost GC time.)
type Key = number | string;

function keyOf(ids: number[], i: number, n: number, V: number, numeric: boolean): Key {
  if (numeric) {
    let k = 0;
    for (let j = n - 1; j >= 0; j--) k = k * V + ids[i + j];
    return k;
  }
  let k = String(ids[i]);
  for (let j = 1; j < n; j++) k += ',' + ids[i + j];
  return k;
}

interface RefInfo {
  vocab: Map<string, number>;
  numeric: boolean;
  /** Max count over references per n-gram, one map per order. */
  ngrams: Array<Map<Key, number>>;
  lens: number[];
}

function refInfo(refs: string[], maxN: number): RefInfo {
  const toks = refs.map(pySplit);
  const vocab = new Map<string, number>();
  for (const t of toks) for (const w of t) if (!vocab.has(w)) vocab.set(w, vocab.size);
  const V = vocab.size + 1;
  const numeric = Math.pow(V, maxN) < Number.MAX_SAFE_INTEGER;
  const ngrams = Array.from({ length: maxN }, () => new Map<Key, number>());
  const lens: number[] = [];
  const local = new Map<Key, number>(); // reused: fewer short-lived maps, less GC
  for (const t of toks) {
    lens.push(t.length);
    const ids = t.map((w) => vocab.get(w) as number);
    for (let n = 1; n <= maxN; n++) {
      const m = ngrams[n - 1];
      const target = toks.length === 1 ? m : local;
      target.clear();
      for (let i = 0; i + n <= ids.length; i++) {
        const k = keyOf(ids, i, n, V, numeric);
        target.set(k, (target.get(k) ?? 0) + 1);
      }
      if (target === local) for (const [k, c] of local) if (c > (m.get(k) ?? 0)) m.set(k, c);
    }
  }
  return { vocab, numeric, ngrams, lens };
}

function closestRefLen(hypLen: number, lens: number[]): number {
  let bestDiff = -1;
  let best = -1;
  for (const l of lens) {
    const d = Math.abs(hypLen - l);
    if (bestDiff === -1 || d < bestDiff) {
      bestDiff = d;
      best = l;
    } else if (d === bestDiff && l < best) best = l;
  }
  return best;
}

/** Per-segment sufficient statistics: [sysLen, refLen, correct_1..N, total_1..N]. */
function segmentStats(hyp: string, ref: RefInfo, maxN: number): number[] {
  const toks = pySplit(hyp);
  const V = ref.vocab.size + 1;
  const ids = toks.map((w) => ref.vocab.get(w) ?? -1);
  const stats = new Array<number>(2 + 2 * maxN).fill(0);
  stats[0] = toks.length;
  stats[1] = closestRefLen(toks.length, ref.lens);
  const counts = new Map<Key, number>();
  for (let n = 1; n <= maxN; n++) {
    counts.clear();
    const refN = ref.ngrams[n - 1];
    let run = 0; // length of the current run of in-vocabulary tokens ending at i
    for (let i = 0; i < ids.length; i++) {
      run = ids[i] < 0 ? 0 : run + 1;
      if (run < n) continue;
      const k = keyOf(ids, i - n + 1, n, V, ref.numeric);
      if (refN.has(k)) counts.set(k, (counts.get(k) ?? 0) + 1);
    }
    let correct = 0;
    for (const [k, c] of counts) correct += Math.min(c, refN.get(k) as number);
    stats[1 + n] = correct;
    stats[1 + maxN + n] = Math.max(0, toks.length - n + 1);
  }
  return stats;
}

function myLog(x: number): number {
  return x === 0 ? -9999999999 : Math.log(x);
}

/** sacreBLEU's BLEU.compute_bleu from sufficient statistics. */
export function computeBleu(
  correctIn: number[],
  totalIn: number[],
  sysLen: number,
  refLen: number,
  opts: Pick<BleuOptions, 'smoothMethod' | 'smoothValue' | 'effectiveOrder' | 'maxNgramOrder'> = {},
): BleuResult {
  const method = opts.smoothMethod ?? 'none';
  if (!(method in SMOOTH_DEFAULTS))
    throw new SoupError('ERR_SOUP_INVALID_ARG', `unknown smoothMethod '${method}' (expected one of ${Object.keys(SMOOTH_DEFAULTS).join(', ')})`);
  const maxN = opts.maxNgramOrder ?? 4;
  const value = opts.smoothValue ?? SMOOTH_DEFAULTS[method] ?? 0;
  const correct = correctIn.slice();
  const total = totalIn.slice();
  const bp = sysLen < refLen ? (sysLen > 0 ? Math.exp(1 - refLen / sysLen) : 0) : 1;
  const precisions = new Array<number>(maxN).fill(0);
  if (!correct.some((c) => c !== 0)) return { score: 0, counts: correct, totals: total, precisions, bp, sysLen, refLen };
  let smoothMteval = 1;
  let effOrder = maxN;
  for (let n = 1; n <= maxN; n++) {
    if (method === 'add-k' && n > 1) {
      correct[n - 1] += value;
      total[n - 1] += value;
    }
    if (total[n - 1] === 0) break;
    if (opts.effectiveOrder) effOrder = n;
    if (correct[n - 1] === 0) {
      if (method === 'exp') {
        smoothMteval *= 2;
        precisions[n - 1] = 100 / (smoothMteval * total[n - 1]);
      } else if (method === 'floor') {
        precisions[n - 1] = (100 * value) / total[n - 1];
      }
    } else {
      precisions[n - 1] = (100 * correct[n - 1]) / total[n - 1];
    }
  }
  let logSum = 0;
  for (let i = 0; i < effOrder; i++) logSum += myLog(precisions[i]);
  const score = bp * Math.exp(logSum / effOrder);
  return { score, counts: correct, totals: total, precisions, bp, sysLen, refLen };
}

function resolve(opts: BleuOptions, sentence: boolean) {
  const tokenize = opts.tokenize ?? '13a';
  if (tokenize !== '13a' && tokenize !== 'none')
    throw new SoupError('ERR_SOUP_INVALID_ARG', `unknown BLEU tokenize '${String(tokenize)}' (expected '13a' or 'none')`);
  const maxN = opts.maxNgramOrder ?? 4;
  if (!(Number.isInteger(maxN) && maxN >= 1)) throw new SoupError('ERR_SOUP_INVALID_ARG', `maxNgramOrder must be an integer >= 1, got ${maxN}`);
  return {
    tokenize,
    lowercase: opts.lowercase ?? false,
    smoothMethod: opts.smoothMethod ?? 'exp',
    smoothValue: opts.smoothValue,
    maxNgramOrder: maxN,
    effectiveOrder: opts.effectiveOrder ?? sentence,
  } as const;
}

/**
 * Corpus BLEU: `refs` is one array per reference stream (refs[k][i] is the k-th reference of
 * hypothesis i), exactly as sacrebleu.corpus_bleu takes it. Empty references in a stream are skipped.
 */
export function corpusBleu(hyps: string[], refs: string[][], opts: BleuOptions = {}): BleuResult {
  const o = resolve(opts, false);
  if (!Array.isArray(hyps) || hyps.some((h) => typeof h !== 'string'))
    throw new SoupError('ERR_SOUP_INVALID_ARG', 'corpusBleu: hyps must be an array of strings');
  if (!Array.isArray(refs) || refs.length === 0 || refs.some((s) => !Array.isArray(s))) {
    throw new SoupError('ERR_SOUP_INVALID_ARG', 'corpusBleu: refs must be a non-empty array of reference streams (string[][])');
  }
  refs.forEach((stream, k) => {
    if (stream.length !== hyps.length)
      throw new SoupError('ERR_SOUP_INVALID_ARG', `corpusBleu: reference stream ${k} has ${stream.length} sentences but there are ${hyps.length} hypotheses`);
  });
  const maxN = o.maxNgramOrder;
  const sum = new Array<number>(2 + 2 * maxN).fill(0);
  for (let i = 0; i < hyps.length; i++) {
    const rs = refs.map((s) => s[i]).filter((r) => r !== null && r !== undefined && r !== '');
    if (rs.length === 0) throw new SoupError('ERR_SOUP_INVALID_ARG', `corpusBleu: hypothesis ${i} has only empty references`);
    const st = segmentStats(
      preprocess(hyps[i], o),
      refInfo(
        rs.map((r) => preprocess(r, o)),
        maxN,
      ),
      maxN,
    );
    for (let j = 0; j < st.length; j++) sum[j] += st[j];
  }
  return computeBleu(sum.slice(2, 2 + maxN), sum.slice(2 + maxN), sum[0], sum[1], o);
}

/** Sentence BLEU (sacrebleu.sentence_bleu): `refs` is the flat list of references of this hypothesis; effective order on by default. */
export function sentenceBleu(hyp: string, refs: string[], opts: BleuOptions = {}): BleuResult {
  if (typeof hyp !== 'string') throw new SoupError('ERR_SOUP_INVALID_ARG', 'sentenceBleu: hyp must be a string');
  if (!Array.isArray(refs) || refs.length === 0) throw new SoupError('ERR_SOUP_INVALID_ARG', 'sentenceBleu: refs must be a non-empty array of strings');
  return corpusBleu(
    [hyp],
    refs.map((r) => [r]),
    { ...opts, effectiveOrder: opts.effectiveOrder ?? true },
  );
}

/** Pre-tokenizes references once, for per-sample rewards that score many hypotheses against the same references. */
export class SentenceBleuScorer {
  private readonly o: ReturnType<typeof resolve>;
  // Small on purpose: references repeat within a PPO/SCST batch (several samples per prompt or image),
  // and a large cache of n-gram maps costs more in GC than it saves.
  private readonly cache = new Map<string, RefInfo>();
  private readonly capacity = 256;
  constructor(opts: BleuOptions = {}) {
    this.o = resolve(opts, true);
  }
  score(hyp: string, refs: string[]): BleuResult {
    const key = refs.join('\u0000');
    let info = this.cache.get(key);
    if (!info) {
      info = refInfo(
        refs.filter((r) => r !== '').map((r) => preprocess(r, this.o)),
        this.o.maxNgramOrder,
      );
      if (this.cache.size >= this.capacity) this.cache.delete(this.cache.keys().next().value as string);
      this.cache.set(key, info);
    }
    const maxN = this.o.maxNgramOrder;
    const st = segmentStats(preprocess(hyp, this.o), info, maxN);
    return computeBleu(st.slice(2, 2 + maxN), st.slice(2 + maxN), st[0], st[1], this.o);
  }
}
