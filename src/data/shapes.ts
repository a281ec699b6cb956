// SPDX-License-Identifier: MIT
// Procedural captioned images with no download: "<colour> <shape> on <colour>", small RGB, regenerated
// from a seed (the text-to-image miniature of the paper's App. E; docs/diffusion.md).
// Images are drawn 4×4 supersampled (anti-aliased edges) in float RGB 0..255, interleaved (HWC).
import { SoupError } from '../errors.js';
import { mulberry32 } from '../util/random.js';

export const SHAPE_COLOURS: Readonly<Record<string, readonly [number, number, number]>> = {
  red: [220, 30, 30],
  green: [30, 170, 50],
  blue: [30, 60, 220],
  yellow: [240, 220, 40],
  cyan: [40, 210, 220],
  magenta: [210, 40, 200],
  orange: [245, 140, 20],
  purple: [120, 40, 160],
  pink: [250, 160, 190],
  brown: [120, 70, 30],
  white: [245, 245, 245],
  black: [15, 15, 15],
};
export const COLOUR_NAMES = Object.keys(SHAPE_COLOURS);
export const SHAPE_NAMES = ['circle', 'square', 'triangle', 'cross', 'ring', 'diamond'] as const;
export type ShapeName = (typeof SHAPE_NAMES)[number];

/** Token ids: 0 is the null caption (classifier-free guidance), then colours, shapes and "on". */
export const SHAPES_VOCAB: readonly string[] = ['<null>', ...COLOUR_NAMES, ...SHAPE_NAMES, 'on'];
export const CAPTION_LEN = 4;

/** An RGB image, values 0..255 (float), interleaved rows (HWC). */
export interface RgbImage {
  width: number;
  height: number;
  data: Float32Array | Uint8Array | Uint8ClampedArray | Float64Array;
}

export interface ShapeSpec {
  fg: string;
  shape: ShapeName;
  bg: string;
  /** Centre (pixels) and radius (pixels). */
  cx: number;
  cy: number;
  r: number;
}

/** The project's mulberry32 (src/util/random.ts) on a scrambled seed: the draws this module always made. */
export function seededStream(seed: number): () => number {
  return mulberry32((seed >>> 0) ^ 0x6d2b79f5);
}

export function captionOf(s: Pick<ShapeSpec, 'fg' | 'shape' | 'bg'>): string {
  return `${s.fg} ${s.shape} on ${s.bg}`;
}

/** Caption → CAPTION_LEN token ids; unknown words and malformed captions are errors naming the word. */
export function tokenizeCaption(caption: string): Int32Array {
  if (typeof caption !== 'string') throw new SoupError('ERR_SOUP_INVALID_ARG', `caption must be a string, got ${typeof caption}`);
  const words = caption
    .trim()
    .toLowerCase()
    .split(/\s+/)
    .filter((w) => w.length > 0);
  const out = new Int32Array(CAPTION_LEN);
  for (const [i, w] of words.entries()) {
    const id = SHAPES_VOCAB.indexOf(w);
    if (id <= 0)
      throw new SoupError(
        'ERR_SOUP_INVALID_ARG',
        `caption ${JSON.stringify(caption)}: unknown word ${JSON.stringify(w)} (the vocabulary: ${SHAPES_VOCAB.slice(1).join(', ')})`,
      );
    if (i < CAPTION_LEN) out[i] = id;
  }
  if (words.length !== CAPTION_LEN)
    throw new SoupError(
      'ERR_SOUP_INVALID_ARG',
      `caption ${JSON.stringify(caption)}: expected ${CAPTION_LEN} words ("<colour> <shape> on <colour>"), got ${words.length}`,
    );
  return out;
}

/** Token ids of many captions, concatenated ([B, CAPTION_LEN]). */
export function tokenizeCaptions(captions: readonly string[]): Int32Array {
  const out = new Int32Array(captions.length * CAPTION_LEN);
  captions.forEach((c, i) => out.set(tokenizeCaption(c), i * CAPTION_LEN));
  return out;
}

/** Parses a caption back into colours and shape (after tokenizeCaption's checks). */
export function parseCaption(caption: string): { fg: string; shape: ShapeName; bg: string } {
  const ids = tokenizeCaption(caption);
  const [fg, shape, on, bg] = Array.from(ids, (i) => SHAPES_VOCAB[i]);
  if (!COLOUR_NAMES.includes(fg) || !(SHAPE_NAMES as readonly string[]).includes(shape) || on !== 'on' || !COLOUR_NAMES.includes(bg)) {
    throw new SoupError('ERR_SOUP_INVALID_ARG', `caption ${JSON.stringify(caption)}: expected "<colour> <shape> on <colour>"`);
  }
  return { fg, shape: shape as ShapeName, bg };
}

