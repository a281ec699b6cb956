// SPDX-License-Identifier: MIT
// Porter stemmer with NLTK's default "NLTK_EXTENSIONS" mode (nltk.stem.porter.PorterStemmer()), the
// stemmer that rouge_score (use_stemmer=True) and NLTK's METEOR call. Written from the published
// algorithm (Porter 1980) plus NLTK's documented departures: irregular-form pool, "ies"/"ied" on
// 4-letter words, step 1c's consonant condition, "alli"/"fulli"/"logi" in step 2, words <= 2 letters
// untouched, and a 2-letter vowel-consonant word counting as *o (cvc).

const IRREGULAR: Record<string, string[]> = {
  sky: ['sky', 'skies'],
  die: ['dying'],
  lie: ['lying'],
  tie: ['tying'],
  news: ['news'],
  inning: ['innings', 'inning'],
  outing: ['outings', 'outing'],
  canning: ['cannings', 'canning'],
  howe: ['howe'],
  proceed: ['proceed'],
  exceed: ['exceed'],
  succeed: ['succeed'],
};
const POOL = new Map<string, string>();
for (const [k, vs] of Object.entries(IRREGULAR)) for (const v of vs) POOL.set(v, k);

function isVowelLetter(c: string): boolean {
  return c === 'a' || c === 'e' || c === 'i' || c === 'o' || c === 'u';
}

function isCons(w: string, i: number): boolean {
  const c = w[i];
  if (isVowelLetter(c)) return false;
  if (c === 'y') return i === 0 ? true : !isCons(w, i - 1);
  return true;
}

/** m in [C](VC)^m[V]: the number of "vc" transitions. */
function measure(stem: string): number {
  let m = 0;
  let prevVowel = false;
  for (let i = 0; i < stem.length; i++) {
    const cons = isCons(stem, i);
    if (cons && prevVowel) m++;
    prevVowel = !cons;
  }
  return m;
}

function containsVowel(stem: string): boolean {
  for (let i = 0; i < stem.length; i++) if (!isCons(stem, i)) return true;
  return false;
}

function endsDoubleCons(w: string): boolean {
  const n = w.length;
  return n >= 2 && w[n - 1] === w[n - 2] && isCons(w, n - 1);
}

function endsCvc(w: string): boolean {
  const n = w.length;
  if (n >= 3 && isCons(w, n - 3) && !isCons(w, n - 2) && isCons(w, n - 1) && !'wxy'.includes(w[n - 1])) return true;
  return n === 2 && !isCons(w, 0) && isCons(w, 1);
}

type Cond = ((stem: string) => boolean) | null;
type Rule = [suffix: string, replacement: string, cond: Cond];

/** The first rule whose suffix matches decides: apply it if its condition holds, else keep the word. */
function applyRules(word: string, rules: Rule[]): string {
  for (const [suffix, repl, cond] of rules) {
    if (suffix === '*d') {
      if (endsDoubleCons(word)) {
        const stem = word.slice(0, -2);
        return cond === null || cond(stem) ? stem + repl : word;
      }
      continue;
    }
    if (word.endsWith(suffix)) {
      const stem = suffix.length ? word.slice(0, -suffix.length) : word;
      return cond === null || cond(stem) ? stem + repl : word;
    }
  }
  return word;
}

const posM = (s: string): boolean => measure(s) > 0;
const mGt1 = (s: string): boolean => measure(s) > 1;

function step1a(w: string): string {
  if (w.endsWith('ies') && w.length === 4) return w.slice(0, -3) + 'ie';
  return applyRules(w, [
    ['sses', 'ss', null],
    ['ies', 'i', null],
    ['ss', 'ss', null],
    ['s', '', null],
  ]);
}

