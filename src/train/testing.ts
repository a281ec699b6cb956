// SPDX-License-Identifier: MIT
// Seeded random LLaMA weights as a TensorMap (HF names): for tests, examples and benchmarks that need a
// model without a checkpoint. Values are uniform in ±scale (never zeros), norms near 1.
import type { Tensor, TensorMap } from '../io/index.js';
import type { LlamaConfig } from './llama.js';
import { mulberry32 } from './llama.js';

export function llamaShapes(c: LlamaConfig): [string, number[]][] {
  const H = c.hiddenSize,
    D = H / c.numAttentionHeads,
    I = c.intermediateSize;
  const out: [string, number[]][] = [['model.embed_tokens.weight', [c.vocabSize, H]]];
  for (let l = 0; l < c.numHiddenLayers; l++) {
    const p = `model.layers.${l}.`;
    out.push(
      [`${p}input_layernorm.weight`, [H]],
      [`${p}self_attn.q_proj.weight`, [c.numAttentionHeads * D, H]],
      [`${p}self_attn.k_proj.weight`, [c.numKeyValueHeads * D, H]],
      [`${p}self_attn.v_proj.weight`, [c.numKeyValueHeads * D, H]],
      [`${p}self_attn.o_proj.weight`, [H, c.numAttentionHeads * D]],
      [`${p}post_attention_layernorm.weight`, [H]],
      [`${p}mlp.gate_proj.weight`, [I, H]],
      [`${p}mlp.up_proj.weight`, [I, H]],
      [`${p}mlp.down_proj.weight`, [H, I]],
    );
  }
  out.push(['model.norm.weight', [H]]);
  if (!c.tieWordEmbeddings) out.push(['lm_head.weight', [c.vocabSize, H]]);
  return out;
}

/** Random float64 (or float32) LLaMA weights: linear layers U(±scale), norms 1 + U(±0.2). */
export function randomLlamaWeights(c: LlamaConfig, seed: number, opts: { dtype?: 'float32' | 'float64'; scale?: number } = {}): TensorMap {
  const rnd = mulberry32(seed);
  const scale = opts.scale ?? 0.3;
  const out: TensorMap = {};
  for (const [name, shape] of llamaShapes(c)) {
    const n = shape.reduce((a, b) => a * b, 1);
    const data = opts.dtype === 'float32' ? new Float32Array(n) : new Float64Array(n);
    const norm = name.endsWith('norm.weight');
    for (let i = 0; i < n; i++) data[i] = norm ? 1 + (rnd() * 2 - 1) * 0.2 : (rnd() * 2 - 1) * scale;
    out[name] = { dtype: opts.dtype ?? 'float64', shape, data } as Tensor;
  }
  return out;
}

/** A LlamaConfig from the sizes that matter, with transformers' LlamaConfig defaults for the rest
 *  (key/value heads = heads, rms_norm_eps 1e-6, rope_theta 10000, untied embeddings); token ids only as given. */
export function tinyLlama(c: Omit<LlamaConfig, 'numKeyValueHeads' | 'rmsNormEps' | 'ropeTheta' | 'tieWordEmbeddings'> & Partial<LlamaConfig>): LlamaConfig {
  return { numKeyValueHeads: c.numAttentionHeads, rmsNormEps: 1e-6, ropeTheta: 10000, tieWordEmbeddings: false, ...c };
}