function inside(shape: ShapeName, dx: number, dy: number, r: number): boolean {
  const ax = Math.abs(dx),
    ay = Math.abs(dy);
  switch (shape) {
    case 'circle':
      return dx * dx + dy * dy <= r * r;
    case 'square':
      return ax <= r * 0.85 && ay <= r * 0.85;
    case 'diamond':
      return ax + ay <= r;
    case 'cross':
      return (ax <= r * 0.33 && ay <= r) || (ay <= r * 0.33 && ax <= r);
    case 'ring': {
      const d2 = dx * dx + dy * dy;
      return d2 <= r * r && d2 >= r * 0.55 * (r * 0.55);
    }
    case 'triangle': // apex up: y from −r to +0.7r, half-width grows linearly
      return dy >= -r && dy <= 0.7 * r && ax <= ((dy + r) / (1.7 * r)) * r;
  }
}

/** Draws one image (RGB 0..255, HWC) of `size`×`size`. */
export function drawShape(s: ShapeSpec, size = 16): RgbImage {
  const fg = SHAPE_COLOURS[s.fg],
    bg = SHAPE_COLOURS[s.bg];
  if (!fg || !bg) throw new SoupError('ERR_SOUP_INVALID_ARG', `unknown colour in ${JSON.stringify(captionOf(s))}`);
  const data = new Float32Array(size * size * 3);
  const SS = 4;
  for (let y = 0; y < size; y++) {
    for (let x = 0; x < size; x++) {
      let cover = 0;
      for (let sy = 0; sy < SS; sy++) {
        for (let sx = 0; sx < SS; sx++) {
          const px = x + (sx + 0.5) / SS,
            py = y + (sy + 0.5) / SS;
          if (inside(s.shape, px - s.cx, py - s.cy, s.r)) cover++;
        }
      }
      const a = cover / (SS * SS);
      for (let c = 0; c < 3; c++) data[(y * size + x) * 3 + c] = a * fg[c] + (1 - a) * bg[c];
    }
  }
  return { width: size, height: size, data };
}

/** A random spec: two different colours, any shape, centre and radius jittered. */
export function randomShapeSpec(rand: () => number, size = 16): ShapeSpec {
  const pick = <T>(a: readonly T[]) => a[Math.floor(rand() * a.length)];
  const fg = pick(COLOUR_NAMES);
  let bg = pick(COLOUR_NAMES);
  while (bg === fg) bg = pick(COLOUR_NAMES);
  const shape = pick(SHAPE_NAMES);
  const r = size * (0.25 + 0.12 * rand());
  const j = size * 0.12;
  return { fg, shape, bg, cx: size / 2 + (rand() * 2 - 1) * j, cy: size / 2 + (rand() * 2 - 1) * j, r };
}

/** Images as the model's input: CHW in [−1, 1], concatenated. */
export function toModelInput(images: readonly RgbImage[]): Float32Array {
  if (images.length === 0) return new Float32Array(0);
  const { width: W, height: H } = images[0];
  const out = new Float32Array(images.length * 3 * H * W);
  images.forEach((im, b) => {
    if (im.width !== W || im.height !== H) throw new SoupError('ERR_SOUP_SHAPE_MISMATCH', `image ${b} is ${im.width}×${im.height}, image 0 is ${W}×${H}`);
    for (let c = 0; c < 3; c++) for (let p = 0; p < H * W; p++) out[(b * 3 + c) * H * W + p] = im.data[p * 3 + c] / 127.5 - 1;
  });
  return out;
}

/** The model's output (CHW, [−1, 1], concatenated) → RGB images 0..255 (clamped). */
export function fromModelOutput(x: Float32Array, count: number, size: number): RgbImage[] {
  const n = 3 * size * size;
  if (x.length !== count * n) throw new SoupError('ERR_SOUP_SHAPE_MISMATCH', `expected ${count}×3×${size}×${size} values, got ${x.length}`);
  const out: RgbImage[] = [];
  for (let b = 0; b < count; b++) {
    const data = new Float32Array(n);
    for (let c = 0; c < 3; c++) {
      for (let p = 0; p < size * size; p++) {
        const v = (x[b * n + c * size * size + p] + 1) * 127.5;
        data[p * 3 + c] = v < 0 ? 0 : v > 255 ? 255 : v;
      }
    }
    out.push({ width: size, height: size, data });
  }
  return out;
}

/** A seeded batch: same (seed, count, size) → the same captions and pixels. */
export function shapesBatch(seed: number, count: number, size = 16): { captions: string[]; images: RgbImage[] } {
  const rand = seededStream(seed);
  const captions: string[] = [];
  const images: RgbImage[] = [];
  for (let i = 0; i < count; i++) {
    const s = randomShapeSpec(rand, size);
    captions.push(captionOf(s));
    images.push(drawShape(s, size));
  }
  return { captions, images };
}

/** `count` random captions (no images), seeded. */
export function randomCaptions(seed: number, count: number): string[] {
  const rand = seededStream(seed);
  return Array.from({ length: count }, () => captionOf(randomShapeSpec(rand)));
}
