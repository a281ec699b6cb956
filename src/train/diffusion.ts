// SPDX-License-Identifier: MIT
// Text-to-image diffusion (paper App. E in miniature): a small conditional UNet living in native code on
// its own thread (native/torch/diffusion.h), its checkpoints, and the App. E procedure as a trainer:
// generate K images, score, keep the best 50%, rescale (min 0, mean 1), fine-tune only cross-attention +
// biases + norm scales with the reward-weighted loss L = E[r(x₀)·‖ε_θ(x_t, t, c) − ε‖²]. Soups are
// computed on the TensorMaps of `getTensors()` with src/soup's interpolate(). Design: docs/diffusion.md.
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { SoupError, fromNative } from '../errors.js';
import { readSafetensors, writeSafetensors, type Tensor, type TensorMap } from '../io/index.js';
import { callNative, callNativeSync } from '../native/call.js';
import {
  torchFunctions,
  type DiffusionHandle,
  type DiffusionSampleOptions,
  type DiffusionStepOptions,
  type ParamGroup,
  type ParamSet,
  type TorchAddon,
  type UNetConfig,
  type UNetInfo,
} from '../native/torch.js';
import { CAPTION_LEN, SHAPES_VOCAB, fromModelOutput, seededStream, shapesBatch, toModelInput, tokenizeCaptions, type RgbImage } from '../data/shapes.js';

export type { UNetConfig, UNetInfo, ParamSet, ParamGroup, DiffusionSampleOptions, DiffusionStepOptions } from '../native/torch.js';

/** The miniature of docs/diffusion.md: channels (32, 64), attention at 8×8, the shapes vocabulary. */
export const DEFAULT_UNET: UNetConfig = {
  imageSize: 16,
  channels: 3,
  ch0: 32,
  ch1: 64,
  tembDim: 128,
  textDim: 64,
  vocab: SHAPES_VOCAB.length,
  captionLen: CAPTION_LEN,
  heads: 4,
  groups: 8,
  T: 1000,
};

export const UNET_ARCHITECTURE = 'rsoup-cond-unet';

type Handle = DiffusionHandle;

// functions and batons declared in src/native/torch.ts
const addon = (): TorchAddon => torchFunctions('diffusion');

// Native reads every option as given: these are the defaults (docs/diffusion.md).
const DIFFUSION_STEP_DEFAULTS: Required<DiffusionStepOptions> & { eps: number } = {
  lr: 1e-3,
  beta1: 0.9,
  beta2: 0.999,
  eps: 1e-8,
  weightDecay: 0,
  emaDecay: 0.995,
  captionDropout: 0.1,
  maxGradNorm: 1,
  finetune: false,
};
const DIFFUSION_SAMPLE_DEFAULTS = { steps: 20, guidance: 1, clip: true, useEma: true };
const defined = <T extends object>(o: T): Partial<T> => Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;

async function call<T>(fn: () => Promise<T>): Promise<T> {
  return callNative(fn, {}, new Error());
}
function callSync<T>(fn: () => T): T {
  return callNativeSync(fn, new Error());
}

/** ᾱ_t of the cosine schedule, t = 0..T−1 (float64, computed natively). */
export function cosineAlphaBar(T: number): Float64Array {
  return callSync(() => addon().dmSchedule(T));
}
/** DDIM timesteps ("trailing": starts at T−1), S of them. */
export function ddimTimesteps(T: number, steps: number): Int32Array {
  return callSync(() => addon().dmTimesteps(T, steps));
}
/** Initial noise [n, C, S, S]: image i from its own generator seeded with seeds[i]. */
export function noiseFromSeeds(seeds: readonly number[], config: Pick<UNetConfig, 'channels' | 'imageSize'> = DEFAULT_UNET): Float32Array {
  for (const s of seeds)
    if (!Number.isSafeInteger(s) || s < 0) throw new SoupError('ERR_SOUP_INVALID_ARG', `noise seeds must be non-negative integers, got ${s}`);
  return callSync(() => addon().dmNoise(Float64Array.from(seeds), config.channels, config.imageSize, config.imageSize)).data as Float32Array;
}

