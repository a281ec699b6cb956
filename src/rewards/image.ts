// SPDX-License-Identifier: MIT
// Image rewards (the text-to-image miniature's stand-ins for the paper's learned aesthetic/nsfw scorers):
//   colourfulness  Hasler & Süsstrunk (2003): rg = R − G, yb = (R + G)/2 − B,
//                  M = √(σ_rg² + σ_yb²) + 0.3·√(μ_rg² + μ_yb²)   (population σ)
//   brightness     mean BT.601 luma Y = 0.299 R + 0.587 G + 0.114 B
//   contrast       RMS contrast: population std of Y
//   sharpness      population variance of the 4-neighbour Laplacian of Y over interior pixels
// Pixels are RGB in 0..255, interleaved (HWC). As Reward adapters they read the image from
// `sample.meta.image` ({ width, height, data }), like the locomotion reward reads its step info.
import { FnReward, rewardError, type BatchingOptions } from './types.js';

export interface RgbImageLike {
  width: number;
  height: number;
  data: ArrayLike<number>;
}

export const IMAGE_REWARDS = ['colourfulness', 'brightness', 'contrast', 'sharpness'] as const;
export type ImageRewardKind = (typeof IMAGE_REWARDS)[number];
const ALIASES: Record<string, ImageRewardKind> = { colorfulness: 'colourfulness', luma: 'brightness', 'rms-contrast': 'contrast' };

function check(img: RgbImageLike, what = 'image'): number {
  if (!img || typeof img !== 'object') throw new TypeError(`${what}: expected { width, height, data }`);
  const { width: w, height: h, data } = img;
  if (!Number.isInteger(w) || !Number.isInteger(h) || w < 1 || h < 1)
    throw new RangeError(`${what}: width and height must be positive integers, got ${w}×${h}`);
  if (!data || data.length !== w * h * 3) throw new RangeError(`${what}: expected ${w}×${h}×3 = ${w * h * 3} RGB values, got ${data?.length}`);
  return w * h;
}

function luma(img: RgbImageLike): Float64Array {
  const n = check(img);
  const y = new Float64Array(n);
  const d = img.data;
  for (let p = 0; p < n; p++) y[p] = 0.299 * d[3 * p] + 0.587 * d[3 * p + 1] + 0.114 * d[3 * p + 2];
  return y;
}

function meanVar(x: ArrayLike<number>): [number, number] {
  let m = 0;
  for (let i = 0; i < x.length; i++) m += x[i];
  m /= x.length;
  let v = 0;
  for (let i = 0; i < x.length; i++) v += (x[i] - m) * (x[i] - m);
  return [m, v / x.length];
}

export function colourfulness(img: RgbImageLike): number {
  const n = check(img);
  const d = img.data;
  const rg = new Float64Array(n),
    yb = new Float64Array(n);
  for (let p = 0; p < n; p++) {
    const r = d[3 * p],
      g = d[3 * p + 1],
      b = d[3 * p + 2];
    rg[p] = r - g;
    yb[p] = 0.5 * (r + g) - b;
  }
  const [mrg, vrg] = meanVar(rg),
    [myb, vyb] = meanVar(yb);
  return Math.sqrt(vrg + vyb) + 0.3 * Math.sqrt(mrg * mrg + myb * myb);
}

export function brightness(img: RgbImageLike): number {
  return meanVar(luma(img))[0];
}

export function rmsContrast(img: RgbImageLike): number {
  return Math.sqrt(meanVar(luma(img))[1]);
}

export function sharpness(img: RgbImageLike): number {
  const y = luma(img);
  const { width: w, height: h } = img;
  if (w < 3 || h < 3) throw new RangeError(`image: sharpness needs at least 3×3 pixels, got ${w}×${h}`);
  const lap = new Float64Array((w - 2) * (h - 2));
  let k = 0;
  for (let i = 1; i < h - 1; i++) {
    for (let j = 1; j < w - 1; j++) lap[k++] = y[(i - 1) * w + j] + y[(i + 1) * w + j] + y[i * w + j - 1] + y[i * w + j + 1] - 4 * y[i * w + j];
  }
  return meanVar(lap)[1];
}

const FNS: Record<ImageRewardKind, (img: RgbImageLike) => number> = { colourfulness, brightness, contrast: rmsContrast, sharpness };

/** Canonical name of an image reward; unknown names are errors listing the known ones. */
export function imageRewardKind(kind: string): ImageRewardKind {
  const k = ALIASES[kind] ?? kind;
  if (!(IMAGE_REWARDS as readonly string[]).includes(k)) throw rewardError(String(kind), `unknown image reward (known: ${IMAGE_REWARDS.join(', ')})`);
  return k as ImageRewardKind;
}

/** One image reward as a plain function of an image. */
export function imageRewardFn(kind: string): (img: RgbImageLike) => number {
  return FNS[imageRewardKind(kind)];
}

/** An image reward as a Reward adapter over samples whose `meta.image` is the generated image. */
export function imageReward(kind: string, opts: BatchingOptions & { name?: string } = {}): FnReward {
  const k = imageRewardKind(kind);
  const fn = FNS[k];
  const name = opts.name ?? k;
  return new FnReward(
    name,
    (s, i) => {
      const img = s.meta?.image as RgbImageLike | undefined;
      if (!img || typeof img !== 'object') throw rewardError(name, `sample ${i}: meta.image must be { width, height, data } (RGB 0..255)`);
      try {
        return fn(img);
      } catch (e) {
        throw rewardError(name, `sample ${i}: ${(e as Error).message}`, e);
      }
    },
    opts,
  );
}
