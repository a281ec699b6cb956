// SPDX-License-Identifier: MIT
// Exactly what soup_torch.node exports (onnxruntime-node's binding.ts idea), with the batons each
// function takes: the training core (native/addon/torch/train.cc), continuous control (control.cc),
// diffusion (diffusion.cc), the serving engine (serve.cc) and the CUDA kernels (cuda_binding.cc). Areas
// register through weak hooks, so a build may lack one: torchFunctions(area) says so (ERR_SOUP_NATIVE_LOAD).
// TS fills every option of a baton from its zod schema; native reads them as given.
import { SoupError } from '../errors.js';
import { callNative, callNativeSync } from './call.js';
import { torchAddon } from './index.js';
import type { MergeFilesBaton } from './core.js';
import type { NativeTensor, NativeTensorMap, TorchInfo } from './types.js';

// ---- training core: LLaMA + LoRA + value head, PPO (train.cc) --------------------------------------
/** Opaque handle of a native model (its own thread). */
export type ModelHandle = { readonly __brand: 'soup-model' };

export interface NativeLlamaConfig {
  vocabSize: number;
  hiddenSize: number;
  intermediateSize: number;
  numHiddenLayers: number;
  numAttentionHeads: number;
  numKeyValueHeads: number;
  rmsNormEps: number;
  ropeTheta: number;
  tieWordEmbeddings: boolean;
}

/** Generation settings (transformers' names), every one given: genOptions() (src/train/llama.ts) fills them. */
export interface NativeGenOptions {
  maxNewTokens: number;
  minNewTokens: number;
  doSample: boolean;
  temperature: number;
  topK: number;
  topP: number;
  /** Stop token; -1 never stops. */
  eosTokenId: number;
  padTokenId: number;
  /** Re-seed the model's generator first (absent: continue its stream). */
  seed?: number;
}

/** One AdamW step (train.cc JS_lmTrainStep): every field read as given; maxGradNorm 0 = no clipping. */
export interface AdamWBaton {
  lr: number;
  beta1: number;
  beta2: number;
  eps: number;
  weightDecay: number;
  maxGradNorm: number;
  /** 'all': every base weight (pre-training); 'lora': the adapter and value head. */
  params: 'all' | 'lora';
}

export interface NativeGenResult {
  tokens: Int32Array;
  lengths: Int32Array;
  width: number;
}

export type TensorGroup = 'base' | 'lora' | 'refAdapter' | 'valueHead' | 'optimizer';

export interface TrainFunctions {
  lmCreate(baton: {
    config: NativeLlamaConfig;
    weights: NativeTensorMap | null;
    dtype: string;
    seed: number;
    threads?: number;
    lora?: { r: number; loraAlpha: number; loraDropout: number; targetModules: string[]; useRslora: boolean } | null;
    valueHead: boolean;
    device?: 'cpu' | 'cuda';
    autocast?: boolean;
  }): Promise<ModelHandle>;
  lmLogits(h: ModelHandle, tokens: Int32Array, B: number, T: number, mask: Int32Array | null): Promise<NativeTensor>;
  lmGenerate(h: ModelHandle, tokens: Int32Array, B: number, P: number, mask: Int32Array | null, o: NativeGenOptions): Promise<NativeGenResult>;
  lmGetTensors(h: ModelHandle, group: TensorGroup): Promise<NativeTensorMap>;
  lmSetTensors(h: ModelHandle, group: TensorGroup, t: NativeTensorMap): Promise<void>;
  lmOp(h: ModelHandle, op: 'merge' | 'unmerge' | 'enableAdapter' | 'disableAdapter' | 'snapshotRef' | 'dispose'): Promise<void>;
  lmLossGrad(
    h: ModelHandle,
    tokens: Int32Array,
    B: number,
    T: number,
    mask: Int32Array | null,
    params: 'lora' | 'all',
  ): Promise<{ loss: number; grads: NativeTensorMap }>;
  lmTrainStep(h: ModelHandle, tokens: Int32Array, B: number, T: number, mask: Int32Array | null, o: AdamWBaton): Promise<{ loss: number; gradNorm: number }>;
  ppoRollout(
    h: ModelHandle,
    tokens: Int32Array,
    B: number,
    P: number,
    mask: Int32Array | null,
    o: NativeGenOptions & { refIsAdapter: boolean; seed: number },
  ): Promise<NativeGenResult & { logprobs: NativeTensor; refLogprobs: NativeTensor; values: NativeTensor }>;
  ppoUpdate(h: ModelHandle, scores: Float64Array, o: Record<string, unknown>): Promise<Record<string, number>>;
  ppoMath(o: Record<string, unknown>): Record<string, NativeTensor | number>;
}

