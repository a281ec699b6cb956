import { beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, readFileSync, readdirSync, writeFileSync, copyFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  merge,
  interpolate,
  readSafetensors,
  writeSafetensors,
  saveModelDir,
  loadModelDir,
  readPeftAdapter,
  writePeftAdapter,
  elementAt,
  type TensorMap,
  type Tensor,
} from '../src/index.js';
import { rng, randomTensor, normals } from './helpers/random.js';
import { checkAgainst, sameBits } from './helpers/reference.js';
import { makeGpt2Adapter, makeTokenizer } from './helpers/fixtures.js';

const tmp = () => mkdtempSync(join(tmpdir(), 'soup-merge-'));

function model(seed: number, names: string[], shapes: number[][], dtype: Tensor['dtype'] = 'bfloat16'): TensorMap {
  const r = rng(seed);
  return Object.fromEntries(names.map((n, i) => [n, randomTensor(dtype, shapes[i], r)]));
}

describe('merge: files to files', () => {
  it('merges .safetensors files; the output reads back identical to the in-memory soup', async () => {
    const d = tmp();
    const names = ['a', 'b', 'c'];
    const shapes = [[33, 65], [70001], [4]];
    const srcs = [1, 2, 3].map((s) => model(s, names, shapes));
    const paths = srcs.map((m, i) => join(d, `m${i}.safetensors`));
    for (let i = 0; i < 3; i++) await writeSafetensors(paths[i], srcs[i]);
    const w = [0.2, 0.5, 0.3];
    const out = join(d, 'soup.safetensors');
    const rep = await merge({ sources: paths, weights: w, out, windowBytes: 1 << 16 });
    expect(rep.tensors).toBe(3);
    expect(rep.bytesRead).toBe(3 * (33 * 65 + 70001 + 4) * 2);
    const back = (await readSafetensors(out)).tensors;
    const mem = await interpolate(srcs, w);
    for (const n of names) {
      expect(sameBits(back[n], mem[n]), n).toBe(true);
      expect(
        checkAgainst(
          back[n],
          srcs.map((s) => s[n]),
          w,
        ).worst,
      ).toBeLessThanOrEqual(1);
    }
    expect(readdirSync(d).filter((f) => f.includes('.tmp-'))).toEqual([]);
  });

  it('the same path given twice counts twice (unlike mergekit #214)', async () => {
    const d = tmp();
    const a = model(1, ['x'], [[100]], 'float32'),
      b = model(2, ['x'], [[100]], 'float32');
    await writeSafetensors(join(d, 'a.safetensors'), a);
    await writeSafetensors(join(d, 'b.safetensors'), b);
    const out = join(d, 'o.safetensors');
    await merge({ sources: [join(d, 'a.safetensors'), join(d, 'a.safetensors'), join(d, 'b.safetensors')], weights: [1, 1, 2], out });
    const got = (await readSafetensors(out)).tensors.x;
    expect(checkAgainst(got, [a.x, b.x], [0.5, 0.5]).worst).toBeLessThanOrEqual(1e-6);
  });

  it('a 3-shard HF dir merges into a correct sharded dir with index, config copied', async () => {
    const d = tmp();
    const names = Array.from({ length: 9 }, (_, i) => `model.layers.${i}.mlp.up_proj.weight`);
    const shapes = names.map((_, i) => [16 + i, 24]);
    const srcs = [5, 6].map((s) => model(s, names, shapes, 'float32'));
    const dirs = [join(d, 'e1'), join(d, 'e2')];
    // different shard layouts per source
    await saveModelDir(dirs[0], srcs[0], { config: { model_type: 'llama', hidden_size: 24 }, shardSize: 7000 });
    await saveModelDir(dirs[1], srcs[1], { config: { model_type: 'llama', hidden_size: 24 }, shardSize: 9000 });
    expect(readdirSync(dirs[0]).filter((f) => f.startsWith('model-'))).toHaveLength(3);
    const out = join(d, 'soup');
    const rep = await merge({ sources: dirs, weights: [0.25, 0.75], out, shardSize: 5000, dtype: 'bfloat16' });
    expect(rep.layout).toBe('hf');
    const files = readdirSync(out);
    expect(files).toContain('config.json');
    expect(files).toContain('model.safetensors.index.json');
    const idx = JSON.parse(readFileSync(join(out, 'model.safetensors.index.json'), 'utf8'));
    const shards = files.filter((f) => f.startsWith('model-'));
    expect(shards.length).toBeGreaterThan(1);
    expect(new Set(Object.values(idx.weight_map))).toEqual(new Set(shards));
    expect(idx.metadata.total_size).toBe(names.reduce((a, _, i) => a + shapes[i][0] * 24 * 2, 0));
    const { tensors } = await loadModelDir(out);
    for (const n of names) {
      expect(tensors[n].dtype).toBe('bfloat16');
      expect(
        checkAgainst(
          tensors[n],
          srcs.map((s) => s[n]),
          [0.25, 0.75],
        ).worst,
      ).toBeLessThanOrEqual(1);
    }
  });

  it('reports progress and the kernel', async () => {
    const d = tmp();
    const srcs = [1, 2].map((s) => model(s, ['w'], [[1 << 20]], 'float32'));
    for (let i = 0; i < 2; i++) await writeSafetensors(join(d, `${i}.safetensors`), srcs[i]);
    const seen: number[] = [];
    const rep = await merge({
      sources: [0, 1].map((i) => join(d, `${i}.safetensors`)),
      weights: [0.5, 0.5],
      out: join(d, 'o.safetensors'),
      onProgress: (p) => seen.push(p.fraction),
      windowBytes: 1 << 16,
    });
    expect(seen.at(-1)).toBe(1);
    expect(rep.kernel).toMatch(/avx512|avx2|scalar/);
    expect(rep.gbps).toBeGreaterThan(0);
  });
});

