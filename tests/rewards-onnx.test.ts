// SPDX-License-Identifier: MIT
// ONNX reward model: scores must equal a float64 recomputation of the same graph (embedding bag +
// linear) on the token ids of a Hugging Face tokenizer.json; mismatching models give clear errors.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Tokenizer } from 'tokenizers';
import {
  onnxReward,
  rewardFromConfig,
  loadRewardsFile,
  applyFormat,
  parseFormat,
  parseWeightedFormat,
  firstSentence,
  type Sample,
} from '../src/rewards/index.js';
import { bagLogits, makeBagWeights, writeBagModel, type BagModel } from './helpers/onnx-model.js';
import { makeTokenizer } from './helpers/fixtures.js';

// a byte-level BPE tokenizer made by the project (</s> is id 2; pairs get segment ids 0 and 1)
const TOKENIZER = makeTokenizer().path;
let dir: string;
let m: BagModel;
let modelPath: string;
const tok = Tokenizer.fromFile(TOKENIZER);

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'rsoup-onnx-'));
  m = makeBagWeights(32000, 5, 3, 7);
  modelPath = join(dir, 'rm.onnx');
  writeBagModel(modelPath, m);
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const samples: Sample[] = [
  { prompt: 'How are you?', response: 'Fine, thanks.' },
  { prompt: 'Summarize: the cat sat on the mat all day long.', response: 'A cat sat.' },
  { prompt: 'x', response: 'A much longer answer that needs padding in the batch, with several more words.' },
];

async function expected(texts: Array<[string, string | null]>, format: string): Promise<number[]> {
  const f = parseFormat(format);
  const out: number[] = [];
  for (const [a, b] of texts) {
    const ids = (await tok.encode(a, b)).getIds();
    out.push(
      applyFormat(
        f,
        bagLogits(
          m,
          ids,
          ids.map(() => 1),
        ),
      ),
    );
  }
  return out;
}

function expectClose(got: Float64Array, want: number[]) {
  expect(got.length).toBe(want.length);
  for (let i = 0; i < want.length; i++) expect(Math.abs(got[i] - want[i]), `sample ${i}: ${got[i]} vs ${want[i]}`).toBeLessThan(1e-5 * (1 + Math.abs(want[i])));
}

