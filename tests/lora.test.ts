// SPDX-License-Identifier: MIT
// LoRA with peft semantics: gradients vs central finite differences (float64), init, scaling (incl.
// rsLoRA) through merge, merge/unmerge/disable, and peft's adapter dir layout (against a real peft file
// when the third-party fixtures are present).
import { mkdtempSync, readFileSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { fixture, makeGpt2Adapter, makeTokenizer } from './helpers/fixtures.js';
import { readPeftAdapter, saveModelDir, type Tensor, type TensorMap } from '../src/io/index.js';
import { CausalLM, llamaConfigToHF, mulberry32 } from '../src/train/llama.js';
import { randomLlamaWeights, tinyLlama } from '../src/train/testing.js';

const CFG = tinyLlama({
  vocabSize: 23,
  hiddenSize: 16,
  intermediateSize: 27,
  numHiddenLayers: 2,
  numAttentionHeads: 4,
  numKeyValueHeads: 2,
  ropeTheta: 1000,
  eosTokenId: 2,
  padTokenId: 0,
});
const TOKS = [
  [3, 7, 11, 4, 19, 22, 5],
  [8, 1, 14, 9, 20, 6, 13],
];
const tmp = mkdtempSync(join(tmpdir(), 'rsoup-lora-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

/** Random values for every LoRA tensor (B is zero at init, so gradients wrt A would vanish). */
function randomise(t: TensorMap, seed: number, scale = 0.2): TensorMap {
  const rnd = mulberry32(seed);
  const out: TensorMap = {};
  for (const [k, v] of Object.entries(t)) {
    const d = new Float64Array(v.data.length);
    for (let i = 0; i < d.length; i++) d[i] = (rnd() * 2 - 1) * scale;
    out[k] = { dtype: 'float64', shape: v.shape, data: d };
  }
  return out;
}
const maxRel = (a: ArrayLike<number>, b: ArrayLike<number>) => {
  let s = 0,
    m = 0;
  for (let i = 0; i < b.length; i++) {
    s = Math.max(s, Math.abs(b[i]));
    m = Math.max(m, Math.abs(a[i] - b[i]));
  }
  return m / s;
};

describe('LoRA', () => {
  it('gradients of the next-token loss match central finite differences (float64)', async () => {
    const m = await CausalLM.fromTensors(CFG, randomLlamaWeights(CFG, 3), {
      dtype: 'float64',
      lora: { r: 3, lora_alpha: 5, lora_dropout: 0.1, target_modules: ['q_proj', 'v_proj', 'o_proj', 'down_proj'] },
    });
    const lora = randomise(await m.getTensors('lora'), 9);
    await m.setTensors('lora', lora);
    const { grads } = await m.lossAndGrad(TOKS);
    const rnd = mulberry32(4);
    const names = Object.keys(lora);
    expect(names.length).toBe(16);
    let checked = 0;
    for (let trial = 0; trial < 12; trial++) {
      const name = names[Math.floor(rnd() * names.length)];
      const i = Math.floor(rnd() * lora[name].data.length);
      const h = 1e-5;
      const at = async (delta: number) => {
        const t: TensorMap = { ...lora, [name]: { ...lora[name], data: Float64Array.from(lora[name].data) } };
        t[name].data[i] += delta;
        await m.setTensors('lora', t);
        return (await m.lossAndGrad(TOKS)).loss;
      };
      const fd = ((await at(h)) - (await at(-h))) / (2 * h);
      const g = grads[name].data[i];
      if (process.env.RSOUP_VERBOSE)
        console.log(`${name}[${i}] analytic ${g.toExponential(6)} fd ${fd.toExponential(6)} |diff| ${Math.abs(g - fd).toExponential(1)}`);
      expect(Math.abs(g - fd)).toBeLessThan(1e-7 + 1e-6 * Math.abs(fd));
      if (Math.abs(fd) > 1e-4) checked++;
    }
    expect(checked).toBeGreaterThan(6); // most probes saw a real gradient
    // the full-model path (pre-training) too: one entry of every base tensor kind
    await m.setTensors('lora', lora);
    const all = await m.lossAndGrad(TOKS, 'all');
    const base = await m.getTensors('base');
    for (const name of ['model.embed_tokens.weight', 'model.layers.1.self_attn.k_proj.weight', 'model.layers.0.input_layernorm.weight', 'lm_head.weight']) {
      const i = 5;
      const at = async (delta: number) => {
        const d = Float64Array.from(base[name].data);
        d[i] += delta;
        await m.setTensors('base', { ...base, [name]: { ...base[name], data: d } });
        return (await m.lossAndGrad(TOKS)).loss;
      };
      const fd = ((await at(1e-5)) - (await at(-1e-5))) / 2e-5;
      expect(Math.abs(all.grads[name].data[i] - fd)).toBeLessThan(1e-7 + 1e-6 * Math.abs(fd));
    }
    await m.dispose();
  });

  it('init: A ~ kaiming-uniform(a=sqrt 5) = U(±1/sqrt(in)), B = 0; logits equal the base model', async () => {
    const W = randomLlamaWeights(CFG, 5);
    const m = await CausalLM.fromTensors(CFG, W, { dtype: 'float64', lora: { r: 8, target_modules: ['q_proj', 'gate_proj', 'down_proj'] }, seed: 2 });
    const t = await m.getTensors('lora');
    const a = t['base_model.model.model.layers.0.mlp.down_proj.lora_A.weight'];
    expect(a.shape).toEqual([8, 27]);
    const bound = 1 / Math.sqrt(27);
    let sq = 0;
    for (const v of a.data) {
      expect(Math.abs(v)).toBeLessThanOrEqual(bound);
      sq += v * v;
    }
    expect(Math.sqrt(sq / a.data.length)).toBeGreaterThan((bound / Math.sqrt(3)) * 0.8); // uniform std = bound/sqrt 3
    expect(Array.from(t['base_model.model.model.layers.1.self_attn.q_proj.lora_B.weight'].data).every((v) => v === 0)).toBe(true);
    const plain = await CausalLM.fromTensors(CFG, W, { dtype: 'float64' });
    expect(Array.from(await m.logits(TOKS))).toEqual(Array.from(await plain.logits(TOKS)));
    await Promise.all([m.dispose(), plain.dispose()]);
  });

  for (const rslora of [false, true]) {
    it(`merge adds s·B·A (s = alpha/${rslora ? 'sqrt(r)' : 'r'}); merged logits equal the unmerged adapter; unmerge and disable restore the base`, async () => {
      const W = randomLlamaWeights(CFG, 6);
      const m = await CausalLM.fromTensors(CFG, W, {
        dtype: 'float64',
        lora: { r: 4, lora_alpha: 6, use_rslora: rslora, target_modules: ['k_proj', 'up_proj'] },
      });
      const lora = randomise(await m.getTensors('lora'), 12);
      await m.setTensors('lora', lora);
      const base0 = await m.logits(TOKS);
      const withAdapter = await m.logits(TOKS);
      await m.disableAdapter();
      const disabled = await m.logits(TOKS);
      await m.enableAdapter();
      const plain = await CausalLM.fromTensors(CFG, W, { dtype: 'float64' });
      const baseLogits = await plain.logits(TOKS);
      expect(Array.from(disabled)).toEqual(Array.from(baseLogits));
      expect(maxRel(withAdapter, baseLogits)).toBeGreaterThan(1e-3); // the adapter does something
      await m.merge();
      const merged = await m.logits(TOKS);
      expect(maxRel(merged, base0)).toBeLessThan(1e-12);
      // the merged weight is W + s·B·A, computed here in float64
      const s = rslora ? 6 / Math.sqrt(4) : 6 / 4;
      const Wm = (await m.getTensors('base'))['model.layers.1.self_attn.k_proj.weight'];
      const A = lora['base_model.model.model.layers.1.self_attn.k_proj.lora_A.weight'].data,
        B = lora['base_model.model.model.layers.1.self_attn.k_proj.lora_B.weight'].data;
      const W0 = W['model.layers.1.self_attn.k_proj.weight'].data;
      const [out, inn] = Wm.shape;
      for (let o = 0; o < out; o++)
        for (let i = 0; i < inn; i++) {
          let d = 0;
          for (let k = 0; k < 4; k++) d += B[o * 4 + k] * A[k * inn + i];
          expect(Wm.data[o * inn + i]).toBeCloseTo(W0[o * inn + i] + s * d, 12);
        }
      await expect(m.disableAdapter()).rejects.toMatchObject({ code: 'ERR_SOUP_INVALID_ARG' });
      await expect(m.setTensors('lora', lora)).rejects.toMatchObject({ code: 'ERR_SOUP_INVALID_ARG', message: expect.stringContaining('unmerge') });
      await m.unmerge();
      expect(maxRel(await m.logits(TOKS), base0)).toBeLessThan(1e-12);
      await Promise.all([m.dispose(), plain.dispose()]);
    });
  }

  it('generation with an adapter (fused eval weights) equals greedy recomputation with the unmerged adapter', async () => {
    const m = await CausalLM.fromTensors(CFG, randomLlamaWeights(CFG, 13), {
      dtype: 'float64',
      lora: { r: 4, lora_alpha: 8, lora_dropout: 0.2, target_modules: ['q_proj', 'v_proj', 'up_proj'] },
    });
    await m.setTensors('lora', randomise(await m.getTensors('lora'), 21, 0.4));
    const prompts = [
      [3, 9, 14, 2],
      [5, 6],
    ];
    const out = await m.generate(prompts, { maxNewTokens: 8, doSample: false, eosTokenId: -1 });
    for (let b = 0; b < 2; b++) {
      const seq = [...prompts[b]];
      for (let i = 0; i < 8; i++) {
        const lg = await m.logits([seq]);
        let best = 0;
        for (let v = 1; v < 23; v++) if (lg[(seq.length - 1) * 23 + v] > lg[(seq.length - 1) * 23 + best]) best = v;
        expect(out[b][i]).toBe(best);
        seq.push(best);
      }
    }
    await m.dispose();
  });

  /** A base dir with a tokenizer, a model on it with a random LoRA, and that adapter saved. */
  async function savedAdapter(name: string) {
    const W = randomLlamaWeights(CFG, 7, { dtype: 'float32' });
    const dir = join(tmp, `${name}-base`);
    await saveModelDir(dir, W, { config: llamaConfigToHF(CFG) });
    symlinkSync(makeTokenizer().path, join(dir, 'tokenizer.json'));
    const m = await CausalLM.fromPretrained(dir, {
      lora: { r: 4, lora_alpha: 16, lora_dropout: 0.05, target_modules: ['q_proj', 'k_proj', 'v_proj', 'o_proj'] },
    });
    const lora = randomise(await m.getTensors('lora'), 3);
    for (const k of Object.keys(lora)) lora[k] = { dtype: 'float32', shape: lora[k].shape, data: Float32Array.from(lora[k].data) };
    await m.setTensors('lora', lora);
    const out = join(tmp, `${name}-adapter`);
    await m.saveAdapter(out);
    return { dir, m, lora, out };
  }

  it("saves peft's adapter config keys and key grammar (vs a real adapter saved by peft)", async (ctx) => {
    const real = fixture(ctx, 'peft-gpt2-lora');
    const { dir, m, out } = await savedAdapter('vs-peft');
    const ref = JSON.parse(readFileSync(join(real, 'adapter_config.json'), 'utf8'));
    const cfg = JSON.parse(readFileSync(join(out, 'adapter_config.json'), 'utf8'));
    expect(Object.keys(cfg).sort()).toEqual(Object.keys(ref).sort());
    for (const k of ['alpha_pattern', 'rank_pattern', 'modules_to_save', 'init_lora_weights', 'use_dora']) expect(cfg[k]).toEqual(ref[k]);
    // same key grammar as peft: base_model.model.<module path>.lora_{A,B}.weight, A [r, in], B [out, r], F32
    const refT = await readPeftAdapter(real);
    const lora = Object.keys(refT.tensors).filter((k) => k.includes('lora_'));
    expect(lora.length).toBeGreaterThan(0);
    for (const k of lora) expect(k).toMatch(/^base_model\.model\..*\.lora_[AB]\.weight$/);
    for (const k of Object.keys((await readPeftAdapter(out)).tensors)) expect(k).toMatch(/^base_model\.model\..*\.lora_[AB]\.weight$/);
    // peft's GPT-2 adapter targets modules LLaMA does not have
    await expect(CausalLM.fromPretrained(dir, { lora: real })).rejects.toMatchObject({ code: 'ERR_SOUP_CONFIG' });
    await m.dispose();
  });

  it("saves peft's adapter layout, reloads bit for bit, and starts a model from it", async () => {
    const { dir, m, lora, out } = await savedAdapter('layout');
    const cfg = JSON.parse(readFileSync(join(out, 'adapter_config.json'), 'utf8'));
    expect(cfg).toMatchObject({
      peft_type: 'LORA',
      task_type: 'CAUSAL_LM',
      r: 4,
      lora_alpha: 16,
      lora_dropout: 0.05,
      bias: 'none',
      fan_in_fan_out: false,
      use_rslora: false,
      target_modules: ['q_proj', 'k_proj', 'v_proj', 'o_proj'],
    });
    expect(cfg).toMatchObject({ alpha_pattern: {}, rank_pattern: {}, modules_to_save: null, init_lora_weights: true, use_dora: false });
    const back = await readPeftAdapter(out);
    expect(Object.keys(back.tensors).sort()).toEqual(Object.keys(lora).sort());
    expect(back.tensors['base_model.model.model.layers.1.self_attn.v_proj.lora_A.weight'].shape).toEqual([4, 16]);
    expect(back.tensors['base_model.model.model.layers.1.self_attn.v_proj.lora_B.weight'].shape).toEqual([8, 4]);
    for (const [k, t] of Object.entries(back.tensors)) {
      expect(t.dtype).toBe('float32');
      expect(
        Buffer.from((t.data as Float32Array).buffer, t.data.byteOffset, t.data.byteLength).equals(Buffer.from((lora[k].data as Float32Array).buffer)),
      ).toBe(true);
    }
    const m2 = await CausalLM.fromPretrained(dir, { lora: out });
    expect(m2.lora).toEqual({ r: 4, lora_alpha: 16, lora_dropout: 0.05, target_modules: ['q_proj', 'k_proj', 'v_proj', 'o_proj'], use_rslora: false });
    expect(Array.from(await m2.logits(TOKS))).toEqual(Array.from(await m.logits(TOKS)));
    // an adapter whose target modules LLaMA does not have (GPT-2's c_attn)
    const gpt2 = join(tmp, 'gpt2-lora');
    await makeGpt2Adapter(gpt2);
    await expect(CausalLM.fromPretrained(dir, { lora: gpt2 })).rejects.toMatchObject({ code: 'ERR_SOUP_CONFIG' });
    // a tensor the model does not know, a wrong shape, a missing one
    const extra: TensorMap = {
      ...lora,
      'base_model.model.model.layers.9.self_attn.q_proj.lora_A.weight': lora['base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight'],
    };
    await expect(m.setTensors('lora', extra)).rejects.toMatchObject({ code: 'ERR_SOUP_WEIGHTS', message: expect.stringContaining('layers.9') });
    const bad: Tensor = { dtype: 'float32', shape: [5, 16], data: new Float32Array(80).fill(0.5) };
    await expect(m.setTensors('lora', { ...lora, 'base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight': bad })).rejects.toMatchObject({
      code: 'ERR_SOUP_SHAPE_MISMATCH',
    });
    const less = { ...lora };
    delete less['base_model.model.model.layers.1.self_attn.o_proj.lora_B.weight'];
    await expect(m.setTensors('lora', less)).rejects.toMatchObject({ code: 'ERR_SOUP_MISSING_TENSOR', message: expect.stringContaining('o_proj.lora_B') });
    await Promise.all([m.dispose(), m2.dispose()]);
  });
});
