// SPDX-License-Identifier: MIT
// The sweep's distance and fluency measures against independent references: response log-probs of a
// left-padded batch against each sequence alone with a float64 log-softmax; distinct-n by hand; ROC AUC
// against the pairwise definition; the topic classifier's split and determinism.
import { describe, expect, it } from 'vitest';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CausalLM } from '../src/train/llama.js';
import { randomLlamaWeights, tinyLlama } from '../src/train/testing.js';
import { distinctN, responseLogProbs } from '../src/pipeline/sweep.js';
import { rocAuc, topicReward, trainTopicModel, topicProbability, wordSet } from '../src/pipeline/topic.js';
import { fnv1a } from '../src/pipeline/corpus.js';
import { heldOutBits } from '../src/pipeline/base.js';
import { mulberry32 } from '../src/util/random.js';

const CFG = tinyLlama({
  vocabSize: 29,
  hiddenSize: 16,
  intermediateSize: 24,
  numHiddenLayers: 2,
  numAttentionHeads: 2,
  rmsNormEps: 1e-5,
  eosTokenId: 2,
  padTokenId: 0,
});

describe('heldOutBits', () => {
  it("equals libtorch's mean next-token cross-entropy over the same windows, in bits per character", async () => {
    const m = await CausalLM.fromTensors(CFG, randomLlamaWeights(CFG, 4, { dtype: 'float64' }), { dtype: 'float64' });
    const rnd = mulberry32(9);
    const T = 7;
    // 3 whole windows and a ragged tail that is not scored
    const stream = Int32Array.from({ length: 3 * T + 4 }, () => 3 + Math.floor(rnd() * (CFG.vocabSize - 3)));
    const chars = 97;
    const got = await heldOutBits(m, stream, chars, T);
    const windows = [0, 1, 2].map((w) => Array.from(stream.subarray(w * T, (w + 1) * T)));
    const { loss } = await m.lossAndGrad(windows, 'all'); // mean over the 3 × (T − 1) predicted tokens
    expect(got.tokens).toBe(3 * (T - 1));
    expect(got.bitsPerChar).toBeCloseTo(loss / Math.LN2 / (chars / stream.length), 9);
    expect((await heldOutBits(m, stream, chars, T, 2)).tokens).toBe(2 * (T - 1));
    expect((await heldOutBits(m, stream.subarray(0, T - 1), chars, T)).tokens).toBe(0);
    await m.dispose();
  });
});

describe('responseLogProbs', () => {
  it('equals Σ log-softmax of each response token computed per sequence in float64', async () => {
    const m = await CausalLM.fromTensors(CFG, randomLlamaWeights(CFG, 3, { dtype: 'float64' }), { dtype: 'float64' });
    const rnd = mulberry32(5);
    const tok = () => 3 + Math.floor(rnd() * (CFG.vocabSize - 3));
    const prompts = [
      [tok(), tok(), tok()],
      [tok(), tok()],
      [tok(), tok(), tok(), tok()],
    ];
    const responses = [[tok(), tok(), tok(), 2], [tok()], [tok(), tok(), tok(), tok(), tok()]];
    const got = await responseLogProbs(m, prompts, responses);
    for (let b = 0; b < prompts.length; b++) {
      const seq = [...prompts[b], ...responses[b]];
      const lg = await m.logits([seq]);
      const V = CFG.vocabSize;
      let want = 0;
      for (let j = prompts[b].length; j < seq.length; j++) {
        const row = Array.from(lg.subarray((j - 1) * V, j * V));
        const mx = Math.max(...row);
        const lse = mx + Math.log(row.reduce((a, v) => a + Math.exp(v - mx), 0));
        want += row[seq[j]] - lse;
      }
      expect(got[b]).toBeCloseTo(want, 9);
      expect(got[b]).toBeLessThan(0);
    }
    await m.dispose();
  });
});

describe('distinct-n', () => {
  it('pools unique word n-grams over responses, case-insensitively', () => {
    const t = ['The cat the cat', 'a dog', 'THE CAT'];
    // unigrams: the cat the cat a dog the cat = 8, unique {the, cat, a, dog} = 4
    expect(distinctN(t, 1)).toBeCloseTo(4 / 8, 15);
    // bigrams: (the cat)(cat the)(the cat) + (a dog) + (the cat) = 5, unique 3
    expect(distinctN(t, 2)).toBeCloseTo(3 / 5, 15);
    expect(distinctN([''], 2)).toBe(0);
  });
});

