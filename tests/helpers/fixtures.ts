// SPDX-License-Identifier: MIT
// Test fixtures, two kinds:
//   - third-party reference files (a PEFT adapter saved by peft, the LLaMA-2 tokenizer, Gymnasium's MuJoCo
//     XMLs): looked up under RSOUP_FIXTURES (default: FIXTURES below, the folder beside the project where CI
//     keeps them). Absent, the test is skipped with the reason; RSOUP_REQUIRE_ALL=1 (set by .ci/run) turns that
//     skip, and every other environment skip made through `needs`, into a failure.
//   - fixtures the project can make itself (a GPT-2-shaped PEFT adapter, a byte-level BPE tokenizer):
//     made here, in a temp dir, so a fresh clone runs those tests with nothing beside it.
// GPU-only cases are not environment skips: they stay skips on machines without a GPU.
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import type { TestContext } from 'vitest';
import { writePeftAdapter, type TensorMap } from '../../src/io/index.js';
import { SPECIAL_TOKENS, trainTokenizer } from '../../src/pipeline/corpus.js';
import { randomTensor, rng } from './random.js';
import { tinyLlama } from '../../src/train/testing.js';
import type { LlamaConfig } from '../../src/train/llama.js';

const ROOT = join(__dirname, '..', '..');

/** Where the third-party fixtures live: $RSOUP_FIXTURES, else the shared fixtures folder beside the project. */
export const FIXTURES = resolve(ROOT, process.env.RSOUP_FIXTURES || '../shared/fixtures');

/** RSOUP_REQUIRE_ALL=1: every environment skip is a failure (CI runs everything). */
export const REQUIRE_ALL = process.env.RSOUP_REQUIRE_ALL === '1';

/**
 * An environment precondition of one test: when `ok` is false the test is skipped with `reason`, or fails
 * with it under RSOUP_REQUIRE_ALL=1. Not for GPU-only cases (those stay skips everywhere).
 */
export function needs(ctx: TestContext, ok: boolean, reason: string): void {
  if (ok) return;
  if (REQUIRE_ALL) throw new Error(`RSOUP_REQUIRE_ALL=1 forbids this skip: ${reason}`);
  ctx.skip(reason);
}

/** The path of a third-party fixture (relative to FIXTURES); skips the test with the reason when it is absent. */
export function fixture(ctx: TestContext, rel: string): string {
  const p = join(FIXTURES, rel);
  needs(ctx, existsSync(p), `third-party fixture '${rel}' not found under ${FIXTURES} (set RSOUP_FIXTURES to the folder that holds it)`);
  return p;
}

// ---- fixtures the project makes itself ------------------------------------------------------------

const made = mkdtempSync(join(tmpdir(), 'rsoup-fixtures-'));
process.on('exit', () => rmSync(made, { recursive: true, force: true }));

/** peft's adapter_config.json for a GPT-2 LoRA (r 8, alpha 8, c_attn, fan_in_fan_out, a saved score head). */
export const GPT2_LORA_CONFIG: Record<string, unknown> = {
  alpha_pattern: {},
  auto_mapping: null,
  base_model_name_or_path: 'gpt2',
  bias: 'none',
  fan_in_fan_out: true,
  inference_mode: true,
  init_lora_weights: true,
  layer_replication: null,
  layers_pattern: null,
  layers_to_transform: null,
  loftq_config: {},
  lora_alpha: 8,
  lora_dropout: 0.0,
  megatron_config: null,
  megatron_core: 'megatron.core',
  modules_to_save: null,
  peft_type: 'LORA',
  r: 8,
  rank_pattern: {},
  revision: null,
  target_modules: ['c_attn'],
  task_type: 'SEQ_CLS',
  use_dora: false,
  use_rslora: false,
};

/**
 * A GPT-2-shaped PEFT LoRA adapter written by the project's own `writePeftAdapter`: 12 layers of c_attn
 * LoRA (A [8, 768], B [2304, 8], both non-zero, as after training) and a saved head `score.weight` [6, 768],
 * F32, with GPT2_LORA_CONFIG: the layout of a sequence-classification adapter that peft saves.
 */
export async function makeGpt2Adapter(dir: string, seed = 1): Promise<{ config: Record<string, unknown>; tensors: TensorMap }> {
  const r = rng(seed);
  const tensors: TensorMap = {};
  for (let l = 0; l < 12; l++) {
    const m = `base_model.model.transformer.h.${l}.attn.c_attn`;
    tensors[`${m}.lora_A.weight`] = randomTensor('float32', [8, 768], r, 0.02);
    tensors[`${m}.lora_B.weight`] = randomTensor('float32', [2304, 8], r, 0.01);
  }
  tensors['base_model.model.score.weight'] = randomTensor('float32', [6, 768], r, 0.02);
  const config = { ...GPT2_LORA_CONFIG };
  await writePeftAdapter(dir, tensors, config);
  return { config, tensors };
}

/** Some English text to train a tokenizer on (seeded sentences from a small word list). */
function corpusText(): string {
  const words = (
    'the a cat dog sat on mat life world man time computer fortune once upon hello my is cute ' +
    'how are you fine thanks summarize all day long first one here second sentence third post text law good ' +
    'never tomorrow today what when where why love work money friend house night light water sun'
  ).split(' ');
  const r = rng(42);
  const lines: string[] = [];
  for (let i = 0; i < 400; i++) {
    const n = 4 + Math.floor(r() * 9);
    const s = Array.from({ length: n }, () => words[Math.floor(r() * words.length)]).join(' ');
    lines.push(`${s[0].toUpperCase()}${s.slice(1)}${['.', '!', '?', ','][Math.floor(r() * 4)]}`);
  }
  return `${lines.join('\n')}\n`;
}

let tokenizerMade: { path: string; vocabSize: number } | undefined;

/**
 * A byte-level BPE tokenizer.json made by the project's own trainer (the demo's: ids 0-2 are <pad>, <s>,
 * </s>, then the 256 bytes, then merges) on a small seeded text; `vocabSize` ids. Made once per test file.
 */
export function makeTokenizer(): { path: string; vocabSize: number; special: typeof SPECIAL_TOKENS } {
  if (!tokenizerMade) {
    const text = join(made, 'tokenizer-corpus.txt');
    writeFileSync(text, corpusText());
    const path = join(made, 'tokenizer.json');
    const vocabSize = 320;
    trainTokenizer(text, vocabSize, path);
    tokenizerMade = { path, vocabSize };
  }
  return { ...tokenizerMade, special: SPECIAL_TOKENS };
}

/** A tiny tied model over the vocabulary of makeTokenizer()'s tokenizer (pipeline-run, train-cli). */
export function tokenizerModelConfig(): LlamaConfig {
  return tinyLlama({
    vocabSize: makeTokenizer().vocabSize,
    hiddenSize: 16,
    intermediateSize: 24,
    numHiddenLayers: 1,
    numAttentionHeads: 2,
    numKeyValueHeads: 1,
    tieWordEmbeddings: true,
    bosTokenId: 1,
    eosTokenId: 2,
    padTokenId: 0,
  });
}
