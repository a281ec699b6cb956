// SPDX-License-Identifier: MIT
// ROUGE with google-research rouge_score semantics (rouge/rouge_scorer.py, tokenize.py): lowercase,
// non-[a-z0-9] -> space, optional Porter stemming of tokens longer than 3 letters, n-gram overlap,
// sentence-level LCS (rougeL) and newline-split summary-level union LCS (rougeLsum, as ROUGE 1.5.5).
import { SoupError } from '../errors.js';
import { porterStem } from './porter.js';

export type RougeType = 'rouge1' | 'rouge2' | 'rouge3' | 'rouge4' | 'rouge5' | 'rouge6' | 'rouge7' | 'rouge8' | 'rouge9' | 'rougeL' | 'rougeLsum';

export interface RougeOptions {
  type: RougeType;
  stemmer?: boolean;
}

export interface RougeScore {
  precision: number;
  recall: number;
  fmeasure: number;
}

export function rougeTokenize(text: string, stemmer = false): string[] {
  const t = text.toLowerCase().replace(/[^a-z0-9]+/g, ' ');
  const out: string[] = [];
  for (const raw of t.split(/\s+/)) {
    if (raw === '') continue;
    const tok = stemmer && raw.length > 3 ? porterStem(raw) : raw;
    if (/^[a-z0-9]+$/.test(tok)) out.push(tok);
  }
  return out;
}

export function fmeasure(p: number, r: number): number {
  return p + r > 0 ? (2 * p * r) / (p + r) : 0;
}

function ngrams(tokens: string[], n: number): Map<string, number> {
  const m = new Map<string, number>();
  for (let i = 0; i + n <= tokens.length; i++) {
    const k = tokens.slice(i, i + n).join(' ');
    m.set(k, (m.get(k) ?? 0) + 1);
  }
  return m;
}

function scoreNgrams(t: Map<string, number>, p: Map<string, number>): RougeScore {
  let inter = 0;
  let tc = 0;
  let pc = 0;
  for (const [k, v] of t) {
    inter += Math.min(v, p.get(k) ?? 0);
    tc += v;
  }
  for (const v of p.values()) pc += v;
  const precision = inter / Math.max(pc, 1);
  const recall = inter / Math.max(tc, 1);
  return { precision, recall, fmeasure: fmeasure(precision, recall) };
}

/** LCS length with two rolling rows (O(min) memory). */
export function lcsLength(a: string[], b: string[]): number {
  if (a.length === 0 || b.length === 0) return 0;
  let prev: number[] = new Array<number>(b.length + 1).fill(0);
  let cur: number[] = new Array<number>(b.length + 1).fill(0);
  for (let i = 1; i <= a.length; i++) {
    const ai = a[i - 1];
    for (let j = 1; j <= b.length; j++) {
      cur[j] = ai === b[j - 1] ? prev[j - 1] + 1 : Math.max(prev[j], cur[j - 1]);
    }
    [prev, cur] = [cur, prev];
  }
  return prev[b.length];
}

function lcsTable(ref: string[], can: string[]): number[][] {
  const t: number[][] = [];
  for (let i = 0; i <= ref.length; i++) t.push(new Array<number>(can.length + 1).fill(0));
  for (let i = 1; i <= ref.length; i++) {
    for (let j = 1; j <= can.length; j++) {
      t[i][j] = ref[i - 1] === can[j - 1] ? t[i - 1][j - 1] + 1 : Math.max(t[i - 1][j], t[i][j - 1]);
    }
  }
  return t;
}

/** Indices into ref of one LCS, read back the way rouge_score's _backtrack_norec does. */
function lcsIndices(ref: string[], can: string[]): number[] {
  const t = lcsTable(ref, can);
  let i = ref.length;
  let j = can.length;
  const out: number[] = [];
  while (i > 0 && j > 0) {
    if (ref[i - 1] === can[j - 1]) {
      out.push(i - 1);
      i--;
      j--;
    } else if (t[i][j - 1] > t[i - 1][j]) j--;
    else i--;
  }
  return out.reverse();
}

