// SPDX-License-Identifier: MIT
// The diffusion core against hand computations: the cosine schedule and DDIM timesteps (float64 loops),
// the denoising loss (x_t built by hand, ε_θ from the model), the reward weighting (linearity in the
// weights), DDIM sampling with and without guidance (the update written out in float64 around the
// model's ε), the fine-tuning set (names and which tensors move), determinism, the App. E selection and
// rescaling, the shapes data, and the errors for bad input. Tiny UNets keep it fast.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SoupError } from '../src/errors.js';
import type { TensorMap } from '../src/io/index.js';
import {
  DiffusionModel,
  DiffusionTrainer,
  controlWeights,
  cosineAlphaBar,
  ddimTimesteps,
  noiseFromSeeds,
  normalisedAverage,
  topHalfWeights,
  type UNetConfig,
} from '../src/train/diffusion.js';
import {
  SHAPES_VOCAB,
  drawShape,
  parseCaption,
  seededStream,
  shapesBatch,
  tokenizeCaption,
  tokenizeCaptions,
  toModelInput,
  fromModelOutput,
  SHAPE_COLOURS,
} from '../src/data/shapes.js';

const TINY: Partial<UNetConfig> = { imageSize: 8, ch0: 8, ch1: 16, tembDim: 16, textDim: 8, heads: 2, groups: 4, T: 50 };
const tmp = mkdtempSync(join(tmpdir(), 'rsoup-diffusion-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

/** Random non-zero weights for every tensor (the default init zeroes output projections, which would make ε ≡ 0). */
async function randomize(m: DiffusionModel, seed: number, scale = 0.3): Promise<TensorMap> {
  const t = await m.getTensors({ set: 'params' });
  const r = seededStream(seed);
  for (const x of Object.values(t))
    for (let i = 0; i < x.data.length; i++) x.data[i] = (r() * 2 - 1) * scale + (x.shape.length === 1 && x.data.length > 0 ? 0.5 : 0);
  await m.setTensors(t);
  return t;
}

function randn(n: number, seed: number): Float32Array {
  const r = seededStream(seed);
  return Float32Array.from({ length: n }, () => Math.sqrt(-2 * Math.log(1 - r())) * Math.cos(2 * Math.PI * r()));
}

function expectClose(a: ArrayLike<number>, b: ArrayLike<number>, rtol: number, atol: number): void {
  expect(a.length).toBe(b.length);
  let worst = 0;
  for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i] - b[i]) - rtol * Math.abs(b[i]));
  expect(worst).toBeLessThanOrEqual(atol);
}

describe('schedule and timesteps', () => {
  it('cosine ᾱ_t matches a float64 loop (Nichol & Dhariwal, β clipped at 0.999)', () => {
    for (const T of [1000, 7]) {
      const ab = cosineAlphaBar(T);
      const f = (t: number) => Math.cos(((t / T + 0.008) / 1.008) * (Math.PI / 2)) ** 2;
      let prod = 1;
      for (let t = 0; t < T; t++) {
        prod *= 1 - Math.min(1 - f(t + 1) / f(t), 0.999);
        expect(ab[t]).toBeCloseTo(prod, 14);
      }
      expect(ab.length).toBe(T);
    }
    // The continuous form ᾱ(t) = f(t)/f(0) holds wherever β was not clipped.
    const ab = cosineAlphaBar(1000);
    const f = (t: number) => Math.cos(((t / 1000 + 0.008) / 1.008) * (Math.PI / 2)) ** 2;
    expect(ab[499]).toBeCloseTo(f(500) / f(0), 12);
  });

  it('DDIM timesteps are trailing: floor((k+1)T/S) − 1, descending', () => {
    expect(Array.from(ddimTimesteps(1000, 20))).toEqual(Array.from({ length: 20 }, (_, i) => 999 - 50 * i));
    expect(Array.from(ddimTimesteps(10, 3))).toEqual([9, 5, 2]);
    expect(Array.from(ddimTimesteps(10, 10))).toEqual([9, 8, 7, 6, 5, 4, 3, 2, 1, 0]);
    expect(() => ddimTimesteps(10, 11)).toThrow(/steps must be in \[1, 10\]/);
  });
});

