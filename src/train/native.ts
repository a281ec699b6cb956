// SPDX-License-Identifier: MIT
// The training functions of soup_torch.node (native/addon/torch/train.cc), typed, with errors mapped to
// SoupError and the caller's stack re-stamped.
import { fromNative } from '../errors.js';
import { torchAddon } from '../native/index.js';
import type { Tensor, TensorMap } from '../io/index.js';

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

export interface NativeGenOptions {
  maxNewTokens: number;
  minNewTokens?: number;
  doSample?: boolean;
  temperature?: number;
  topK?: number;
  topP?: number;
  eosTokenId?: number;
  padTokenId?: number;
  seed?: number;
}

export interface NativeGenResult {
  tokens: Int32Array;
  lengths: Int32Array;
  width: number;
}

export type TensorGroup = 'base' | 'lora' | 'refAdapter' | 'valueHead' | 'optimizer';

interface TrainAddon {
  lmCreate(baton: {
    config: NativeLlamaConfig;
    weights: TensorMap | null;
    dtype: string;
    seed: number;
    threads?: number;
    lora?: { r: number; loraAlpha: number; loraDropout: number; targetModules: string[]; useRslora: boolean } | null;
    valueHead: boolean;
    device?: 'cpu' | 'cuda';
    autocast?: boolean;
  }): Promise<ModelHandle>;
  lmLogits(h: ModelHandle, tokens: Int32Array, B: number, T: number, mask: Int32Array | null): Promise<Tensor>;
  lmGenerate(h: ModelHandle, tokens: Int32Array, B: number, P: number, mask: Int32Array | null, o: NativeGenOptions): Promise<NativeGenResult>;
  lmGetTensors(h: ModelHandle, group: TensorGroup): Promise<TensorMap>;
  lmSetTensors(h: ModelHandle, group: TensorGroup, t: TensorMap): Promise<void>;
  lmOp(h: ModelHandle, op: 'merge' | 'unmerge' | 'enableAdapter' | 'disableAdapter' | 'snapshotRef' | 'dispose'): Promise<void>;
  lmLossGrad(h: ModelHandle, tokens: Int32Array, B: number, T: number, mask: Int32Array | null, params: 'lora' | 'all'): Promise<{ loss: number; grads: TensorMap }>;
  lmTrainStep(h: ModelHandle, tokens: Int32Array, B: number, T: number, mask: Int32Array | null, o: Record<string, unknown>): Promise<{ loss: number; gradNorm: number }>;
  ppoRollout(h: ModelHandle, tokens: Int32Array, B: number, P: number, mask: Int32Array | null, o: NativeGenOptions & { refIsAdapter: boolean; seed: number }): Promise<NativeGenResult & { logprobs: Tensor; refLogprobs: Tensor; values: Tensor }>;
  ppoUpdate(h: ModelHandle, scores: Float64Array, o: Record<string, unknown>): Promise<Record<string, number>>;
  ppoMath(o: Record<string, unknown>): Record<string, Tensor | number>;
}

let cached: TrainAddon | undefined;
function addon(): TrainAddon {
  cached ??= torchAddon() as unknown as TrainAddon;
  return cached;
}

/** Calls a native function; errors become SoupErrors with this call's stack. */
export async function callNative<K extends keyof TrainAddon>(name: K, ...args: Parameters<TrainAddon[K]>): Promise<Awaited<ReturnType<TrainAddon[K]>>> {
  const stack = new Error().stack;
  try {
    // eslint-disable-next-line @typescript-eslint/no-explicit-any
    return await (addon()[name] as any)(...args);
  } catch (e) {
    throw fromNative(e, stack);
  }
}

export function callNativeSync<K extends keyof TrainAddon>(name: K, ...args: Parameters<TrainAddon[K]>): ReturnType<TrainAddon[K]> {
  const stack = new Error().stack;
  try {
    // eslint-disable-next-line @typescript-eslint/no-explicit-any
    return (addon()[name] as any)(...args);
  } catch (e) {
    throw fromNative(e, stack);
  }
}