function checkConfig(c: UNetConfig, src: string): UNetConfig {
  for (const k of Object.keys(DEFAULT_UNET) as Array<keyof UNetConfig>) {
    const v = c[k];
    if (!Number.isInteger(v) || v < 1) throw new SoupError('ERR_SOUP_CONFIG', `${src}: field '${k}' must be a positive integer, got ${JSON.stringify(v)}`);
  }
  return c;
}

/** A conditional UNet in native memory. Dispose it (or use `await using`). */
export class DiffusionModel {
  private disposed = false;
  private constructor(
    private readonly h: Handle,
    readonly config: UNetConfig,
  ) {}

  static async create(o: { config?: Partial<UNetConfig>; seed?: number; threads?: number; weights?: TensorMap } = {}): Promise<DiffusionModel> {
    const config = checkConfig({ ...DEFAULT_UNET, ...(o.config ?? {}) }, 'config');
    const h = await call(() =>
      addon().dmCreate({ config, seed: o.seed ?? 0, ...(o.threads ? { threads: o.threads } : {}), ...(o.weights ? { weights: o.weights } : {}) }),
    );
    return new DiffusionModel(h, config);
  }

  /** Loads <dir>/config.json + <dir>/model.safetensors; another architecture is a clear error. */
  static async load(dir: string, o: { seed?: number; threads?: number } = {}): Promise<DiffusionModel> {
    const cfgPath = join(dir, 'config.json');
    if (!existsSync(cfgPath)) throw new SoupError('ERR_SOUP_IO', `${cfgPath}: no such file (a diffusion checkpoint has config.json and model.safetensors)`);
    let raw: Record<string, unknown>;
    try {
      raw = JSON.parse(readFileSync(cfgPath, 'utf8')) as Record<string, unknown>;
    } catch (e) {
      throw new SoupError('ERR_SOUP_FORMAT', `${cfgPath}: not valid JSON (${(e as Error).message})`);
    }
    const arch = Array.isArray(raw.architectures) ? String(raw.architectures[0]) : String(raw.model_type ?? 'unknown');
    if (raw.model_type !== UNET_ARCHITECTURE)
      throw new SoupError('ERR_SOUP_CONFIG', `${cfgPath}: architecture ${JSON.stringify(arch)} is not a ${UNET_ARCHITECTURE} diffusion checkpoint`);
    const config = checkConfig({ ...DEFAULT_UNET, ...(raw.unet as Partial<UNetConfig>) }, `${cfgPath}: unet`);
    const wPath = join(dir, 'model.safetensors');
    if (!existsSync(wPath)) throw new SoupError('ERR_SOUP_IO', `${wPath}: no such file`);
    const { tensors } = await readSafetensors(wPath);
    try {
      return await DiffusionModel.create({ config, weights: tensors, ...o });
    } catch (e) {
      if (e instanceof SoupError) throw new SoupError(e.code, `${wPath}: ${e.message}`, { cause: e });
      throw e;
    }
  }

  /** Writes config.json and model.safetensors (the EMA weights by default: the model one samples with). */
  async save(dir: string, o: { set?: ParamSet; meta?: Record<string, unknown> } = {}): Promise<void> {
    mkdirSync(dir, { recursive: true });
    const t = await this.getTensors({ set: o.set ?? 'ema' });
    await writeSafetensors(join(dir, 'model.safetensors'), t, { metadata: { format: 'pt' } });
    writeFileSync(
      join(dir, 'config.json'),
      `${JSON.stringify({ model_type: UNET_ARCHITECTURE, architectures: ['RsoupCondUNet'], unet: this.config, vocab: SHAPES_VOCAB, ...(o.meta ?? {}) }, null, 2)}\n`,
    );
  }

  private handle(): Handle {
    if (this.disposed) throw new SoupError('ERR_SOUP_INVALID_ARG', 'the diffusion model was disposed');
    return this.h;
  }