describe('UNet on fixed tensors', () => {
  let m: DiffusionModel;
  const B = 3,
    S = 8,
    per = 3 * S * S;
  const caps = ['red circle on blue', 'white cross on black', 'pink ring on green'];
  const tok = tokenizeCaptions(caps);
  beforeAll(async () => {
    m = await DiffusionModel.create({ config: TINY, seed: 1, threads: 1 });
    await randomize(m, 11);
  });
  afterAll(async () => m.dispose());

  it('per-example loss = mean (ε_θ(√ᾱ x₀ + √(1−ᾱ) ε, t, c) − ε)² computed by hand', async () => {
    const x0 = randn(B * per, 1),
      eps = randn(B * per, 2);
    const t = Int32Array.from([0, 17, 49]);
    const ab = cosineAlphaBar(50);
    const xt = new Float32Array(B * per);
    for (let b = 0; b < B; b++)
      for (let i = 0; i < per; i++) xt[b * per + i] = Math.sqrt(ab[t[b]]) * x0[b * per + i] + Math.sqrt(1 - ab[t[b]]) * eps[b * per + i];
    const pred = await m.eps(xt, t, tok, B, false);
    const hand = Array.from({ length: B }, (_, b) => {
      let s = 0;
      for (let i = 0; i < per; i++) s += (pred[b * per + i] - eps[b * per + i]) ** 2;
      return s / per;
    });
    expect(hand.every((v) => v > 0.01)).toBe(true); // a model that predicts something
    expectClose(await m.loss(x0, tok, t, eps, B, false), hand, 1e-4, 1e-6);
  });

  it('the training loss is Σ w_b·loss_b / B: linear in the weights, same t and ε for the same seed', async () => {
    const x0 = randn(2 * per, 3);
    const tk = tok.slice(0, 8);
    const at = async (w: number[]) => {
      await m.seed(42);
      return m.trainStep(x0, tk, 2, Float64Array.from(w), { lr: 0, weightDecay: 0, captionDropout: 0.5 });
    };
    const l10 = await at([1, 0]),
      l01 = await at([0, 1]),
      l11 = await at([1, 1]),
      lab = await at([2.5, 0.75]);
    expect(l10).toBeGreaterThan(0);
    expect(l11).toBeCloseTo(l10 + l01, 5);
    expect(lab).toBeCloseTo(2.5 * l10 + 0.75 * l01, 5);
    // lr 0: nothing moved (AdamW's decoupled decay is lr·wd)
    expect(await at([1, 1])).toBeCloseTo(l11, 6);
  });

  it("DDIM (η = 0, x₀ clipped) matches the update written out around the model's ε, with and without guidance", async () => {
    const noise = noiseFromSeeds([5, 6, 7], { channels: 3, imageSize: S });
    const ab = cosineAlphaBar(50);
    const ts = Array.from(ddimTimesteps(50, 4));
    for (const g of [1, 0, 2.5]) {
      const got = await m.sampleFromNoise(tok, B, noise, { steps: 4, guidance: g, useEma: false });
      let x = Float64Array.from(noise);
      for (let k = 0; k < ts.length; k++) {
        const a = ab[ts[k]],
          ap = k + 1 < ts.length ? ab[ts[k + 1]] : 1;
        const tt = new Int32Array(B).fill(ts[k]);
        const ec = await m.eps(Float32Array.from(x), tt, tok, B, false);
        const eu = await m.eps(Float32Array.from(x), tt, new Int32Array(tok.length), B, false);
        const next = new Float64Array(x.length);
        for (let i = 0; i < x.length; i++) {
          const e = g === 1 ? ec[i] : g === 0 ? eu[i] : eu[i] + g * (ec[i] - eu[i]);
          const x0 = Math.min(1, Math.max(-1, (x[i] - Math.sqrt(1 - a) * e) / Math.sqrt(a)));
          const e2 = (x[i] - Math.sqrt(a) * x0) / Math.sqrt(1 - a);
          next[i] = Math.sqrt(ap) * x0 + Math.sqrt(1 - ap) * e2;
        }
        x = next;
      }
      expectClose(got, x, 1e-3, 2e-4);
      expect(got.every((v) => v >= -1 - 1e-6 && v <= 1 + 1e-6)).toBe(true);
    }
  });

  it("the same seed gives the same images; a caption's noise does not depend on its batch", async () => {
    const a = await m.generate(caps, [10, 11, 12], { steps: 5 });
    const b = await m.generate(caps, [10, 11, 12], { steps: 5 });
    const c = await m.generate(caps, [10, 11, 13], { steps: 5 });
    expect(a.map((x) => Array.from(x.data))).toEqual(b.map((x) => Array.from(x.data)));
    expect(Array.from(a[2].data)).not.toEqual(Array.from(c[2].data));
    expect(Array.from(a[0].data)).toEqual(Array.from(c[0].data));
    const n3 = noiseFromSeeds([10, 11, 12], { channels: 3, imageSize: S });
    const n1 = noiseFromSeeds([11], { channels: 3, imageSize: S });
    expect(Array.from(n3.subarray(per, 2 * per))).toEqual(Array.from(n1));
    const alone = await m.generate([caps[1]], [11], { steps: 5 });
    expectClose(alone[0].data, a[1].data, 1e-4, 1e-3);
  });

  it('two models from the same seed train identically', async () => {
    const run = async () => {
      const x = await DiffusionModel.create({ config: TINY, seed: 3, threads: 1 });
      const tr = new DiffusionTrainer(x);
      const l = await tr.pretrain({ steps: 3, batchSize: 4, seed: 9 });
      const w = await x.getTensors({ set: 'ema', group: 'finetune' });
      await x.dispose();
      return { l, w };
    };
    const [p, q] = [await run(), await run()];
    expect(p.l).toEqual(q.l);
    expect(Object.keys(p.w)).toEqual(Object.keys(q.w));
    for (const k of Object.keys(p.w)) expect(Array.from(p.w[k].data)).toEqual(Array.from(q.w[k].data));
  });
});

