// SPDX-License-Identifier: MIT
// Image rewards against hand computations on small fixed images, and against naive float64 definitions
// on random images of odd sizes; the Reward adapters and their errors.
import { describe, expect, it } from 'vitest';
import { SoupError } from '../src/errors.js';
import {
  brightness,
  classifierProbs,
  colourfulness,
  imageReward,
  imageRewardFn,
  rmsContrast,
  shapeClassifierReward,
  sharpness,
  trainShapeClassifier,
  IMAGE_REWARDS,
} from '../src/rewards/index.js';
import { SHAPE_NAMES, parseCaption, seededStream, shapesBatch } from '../src/data/shapes.js';

const img = (width: number, height: number, px: number[][]) => ({ width, height, data: Float32Array.from(px.flat()) });

describe('hand computations on small fixed images', () => {
  // One red and one blue pixel: rg = [255, 0], yb = [127.5, −255].
  const rb = img(2, 1, [
    [255, 0, 0],
    [0, 0, 255],
  ]);

  it('colourfulness (Hasler–Süsstrunk)', () => {
    // μ_rg = 127.5, σ_rg = 127.5; μ_yb = −63.75, σ_yb = 191.25
    expect(colourfulness(rb)).toBeCloseTo(Math.sqrt(127.5 ** 2 + 191.25 ** 2) + 0.3 * Math.sqrt(127.5 ** 2 + 63.75 ** 2), 10);
    expect(colourfulness(rb)).toBeCloseTo(272.6189, 3);
    // a grey image has rg = yb = 0 everywhere
    expect(
      colourfulness(
        img(2, 2, [
          [9, 9, 9],
          [200, 200, 200],
          [50, 50, 50],
          [0, 0, 0],
        ]),
      ),
    ).toBe(0);
    // a uniform yellow: σ = 0, μ_rg = 0, μ_yb = 255 → 0.3 · 255
    expect(
      colourfulness(
        img(1, 3, [
          [255, 255, 0],
          [255, 255, 0],
          [255, 255, 0],
        ]),
      ),
    ).toBeCloseTo(76.5, 10);
  });

  it('brightness (mean BT.601 luma) and RMS contrast (std of luma)', () => {
    // Y = 0.299·255 = 76.245 and 0.114·255 = 29.07
    expect(brightness(rb)).toBeCloseTo((76.245 + 29.07) / 2, 10);
    expect(rmsContrast(rb)).toBeCloseTo((76.245 - 29.07) / 2, 10);
    const grey = img(3, 1, [
      [0, 0, 0],
      [30, 30, 30],
      [90, 90, 90],
    ]); // Y = 0, 30, 90: mean 40, var (1600+100+2500)/3
    expect(brightness(grey)).toBeCloseTo(40, 10);
    expect(rmsContrast(grey)).toBeCloseTo(Math.sqrt(1400), 10);
  });

  it('sharpness (variance of the 4-neighbour Laplacian over interior pixels)', () => {
    // 4×3 grey image, interior pixels (1,1) and (2,1):
    //   row0: 0 10 20 30 / row1: 40 100 60 70 / row2: 80 90 0 110
    //   L(1,1) = 10 + 90 + 40 + 60 − 400 = −200;  L(2,1) = 20 + 0 + 100 + 70 − 240 = −50
    const v = [0, 10, 20, 30, 40, 100, 60, 70, 80, 90, 0, 110];
    const im = img(
      4,
      3,
      v.map((x) => [x, x, x]),
    );
    expect(sharpness(im)).toBeCloseTo(((-200 - -50) / 2) ** 2, 8); // two values: variance = (Δ/2)²
    // a flat image and a linear ramp have zero Laplacian
    expect(
      sharpness(
        img(
          3,
          3,
          Array.from({ length: 9 }, () => [7, 7, 7]),
        ),
      ),
    ).toBe(0);
    expect(
      sharpness(
        img(
          4,
          4,
          Array.from({ length: 16 }, (_, i) => [i, i, i]),
        ),
      ),
    ).toBeCloseTo(0, 10);
    expect(() =>
      sharpness(
        img(
          2,
          2,
          Array.from({ length: 4 }, () => [1, 1, 1]),
        ),
      ),
    ).toThrow(/at least 3×3/);
  });
});

