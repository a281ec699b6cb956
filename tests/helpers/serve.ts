// SPDX-License-Identifier: MIT
// Fixtures of the serve tests: a tiny random LLaMA base dir (with the tokenizer fixture when asked) and
// random PEFT adapters (any rank, targets, alpha, rsLoRA), written with the project's own writers.
import { copyFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { saveModelDir, writePeftAdapter, type TensorMap } from '../../src/io/index.js';
import { llamaConfigToHF, mulberry32, peftAdapterConfig, type LlamaConfig } from '../../src/train/llama.js';
import { randomLlamaWeights, tinyLlama } from '../../src/train/testing.js';
import { makeTokenizer } from './fixtures.js';

export const TINY = tinyLlama({
  vocabSize: 37,
  hiddenSize: 24,
  intermediateSize: 40,
  numHiddenLayers: 2,
  numAttentionHeads: 4,
  numKeyValueHeads: 2,
  rmsNormEps: 1e-5,
  ropeTheta: 500,
  eosTokenId: 2,
  padTokenId: 0,
});

/** The serving tests' model (serve-http, serve-playground): GQA, untied, a 320-token vocabulary. */
export const SERVE_CFG = tinyLlama({
  vocabSize: 320,
  hiddenSize: 32,
  intermediateSize: 48,
  numHiddenLayers: 2,
  numAttentionHeads: 4,
  numKeyValueHeads: 2,
  rmsNormEps: 1e-5,
  bosTokenId: 1,
  eosTokenId: 2,
  padTokenId: 0,
});

export function makeBase(dir: string, cfg: LlamaConfig, seed = 1, opts: { tokenizer?: boolean; scale?: number } = {}): Promise<void> {
  mkdirSync(dir, { recursive: true });
  const w = randomLlamaWeights(cfg, seed, { dtype: 'float32', scale: opts.scale ?? 0.3 });
  return saveModelDir(dir, w, { config: llamaConfigToHF(cfg) }).then(() => {
    if (opts.tokenizer) copyFileSync(makeTokenizer().path, join(dir, 'tokenizer.json'));
  });
}

export interface AdapterSpec {
  r: number;
  alpha: number;
  targets: string[];
  rslora?: boolean;
  seed: number;
  scale?: number;
}

/** Random A and B (both non-zero) for every target module of every layer, as peft writes them. */
export async function makeAdapter(dir: string, cfg: LlamaConfig, s: AdapterSpec): Promise<TensorMap> {
  const rnd = mulberry32(s.seed);
  const H = cfg.hiddenSize,
    D = H / cfg.numAttentionHeads,
    I = cfg.intermediateSize;
  const dims: Record<string, [number, number]> = {
    q_proj: [H, cfg.numAttentionHeads * D],
    k_proj: [H, cfg.numKeyValueHeads * D],
    v_proj: [H, cfg.numKeyValueHeads * D],
    o_proj: [cfg.numAttentionHeads * D, H],
    gate_proj: [H, I],
    up_proj: [H, I],
    down_proj: [I, H],
  };
  const t: TensorMap = {};
  const fill = (n: number) => Float32Array.from({ length: n }, () => (rnd() * 2 - 1) * (s.scale ?? 0.3));
  for (let l = 0; l < cfg.numHiddenLayers; l++) {
    for (const m of s.targets) {
      const [inD, outD] = dims[m];
      const mod = `base_model.model.model.layers.${l}.${m.endsWith('_proj') && ['gate_proj', 'up_proj', 'down_proj'].includes(m) ? 'mlp' : 'self_attn'}.${m}`;
      t[`${mod}.lora_A.weight`] = { dtype: 'float32', shape: [s.r, inD], data: fill(s.r * inD) };
      t[`${mod}.lora_B.weight`] = { dtype: 'float32', shape: [outD, s.r], data: fill(outD * s.r) };
    }
  }
  await writePeftAdapter(dir, t, peftAdapterConfig({ r: s.r, lora_alpha: s.alpha, lora_dropout: 0, target_modules: s.targets, use_rslora: s.rslora ?? false }));
  return t;
}

export const maxRel = (a: ArrayLike<number>, b: ArrayLike<number>): number => {
  let s = 0,
    m = 0;
  for (let i = 0; i < b.length; i++) {
    s = Math.max(s, Math.abs(b[i]));
    m = Math.max(m, Math.abs(a[i] - b[i]));
  }
  return m / s;
};

export const softmax = (x: ArrayLike<number>): Float64Array => {
  let mx = -Infinity;
  for (let i = 0; i < x.length; i++) mx = Math.max(mx, x[i]);
  const e = Float64Array.from(x as ArrayLike<number>, (v) => Math.exp(v - mx));
  const z = e.reduce((a, b) => a + b, 0);
  return e.map((v) => v / z);
};