describe('the fine-tuning set: cross-attention + biases + norm scales', () => {
  const rule = (n: string) => n.includes('.cross.') || n.endsWith('.bias') || (n.endsWith('.weight') && n.slice(0, n.lastIndexOf('.')).includes('norm'));

  it('is exactly the names the rule picks, about 10% of the default UNet', async () => {
    const m = await DiffusionModel.create({ seed: 0, threads: 1 });
    const info = await m.info();
    await m.dispose();
    expect(info.finetune).toEqual(info.names.filter(rule));
    const numel = (i: number) => info.shapes[i].reduce((a, b) => a * b, 1);
    const total = info.names.reduce((a, _, i) => a + numel(i), 0);
    const ft = info.names.reduce((a, n, i) => a + (rule(n) ? numel(i) : 0), 0);
    expect(info.numel).toBe(total);
    expect(info.finetuneNumel).toBe(ft);
    // cross-attention in each of the three attention blocks, plus every bias and norm scale
    expect(info.finetune.filter((n) => n.includes('.cross.')).length).toBe(3 * 8);
    expect(info.finetune.some((n) => n === 'text.norm.weight')).toBe(true);
    expect(info.finetune.some((n) => n.endsWith('conv1.weight') || n.includes('.self.q.weight'))).toBe(false);
    const frac = ft / total;
    expect(frac).toBeGreaterThan(0.05);
    expect(frac).toBeLessThan(0.15);
  });

  it('a fine-tuning step moves every tensor of the set and nothing else', async () => {
    const m = await DiffusionModel.create({ config: TINY, seed: 2, threads: 1 });
    await randomize(m, 5);
    const before = await m.getTensors({ set: 'params' });
    const { captions, images } = shapesBatch(1, 4, 8);
    await new DiffusionTrainer(m).finetune(images, captions, [1, 2, 0.5, 0.5], { steps: 2, batchSize: 4, lr: 1e-2 });
    const after = await m.getTensors({ set: 'params' });
    const info = await m.info();
    await m.dispose();
    const changed = info.names.filter((n) => before[n].data.some((v, i) => v !== after[n].data[i]));
    expect(changed.sort()).toEqual(info.finetune.slice().sort());
  });
});