describe('topic classifier', () => {
  it('ROC AUC equals the fraction of (positive, negative) pairs ranked right, ties half', () => {
    const rnd = mulberry32(11);
    const s = Array.from({ length: 60 }, () => Math.round(rnd() * 10) / 10);
    const y = s.map((v) => (rnd() < 0.3 + 0.4 * v ? 1 : 0));
    let num = 0,
      den = 0;
    for (let i = 0; i < s.length; i++)
      for (let j = 0; j < s.length; j++)
        if (y[i] && !y[j]) {
          den++;
          num += s[i] > s[j] ? 1 : s[i] === s[j] ? 0.5 : 0;
        }
    expect(rocAuc(s, y)).toBeCloseTo(num / den, 12);
  });

  it('trains on the pre-training split only, deterministically, and separates its topic on held-out entries', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'rsoup-topic-'));
    const rnd = mulberry32(2);
    const pick = (ws: string[]) => ws[Math.floor(rnd() * ws.length)];
    const love = ['heart', 'kiss', 'darling', 'romance', 'lover'],
      tech = ['kernel', 'compiler', 'bug', 'server', 'program'],
      filler = ['the', 'and', 'a', 'of', 'day', 'time', 'people', 'said'];
    const entry = (topic: string[]) =>
      Array.from({ length: 12 }, (_, i) => (i % 3 === 0 ? pick(topic) : pick(filler))).join(' ') + ` ${Math.floor(rnd() * 1e6)}`;
    writeFileSync(join(dir, 'love'), Array.from({ length: 300 }, () => entry(love)).join('\n%\n'));
    writeFileSync(join(dir, 'computers'), Array.from({ length: 300 }, () => entry(tech)).join('\n%\n'));
    writeFileSync(join(dir, 'computers.dat'), 'index, skipped');
    const a = trainTopicModel({ topics: ['love'], corpus_dir: dir, hold_every: 5, epochs: 80 });
    const b = trainTopicModel({ topics: ['love'], corpus_dir: dir, hold_every: 5, epochs: 80 });
    expect(Array.from(a.weights)).toEqual(Array.from(b.weights));
    expect(a.trainEntries + a.heldOut.entries).toBe(600);
    expect(a.heldOut.auc).toBeGreaterThan(0.99);
    expect(topicProbability(a, 'my darling, a kiss')).toBeGreaterThan(0.9);
    expect(topicProbability(a, 'the compiler found a bug in the kernel')).toBeLessThan(0.1);
    // the split is the corpus reader's: held-out entries are those with fnv1a % hold_every === 0
    const entries = ['love', 'computers'].flatMap((f) =>
      readFileSync(join(dir, f), 'utf8')
        .split(/^%$/m)
        .map((e) => e.replace(/^\n+|\s+$/g, '')),
    );
    expect(a.heldOut.entries).toBe(entries.filter((e) => fnv1a(e) % 5 === 0).length);
    expect(a.heldOut.positives).toBe(entries.slice(0, 300).filter((e) => fnv1a(e) % 5 === 0).length);
    expect([...wordSet("Don't STOP, don't")]).toEqual(["don't", 'stop']);
    expect(() => trainTopicModel({ topics: ['lvoe'], corpus_dir: dir })).toThrow(/no fortune file 'lvoe'/);
    // the reward: log-odds by default (b + Σ w over distinct known words, summed here in float64), or P
    const logit = topicReward('love', { topics: ['love'], corpus_dir: dir, hold_every: 5, epochs: 80 });
    const prob = topicReward('love', { topics: ['love'], corpus_dir: dir, hold_every: 5, epochs: 80, score: 'probability' });
    const text = 'a kiss for my darling, a kiss and the kernel';
    let z = logit.model.bias;
    for (const w of ['a', 'kiss', 'for', 'my', 'darling', 'and', 'the', 'kernel'])
      z += logit.model.vocab.has(w) ? logit.model.weights[logit.model.vocab.get(w)!] : 0;
    const sample = [{ prompt: 'p', response: text }];
    const [lz] = await logit.score(sample);
    const [pz] = await prob.score(sample);
    expect(lz).toBeCloseTo(z, 12);
    expect(pz).toBeCloseTo(1 / (1 + Math.exp(-z)), 12);
    expect(logit.model).toBe(prob.model); // one trained model per options, whatever the score
  });
});