  info(): Promise<UNetInfo> {
    return call(() => addon().dmInfo(this.handle()));
  }
  getTensors(o: { set?: ParamSet; group?: ParamGroup } = {}): Promise<TensorMap> {
    return call(() => addon().dmGetTensors(this.handle(), { set: o.set ?? 'ema', group: o.group ?? 'all' }));
  }
  /** Sets parameters (both the raw and the EMA copy by default); `partial` allows a subset (a soup of the fine-tuned set). */
  setTensors(t: TensorMap, o: { target?: ParamSet | 'both'; partial?: boolean } = {}): Promise<void> {
    return call(() => addon().dmSetTensors(this.handle(), t, { target: o.target ?? 'both', partial: o.partial ?? false }));
  }
  private checkBatch(x: Float32Array | null, tokens: Int32Array, B: number): void {
    const per = this.config.channels * this.config.imageSize ** 2;
    if (!Number.isInteger(B) || B < 1) throw new SoupError('ERR_SOUP_INVALID_ARG', `batch must be a positive integer, got ${B}`);
    if (x && x.length !== B * per) throw new SoupError('ERR_SOUP_SHAPE_MISMATCH', `images: expected ${B}×${per} values, got ${x.length}`);
    if (tokens.length !== B * this.config.captionLen)
      throw new SoupError('ERR_SOUP_SHAPE_MISMATCH', `tokens: expected ${B}×${this.config.captionLen} ids, got ${tokens.length}`);
  }
  /** ε_θ(x_t, t, c) (no gradient). */
  async eps(x: Float32Array, t: Int32Array, tokens: Int32Array, B: number, useEma = true): Promise<Float32Array> {
    this.checkBatch(x, tokens, B);
    return (await call(() => addon().dmEps(this.handle(), x, t, tokens, B, useEma))).data as Float32Array;
  }
  /** Per-example denoising loss at given t and ε (no gradient): mean over pixels of (ε_θ(x_t) − ε)². */
  async loss(x0: Float32Array, tokens: Int32Array, t: Int32Array, noise: Float32Array, B: number, useEma = false): Promise<Float32Array> {
    this.checkBatch(x0, tokens, B);
    return (await call(() => addon().dmLoss(this.handle(), x0, tokens, t, noise, B, useEma))).data as Float32Array;
  }
  /** One AdamW step on mean_b w_b·loss_b with random t, ε and caption dropout (weights null = 1). */
  async trainStep(x0: Float32Array, tokens: Int32Array, B: number, weights: Float64Array | null, o: DiffusionStepOptions = {}): Promise<number> {
    this.checkBatch(x0, tokens, B);
    return (await call(() => addon().dmTrainStep(this.handle(), x0, tokens, B, weights, { ...DIFFUSION_STEP_DEFAULTS, ...defined(o) }))).loss;
  }
  /** DDIM (η = 0) from the given initial noise: images in [−1, 1], CHW concatenated. */
  async sampleFromNoise(tokens: Int32Array, B: number, noise: Float32Array, o: DiffusionSampleOptions = {}): Promise<Float32Array> {
    this.checkBatch(noise, tokens, B);
    const { steps, guidance, clip, useEma } = { ...DIFFUSION_SAMPLE_DEFAULTS, ...defined(o) };
    return (await call(() => addon().dmSample(this.handle(), tokens, B, noise, { steps, guidance, clip, useEma }))).data as Float32Array;
  }
  /** Images for captions, image i from its own seed (the same caption and seed give the same image). */
  async generate(captions: readonly string[], seeds: readonly number[], o: DiffusionSampleOptions = {}): Promise<RgbImage[]> {
    if (seeds.length !== captions.length) throw new SoupError('ERR_SOUP_INVALID_ARG', `${captions.length} captions but ${seeds.length} seeds`);
    const tokens = tokenizeCaptions(captions);
    const bs = o.batchSize ?? 64;
    const S = this.config.imageSize,
      L = this.config.captionLen,
      per = 3 * S * S;
    const out: RgbImage[] = [];
    for (let i = 0; i < captions.length; i += bs) {
      const n = Math.min(bs, captions.length - i);
      const noise = noiseFromSeeds(seeds.slice(i, i + n), this.config);
      const x = await this.sampleFromNoise(tokens.slice(i * L, (i + n) * L), n, noise, o);
      if (x.length !== n * per) throw new SoupError('ERR_SOUP_INTERNAL', 'sampler returned a wrong size');
      out.push(...fromModelOutput(x, n, S));
    }
    return out;
  }
  seed(seed: number): Promise<void> {
    return call(() => addon().dmOp(this.handle(), 'seed', seed));
  }
  resetOptimizer(): Promise<void> {
    return call(() => addon().dmOp(this.handle(), 'resetOptimizer'));
  }
  copyToEma(): Promise<void> {
    return call(() => addon().dmOp(this.handle(), 'copyToEma'));
  }
  async dispose(): Promise<void> {
    if (this.disposed) return;
    this.disposed = true;
    await call(() => addon().dmOp(this.h, 'dispose'));
  }
  async [Symbol.asyncDispose](): Promise<void> {
    await this.dispose();
  }
}