describe('ONNX reward model', () => {
  it("the paper's reward_formats with weights: '0x0.4', '1-0x0.6'", () => {
    expect(parseWeightedFormat('0x0.4')).toEqual({ format: '0', weight: 0.4 });
    expect(parseWeightedFormat('1-0x0.6')).toEqual({ format: '1-0', weight: 0.6 });
    expect(parseWeightedFormat('prob:2')).toEqual({ format: 'prob:2', weight: 1 });
    expect(() => parseWeightedFormat('ax2')).toThrow(/unknown score format 'a'/);
    // applyFormat on a known row: logits [0.5, -1, 2]
    expect(applyFormat(parseFormat('2'), [0.5, -1, 2])).toBe(2);
    expect(applyFormat(parseFormat('0-1'), [0.5, -1, 2])).toBe(1.5);
    const z = Math.exp(0.5) + Math.exp(-1) + Math.exp(2);
    expect(applyFormat(parseFormat('prob:0'), [0.5, -1, 2])).toBeCloseTo(Math.exp(0.5) / z, 15);
  });

  it('the tokenizer: byte-level BPE ids inside its vocabulary, </s> a special token with id 2', async () => {
    const ids = (await tok.encode('Hello world')).getIds();
    expect(ids.length).toBeGreaterThan(1);
    expect(Math.max(...ids)).toBeLessThan(makeTokenizer().vocabSize);
    expect(await tok.decode(ids, true)).toBe('Hello world');
    expect(tok.tokenToId('</s>')).toBe(2);
  });

  it('formats k, a-b and prob:k equal a float64 hand computation of the graph (padded batch, pair input)', async () => {
    for (const format of ['2', '1-0', 'prob:1']) {
      const r = await onnxReward({ model: modelPath, tokenizer: TOKENIZER, format, batchSize: 2 });
      const got = await r.score(samples);
      expectClose(
        got,
        await expected(
          samples.map((s) => [s.prompt, s.response]),
          format,
        ),
      );
      await r.dispose();
    }
  });

  it('input formats: response only and the paper-style template with special tokens', async () => {
    const r1 = await onnxReward({ model: modelPath, tokenizer: TOKENIZER, format: '0', input: 'response' });
    expectClose(
      await r1.score(samples),
      await expected(
        samples.map((s) => [s.response, null]),
        '0',
      ),
    );
    const r2 = await onnxReward({ model: modelPath, tokenizer: TOKENIZER, format: '0', input: '{response}{eos}{eos}{prompt}' });
    expectClose(
      await r2.score(samples),
      await expected(
        samples.map((s) => [`${s.response}</s></s>${s.prompt}`, null]),
        '0',
      ),
    );
    // Named preset of the paper's BART detector = the same template; first-sentence response option.
    const r3 = await onnxReward({ model: modelPath, tokenizer: TOKENIZER, format: '0', input: 'bart-faithfulness', response: 'first-sentence' });
    const multi: Sample = { prompt: 'Post text.', response: 'First one here. Second sentence! Third?' };
    expect(firstSentence(multi.response)).toBe('First one here.');
    expectClose(await r3.score([multi]), await expected([['First one here.</s></s>Post text.', null]], '0'));
    // The template really inserts the tokenizer's eos id (2) twice.
    const enc = await r2.encode([samples[0]]);
    expect(enc.ids[0].filter((x) => x === 2).length).toBe(2);
    // prob:k is a probability
    const rp = await onnxReward({ model: modelPath, tokenizer: TOKENIZER, format: 'prob:0' });
    const sp = await rp.score(samples);
    for (const v of sp) expect(v > 0 && v < 1).toBe(true);
  });

  it('token_type_ids reach a BERT-style model: segment ids of the (question, answer) pair', async () => {
    const T = Float32Array.from([0.25, -0.5, 1.5, 0.75, -1.25, 2, -0.125, 0.5, 1, -2]); // 2 x dim(5)
    const p = join(dir, 'typed.onnx');
    writeBagModel(p, m, { typeEmbedding: T });
    const r = await onnxReward({ model: p, tokenizer: TOKENIZER, format: '2-1' });
    const want: number[] = [];
    for (const s of samples) {
      const enc = await tok.encode(s.prompt, s.response);
      const types = enc.getTypeIds();
      expect(types.includes(1)).toBe(true); // the pair template marks the answer as segment 1
      const l = bagLogits(
        m,
        enc.getIds(),
        types.map(() => 1),
        { T, ids: types },
      );
      want.push(l[2] - l[1]);
    }
    expectClose(await r.score(samples), want);
    // Without the type embedding the scores differ (the input is not ignored).
    const plain = await expected(
      samples.map((s) => [s.prompt, s.response]),
      '2-1',
    );
    expect(Math.abs(plain[0] - want[0])).toBeGreaterThan(1e-3);
  });

  it('truncation to maxLength changes the score to the truncated hand computation', async () => {
    const r = await onnxReward({ model: modelPath, tokenizer: TOKENIZER, format: '1', input: 'response', maxLength: 4 });
    const ids = (await tok.encode(samples[2].response, null)).getIds().slice(0, 4);
    expectClose(await r.score([samples[2]]), [bagLogits(m, ids, [1, 1, 1, 1])[1]]);
  });

  it('loads from YAML with a path relative to the config file', async () => {
    writeFileSync(join(dir, 'rewards.yml'), `rewards:\n  - type: onnx\n    name: rm\n    model: rm.onnx\n    tokenizer: ${TOKENIZER}\n    format: "1-0"\n`);
    const [r] = await loadRewardsFile(join(dir, 'rewards.yml'));
    expect(r.name).toBe('rm');
    expectClose(
      await r.score(samples),
      await expected(
        samples.map((s) => [s.prompt, s.response]),
        '1-0',
      ),
    );
  });

  it('a model whose inputs do not match the tokenizer is a clear error', async () => {
    const bad1 = join(dir, 'pixels.onnx');
    writeBagModel(bad1, m, { idsName: 'pixel_values', withMask: false });
    await expect(onnxReward({ model: bad1, tokenizer: TOKENIZER })).rejects.toThrow(
      /input 'pixel_values' does not match the tokenizer .*tokenizer\.json, which provides input_ids, attention_mask/,
    );
    const bad2 = join(dir, 'rank3.onnx');
    writeBagModel(bad2, m, { idsDims: ['batch', 'seq', 2], withMask: false });
    await expect(onnxReward({ model: bad2, tokenizer: TOKENIZER })).rejects.toThrow(
      /input 'input_ids' has rank 3 \[batch, seq, 2\], expected \[batch, sequence\]/,
    );
    // Vocabulary too small for the tokenizer's ids: named at run time with the largest id.
    const small = makeBagWeights(100, 5, 3, 3);
    const bad3 = join(dir, 'small-vocab.onnx');
    writeBagModel(bad3, small);
    const r3 = await onnxReward({ model: bad3, tokenizer: TOKENIZER });
    await expect(r3.score(samples)).rejects.toThrow(
      /small-vocab\.onnx failed on samples 0\.\.2 \(largest token id \d+ from .*does the model's vocabulary match the tokenizer\?/,
    );
    // Format pointing past the classes.
    const r4 = await onnxReward({ model: modelPath, tokenizer: TOKENIZER, format: '3-0' });
    await expect(r4.score(samples)).rejects.toThrow(/refers to class 3 but the model has 3 classes/);
    await expect(onnxReward({ model: modelPath, tokenizer: TOKENIZER, format: 'logit' })).rejects.toThrow(/unknown score format 'logit'/);
    await expect(onnxReward({ model: join(dir, 'nope.onnx'), tokenizer: TOKENIZER })).rejects.toThrow(/model file not found/);
    await expect(rewardFromConfig({ type: 'onnx' })).rejects.toThrow(/reward\.model: /);
  });
});
