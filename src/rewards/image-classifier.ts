// SPDX-License-Identifier: MIT
// A small learned "reward model" the project trains itself (the analogue of the paper's learned
// aesthetic/nsfw scorers): a one-hidden-layer MLP that tells the shape in a procedural image, trained
// on seeded shapes in float64 (softmax cross-entropy, minibatch SGD with momentum). As a reward it
// scores p(the caption's shape | image): how faithfully a generated image shows what its caption asks.
import { SoupError } from '../errors.js';
import { SHAPE_NAMES, parseCaption, seededStream, shapesBatch } from '../data/shapes.js';
import { FnReward, rewardError, type BatchingOptions } from './types.js';
import type { RgbImageLike } from './image.js';

export interface ShapeClassifier {
  classes: string[];
  /** Input size: width·height·3 (pixels mapped to [−1, 1]). */
  inputs: number;
  hidden: number;
  w1: Float64Array; // [hidden, inputs]
  b1: Float64Array; // [hidden]
  w2: Float64Array; // [classes, hidden]
  b2: Float64Array; // [classes]
}

/** Class probabilities: softmax(W2·relu(W1·x + b1) + b2), x = rgb/127.5 − 1 (HWC order). */
export function classifierProbs(c: ShapeClassifier, img: RgbImageLike): Float64Array {
  const D = c.inputs;
  if (!img || img.data?.length !== D) throw new RangeError(`image: the classifier expects ${D} RGB values, got ${img?.data?.length}`);
  const x = Float64Array.from(img.data, (v) => v / 127.5 - 1);
  const p = new Float64Array(c.classes.length);
  forwardInto(c, x, new Float64Array(c.hidden), p);
  return p;
}

/** The forward pass on normalised inputs x: hidden activations into h, class probabilities into p. */
function forwardInto(c: ShapeClassifier, x: ArrayLike<number>, h: Float64Array, p: Float64Array): void {
  const D = c.inputs,
    H = c.hidden,
    C = c.classes.length;
  for (let j = 0; j < H; j++) {
    let v = c.b1[j];
    for (let i = 0; i < D; i++) v += c.w1[j * D + i] * x[i];
    h[j] = v > 0 ? v : 0;
  }
  let mx = -Infinity;
  for (let k = 0; k < C; k++) {
    let v = c.b2[k];
    for (let j = 0; j < H; j++) v += c.w2[k * H + j] * h[j];
    p[k] = v;
    mx = Math.max(mx, v);
  }
  let sum = 0;
  for (let k = 0; k < C; k++) sum += p[k] = Math.exp(p[k] - mx);
  for (let k = 0; k < C; k++) p[k] /= sum;
}

export interface TrainClassifierOptions {
  seed?: number;
  size?: number;
  samples?: number;
  heldOut?: number;
  hidden?: number;
  epochs?: number;
  lr?: number;
  batchSize?: number;
}