function scoreLcs(target: string[], pred: string[]): RougeScore {
  if (target.length === 0 || pred.length === 0) return { precision: 0, recall: 0, fmeasure: 0 };
  const l = lcsLength(target, pred);
  const precision = l / pred.length;
  const recall = l / target.length;
  return { precision, recall, fmeasure: fmeasure(precision, recall) };
}

function summaryLevelLcs(refSents: string[][], canSents: string[][]): RougeScore {
  const zero = { precision: 0, recall: 0, fmeasure: 0 };
  if (refSents.length === 0 || canSents.length === 0) return zero;
  const m = refSents.reduce((a, s) => a + s.length, 0);
  const n = canSents.reduce((a, s) => a + s.length, 0);
  if (m === 0 || n === 0) return zero;
  const cntR = new Map<string, number>();
  const cntC = new Map<string, number>();
  for (const s of refSents) for (const t of s) cntR.set(t, (cntR.get(t) ?? 0) + 1);
  for (const s of canSents) for (const t of s) cntC.set(t, (cntC.get(t) ?? 0) + 1);
  let hits = 0;
  for (const r of refSents) {
    const union = new Set<number>();
    for (const c of canSents) for (const idx of lcsIndices(r, c)) union.add(idx);
    const idxs = [...union].sort((a, b) => a - b);
    // ROUGE 1.5.5 prevents double counting: a token is a hit only while both texts have unused copies.
    for (const idx of idxs) {
      const tok = r[idx];
      const c = cntC.get(tok) ?? 0;
      const rr = cntR.get(tok) ?? 0;
      if (c > 0 && rr > 0) {
        hits++;
        cntC.set(tok, c - 1);
        cntR.set(tok, rr - 1);
      }
    }
  }
  const recall = hits / m;
  const precision = hits / n;
  return { precision, recall, fmeasure: fmeasure(precision, recall) };
}

const VALID = /^rouge([1-9]|L|Lsum)$/;

/** rouge_score's RougeScorer([type], use_stemmer).score(target, prediction)[type]. */
export function rouge(target: string, prediction: string, opts: RougeOptions): RougeScore {
  const type = opts?.type;
  if (typeof type !== 'string' || !VALID.test(type)) {
    throw new SoupError('ERR_SOUP_INVALID_ARG', `invalid rouge type '${String(type)}' (expected rouge1..rouge9, rougeL or rougeLsum)`);
  }
  if (typeof target !== 'string' || typeof prediction !== 'string') throw new SoupError('ERR_SOUP_INVALID_ARG', 'rouge: target and prediction must be strings');
  const stem = opts.stemmer ?? false;
  if (type === 'rougeLsum') {
    const sents = (text: string) =>
      text
        .split('\n')
        .filter((x) => x.length > 0)
        .map((s) => rougeTokenize(s, stem));
    return summaryLevelLcs(sents(target), sents(prediction));
  }
  const t = rougeTokenize(target, stem);
  const p = rougeTokenize(prediction, stem);
  if (type === 'rougeL') return scoreLcs(t, p);
  const n = Number(type.slice(5));
  return scoreNgrams(ngrams(t, n), ngrams(p, n));
}

/** rouge_score's score_multi: the target with the best F-measure wins. */
export function rougeMulti(targets: string[], prediction: string, opts: RougeOptions): RougeScore {
  if (!Array.isArray(targets) || targets.length === 0) throw new SoupError('ERR_SOUP_INVALID_ARG', 'rougeMulti: targets must be a non-empty array');
  let best: RougeScore | null = null;
  for (const t of targets) {
    const s = rouge(t, prediction, opts);
    if (best === null || s.fmeasure > best.fmeasure) best = s;
  }
  return best as RougeScore;
}