// ---------------------------------------------------------------------------------------------------
// App. E: selection and rescaling of the model's own samples

/**
 * Keep the best ⌈K/2⌉ samples (ties broken by index), rescale linearly so the kept rewards have min 0
 * and mean 1: r = (R − min) / (mean − min). All-equal kept rewards get weight 1.
 */
export function topHalfWeights(scores: ArrayLike<number>): { indices: number[]; weights: Float64Array } {
  const n = scores.length;
  if (n < 2) throw new SoupError('ERR_SOUP_INVALID_ARG', `top-50% selection needs at least 2 samples, got ${n}`);
  for (let i = 0; i < n; i++) if (!Number.isFinite(scores[i])) throw new SoupError('ERR_SOUP_REWARD', `score ${i} is not finite (${scores[i]})`);
  const order = Array.from({ length: n }, (_, i) => i).sort((a, b) => scores[b] - scores[a] || a - b);
  const indices = order.slice(0, Math.ceil(n / 2));
  let min = Infinity,
    mean = 0;
  for (const i of indices) {
    min = Math.min(min, scores[i]);
    mean += scores[i];
  }
  mean /= indices.length;
  const weights = Float64Array.from(indices, (i) => (mean > min ? (scores[i] - min) / (mean - min) : 1));
  return { indices, weights };
}

/** MORL's scalar reward: Σ μ_k z_k with each reward z-normalised over the K samples (mean 0, std 1). */
export function normalisedAverage(scores: ArrayLike<number>[], mu: readonly number[]): Float64Array {
  if (scores.length !== mu.length || scores.length === 0) throw new SoupError('ERR_SOUP_INVALID_ARG', `${scores.length} rewards but ${mu.length} weights`);
  const n = scores[0].length;
  const out = new Float64Array(n);
  const wsum = mu.reduce((a, b) => a + b, 0);
  scores.forEach((s, k) => {
    if (s.length !== n) throw new SoupError('ERR_SOUP_SHAPE_MISMATCH', `reward ${k} has ${s.length} scores, reward 0 has ${n}`);
    let m = 0;
    for (let i = 0; i < n; i++) m += s[i];
    m /= n;
    let v = 0;
    for (let i = 0; i < n; i++) v += (s[i] - m) ** 2;
    const sd = Math.sqrt(v / n) || 1;
    for (let i = 0; i < n; i++) out[i] += (mu[k] / wsum) * ((s[i] - m) / sd);
  });
  return out;
}

/** The control fine-tune: a random half with random weights (rescaled the same way). */
export function controlWeights(n: number, seed: number): { indices: number[]; weights: Float64Array } {
  const rand = seededStream(seed);
  const idx = Array.from({ length: n }, (_, i) => i);
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1));
    [idx[i], idx[j]] = [idx[j], idx[i]];
  }
  const indices = idx.slice(0, Math.ceil(n / 2));
  const raw = indices.map(() => rand());
  const min = Math.min(...raw),
    mean = raw.reduce((a, b) => a + b, 0) / raw.length;
  return { indices, weights: Float64Array.from(raw, (r) => (r - min) / (mean - min)) };
}