/** Trains the shape classifier on seeded shapes; returns it with its held-out accuracy. */
export function trainShapeClassifier(o: TrainClassifierOptions = {}): { classifier: ShapeClassifier; accuracy: number; loss: number } {
  const size = o.size ?? 16,
    n = o.samples ?? 3000,
    H = o.hidden ?? 48,
    epochs = o.epochs ?? 12,
    lr = o.lr ?? 0.02,
    bs = o.batchSize ?? 32;
  const classes = [...SHAPE_NAMES];
  const C = classes.length,
    D = size * size * 3;
  const seed = o.seed ?? 0;
  const train = shapesBatch(seed * 2 + 1, n, size),
    test = shapesBatch(seed * 2 + 2, o.heldOut ?? 600, size);
  const X = train.images.map((im) => Float64Array.from(im.data, (v) => v / 127.5 - 1));
  const Y = train.captions.map((cap) => classes.indexOf(parseCaption(cap).shape));
  const r = seededStream(seed + 99);
  const gauss = () => Math.sqrt(-2 * Math.log(1 - r())) * Math.cos(2 * Math.PI * r());
  const c: ShapeClassifier = {
    classes,
    inputs: D,
    hidden: H,
    w1: Float64Array.from({ length: H * D }, () => gauss() * Math.sqrt(2 / D)),
    b1: new Float64Array(H),
    w2: Float64Array.from({ length: C * H }, () => gauss() * Math.sqrt(1 / H)),
    b2: new Float64Array(C),
  };
  const vel = [c.w1, c.b1, c.w2, c.b2].map((p) => new Float64Array(p.length));
  const g = [c.w1, c.b1, c.w2, c.b2].map((p) => new Float64Array(p.length));
  const h = new Float64Array(H),
    dh = new Float64Array(H),
    p = new Float64Array(C);
  const order = Array.from({ length: n }, (_, i) => i);
  let loss = 0;
  for (let ep = 0; ep < epochs; ep++) {
    for (let i = n - 1; i > 0; i--) {
      const j = Math.floor(r() * (i + 1));
      [order[i], order[j]] = [order[j], order[i]];
    }
    loss = 0;
    for (let s = 0; s < n; s += bs) {
      g.forEach((x) => x.fill(0));
      const m = Math.min(bs, n - s);
      for (let b = 0; b < m; b++) {
        const x = X[order[s + b]],
          y = Y[order[s + b]];
        forwardInto(c, x, h, p);
        loss -= Math.log(Math.max(p[y], 1e-300));
        dh.fill(0);
        for (let k = 0; k < C; k++) {
          const dz = (p[k] - (k === y ? 1 : 0)) / m;
          g[3][k] += dz;
          for (let j = 0; j < H; j++) {
            g[2][k * H + j] += dz * h[j];
            dh[j] += dz * c.w2[k * H + j];
          }
        }
        for (let j = 0; j < H; j++) {
          if (h[j] <= 0) continue;
          g[1][j] += dh[j];
          for (let i = 0; i < D; i++) g[0][j * D + i] += dh[j] * x[i];
        }
      }
      [c.w1, c.b1, c.w2, c.b2].forEach((param, q) => {
        for (let i = 0; i < param.length; i++) {
          vel[q][i] = 0.9 * vel[q][i] - lr * g[q][i];
          param[i] += vel[q][i];
        }
      });
    }
    loss /= n;
  }
  let right = 0;
  test.images.forEach((im, i) => {
    const pr = classifierProbs(c, im);
    let best = 0;
    for (let k = 1; k < C; k++) if (pr[k] > pr[best]) best = k;
    if (classes[best] === parseCaption(test.captions[i]).shape) right++;
  });
  return { classifier: c, accuracy: right / test.images.length, loss };
}

/** Reward: p(caption's shape | image) from a trained classifier; the caption is `sample.prompt`. */
export function shapeClassifierReward(c: ShapeClassifier, opts: BatchingOptions & { name?: string } = {}): FnReward {
  if (!c || !(c.w1 instanceof Float64Array) || c.w1.length !== c.hidden * c.inputs)
    throw new SoupError('ERR_SOUP_INVALID_ARG', 'shapeClassifierReward: not a trained ShapeClassifier');
  const name = opts.name ?? 'shape-classifier';
  return new FnReward(
    name,
    (s, i) => {
      const img = s.meta?.image as RgbImageLike | undefined;
      if (!img || typeof img !== 'object') throw rewardError(name, `sample ${i}: meta.image must be { width, height, data } (RGB 0..255)`);
      let shape: string;
      try {
        shape = parseCaption(s.prompt).shape;
      } catch (e) {
        throw rewardError(name, `sample ${i}: ${(e as Error).message}`, e);
      }
      try {
        return classifierProbs(c, img)[c.classes.indexOf(shape)];
      } catch (e) {
        throw rewardError(name, `sample ${i}: ${(e as Error).message}`, e);
      }
    },
    opts,
  );
}
