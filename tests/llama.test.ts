// SPDX-License-Identifier: MIT
// LLaMA forward against an independent float64 reference written here from Hugging Face's LlamaModel
// semantics (RMSNorm, rotate-half RoPE with rope_theta, GQA repeat_kv, SwiGLU, tied embeddings);
// KV-cache generation against full recomputation; loading HF dirs; bad-input errors.
import { mkdtempSync, rmSync, symlinkSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { fixture, makeTokenizer } from './helpers/fixtures.js';
import { saveModelDir, f32ToBf16, bf16ToF32, f16ToF32, type TensorMap } from '../src/io/index.js';
import { CausalLM, llamaConfigToHF, type LlamaConfig } from '../src/train/llama.js';
import { randomLlamaWeights, tinyLlama } from '../src/train/testing.js';
import { TINY } from './helpers/serve.js';

const GQA = TINY;
const TIED = tinyLlama({
  vocabSize: 29,
  hiddenSize: 18,
  intermediateSize: 31,
  numHiddenLayers: 3,
  numAttentionHeads: 3,
  tieWordEmbeddings: true,
  eosTokenId: 2,
  padTokenId: 0,
});

// ---- float64 reference --------------------------------------------------------------------------
function refLogits(c: LlamaConfig, W: TensorMap, toks: number[]): Float64Array {
  const H = c.hiddenSize,
    nh = c.numAttentionHeads,
    nkv = c.numKeyValueHeads,
    D = H / nh,
    I = c.intermediateSize,
    T = toks.length;
  const w = (n: string) => W[n].data as Float64Array;
  const matvec = (M: Float64Array, rows: number, cols: number, x: Float64Array) => {
    const y = new Float64Array(rows);
    for (let r = 0; r < rows; r++) {
      let s = 0;
      for (let k = 0; k < cols; k++) s += M[r * cols + k] * x[k];
      y[r] = s;
    }
    return y;
  };
  const rms = (x: Float64Array, g: Float64Array) => {
    let s = 0;
    for (const v of x) s += v * v;
    const inv = 1 / Math.sqrt(s / x.length + c.rmsNormEps);
    return x.map((v, i) => v * inv * g[i]);
  };
  const rope = (v: Float64Array, off: number, pos: number) => {
    const out = new Float64Array(D);
    for (let i = 0; i < D; i++) {
      const j = i % (D / 2);
      const ang = pos / Math.pow(c.ropeTheta, (2 * j) / D);
      const rot = i < D / 2 ? -v[off + i + D / 2] : v[off + i - D / 2];
      out[i] = v[off + i] * Math.cos(ang) + rot * Math.sin(ang);
    }
    return out;
  };
  let xs = toks.map((t) => w('model.embed_tokens.weight').slice(t * H, (t + 1) * H));
  for (let l = 0; l < c.numHiddenLayers; l++) {
    const p = `model.layers.${l}.`;
    const hs = xs.map((x) => rms(x, w(`${p}input_layernorm.weight`)));
    const q = hs.map((h) => matvec(w(`${p}self_attn.q_proj.weight`), nh * D, H, h));
    const k = hs.map((h) => matvec(w(`${p}self_attn.k_proj.weight`), nkv * D, H, h));
    const v = hs.map((h) => matvec(w(`${p}self_attn.v_proj.weight`), nkv * D, H, h));
    const att = xs.map(() => new Float64Array(nh * D));
    for (let hd = 0; hd < nh; hd++) {
      const kv = Math.floor(hd / (nh / nkv));
      for (let t = 0; t < T; t++) {
        const qt = rope(q[t], hd * D, t);
        const sc: number[] = [];
        for (let s = 0; s <= t; s++) {
          const ks = rope(k[s], kv * D, s);
          let d = 0;
          for (let i = 0; i < D; i++) d += qt[i] * ks[i];
          sc.push(d / Math.sqrt(D));
        }
        const m = Math.max(...sc);
        const e = sc.map((x) => Math.exp(x - m));
        const z = e.reduce((a, b) => a + b, 0);
        for (let s = 0; s <= t; s++) for (let i = 0; i < D; i++) att[t][hd * D + i] += (e[s] / z) * v[s][kv * D + i];
      }
    }
    xs = xs.map((x, t) => {
      const o = matvec(w(`${p}self_attn.o_proj.weight`), H, nh * D, att[t]);
      return x.map((a, i) => a + o[i]);
    });
    xs = xs.map((x) => {
      const h = rms(x, w(`${p}post_attention_layernorm.weight`));
      const g = matvec(w(`${p}mlp.gate_proj.weight`), I, H, h),
        u = matvec(w(`${p}mlp.up_proj.weight`), I, H, h);
      const a = g.map((gv, i) => (gv / (1 + Math.exp(-gv))) * u[i]);
      const d = matvec(w(`${p}mlp.down_proj.weight`), H, I, a);
      return x.map((xv, i) => xv + d[i]);
    });
  }
  const head = c.tieWordEmbeddings ? w('model.embed_tokens.weight') : w('lm_head.weight');
  const out = new Float64Array(T * c.vocabSize);
  xs.forEach((x, t) => out.set(matvec(head, c.vocabSize, H, rms(x, w('model.norm.weight'))), t * c.vocabSize));
  return out;
}

function relErr(a: ArrayLike<number>, b: ArrayLike<number>): number {
  expect(a.length).toBe(b.length);
  let n = 0,
    d = 0;
  for (let i = 0; i < a.length; i++) {
    n += (a[i] - b[i]) ** 2;
    d += b[i] ** 2;
  }
  return Math.sqrt(n / d);
}
function maxRel(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let scale = 0,
    m = 0;
  for (let i = 0; i < b.length; i++) scale = Math.max(scale, Math.abs(b[i]));
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m / scale;
}
const randTokens = (n: number, V: number, seed: number) => Array.from({ length: n }, (_, i) => 3 + ((seed * 7919 + i * 104729) % (V - 3)));
const argmax = (a: ArrayLike<number>, off: number, n: number) => {
  let b = 0;
  for (let i = 1; i < n; i++) if (a[off + i] > a[off + b]) b = i;
  return b;
};

const tmp = mkdtempSync(join(tmpdir(), 'rsoup-llama-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

describe('LLaMA forward vs float64 reference', () => {
  for (const [name, cfg] of [
    ['GQA', GQA],
    ['tied embeddings', TIED],
  ] as const) {
    it(`${name}: fp64 and fp32 logits match the reference`, async () => {
      const W = randomLlamaWeights(cfg, 11);
      const toks = randTokens(9, cfg.vocabSize, 3);
      const ref = refLogits(cfg, W, toks);
      for (const [dtype, tol] of [
        ['float64', 1e-12],
        ['float32', 1e-5],
      ] as const) {
        const m = await CausalLM.fromTensors(cfg, W, { dtype });
        const got = await m.logits([toks]);
        expect(got).toBeInstanceOf(dtype === 'float64' ? Float64Array : Float32Array);
        if (process.env.RSOUP_VERBOSE)
          console.log(`${name} ${dtype}: max|err|/max|ref| ${maxRel(got, ref).toExponential(2)}, rel L2 ${relErr(got, ref).toExponential(2)}`);
        expect(maxRel(got, ref)).toBeLessThan(tol);
        expect(relErr(got, ref)).toBeLessThan(tol);
        await m.dispose();
      }
    });
  }

  it('left-padded batches give each sequence its unpadded logits', async () => {
    const W = randomLlamaWeights(GQA, 5);
    const m = await CausalLM.fromTensors(GQA, W, { dtype: 'float64' });
    const seqs = [randTokens(7, 37, 1), randTokens(3, 37, 2), randTokens(5, 37, 4)];
    const batch = await m.logits(seqs);
    const V = GQA.vocabSize;
    seqs.forEach((s, b) => {
      const ref = refLogits(GQA, W, s);
      const got = batch.subarray((b * 7 + (7 - s.length)) * V, (b + 1) * 7 * V);
      expect(maxRel(got, ref)).toBeLessThan(1e-12);
    });
    await m.dispose();
  });

  it('bf16 weights load and run (bf16 compute within bf16 tolerance, fp32 compute exact on the rounded weights)', async () => {
    const W = randomLlamaWeights(GQA, 21);
    const bf: TensorMap = {},
      rounded: TensorMap = {};
    for (const [k, t] of Object.entries(W)) {
      const u = new Uint16Array(t.data.length).map((_, i) => f32ToBf16(t.data[i]));
      bf[k] = { dtype: 'bfloat16', shape: t.shape, data: u };
      rounded[k] = { dtype: 'float64', shape: t.shape, data: Float64Array.from(u, bf16ToF32) };
    }
    const toks = randTokens(6, GQA.vocabSize, 9);
    const ref = refLogits(GQA, rounded, toks);
    const m32 = await CausalLM.fromTensors(GQA, bf, { dtype: 'float32' });
    expect(maxRel(await m32.logits([toks]), ref)).toBeLessThan(1e-5);
    const m16 = await CausalLM.fromTensors(GQA, bf, { dtype: 'bfloat16' });
    const got = await m16.logits([toks]);
    expect(relErr(got, ref)).toBeLessThan(3e-2);
    expect(relErr(got, ref)).toBeGreaterThan(0); // it really ran in bf16
    const base = await m16.getTensors('base');
    expect(base['model.embed_tokens.weight'].dtype).toBe('bfloat16');
    expect(Array.from(base['model.embed_tokens.weight'].data.subarray(0, 50))).toEqual(Array.from(bf['model.embed_tokens.weight'].data.subarray(0, 50)));
    await Promise.all([m32.dispose(), m16.dispose()]);
    // fp16 weights: computed in fp32 (libtorch has no fp16 matmul on CPU: a clear error)
    const h: TensorMap = {},
      hr: TensorMap = {};
    let state = 12345;
    for (const [k, t] of Object.entries(W)) {
      // random fp16 bit patterns in ±[2^-5, 2^-1) (exponents 10..13), sign and mantissa random
      const u = new Uint16Array(t.data.length).map(() => {
        state = (Math.imul(state, 1103515245) + 12345) >>> 0;
        return ((state >>> 31) << 15) | ((10 + ((state >>> 20) & 3)) << 10) | ((state >>> 4) & 0x3ff);
      });
      h[k] = { dtype: 'float16', shape: t.shape, data: u };
      hr[k] = { dtype: 'float64', shape: t.shape, data: Float64Array.from(u, f16ToF32) };
    }
    const mh = await CausalLM.fromTensors(GQA, h, { dtype: 'float32' });
    expect(maxRel(await mh.logits([toks]), refLogits(GQA, hr, toks))).toBeLessThan(1e-5);
    await mh.dispose();
    await expect(CausalLM.fromTensors(GQA, h, { dtype: 'float16' })).rejects.toMatchObject({
      code: 'ERR_SOUP_CONFIG',
      message: expect.stringContaining('float16 compute'),
    });
  });
});

describe('Hugging Face dirs', () => {
  it('reads the LLaMA-2 tokenizer.json as Hugging Face writes it (merges as pairs, byte fallback, BOS)', async (ctx) => {
    const dir = join(tmp, 'llama2-tok');
    await saveModelDir(dir, randomLlamaWeights(TIED, 8, { dtype: 'float32' }), { config: llamaConfigToHF(TIED) });
    symlinkSync(fixture(ctx, 'llama2-tokenizer/tokenizer.json'), join(dir, 'tokenizer.json'));
    const m = await CausalLM.fromPretrained(dir);
    const enc = await m.tokenizer!.encode('Hello, my dog is cute');
    expect(enc.getIds()).toEqual([1, 15043, 29892, 590, 11203, 338, 274, 1082]);
    await m.dispose();
  });

  it('loads a sharded dir with its tokenizer and matches the reference', async () => {
    const dir = join(tmp, 'sharded');
    const W = randomLlamaWeights(TIED, 8, { dtype: 'float32' });
    await saveModelDir(dir, W, { config: llamaConfigToHF(TIED), shardSize: 4000 });
    symlinkSync(makeTokenizer().path, join(dir, 'tokenizer.json'));
    const m = await CausalLM.fromPretrained(dir);
    const enc = await m.tokenizer!.encode('Hello, my dog is cute');
    expect(await m.tokenizer!.decode(enc.getIds(), true)).toBe('Hello, my dog is cute');
    expect(Math.max(...enc.getIds())).toBeLessThan(makeTokenizer().vocabSize);
    const W64: TensorMap = {};
    for (const [k, t] of Object.entries(W)) W64[k] = { dtype: 'float64', shape: t.shape, data: Float64Array.from(t.data) };
    const toks = randTokens(5, TIED.vocabSize, 2);
    expect(maxRel(await m.logits([toks]), refLogits(TIED, W64, toks))).toBeLessThan(1e-5);
    await m.dispose();
  });

  it('bad input gives clear errors', async () => {
    const W = randomLlamaWeights(GQA, 1, { dtype: 'float32' });
    const missing = { ...W };
    delete missing['model.layers.1.mlp.up_proj.weight'];
    await expect(CausalLM.fromTensors(GQA, missing)).rejects.toMatchObject({
      code: 'ERR_SOUP_MISSING_TENSOR',
      message: expect.stringContaining("'model.layers.1.mlp.up_proj.weight'"),
    });
    const wrong = { ...W, 'model.layers.0.self_attn.k_proj.weight': { dtype: 'float32' as const, shape: [24, 24], data: new Float32Array(576).fill(0.1) } };
    await expect(CausalLM.fromTensors(GQA, wrong)).rejects.toMatchObject({
      code: 'ERR_SOUP_SHAPE_MISMATCH',
      message: expect.stringMatching(/k_proj.*\[24,24\].*\[12,24\]/),
    });
    const untied = { ...W };
    delete untied['lm_head.weight'];
    await expect(CausalLM.fromTensors(GQA, untied)).rejects.toMatchObject({
      code: 'ERR_SOUP_MISSING_TENSOR',
      message: expect.stringContaining('lm_head.weight'),
    });

    const dir = join(tmp, 'notok');
    await saveModelDir(dir, W, { config: llamaConfigToHF(GQA) });
    await expect(CausalLM.fromPretrained(dir)).rejects.toMatchObject({ code: 'ERR_SOUP_IO', message: expect.stringContaining('missing tokenizer') });
    const gpt = join(tmp, 'gpt2');
    mkdirSync(gpt);
    await saveModelDir(gpt, W, { config: { ...llamaConfigToHF(GQA), architectures: ['GPT2LMHeadModel'], model_type: 'gpt2' } });
    await expect(CausalLM.fromPretrained(gpt, { tokenizer: false })).rejects.toMatchObject({
      code: 'ERR_SOUP_CONFIG',
      message: expect.stringContaining('unsupported architecture "GPT2LMHeadModel"'),
    });
    writeFileSync(join(gpt, 'tokenizer.json'), '{ not json');
    await expect(CausalLM.fromTensors(GQA, W, { lora: { r: 4, target_modules: ['c_attn'] } })).rejects.toMatchObject({
      code: 'ERR_SOUP_CONFIG',
      message: expect.stringContaining('"c_attn" matches no module'),
    });
    const m = await CausalLM.fromTensors(GQA, W);
    await expect(m.logits([[1, 2, 99]])).rejects.toMatchObject({ code: 'ERR_SOUP_INVALID_ARG' });
    await m.dispose();
    await expect(m.logits([[1]])).rejects.toMatchObject({ code: 'ERR_SOUP_INVALID_ARG', message: expect.stringContaining('disposed') });
  });
  it("device 'cuda': ERR_SOUP_NO_CUDA without a CUDA device, else the CPU logits within bf16 tolerance", async () => {
    const W = randomLlamaWeights(GQA, 11);
    const toks = [[1, 5, 9, 30, 4]];
    const lora = { r: 4, lora_alpha: 8, target_modules: ['q_proj', 'v_proj'] };
    const cpu = await CausalLM.fromTensors(GQA, W, { dtype: 'float32', lora, seed: 3 });
    const want = await cpu.logits(toks);
    await cpu.dispose();
    const got = await CausalLM.fromTensors(GQA, W, { dtype: 'float32', lora, seed: 3, device: 'cuda' }).then(
      async (g) => {
        try {
          return await g.logits(toks);
        } finally {
          await g.dispose();
        }
      },
      (e: { code?: string; message?: string }) => e,
    );
    if (got instanceof Float32Array) {
      let worst = 0;
      for (let i = 0; i < want.length; i++) worst = Math.max(worst, Math.abs(got[i] - want[i]));
      expect(worst).toBeLessThan(5e-2); // bf16 matmuls (autocast) against fp32
    } else {
      expect(got).toMatchObject({ code: 'ERR_SOUP_NO_CUDA', message: expect.stringContaining("device 'cuda'") });
    }
    await expect(CausalLM.fromTensors(GQA, W, { device: 'tpu' as 'cpu' })).rejects.toMatchObject({
      code: 'ERR_SOUP_CONFIG',
      message: expect.stringContaining('device'),
    });
  });
});

describe('generation', () => {
  it('greedy generation with the KV cache equals full recomputation, token for token (left-padded batch)', async () => {
    const W = randomLlamaWeights(GQA, 31);
    const m = await CausalLM.fromTensors(GQA, W, { dtype: 'float64' });
    const prompts = [randTokens(6, 37, 1), randTokens(2, 37, 5), randTokens(4, 37, 8)];
    const out = await m.generate(prompts, { maxNewTokens: 10, doSample: false, eosTokenId: -1 });
    const V = GQA.vocabSize;
    for (let b = 0; b < prompts.length; b++) {
      expect(out[b].length).toBe(10);
      const seq = [...prompts[b]];
      for (let i = 0; i < 10; i++) {
        const lg = await m.logits([seq]);
        const next = argmax(lg, (seq.length - 1) * V, V);
        expect(out[b][i]).toBe(next);
        seq.push(next);
      }
    }
    // fp32 model: same greedy tokens as its own recomputation
    const m32 = await CausalLM.fromTensors(GQA, W, { dtype: 'float32' });
    const o32 = await m32.generate([prompts[0]], { maxNewTokens: 6, doSample: false, eosTokenId: -1 });
    const seq = [...prompts[0]];
    for (let i = 0; i < 6; i++) {
      const lg = await m32.logits([seq]);
      seq.push(argmax(lg, (seq.length - 1) * V, V));
    }
    expect(o32[0]).toEqual(seq.slice(prompts[0].length));
    await Promise.all([m.dispose(), m32.dispose()]);
  });

  it('sampling: seeded and reproducible, top-k 1 is greedy, EOS stops, min tokens, fixed length', async () => {
    const W = randomLlamaWeights(GQA, 41, { scale: 0.05 }); // near-uniform next-token distributions
    const m = await CausalLM.fromTensors(GQA, W);
    const prompts = [randTokens(3, 37, 1), randTokens(5, 37, 2)];
    const a = await m.generate(prompts, { maxNewTokens: 12, seed: 7, eosTokenId: -1 });
    const b = await m.generate(prompts, { maxNewTokens: 12, seed: 7, eosTokenId: -1 });
    const c = await m.generate(prompts, { maxNewTokens: 12, seed: 8, eosTokenId: -1 });
    expect(a).toEqual(b);
    expect(a).not.toEqual(c);
    const g = await m.generate(prompts, { maxNewTokens: 8, doSample: false, eosTokenId: -1 });
    expect(await m.generate(prompts, { maxNewTokens: 8, topK: 1, temperature: 0.7, seed: 3, eosTokenId: -1 })).toEqual(g);
    expect(await m.generate(prompts, { maxNewTokens: 8, topP: 1e-9, seed: 4, eosTokenId: -1 })).toEqual(g);
    // top-k 3: every sampled token is among the 3 most likely under full recomputation
    const k3 = await m.generate([prompts[0]], { maxNewTokens: 6, topK: 3, seed: 9, eosTokenId: -1 });
    const seq = [...prompts[0]];
    for (const t of k3[0]) {
      const lg = await m.logits([seq]);
      const row = Array.from(lg.subarray((seq.length - 1) * 37, seq.length * 37));
      const rank = row.filter((v) => v > row[t]).length;
      expect(rank).toBeLessThan(3);
      seq.push(t);
    }
    // EOS: with many draws some sequences stop early; lengths include the EOS token and nothing follows
    const many = Array.from({ length: 16 }, (_, i) => randTokens(2, 37, i));
    const e = await m.generate(many, { maxNewTokens: 40, seed: 1, eosTokenId: 5 });
    expect(e.some((s) => s.length < 40)).toBe(true);
    for (const s of e) {
      expect(s.slice(0, -1)).not.toContain(5);
      if (s.length < 40) expect(s[s.length - 1]).toBe(5);
    }
    const mn = await m.generate(many, { maxNewTokens: 40, minNewTokens: 30, seed: 1, eosTokenId: 5 });
    for (const s of mn) {
      expect(s.length).toBeGreaterThanOrEqual(30);
      expect(s.slice(0, 29)).not.toContain(5);
    }
    // fixed length: no EOS stop, one length per batch drawn in [min, max)
    const lens = new Set<number>();
    for (let seed = 0; seed < 12; seed++) {
      const f = await m.generate(many.slice(0, 3), { maxNewTokens: 1, fixedLength: { min: 4, max: 9 }, seed, eosTokenId: 5 });
      expect(new Set(f.map((s) => s.length)).size).toBe(1);
      lens.add(f[0].length);
    }
    expect(Math.min(...lens)).toBeGreaterThanOrEqual(4);
    expect(Math.max(...lens)).toBeLessThanOrEqual(8);
    expect(lens.size).toBeGreaterThan(1);
    await m.dispose();
  });
});