// ---------------------------------------------------------------------------------------------------
// the trainer

export interface DiffusionPretrainOptions extends DiffusionStepOptions {
  steps: number;
  batchSize?: number;
  seed?: number;
  onStep?: (step: number, loss: number) => void;
  signal?: AbortSignal;
}

export interface DiffusionFinetuneOptions extends DiffusionStepOptions {
  steps: number;
  batchSize?: number;
  seed?: number;
  onStep?: (step: number, loss: number) => void;
  signal?: AbortSignal;
}

function aborted(signal?: AbortSignal): void {
  if (signal?.aborted) throw new SoupError('ERR_SOUP_ABORTED', 'diffusion training aborted', { cause: signal.reason });
}

/** DDPM pre-training on the procedural shapes and reward-weighted fine-tuning (App. E, eq. 19). */
export class DiffusionTrainer {
  constructor(readonly model: DiffusionModel) {}

  /** Pre-training on fresh shapes batches (seed + step), all parameters, caption dropout 10%, EMA 0.995. */
  async pretrain(o: DiffusionPretrainOptions): Promise<number[]> {
    const B = o.batchSize ?? 64,
      seed = o.seed ?? 0,
      S = this.model.config.imageSize;
    const losses: number[] = [];
    await this.model.seed(seed);
    for (let step = 0; step < o.steps; step++) {
      aborted(o.signal);
      const { captions, images } = shapesBatch(seed * 1_000_003 + step, B, S);
      const loss = await this.model.trainStep(toModelInput(images), tokenizeCaptions(captions), B, null, {
        lr: 1e-3,
        weightDecay: 0.01,
        emaDecay: 0.995,
        captionDropout: 0.1,
        ...o,
        finetune: false,
      });
      losses.push(loss);
      o.onStep?.(step, loss);
    }
    return losses;
  }

  /**
   * Reward-weighted fine-tuning of cross-attention + biases + norm scales on (images, captions, weights):
   * minibatches drawn with replacement from the set, seeded.
   */
  async finetune(images: readonly RgbImage[], captions: readonly string[], weights: ArrayLike<number>, o: DiffusionFinetuneOptions): Promise<number[]> {
    const n = images.length;
    if (captions.length !== n || weights.length !== n)
      throw new SoupError('ERR_SOUP_INVALID_ARG', `${n} images, ${captions.length} captions and ${weights.length} weights: expected one of each per sample`);
    if (n === 0) throw new SoupError('ERR_SOUP_INVALID_ARG', 'fine-tuning needs at least one image');
    for (let i = 0; i < n; i++)
      if (!(Number.isFinite(weights[i]) && weights[i] >= 0))
        throw new SoupError('ERR_SOUP_INVALID_ARG', `weight ${i} must be finite and >= 0, got ${weights[i]}`);
    const x = toModelInput(images);
    const tok = tokenizeCaptions(captions);
    const B = Math.min(o.batchSize ?? 32, n),
      seed = o.seed ?? 0,
      per = x.length / n,
      L = this.model.config.captionLen;
    const rand = seededStream(seed);
    await this.model.seed(seed);
    await this.model.resetOptimizer();
    const losses: number[] = [];
    const xb = new Float32Array(B * per),
      tb = new Int32Array(B * L),
      wb = new Float64Array(B);
    for (let step = 0; step < o.steps; step++) {
      aborted(o.signal);
      for (let b = 0; b < B; b++) {
        const i = Math.floor(rand() * n);
        xb.set(x.subarray(i * per, (i + 1) * per), b * per);
        tb.set(tok.subarray(i * L, (i + 1) * L), b * L);
        wb[b] = weights[i];
      }
      const loss = await this.model.trainStep(xb, tb, B, wb, { lr: 1e-3, emaDecay: 0, captionDropout: 0.1, ...o, finetune: true });
      losses.push(loss);
      o.onStep?.(step, loss);
    }
    return losses;
  }
}