// ---- continuous control (control.cc) ---------------------------------------------------------------
/** Opaque handle of a native control policy. */
export type ControlHandle = { readonly __brand: 'soup-control-policy' };

export interface ControlFunctions {
  ctlCreate(b: { obsDim: number; actDim: number; hidden: number[]; dtype: 'float32' | 'float64'; seed: number }): ControlHandle;
  ctlSetRollout(h: ControlHandle, numSteps: number, numEnvs: number): void;
  ctlAct(h: ControlHandle, obs: Float32Array, actions: Float32Array, t: number, deterministic: boolean, train: boolean): void;
  ctlFreeze(h: ControlHandle, frozen: boolean): void;
  ctlGetTensors(h: ControlHandle): NativeTensorMap;
  ctlSetTensors(h: ControlHandle, t: NativeTensorMap): void;
  ctlRollout(h: ControlHandle): { obs?: Float64Array; actions?: Float64Array; logprobs?: Float64Array; values?: Float64Array };
  ctlLoss(h: ControlHandle, batch: ControlBatch, hyper: NativeHyper): ControlLoss;
  ctlGae(b: {
    rewards: Float64Array;
    values: Float64Array;
    dones: Float64Array;
    lastValues: Float64Array;
    T: number;
    N: number;
    gamma: number;
    gaeLambda: number;
  }): { advantages: Float64Array; returns: Float64Array };
  ctlNormalizeRewards(b: { rewards: Float64Array; dones: Float64Array; T: number; N: number; gamma: number; clip: number }): {
    rewards: Float64Array;
    mean: number;
    var: number;
    count: number;
    acc: Float64Array;
  };
  ctlUpdate(
    h: ControlHandle,
    b: NativeHyper & {
      rewards: Float32Array;
      weights: Float64Array;
      terminated: Uint8Array;
      truncated: Uint8Array;
      finalObs: Float32Array;
      lastObs: Float32Array;
    },
  ): Promise<Record<string, number>>;
  ctlDispose(h: ControlHandle): void;
}

/** PPO hyper-parameters as native reads them, every one given: nativeHyper() (src/train/control.ts) fills them. */
export interface NativeHyper {
  gamma: number;
  gaeLambda: number;
  clipCoef: number;
  vfCoef: number;
  entCoef: number;
  maxGradNorm: number;
  learningRate: number;
  adamEps: number;
  rewardClip: number;
  updateEpochs: number;
  numMinibatches: number;
  clipVloss: boolean;
  normAdv: boolean;
  normReward: boolean;
}

/** One minibatch for `ControlPolicy.loss` (float64, row-major; obs already normalised). */
export interface ControlBatch {
  B: number;
  obs: Float64Array;
  actions: Float64Array;
  logprobs: Float64Array;
  advantages: Float64Array;
  returns: Float64Array;
  values: Float64Array;
}

export interface ControlLoss {
  loss: number;
  pgLoss: number;
  vLoss: number;
  entropy: number;
  approxKl: number;
  clipfrac: number;
  /** d loss / d parameters, in the order of `ControlPolicy.paramNames()`, flattened. */
  grad: Float64Array;
}

// ---- diffusion (diffusion.cc) ----------------------------------------------------------------------
export interface UNetConfig {
  imageSize: number;
  channels: number;
  ch0: number;
  ch1: number;
  tembDim: number;
  textDim: number;
  vocab: number;
  captionLen: number;
  heads: number;
  groups: number;
  /** Diffusion steps of the (cosine) schedule. */
  T: number;
}

/** Opaque handle of a native UNet (its own thread). */
export type DiffusionHandle = { readonly __brand: 'soup-diffusion' };
export type ParamSet = 'params' | 'ema';
export type ParamGroup = 'all' | 'finetune';

export interface UNetInfo {
  names: string[];
  shapes: number[][];
  /** The fine-tuning set: cross-attention + biases + norm scales. */
  finetune: string[];
  numel: number;
  finetuneNumel: number;
}

export interface DiffusionSampleOptions {
  /** DDIM steps (default 20). */
  steps?: number;
  /** Classifier-free guidance scale g: ε = ε_u + g·(ε_c − ε_u); 1 (default) = conditional only, no guidance. */
  guidance?: number;
  /** Clamp predicted x₀ to [−1, 1] (default true). */
  clip?: boolean;
  /** Sample with the EMA weights (default true). */
  useEma?: boolean;
  /** Images per native call (default 64). */
  batchSize?: number;
}