// ---- LoRA --------------------------------------------------------------------------------------

/** A GPT-2-shaped PEFT adapter in peft's layout (fan_in_fan_out, a saved head), written once per file by
 *  the project's writer: the merge tests need "a PEFT adapter"; reading one that peft itself saved is
 *  tests/io.test.ts's job. */
const tmpRoot = tmp();
const FIXTURE = join(tmpRoot, 'gpt2-lora');
const made = makeGpt2Adapter(FIXTURE, 1);

/** A second expert: the adapter with every LoRA tensor perturbed (A and B both move). */
async function perturbedFixture(dir: string, seed: number, scale = 0.02): Promise<TensorMap> {
  await made;
  const { config, tensors } = await readPeftAdapter(FIXTURE);
  const r = rng(seed);
  const out: TensorMap = {};
  for (const [k, t] of Object.entries(tensors)) {
    const noise = normals(t.data.length, r, scale);
    const d = new Float32Array(t.data.length);
    for (let i = 0; i < d.length; i++) d[i] = (t.data as Float32Array)[i] + noise[i];
    out[k] = { dtype: 'float32', shape: t.shape, data: d };
  }
  await writePeftAdapter(dir, out, config);
  return out;
}

/** ΔW = s·B·A in float64 ([out, in]). */
function delta(A: Tensor, B: Tensor, s: number): Float64Array {
  const [r, inDim] = A.shape;
  const outDim = B.shape[0];
  const d = new Float64Array(outDim * inDim);
  for (let o = 0; o < outDim; o++)
    for (let k = 0; k < r; k++) {
      const b = s * elementAt(B, o * r + k);
      for (let j = 0; j < inDim; j++) d[o * inDim + j] += b * elementAt(A, k * inDim + j);
    }
  return d;
}

