// SPDX-License-Identifier: MIT
// The base stage's built-in path: a tiny LLaMA-architecture model pre-trained from scratch on the
// fortunes corpus (the demo's text setting): byte-level BPE tokenizer, then AdamW on packed 128-token
// windows with a cosine schedule (the training core's pretrain()). Every random draw is seeded, so the same config gives the same model.
import { copyFileSync, mkdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { SoupError } from '../errors.js';
import { CausalLM, llamaConfigToHF, pretrain, tokenLogProb, type LlamaConfig } from '../train/index.js';
import { readFortunes, trainTokenizer, type Corpus } from './corpus.js';
import { faultPoint } from './fault.js';

export interface PretrainSpec {
  corpus_dir: string;
  hold_every: number;
  vocab_size: number;
  hidden_size: number;
  intermediate_size: number;
  num_layers: number;
  num_heads: number;
  steps: number;
  batch_size: number;
  seq_len: number;
  learning_rate: number;
  warmup_steps: number;
  weight_decay: number;
  seed: number;
  threads: number;
}

export interface PretrainResult {
  dir: string;
  steps: number;
  firstLoss: number;
  finalLoss: number;
  /** Training loss (moving average) in bits per character of the training text. */
  bitsPerChar: number;
  /** The model's NLL on held-out entries (never trained on; where prompts come from), bits per character. */
  heldOutBitsPerChar: number;
  heldOutTokens: number;
  seconds: number;
  params: number;
}

/** Tokenizes `<s> entry </s>` for every entry and concatenates them (one long stream to cut windows from). */
export async function packCorpus(entries: string[], tok: import('tokenizers').Tokenizer): Promise<Int32Array> {
  const encs = await tok.encodeBatch(entries.map((e) => `<s>${e}</s>`));
  let n = 0;
  for (const e of encs) n += e.getIds().length;
  const out = new Int32Array(n);
  let o = 0;
  for (const e of encs) {
    out.set(e.getIds(), o);
    o += e.getIds().length;
  }
  return out;
}

export function tinyLlamaConfig(s: Pick<PretrainSpec, 'vocab_size' | 'hidden_size' | 'intermediate_size' | 'num_layers' | 'num_heads'>): LlamaConfig {
  return {
    vocabSize: s.vocab_size,
    hiddenSize: s.hidden_size,
    intermediateSize: s.intermediate_size,
    numHiddenLayers: s.num_layers,
    numAttentionHeads: s.num_heads,
    numKeyValueHeads: s.num_heads,
    rmsNormEps: 1e-5,
    ropeTheta: 10000,
    tieWordEmbeddings: true,
    bosTokenId: 1,
    eosTokenId: 2,
    padTokenId: 0,
    maxPositionEmbeddings: 512,
  };
}

/** Mean NLL of the held-out token stream in bits per character: consecutive windows of `seqLen` tokens
 *  (every token but each window's first is predicted from the ones before it in its window), at most
 *  `maxWindows` of them; `chars` is the stream's character count (entries plus their two specials). */
export async function heldOutBits(
  model: CausalLM,
  stream: Int32Array,
  chars: number,
  seqLen: number,
  maxWindows = 64,
): Promise<{ bitsPerChar: number; tokens: number }> {
  const V = model.config.vocabSize;
  const windows: number[][] = [];
  for (let o = 0; o + seqLen <= stream.length && windows.length < maxWindows; o += seqLen) windows.push(Array.from(stream.subarray(o, o + seqLen)));
  if (!windows.length) return { bitsPerChar: NaN, tokens: 0 };
  let nll = 0,
    n = 0;
  for (let b0 = 0; b0 < windows.length; b0 += 16) {
    const batch = windows.slice(b0, b0 + 16);
    const lg = await model.logits(batch);
    for (let b = 0; b < batch.length; b++) {
      for (let t = 0; t + 1 < seqLen; t++) {
        nll -= tokenLogProb(lg, (b * seqLen + t) * V, V, batch[b][t + 1]);
        n++;
      }
    }
  }
  // nats per token → bits per character, at the held-out stream's own characters per token
  return { bitsPerChar: nll / n / Math.LN2 / (chars / stream.length), tokens: n };
}

/** Trains the tokenizer and the model, writes a Hugging Face dir (config.json, model.safetensors, tokenizer.json). */
export async function pretrainTiny(
  spec: PretrainSpec,
  dir: string,
  o: { corpus?: Corpus; onProgress?: (step: number, loss: number) => void; signal?: AbortSignal } = {},
): Promise<PretrainResult> {
  const t0 = performance.now();
  // Everything is made in a work dir beside the model dir; the complete model dir (weights, config.json,
  // tokenizer.json) is renamed into place last, so a kill at any point leaves a whole model dir or none.
  const work = `${dir}.work`;
  rmSync(work, { recursive: true, force: true });
  mkdirSync(work, { recursive: true });
  const corpus = o.corpus ?? readFortunes(spec.corpus_dir, spec.hold_every);
  const textFile = join(work, 'corpus-train.txt');
  writeFileSync(textFile, corpus.train.join('\n\n'));
  faultPoint('base', 'after-corpus');
  const tokFile = join(work, 'tokenizer.json');
  const tok = trainTokenizer(textFile, spec.vocab_size, tokFile);
  faultPoint('base', 'after-tokenizer');
  const stream = await packCorpus(corpus.train, tok);
  const charsPerToken = corpus.train.reduce((a, e) => a + e.length + 2, 0) / stream.length;
  const config = tinyLlamaConfig(spec);
  const model = await CausalLM.fromTensors(config, null, { seed: spec.seed, threads: spec.threads });
  const B = spec.batch_size,
    T = spec.seq_len;
  if (stream.length < T + 1) throw new SoupError('ERR_SOUP_CONFIG', `base.pretrain: the corpus has ${stream.length} tokens, fewer than seq_len ${T}`);
  let firstLoss = NaN,
    ema = NaN;
  let held = { bitsPerChar: NaN, tokens: 0 };
  const staged = join(work, 'model');
  try {
    // the training core's pre-training loop: random windows, AdamW (β 0.9/0.95), warmup + cosine to 10%
    for await (const st of pretrain(model, {
      tokens: stream,
      seqLen: T,
      batchSize: B,
      steps: spec.steps,
      lr: spec.learning_rate,
      minLr: spec.learning_rate / 10,
      warmupSteps: spec.warmup_steps,
      weightDecay: spec.weight_decay,
      maxGradNorm: 1,
      seed: spec.seed,
      signal: o.signal,
    })) {
      if (st.step === 1) firstLoss = st.loss;
      ema = Number.isNaN(ema) ? st.loss : 0.95 * ema + 0.05 * st.loss;
      o.onProgress?.(st.step, ema);
    }
    await model.save(staged);
    held = await heldOutBits(
      model,
      await packCorpus(corpus.heldOut, tok),
      corpus.heldOut.reduce((a, e) => a + e.length + 2, 0),
      T,
    );
  } finally {
    await model.dispose();
  }
  faultPoint('base', 'after-weights');
  // config.json with the tokenizer's special ids, and the tokenizer itself
  writeFileSync(join(staged, 'config.json'), `${JSON.stringify(llamaConfigToHF(config), null, 2)}\n`);
  copyFileSync(tokFile, join(staged, 'tokenizer.json'));
  rmSync(dir, { recursive: true, force: true });
  renameSync(staged, dir);
  faultPoint('base', 'after-model');
  rmSync(work, { recursive: true, force: true });
  const params =
    spec.vocab_size * spec.hidden_size +
    spec.num_layers * (4 * spec.hidden_size ** 2 + 3 * spec.hidden_size * spec.intermediate_size + 2 * spec.hidden_size) +
    spec.hidden_size;
  return {
    dir,
    steps: spec.steps,
    firstLoss,
    finalLoss: ema,
    bitsPerChar: ema / Math.LN2 / charsPerToken,
    heldOutBitsPerChar: held.bitsPerChar,
    heldOutTokens: held.tokens,
    seconds: (performance.now() - t0) / 1000,
    params,
  };
}