describe('random images of odd sizes vs naive float64 definitions', () => {
  // Independent formulation: sums of squares (E[x²] − E[x]²) rather than two-pass deviations.
  const stats = (x: number[]) => {
    const n = x.length,
      s = x.reduce((a, b) => a + b, 0),
      q = x.reduce((a, b) => a + b * b, 0);
    return { mean: s / n, var: Math.max(0, q / n - (s / n) ** 2) };
  };
  for (const [w, h, seed] of [
    [5, 7, 1],
    [16, 16, 2],
    [3, 11, 3],
  ] as const) {
    it(`${w}×${h}`, () => {
      const r = seededStream(seed);
      const px = Array.from({ length: w * h }, () => [r() * 255, r() * 255, r() * 255]);
      const im = img(w, h, px);
      const f = Array.from(im.data);
      const R = (p: number) => f[3 * p],
        G = (p: number) => f[3 * p + 1],
        Bc = (p: number) => f[3 * p + 2];
      const idx = Array.from({ length: w * h }, (_, p) => p);
      const rg = stats(idx.map((p) => R(p) - G(p))),
        yb = stats(idx.map((p) => (R(p) + G(p)) / 2 - Bc(p)));
      expect(colourfulness(im)).toBeCloseTo(Math.hypot(Math.sqrt(rg.var), Math.sqrt(yb.var)) + 0.3 * Math.hypot(rg.mean, yb.mean), 6);
      const Y = idx.map((p) => 0.299 * R(p) + 0.587 * G(p) + 0.114 * Bc(p));
      expect(brightness(im)).toBeCloseTo(stats(Y).mean, 8);
      expect(rmsContrast(im)).toBeCloseTo(Math.sqrt(stats(Y).var), 6);
      const lap: number[] = [];
      for (let y = 1; y < h - 1; y++)
        for (let x = 1; x < w - 1; x++) lap.push(Y[(y - 1) * w + x] + Y[(y + 1) * w + x] + Y[y * w + x - 1] + Y[y * w + x + 1] - 4 * Y[y * w + x]);
      expect(sharpness(im) / stats(lap).var).toBeCloseTo(1, 8);
    });
  }
});

describe('reward adapters', () => {
  const rb = { width: 2, height: 1, data: Uint8Array.from([255, 0, 0, 0, 0, 255]) };

  it('score samples by meta.image, in order', async () => {
    const r3 = seededStream(9);
    const big = { width: 3, height: 4, data: Float32Array.from({ length: 36 }, () => r3() * 255) };
    const small = { width: 3, height: 3, data: Array.from({ length: 27 }, (_, i) => (i * 37) % 256) };
    const s = [
      { prompt: 'red circle on blue', response: '', meta: { image: big } },
      { prompt: 'x', response: '', meta: { image: small } },
    ];
    for (const k of IMAGE_REWARDS) {
      const r = imageReward(k);
      expect(r.name).toBe(k);
      const out = await r.score(s);
      expect(out[0]).toBeCloseTo(imageRewardFn(k)(big), 10);
      expect(out[1]).toBeCloseTo(imageRewardFn(k)(small), 10);
      expect(out[0]).not.toBe(out[1]);
    }
    const one = [
      { prompt: 'p', response: '', meta: { image: rb } },
      { prompt: 'q', response: '', meta: { image: { width: 1, height: 1, data: [10, 20, 30] } } },
    ];
    expect((await imageReward('colorfulness').score(one))[0]).toBeCloseTo(colourfulness(rb), 12);
    expect((await imageReward('brightness', { name: 'bright' }).score(one))[1]).toBeCloseTo(0.299 * 10 + 0.587 * 20 + 0.114 * 30, 10);
  });

  it('unknown rewards and samples without an image are clear errors', async () => {
    expect(() => imageReward('aesthetic')).toThrow(/reward 'aesthetic': unknown image reward \(known: colourfulness, brightness, contrast, sharpness\)/);
    try {
      imageReward('nsfw');
    } catch (e) {
      expect((e as SoupError).code).toBe('ERR_SOUP_REWARD');
    }
    await expect(imageReward('brightness').score([{ prompt: 'p', response: '' }])).rejects.toThrow(/sample 0: meta\.image must be/);
    await expect(imageReward('contrast').score([{ prompt: 'p', response: '', meta: { image: { width: 2, height: 2, data: [1, 2, 3] } } }])).rejects.toThrow(
      /sample 0: image: expected 2×2×3 = 12 RGB values, got 3/,
    );
  });
});