export interface DiffusionStepOptions {
  lr?: number;
  beta1?: number;
  beta2?: number;
  weightDecay?: number;
  emaDecay?: number;
  captionDropout?: number;
  maxGradNorm?: number;
  /** Train only cross-attention + biases + norm scales. */
  finetune?: boolean;
}

export interface DiffusionFunctions {
  dmCreate(b: { config: UNetConfig; seed: number; threads?: number; weights?: NativeTensorMap }): Promise<DiffusionHandle>;
  dmInfo(h: DiffusionHandle): Promise<UNetInfo>;
  dmGetTensors(h: DiffusionHandle, o: { set: ParamSet; group: ParamGroup }): Promise<NativeTensorMap>;
  dmSetTensors(h: DiffusionHandle, t: NativeTensorMap, o: { target: ParamSet | 'both'; partial: boolean }): Promise<void>;
  dmTrainStep(h: DiffusionHandle, x0: Float32Array, tokens: Int32Array, B: number, w: Float64Array | null, o: DiffusionStepOptions): Promise<{ loss: number }>;
  dmEps(h: DiffusionHandle, x: Float32Array, t: Int32Array, tokens: Int32Array, B: number, useEma: boolean): Promise<NativeTensor>;
  dmLoss(h: DiffusionHandle, x0: Float32Array, tokens: Int32Array, t: Int32Array, noise: Float32Array, B: number, useEma: boolean): Promise<NativeTensor>;
  dmSample(h: DiffusionHandle, tokens: Int32Array, B: number, noise: Float32Array, o: DiffusionSampleOptions): Promise<NativeTensor>;
  dmOp(h: DiffusionHandle, op: 'dispose' | 'copyToEma' | 'resetOptimizer' | 'seed', arg?: number): Promise<void>;
  dmSchedule(T: number): Float64Array;
  dmTimesteps(T: number, steps: number): Int32Array;
  dmNoise(seeds: Float64Array, C: number, H: number, W: number): NativeTensor;
}

// ---- serving engine (serve.cc) ---------------------------------------------------------------------
/** Opaque handle of a native serving engine (its own thread). */
export type EngineHandle = { readonly __brand: 'soup-serve-engine' };
/** serveCreate: the frozen base, and N experts' LoRA modules with their scalings sᵢ. */
export interface ServeCreateBaton {
  config: NativeLlamaConfig;
  weights: NativeTensorMap;
  dtype: string;
  device: 'cpu' | 'cuda';
  autocast: boolean;
  threads?: number;
  experts: { name: string; modules: Record<string, { A: NativeTensor; B: NativeTensor; scaling: number }> }[];
}

/** serveAdd: one sequence joining the batch, with its own λ, mode and sampling settings (all given). */
export interface ServeSeqBaton {
  id: number;
  tokens: Int32Array;
  lambda: Float64Array;
  mode: 'soup' | 'soup-ab' | 'ensemble';
  temperature: number;
  topP: number;
  topK: number;
  seed: number;
  maxTokens: number;
}

export interface NativeSamples {
  ids: Int32Array;
  tokens: Int32Array;
  logits?: NativeTensor;
}
export interface ServeFunctions {
  serveCreate(b: ServeCreateBaton): Promise<EngineHandle>;
  serveAdd(h: EngineHandle, seqs: ServeSeqBaton[], wantLogits: boolean): Promise<NativeSamples>;
  serveStep(h: EngineHandle, wantLogits: boolean): Promise<NativeSamples>;
  serveRemove(h: EngineHandle, ids: Int32Array): Promise<void>;
  serveInfo(h: EngineHandle): Promise<{ sequences: number; rows: number; abUnavailable: string; maxRank: number }>;
  serveDispose(h: EngineHandle): Promise<void>;
}

// ---- CUDA kernels (cuda_binding.cc, when built with nvcc) ------------------------------------------
/** Storage dtype codes shared with native code: 0=float32, 1=float16, 2=bfloat16, 3=float64. */
export type DtypeCode = 0 | 1 | 2 | 3;

export interface InterpolateCudaBaton {
  /** N lists of T host tensors (sources[i][t] is tensor t of source i). */
  sources: ArrayBufferView[][];
  /** T input dtype codes (all N sources of tensor t share it). */
  inDtypes: Int32Array;
  /** T host outputs; each one's byte length fixes the tensor's element count. */
  outs: ArrayBufferView[];
  outDtypes: Int32Array;
  /** N weights (rounded once to fp32 for fp32/fp16/bf16 inputs). */
  weights: Float64Array;
  /** [0] cancel flag set to 1 by JS; [1] output bytes done, added to by native code. */
  control?: Float64Array;
}