describe("merge: PEFT adapters (a GPT-2-shaped adapter in peft's layout, fan_in_fan_out)", () => {
  beforeAll(() => made);
  it("lora 'params' interpolates A and B separately and keeps peft's layout", async () => {
    const d = tmp();
    const fx = (await readPeftAdapter(FIXTURE)).tensors;
    const e2 = await perturbedFixture(join(d, 'e2'), 3);
    const out = join(d, 'soup');
    const rep = await merge({ sources: [FIXTURE, join(d, 'e2')], weights: [0.3, 0.7], out, lora: 'params' });
    expect(rep.layout).toBe('peft');
    const { config, tensors } = await readPeftAdapter(out);
    expect(config).toEqual(JSON.parse(readFileSync(join(FIXTURE, 'adapter_config.json'), 'utf8')));
    expect(Object.keys(tensors).sort()).toEqual(Object.keys(fx).sort());
    for (const k of Object.keys(fx)) expect(checkAgainst(tensors[k], [fx[k], e2[k]], [0.3, 0.7]).worst, k).toBeLessThanOrEqual(1e-6);
  });

  it("lora 'params' refuses adapters whose scalings differ, pointing to 'dense'", async () => {
    const d = tmp();
    const { config, tensors } = await readPeftAdapter(FIXTURE);
    await writePeftAdapter(join(d, 'alpha16'), tensors, { ...config, lora_alpha: 16 });
    const err = await merge({ sources: [FIXTURE, join(d, 'alpha16')], weights: [0.5, 0.5], out: join(d, 'o'), lora: 'params' }).catch((e) => e);
    expect(err.code).toBe('ERR_SOUP_FORMAT');
    expect(err.message).toMatch(/'lora_alpha' is 16 in sources\[1\].*8 in sources\[0\].*use lora 'dense'/);
  });

  it("lora 'dense' without base writes a rank-concatenated adapter whose B·A equals Σ λᵢ sᵢ BᵢAᵢ", async () => {
    const d = tmp();
    const fx = (await readPeftAdapter(FIXTURE)).tensors;
    const e2 = await perturbedFixture(join(d, 'e2'), 4);
    // a third expert with a different rank and alpha, and rsLoRA scaling
    const cfg3 = { ...JSON.parse(readFileSync(join(FIXTURE, 'adapter_config.json'), 'utf8')), r: 4, lora_alpha: 16, use_rslora: true };
    const r = rng(9);
    const e3: TensorMap = {};
    for (const [k, t] of Object.entries(fx)) {
      const shape = k.endsWith('lora_A.weight') ? [4, t.shape[1]] : k.endsWith('lora_B.weight') ? [t.shape[0], 4] : t.shape;
      e3[k] = randomTensor('float32', shape, r, 0.05);
    }
    await writePeftAdapter(join(d, 'e3'), e3, cfg3);
    const w = [0.5, 0.3, 0.2];
    const out = join(d, 'cat');
    await merge({ sources: [FIXTURE, join(d, 'e2'), join(d, 'e3')], weights: w, out, lora: 'dense' });
    const { config, tensors } = await readPeftAdapter(out);
    expect(config.r).toBe(8 + 8 + 4);
    expect(config.lora_alpha).toBe(20);
    expect(config.use_rslora).toBe(false);
    const s = [8 / 8, 8 / 8, 16 / Math.sqrt(4)];
    for (const layer of [0, 11]) {
      const m = `base_model.model.transformer.h.${layer}.attn.c_attn`;
      const A = tensors[`${m}.lora_A.weight`],
        B = tensors[`${m}.lora_B.weight`];
      expect(A.shape).toEqual([20, 768]);
      expect(B.shape).toEqual([2304, 20]);
      const got = delta(A, B, 1);
      const want = new Float64Array(got.length);
      [fx, e2, e3].forEach((e, i) => {
        const di = delta(e[`${m}.lora_A.weight`], e[`${m}.lora_B.weight`], w[i] * s[i]);
        for (let j = 0; j < di.length; j++) want[j] += di[j];
      });
      let num = 0,
        den = 0;
      for (let j = 0; j < want.length; j++) {
        num += (got[j] - want[j]) ** 2;
        den += want[j] ** 2;
      }
      expect(Math.sqrt(num / den), `layer ${layer}`).toBeLessThan(1e-6);
    }
    // the saved classifier head is interpolated linearly
    expect(
      checkAgainst(
        tensors['base_model.model.score.weight'],
        [fx, e2, e3].map((e) => e['base_model.model.score.weight']),
        w,
      ).worst,
    ).toBeLessThan(1e-6);
  });

  it("lora 'dense' with a base merges W0 + Σ λᵢ sᵢ (BᵢAᵢ)ᵀ into GPT-2's Conv1D weights, matching float64", async () => {
    const d = tmp();
    const fx = (await readPeftAdapter(FIXTURE)).tensors;
    const e2 = await perturbedFixture(join(d, 'e2'), 5);
    // a synthetic GPT-2 base in the hub's GPT2Model naming (no "transformer." prefix), Conv1D [in, out]
    const r = rng(10);
    const base: TensorMap = { 'wte.weight': randomTensor('float32', [50, 768], r) };
    for (let l = 0; l < 12; l++) {
      base[`h.${l}.attn.c_attn.weight`] = randomTensor('float32', [768, 2304], r, 0.02);
      base[`h.${l}.attn.c_attn.bias`] = randomTensor('float32', [2304], r);
    }
    await saveModelDir(join(d, 'gpt2'), base, { config: { model_type: 'gpt2' } });
    const w = [0.4, 0.6];
    const out = join(d, 'merged');
    const rep = await merge({ sources: [FIXTURE, join(d, 'e2')], weights: w, out, lora: 'dense', base: join(d, 'gpt2') });
    expect(rep.layout).toBe('hf');
    const { config, tensors } = await loadModelDir(out);
    expect(config.model_type).toBe('gpt2');
    expect(sameBits(tensors['wte.weight'], base['wte.weight'])).toBe(true);
    expect(sameBits(tensors['h.3.attn.c_attn.bias'], base['h.3.attn.c_attn.bias'])).toBe(true);
    expect(tensors['score.weight'].shape).toEqual([6, 768]); // the saved head, added to the model
    for (const layer of [0, 11]) {
      const m = `base_model.model.transformer.h.${layer}.attn.c_attn`;
      const want = Float64Array.from(base[`h.${layer}.attn.c_attn.weight`].data as Float32Array);
      [fx, e2].forEach((e, i) => {
        const di = delta(e[`${m}.lora_A.weight`], e[`${m}.lora_B.weight`], w[i] * (8 / 8)); // [2304, 768]
        for (let o = 0; o < 2304; o++) for (let j = 0; j < 768; j++) want[j * 2304 + o] += di[o * 768 + j]; // transposed
      });
      const got = tensors[`h.${layer}.attn.c_attn.weight`];
      // fp32 accumulation of W0 and 16 rank-one terms: normwise error at fp32 level, no outliers
      let num = 0,
        den = 0,
        maxErr = 0,
        maxRef = 0;
      for (let k = 0; k < want.length; k++) {
        const e = got.data[k] - want[k];
        num += e * e;
        den += want[k] * want[k];
        maxErr = Math.max(maxErr, Math.abs(e));
        maxRef = Math.max(maxRef, Math.abs(want[k]));
      }
      expect(Math.sqrt(num / den), `layer ${layer}`).toBeLessThan(1e-6);
      expect(maxErr / maxRef, `layer ${layer}`).toBeLessThan(1e-6);
    }
  });
});

describe('merge: sidecar files', () => {
  it('copies tokenizer files with an HF dir', async () => {
    const d = tmp();
    const m = model(1, ['w'], [[8]], 'float32');
    await saveModelDir(join(d, 'a'), m, { config: { model_type: 'llama' } });
    await saveModelDir(join(d, 'b'), model(2, ['w'], [[8]], 'float32'), { config: { model_type: 'llama' } });
    copyFileSync(makeTokenizer().path, join(d, 'a', 'tokenizer.json'));
    writeFileSync(join(d, 'a', 'README.md'), 'not copied');
    await merge({ sources: [join(d, 'a'), join(d, 'b')], weights: [0.5, 0.5], out: join(d, 'o') });
    expect(readdirSync(join(d, 'o')).sort()).toEqual(['config.json', 'model.safetensors', 'tokenizer.json']);
  });
});
