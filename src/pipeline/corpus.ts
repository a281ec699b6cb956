// SPDX-License-Identifier: MIT
// The demo's text corpus: Debian's fortune files (plain text, entries separated by lines holding "%"),
// read offline, split deterministically into pre-training text and held-out entries (PPO prompts and
// evaluation prompts never seen in pre-training). Also the byte-level BPE tokenizer trained on it.
import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { Tokenizer } from 'tokenizers';
import { SoupError } from '../errors.js';

const require = createRequire(import.meta.url);

export const FORTUNE_DIR = '/usr/share/games/fortunes';

export interface Corpus {
  /** Files read, sorted. */
  files: string[];
  train: string[];
  /** Held-out entries, in a fixed order. */
  heldOut: string[];
  chars: number;
}

/** FNV-1a of a string: a stable split that does not depend on file order or the JS engine. */
export function fnv1a(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h >>> 0;
}

/** Reads every fortune file of `dir` (skipping the .dat indexes and .u8 links); 1 in `holdEvery` entries is held out. */
export function readFortunes(dir = FORTUNE_DIR, holdEvery = 25): Corpus {
  let names: string[];
  try {
    names = readdirSync(dir).sort();
  } catch (e) {
    throw new SoupError(
      'ERR_SOUP_IO',
      `corpus: cannot read ${dir} (${(e as Error).message}); install Debian's 'fortunes' and 'fortunes-min' packages (npm run bootstrap does)`,
    );
  }
  const files = names
    .filter((n) => !n.endsWith('.dat') && !n.endsWith('.u8') && !n.startsWith('.'))
    .map((n) => join(dir, n))
    .filter((p) => statSync(p).isFile());
  const train: string[] = [];
  const heldOut: string[] = [];
  let chars = 0;
  for (const f of files) {
    const text = readFileSync(f, 'utf8');
    for (const raw of text.split(/^%$/m)) {
      const e = raw.replace(/^\n+|\s+$/g, '');
      if (e.length < 20) continue;
      chars += e.length;
      (fnv1a(e) % holdEvery === 0 ? heldOut : train).push(e);
    }
  }
  if (train.length < 100)
    throw new SoupError('ERR_SOUP_IO', `corpus: ${dir} holds only ${train.length + heldOut.length} entries; install Debian's 'fortunes' package`);
  return { files, train, heldOut, chars };
}

export const SPECIAL_TOKENS = ['<pad>', '<s>', '</s>'] as const;

/**
 * Trains a byte-level BPE tokenizer with exactly `vocabSize` tokens: ids 0-2 are <pad>, <s>, </s>, then
 * the 256 byte symbols, then the first merges. The npm `tokenizers` trainer has fixed settings (30k
 * tokens), but BPE merges are rank-ordered, so truncating the merge list gives the smaller tokenizer.
 */
export function trainTokenizer(trainFile: string, vocabSize: number, outFile: string): Tokenizer {
  const nMerges = vocabSize - 3 - 256;
  if (nMerges < 1) throw new SoupError('ERR_SOUP_CONFIG', `tokenizer vocab_size ${vocabSize} must exceed 259 (3 special tokens + 256 bytes)`);
  // The trainer prints progress on fd 1 (blank lines when not a TTY), which would corrupt `--json`
  // output: it runs in a child process whose stdout is discarded.
  const tmp = `${outFile}.raw.json`;
  const script = `const t = require(process.argv[1]); const k = new t.Tokenizer(t.BPE.empty()); k.setPreTokenizer(t.byteLevelPreTokenizer(false, true)); k.train([process.argv[2]]); k.save(process.argv[3]);`;
  const r = spawnSync(process.execPath, ['-e', script, require.resolve('tokenizers'), trainFile, tmp], {
    stdio: ['ignore', 'ignore', 'pipe'],
    encoding: 'utf8',
  });
  if (r.status !== 0)
    throw new SoupError('ERR_SOUP_INTERNAL', `tokenizer training on ${trainFile} failed: ${r.stderr || r.error?.message || `exit ${r.status}`}`);
  const j = JSON.parse(readFileSync(tmp, 'utf8'));
  rmSync(tmp, { force: true });
  const vocab: Record<string, number> = {};
  SPECIAL_TOKENS.forEach((s, i) => (vocab[s] = i));
  // The byte-level alphabet: every byte maps to one printable char (GPT-2's table).
  const bytes: string[] = [];
  for (let b = 0; b < 256; b++) bytes.push(byteChar(b));
  bytes.forEach((c) => (vocab[c] = Object.keys(vocab).length));
  const rawMerges: Array<string | [string, string]> = j.model.merges;
  const merges: [string, string][] = [];
  for (const m of rawMerges) {
    if (merges.length >= nMerges) break;
    const [a, b] = typeof m === 'string' ? (m.split(' ') as [string, string]) : m;
    if (!(a in vocab) || !(b in vocab)) continue; // a merge of symbols not kept (rare bytes)
    const tok = a + b;
    if (tok in vocab) continue;
    vocab[tok] = Object.keys(vocab).length;
    merges.push([a, b]);
  }
  if (merges.length < nMerges)
    throw new SoupError(
      'ERR_SOUP_CONFIG',
      `tokenizer: the corpus gives only ${merges.length} merges, fewer than the ${nMerges} needed for vocab_size ${vocabSize}`,
    );
  j.model.vocab = vocab;
  j.model.merges = typeof rawMerges[0] === 'string' ? merges.map((m) => m.join(' ')) : merges;
  j.added_tokens = SPECIAL_TOKENS.map((content, id) => ({ id, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true }));
  j.decoder = { type: 'ByteLevel', add_prefix_space: true, trim_offsets: true, use_regex: true };
  j.post_processor = null;
  writeFileSync(outFile, JSON.stringify(j));
  return Tokenizer.fromFile(outFile);
}

/** GPT-2's bytes_to_unicode: printable bytes map to themselves, the others to U+0100 onwards. */
export function byteChar(b: number): string {
  const printable = (x: number) => (x >= 33 && x <= 126) || (x >= 161 && x <= 172) || (x >= 174 && x <= 255);
  if (printable(b)) return String.fromCharCode(b);
  let n = 0;
  for (let x = 0; x < b; x++) if (!printable(x)) n++;
  return String.fromCharCode(256 + n);
}