export interface MergeFilesCudaTensor {
  numel: number;
  inDtype: number;
  outDtype: number;
  /** N indices into `files`. */
  srcFile: Int32Array;
  /** N absolute byte offsets of the tensor's data in its source file. */
  srcOffset: Float64Array;
}

export interface MergeFilesCudaBaton {
  files: string[];
  /** Output path (a temporary one: the caller renames it). */
  out: string;
  /** Written first; the tensors follow contiguously, in `tensors` order. */
  header: Uint8Array;
  weights: Float64Array;
  tensors: MergeFilesCudaTensor[];
  /** Input bytes per source per pipeline window (default 64 MiB; capped so pinned memory stays <= 1.5 GiB). */
  windowBytes?: number;
  control?: Float64Array;
}

export interface InterpolateCudaResult {
  seconds: number;
  kernel: string;
}

export interface MergeFilesCudaResult extends InterpolateCudaResult {
  bytesRead: number;
  bytesWritten: number;
}

export interface CudaFunctions {
  cudaInfo(): { compiled: boolean; devices: number; reason: string; device: string };
  cudaResidentCreate(b: {
    sources: ArrayBufferView[][];
    inDtypes: Int32Array;
    outDtypes: Int32Array;
  }): Promise<{ id: number; deviceBytes: number; seconds: number }>;
  cudaResidentRun(b: { id: number; weights: Float64Array; outs: ArrayBufferView[]; control?: Float64Array }): Promise<InterpolateCudaResult>;
  cudaResidentFree(id: number): boolean;
  interpolateCuda(b: InterpolateCudaBaton): Promise<InterpolateCudaResult>;
  /** Takes the CPU merge's baton too (one parser, native/addon/common/merge_baton.h); refuses its LoRA 'dense' tensors. */
  mergeFilesCuda(b: MergeFilesCudaBaton | MergeFilesBaton): Promise<MergeFilesCudaResult>;
}

export interface TorchAddon extends TrainFunctions, ControlFunctions, DiffusionFunctions, ServeFunctions, Partial<CudaFunctions> {
  info(): TorchInfo;
  setNumThreads(n: number): void;
}

/** Each area's first export (what tells a build with that area) and the source that registers it. */
const AREAS = {
  train: ['lmCreate', 'native/addon/torch/train.cc'],
  control: ['ctlCreate', 'native/addon/torch/control.cc'],
  diffusion: ['dmCreate', 'native/addon/torch/diffusion.cc'],
  serve: ['serveCreate', 'native/addon/torch/serve.cc'],
} as const;

/** The torch addon, checked to export `area`'s functions (ERR_SOUP_NATIVE_LOAD naming the missing source). */
export function torchFunctions(area: keyof typeof AREAS): TorchAddon {
  const t = torchAddon();
  const [probe, source] = AREAS[area];
  if (typeof t[probe] !== 'function')
    throw new SoupError('ERR_SOUP_NATIVE_LOAD', `the torch addon was built without ${source}: rebuild it with \`npm run build\``);
  return t;
}

/** The functions of the four areas, by name. */
type AreaFunctions = TrainFunctions & ControlFunctions & DiffusionFunctions & ServeFunctions;
type AreaName = keyof AreaFunctions;
type Args<K extends AreaName> = Parameters<AreaFunctions[K]>;
type Result<K extends AreaName> = ReturnType<AreaFunctions[K]>;

function areaOf(name: AreaName): keyof typeof AREAS {
  return name.startsWith('ctl') ? 'control' : name.startsWith('dm') ? 'diffusion' : name.startsWith('serve') ? 'serve' : 'train';
}

function bound<K extends AreaName>(name: K): (...args: Args<K>) => Result<K> {
  const t = torchFunctions(areaOf(name));
  return (...args) => (t[name] as (...a: Args<K>) => Result<K>)(...args);
}

/** Calls the torch addon's `name` (its area checked); errors become SoupErrors with this call's stack. */
export async function callTorch<K extends AreaName>(name: K, ...args: Args<K>): Promise<Awaited<Result<K>>> {
  const callSite = new Error();
  // a generic K's result type does not narrow: the declarations above are what types each call
  return callNative(() => bound(name)(...args) as unknown as Promise<Awaited<Result<K>>>, {}, callSite);
}

/** callTorch for the synchronous functions (control's acting, the diffusion schedule, PPO math). */
export function callTorchSync<K extends AreaName>(name: K, ...args: Args<K>): Result<K> {
  const callSite = new Error();
  return callNativeSync(() => bound(name)(...args), callSite);
}