function step1b(w: string): string {
  if (w.endsWith('ied')) return w.slice(0, -3) + (w.length === 4 ? 'ie' : 'i');
  if (w.endsWith('eed')) {
    const stem = w.slice(0, -3);
    return measure(stem) > 0 ? stem + 'ee' : w;
  }
  let inter: string | null = null;
  for (const suf of ['ed', 'ing']) {
    if (w.endsWith(suf)) {
      const s = w.slice(0, -suf.length);
      if (containsVowel(s)) {
        inter = s;
        break;
      }
    }
  }
  if (inter === null) return w;
  const last = inter[inter.length - 1];
  return applyRules(inter, [
    ['at', 'ate', null],
    ['bl', 'ble', null],
    ['iz', 'ize', null],
    ['*d', last, () => !'lsz'.includes(last)],
    ['', 'e', (s) => measure(s) === 1 && endsCvc(s)],
  ]);
}

function step1c(w: string): string {
  return applyRules(w, [['y', 'i', (s) => s.length > 1 && isCons(s, s.length - 1)]]);
}

function step2(w: string): string {
  if (w.endsWith('alli') && posM(w.slice(0, -4))) return step2(w.slice(0, -4) + 'al');
  return applyRules(w, [
    ['ational', 'ate', posM],
    ['tional', 'tion', posM],
    ['enci', 'ence', posM],
    ['anci', 'ance', posM],
    ['izer', 'ize', posM],
    ['bli', 'ble', posM],
    ['alli', 'al', posM],
    ['entli', 'ent', posM],
    ['eli', 'e', posM],
    ['ousli', 'ous', posM],
    ['ization', 'ize', posM],
    ['ation', 'ate', posM],
    ['ator', 'ate', posM],
    ['alism', 'al', posM],
    ['iveness', 'ive', posM],
    ['fulness', 'ful', posM],
    ['ousness', 'ous', posM],
    ['aliti', 'al', posM],
    ['iviti', 'ive', posM],
    ['biliti', 'ble', posM],
    ['fulli', 'ful', posM],
    // NLTK's condition looks at the word minus 3 letters ("logi" -> "log" keeps the "l").
    ['logi', 'log', () => posM(w.slice(0, -3))],
  ]);
}

function step3(w: string): string {
  return applyRules(w, [
    ['icate', 'ic', posM],
    ['ative', '', posM],
    ['alize', 'al', posM],
    ['iciti', 'ic', posM],
    ['ical', 'ic', posM],
    ['ful', '', posM],
    ['ness', '', posM],
  ]);
}

function step4(w: string): string {
  return applyRules(w, [
    ['al', '', mGt1],
    ['ance', '', mGt1],
    ['ence', '', mGt1],
    ['er', '', mGt1],
    ['ic', '', mGt1],
    ['able', '', mGt1],
    ['ible', '', mGt1],
    ['ant', '', mGt1],
    ['ement', '', mGt1],
    ['ment', '', mGt1],
    ['ent', '', mGt1],
    ['ion', '', (s) => measure(s) > 1 && (s.endsWith('s') || s.endsWith('t'))],
    ['ou', '', mGt1],
    ['ism', '', mGt1],
    ['ate', '', mGt1],
    ['iti', '', mGt1],
    ['ous', '', mGt1],
    ['ive', '', mGt1],
    ['ize', '', mGt1],
  ]);
}

function step5a(w: string): string {
  if (!w.endsWith('e')) return w;
  const stem = w.slice(0, -1);
  const m = measure(stem);
  if (m > 1) return stem;
  if (m === 1 && !endsCvc(stem)) return stem;
  return w;
}

function step5b(w: string): string {
  return applyRules(w, [['ll', 'l', () => measure(w.slice(0, -1)) > 1]]);
}

const memo = new Map<string, string>();

/** Stems one word the way `nltk.stem.porter.PorterStemmer().stem(word)` does (lowercasing first). */
export function porterStem(word: string): string {
  const cached = memo.get(word);
  if (cached !== undefined) return cached;
  let s = word.toLowerCase();
  let out: string;
  if (POOL.has(word)) out = POOL.get(s) ?? s;
  else if (word.length <= 2) out = s;
  else {
    s = step1a(s);
    s = step1b(s);
    s = step1c(s);
    s = step2(s);
    s = step3(s);
    s = step4(s);
    s = step5a(s);
    s = step5b(s);
    out = s;
  }
  if (memo.size > 200_000) memo.clear();
  memo.set(word, out);
  return out;
}