describe('App. E selection and rescaling', () => {
  it('keeps the best half and rescales to min 0, mean 1', () => {
    const { indices, weights } = topHalfWeights([3, 1, 4, 1, 5, 9]);
    expect(indices).toEqual([5, 4, 2]);
    expect(Array.from(weights)).toEqual([2.5, 0.5, 0]); // (9−4)/(6−4), (5−4)/2, 0
    const odd = topHalfWeights([0.2, -1, 0.7, 0.1, 0.3]);
    expect(odd.indices).toEqual([2, 4, 0]);
    expect(Array.from(odd.weights).map((v) => +v.toFixed(12))).toEqual([2.5, 0.5, 0]);
    expect(Array.from(topHalfWeights([2, 2, 2, 2]).weights)).toEqual([1, 1]);
    expect(() => topHalfWeights([1, NaN])).toThrow(/score 1 is not finite/);
  });

  it('MORL averages z-normalised rewards; the control is a random half with min-0/mean-1 weights', () => {
    const a = [1, 2, 3, 4],
      b = [10, 10, 30, 30];
    const z = normalisedAverage([a, b], [0.5, 0.5]);
    const sa = Math.sqrt(1.25);
    expect(Array.from(z).map((v) => +v.toFixed(12))).toEqual(
      [(-1.5 / sa - 1) / 2, (-0.5 / sa - 1) / 2, (0.5 / sa + 1) / 2, (1.5 / sa + 1) / 2].map((v) => +v.toFixed(12)),
    );
    const c = controlWeights(10, 3);
    expect(c.indices.length).toBe(5);
    expect(new Set(c.indices).size).toBe(5);
    expect(Math.min(...c.weights)).toBe(0);
    expect(c.weights.reduce((s, v) => s + v, 0) / 5).toBeCloseTo(1, 12);
    expect(controlWeights(10, 3)).toEqual(c);
    expect(controlWeights(10, 4).indices).not.toEqual(c.indices);
  });
});