describe('the self-trained shape classifier as a reward model', () => {
  it('computes softmax(W2·relu(W1·x + b1) + b2) as by hand', () => {
    // x = rgb/127.5 − 1 = (1, −1, 0); h = relu(2+1+0+0.5, −1+3+0+0.2) = (3.5, 2.2)
    // z = (3.5 − 2.2, 0.5·3.5 + 0.5·2.2 + 1) = (1.3, 3.85)
    const c = {
      classes: ['a', 'b'],
      inputs: 3,
      hidden: 2,
      w1: Float64Array.from([2, -1, 5, -1, -3, 1]),
      b1: Float64Array.from([0.5, 0.2]),
      w2: Float64Array.from([1, -1, 0.5, 0.5]),
      b2: Float64Array.from([0, 1]),
    };
    const p = classifierProbs(c, { width: 1, height: 1, data: [255, 0, 127.5] });
    expect(p[0]).toBeCloseTo(1 / (1 + Math.exp(2.55)), 12);
    expect(p[1]).toBeCloseTo(1 / (1 + Math.exp(-2.55)), 12);
    expect(() => classifierProbs(c, { width: 2, height: 1, data: [1, 2, 3, 4, 5, 6] })).toThrow(/expects 3 RGB values, got 6/);
  });

  it('learns the shapes well above chance and scores p(caption shape | image)', async () => {
    const { classifier, accuracy } = trainShapeClassifier({ samples: 1500, epochs: 10, heldOut: 300 });
    expect(accuracy).toBeGreaterThan(0.5); // chance is 1/6
    const { captions, images } = shapesBatch(77, 40);
    const r = shapeClassifierReward(classifier);
    const right = await r.score(captions.map((c, i) => ({ prompt: c, response: '', meta: { image: images[i] } })));
    // the same images under a caption naming another shape
    const other = (c: string) => {
      const p = parseCaption(c);
      return `${p.fg} ${SHAPE_NAMES[(SHAPE_NAMES.indexOf(p.shape) + 1) % SHAPE_NAMES.length]} on ${p.bg}`;
    };
    const wrong = await r.score(captions.map((c, i) => ({ prompt: other(c), response: '', meta: { image: images[i] } })));
    const mean = (x: Float64Array) => x.reduce((a, b) => a + b, 0) / x.length;
    expect(mean(right)).toBeGreaterThan(mean(wrong) + 0.2);
    expect(Array.from(right).every((v) => v >= 0 && v <= 1)).toBe(true);
    expect(right[3]).toBeCloseTo(classifierProbs(classifier, images[3])[classifier.classes.indexOf(parseCaption(captions[3]).shape)], 12);
    await expect(r.score([{ prompt: 'red blob on blue', response: '', meta: { image: images[0] } }])).rejects.toThrow(
      /sample 0: caption "red blob on blue": unknown word "blob"/,
    );
  }, 60_000);
});