describe('shapes data', () => {
  it('is regenerated from its seed', () => {
    const a = shapesBatch(7, 5),
      b = shapesBatch(7, 5),
      c = shapesBatch(8, 5);
    expect(a.captions).toEqual(b.captions);
    expect(a.images.map((x) => Array.from(x.data))).toEqual(b.images.map((x) => Array.from(x.data)));
    expect(a.captions).not.toEqual(c.captions);
    for (const cap of a.captions) {
      const p = parseCaption(cap);
      expect(p.fg).not.toBe(p.bg);
    }
  });

  it('draws the shape in its colour on its background', () => {
    const im = drawShape({ fg: 'red', shape: 'square', bg: 'blue', cx: 8, cy: 8, r: 5 }, 16);
    const px = (x: number, y: number) => Array.from(im.data.slice((y * 16 + x) * 3, (y * 16 + x) * 3 + 3));
    expect(px(8, 8)).toEqual([...SHAPE_COLOURS.red]);
    expect(px(0, 0)).toEqual([...SHAPE_COLOURS.blue]);
    // the square's edge at 8 ± 4.25 is covered partly: a blend of the two
    const edge = px(12, 8);
    expect(edge[0]).toBeGreaterThan(SHAPE_COLOURS.blue[0]);
    expect(edge[0]).toBeLessThan(SHAPE_COLOURS.red[0]);
    const back = fromModelOutput(toModelInput([im]), 1, 16)[0];
    expectClose(back.data, im.data, 0, 1e-4);
  });

  it('tokenizes captions, and unknown words are errors naming the word', () => {
    expect(Array.from(tokenizeCaption('Red circle on  blue'))).toEqual([
      SHAPES_VOCAB.indexOf('red'),
      SHAPES_VOCAB.indexOf('circle'),
      SHAPES_VOCAB.indexOf('on'),
      SHAPES_VOCAB.indexOf('blue'),
    ]);
    expect(() => tokenizeCaption('red unicorn on blue')).toThrow(/unknown word "unicorn"/);
    expect(() => tokenizeCaption('red circle')).toThrow(/expected 4 words/);
    try {
      tokenizeCaption('teal circle on blue');
    } catch (e) {
      expect(e).toBeInstanceOf(SoupError);
      expect((e as SoupError).code).toBe('ERR_SOUP_INVALID_ARG');
    }
  });
});

describe('bad input', () => {
  it('a checkpoint of another architecture is refused, naming the tensor', async () => {
    const m = await DiffusionModel.create({ config: TINY, seed: 1, threads: 1 });
    const dir = join(tmp, 'tiny');
    await m.save(dir);
    const w = await m.getTensors();
    await m.dispose();
    await expect(DiffusionModel.create({ config: { ...TINY, ch1: 24 }, weights: w })).rejects.toThrow(
      /checkpoint tensor 'down1\.res\.conv1\.weight' has shape \[16, 8, 3, 3\] but this UNet .* expects \[24, 8, 3, 3\]/,
    );
    const extra = { ...w, 'lm_head.weight': w['conv_in.weight'] };
    await expect(DiffusionModel.create({ config: TINY, weights: extra })).rejects.toThrow(/tensor 'lm_head\.weight'/);
    const llama = join(tmp, 'llama');
    rmSync(llama, { recursive: true, force: true });
    await import('node:fs').then((fs) => fs.mkdirSync(llama));
    writeFileSync(join(llama, 'config.json'), JSON.stringify({ model_type: 'llama', architectures: ['LlamaForCausalLM'] }));
    await expect(DiffusionModel.load(llama)).rejects.toThrow(/"LlamaForCausalLM" is not a rsoup-cond-unet diffusion checkpoint/);
    const back = await DiffusionModel.load(dir, { threads: 1 });
    const w2 = await back.getTensors();
    await expect(back.setTensors({ 'mid.attn.cross.q.weight': w['conv_in.weight'] }, { partial: true })).rejects.toThrow(
      /'mid\.attn\.cross\.q\.weight' has another shape/,
    );
    await back.dispose();
    for (const k of Object.keys(w)) expect(Array.from(w2[k].data)).toEqual(Array.from(w[k].data));
  });

  it('captions with unknown words and mismatched sizes are errors', async () => {
    const m = await DiffusionModel.create({ config: TINY, seed: 1, threads: 1 });
    await expect(m.generate(['green blob on red'], [1])).rejects.toThrow(/unknown word "blob"/);
    await expect(m.generate(['green circle on red'], [1, 2])).rejects.toThrow(/1 captions but 2 seeds/);
    await expect(m.eps(new Float32Array(5), new Int32Array(1), new Int32Array(4), 1)).rejects.toThrow(/images: expected 1×192 values/);
    await expect(m.eps(new Float32Array(192), new Int32Array(1), Int32Array.from([0, 99, 0, 0]), 1)).rejects.toThrow(/token ids must be in \[0, 20\)/);
    await m.dispose();
    await expect(m.info()).rejects.toThrow(/disposed/);
  });
});
