// SPDX-License-Identifier: MIT
// CausalLM: a LLaMA-architecture model living in native code (its own thread), with an optional LoRA
// adapter (peft semantics and files) and value head (trl). TypeScript holds the config, the tokenizer
// and the files; tensors stay native.
import { mulberry32 } from '../util/random.js';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { Tokenizer } from 'tokenizers';
import { SoupError } from '../errors.js';
import { loadModelDir, readPeftAdapter, saveModelDir, writePeftAdapter, type TensorMap } from '../io/index.js';
import { callNative, type ModelHandle, type NativeGenOptions, type NativeLlamaConfig, type TensorGroup } from './native.js';

export type ComputeDType = 'float32' | 'float64' | 'bfloat16' | 'float16';

export interface LlamaConfig extends NativeLlamaConfig {
  bosTokenId?: number;
  eosTokenId?: number;
  padTokenId?: number;
  maxPositionEmbeddings?: number;
}

/** peft LoraConfig fields (peft names). */
export interface LoraOptions {
  r?: number;
  lora_alpha?: number;
  lora_dropout?: number;
  target_modules?: string[];
  use_rslora?: boolean;
  bias?: 'none';
}

export const LLAMA_LORA_MODULES = ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'] as const;

export interface LoadOptions {
  /** Compute (and storage) dtype of the base weights; LoRA and the value head stay fp32 (fp64 for fp64). */
  dtype?: ComputeDType;
  /** Where the model runs. 'cuda' needs a libtorch with CUDA and a GPU (else ERR_SOUP_NO_CUDA). */
  device?: 'cpu' | 'cuda';
  /** CUDA only: run the matmuls in bf16 (torch.autocast semantics) for float32 models; default true. */
  autocast?: boolean;
  /** A fresh adapter (peft LoraConfig fields) or a PEFT adapter dir to start from (the Alpaca case). */
  lora?: LoraOptions | string;
  valueHead?: boolean;
  seed?: number;
  /** libtorch threads of this model's native thread (default: all cores). */
  threads?: number;
  /** Load <dir>/tokenizer.json (default true: a missing tokenizer is an error). */
  tokenizer?: boolean;
}

const num = (o: Record<string, unknown>, k: string, src: string, def?: number): number => {
  const v = o[k];
  if (v === undefined || v === null) {
    if (def !== undefined) return def;
    throw new SoupError('ERR_SOUP_CONFIG', `${src}: missing field '${k}'`);
  }
  if (typeof v !== 'number' || !Number.isFinite(v)) throw new SoupError('ERR_SOUP_CONFIG', `${src}: field '${k}' must be a number, got ${JSON.stringify(v)}`);
  return v;
};

function checkDevice(d: unknown): void {
  if (d !== undefined && d !== 'cpu' && d !== 'cuda') throw new SoupError('ERR_SOUP_CONFIG', `device must be 'cpu' or 'cuda', got ${JSON.stringify(d)}`);
}

/** Reads a Hugging Face config.json object; only LlamaForCausalLM is supported. */
export function llamaConfigFromHF(c: Record<string, unknown>, src = 'config.json'): LlamaConfig {
  const arch = Array.isArray(c.architectures) ? (c.architectures as unknown[]).map(String) : [];
  const type = typeof c.model_type === 'string' ? c.model_type : undefined;
  if (type !== 'llama' && !arch.includes('LlamaForCausalLM')) {
    throw new SoupError(
      'ERR_SOUP_CONFIG',
      `${src}: unsupported architecture ${JSON.stringify(arch[0] ?? type ?? 'unknown')} (model_type ${JSON.stringify(type)}): only LlamaForCausalLM (model_type "llama") is supported`,
    );
  }
  if (c.rope_scaling !== undefined && c.rope_scaling !== null) throw new SoupError('ERR_SOUP_CONFIG', `${src}: rope_scaling is not supported`);
  if (c.hidden_act !== undefined && c.hidden_act !== 'silu')
    throw new SoupError('ERR_SOUP_CONFIG', `${src}: hidden_act ${JSON.stringify(c.hidden_act)} is not supported (silu)`);
  const heads = num(c, 'num_attention_heads', src);
  const eos = c.eos_token_id;
  return {
    vocabSize: num(c, 'vocab_size', src),
    hiddenSize: num(c, 'hidden_size', src),
    intermediateSize: num(c, 'intermediate_size', src),
    numHiddenLayers: num(c, 'num_hidden_layers', src),
    numAttentionHeads: heads,
    numKeyValueHeads: num(c, 'num_key_value_heads', src, heads),
    rmsNormEps: num(c, 'rms_norm_eps', src, 1e-6),
    ropeTheta: num(c, 'rope_theta', src, 10000),
    tieWordEmbeddings: c.tie_word_embeddings === true,
    bosTokenId: typeof c.bos_token_id === 'number' ? c.bos_token_id : undefined,
    eosTokenId: typeof eos === 'number' ? eos : Array.isArray(eos) && typeof eos[0] === 'number' ? eos[0] : undefined,
    padTokenId: typeof c.pad_token_id === 'number' ? c.pad_token_id : undefined,
    maxPositionEmbeddings: typeof c.max_position_embeddings === 'number' ? c.max_position_embeddings : undefined,
  };
}

/** The config.json transformers writes for this model. */
export function llamaConfigToHF(c: LlamaConfig, dtype: ComputeDType = 'float32'): Record<string, unknown> {
  return {
    architectures: ['LlamaForCausalLM'],
    model_type: 'llama',
    vocab_size: c.vocabSize,
    hidden_size: c.hiddenSize,
    intermediate_size: c.intermediateSize,
    num_hidden_layers: c.numHiddenLayers,
    num_attention_heads: c.numAttentionHeads,
    num_key_value_heads: c.numKeyValueHeads,
    rms_norm_eps: c.rmsNormEps,
    rope_theta: c.ropeTheta,
    tie_word_embeddings: c.tieWordEmbeddings,
    hidden_act: 'silu',
    max_position_embeddings: c.maxPositionEmbeddings ?? 2048,
    bos_token_id: c.bosTokenId ?? 1,
    eos_token_id: c.eosTokenId ?? 2,
    ...(c.padTokenId !== undefined ? { pad_token_id: c.padTokenId } : {}),
    torch_dtype: dtype,
  };
}

/** peft's adapter_config.json for a LoRA on a LLaMA causal LM. */
export function peftAdapterConfig(l: Required<Omit<LoraOptions, 'bias'>>, baseModel = ''): Record<string, unknown> {
  return {
    alpha_pattern: {},
    auto_mapping: null,
    base_model_name_or_path: baseModel,
    bias: 'none',
    fan_in_fan_out: false,
    inference_mode: true,
    init_lora_weights: true,
    layer_replication: null,
    layers_pattern: null,
    layers_to_transform: null,
    loftq_config: {},
    lora_alpha: l.lora_alpha,
    lora_dropout: l.lora_dropout,
    megatron_config: null,
    megatron_core: 'megatron.core',
    modules_to_save: null,
    peft_type: 'LORA',
    r: l.r,
    rank_pattern: {},
    revision: null,
    target_modules: [...l.target_modules],
    task_type: 'CAUSAL_LM',
    use_dora: false,
    use_rslora: l.use_rslora,
  };
}

/** Validates a peft LoRA config (from adapter_config.json or user options) against LLaMA's modules. */
export function normalizeLora(l: LoraOptions | Record<string, unknown>, src = 'lora'): Required<Omit<LoraOptions, 'bias'>> {
  const o = l as Record<string, unknown>;
  if (o.peft_type !== undefined && o.peft_type !== 'LORA')
    throw new SoupError('ERR_SOUP_CONFIG', `${src}: peft_type ${JSON.stringify(o.peft_type)} is not supported (LORA)`);
  if (o.fan_in_fan_out === true) throw new SoupError('ERR_SOUP_CONFIG', `${src}: fan_in_fan_out adapters (GPT-2 Conv1D) do not fit LLaMA's Linear layers`);
  if (o.use_dora === true) throw new SoupError('ERR_SOUP_CONFIG', `${src}: DoRA adapters are not supported`);
  if (o.bias !== undefined && o.bias !== 'none') throw new SoupError('ERR_SOUP_CONFIG', `${src}: bias ${JSON.stringify(o.bias)} is not supported (none)`);
  const r = o.r === undefined ? 8 : Number(o.r);
  const targets = o.target_modules === undefined || o.target_modules === null ? ['q_proj', 'v_proj'] : o.target_modules;
  if (!Array.isArray(targets)) throw new SoupError('ERR_SOUP_CONFIG', `${src}: target_modules must be a list of module names`);
  for (const t of targets) {
    if (!(LLAMA_LORA_MODULES as readonly string[]).includes(String(t))) {
      throw new SoupError(
        'ERR_SOUP_CONFIG',
        `${src}: target_modules entry ${JSON.stringify(t)} matches no module of LlamaForCausalLM (${LLAMA_LORA_MODULES.join(', ')})`,
      );
    }
  }
  if (!Number.isInteger(r) || r < 1) throw new SoupError('ERR_SOUP_CONFIG', `${src}: r must be a positive integer`);
  const alpha = o.lora_alpha === undefined || o.lora_alpha === null ? r : Number(o.lora_alpha);
  const dropout = o.lora_dropout === undefined || o.lora_dropout === null ? 0 : Number(o.lora_dropout);
  return { r, lora_alpha: alpha, lora_dropout: dropout, target_modules: targets.map(String), use_rslora: o.use_rslora === true };
}

/** Left-pads ragged token lists: tokens and mask as [B, T] Int32Arrays. */
/** log softmax(row)[token] of the logits row starting at `offset` (max-shifted, in float64): the log-prob
 *  of one token, for evaluations that read the logits in JS (KL, NLL, held-out bits). */
export function tokenLogProb(logits: ArrayLike<number>, offset: number, vocab: number, token: number): number {
  let mx = -Infinity;
  for (let v = 0; v < vocab; v++) mx = Math.max(mx, logits[offset + v]);
  let z = 0;
  for (let v = 0; v < vocab; v++) z += Math.exp(logits[offset + v] - mx);
  return logits[offset + token] - mx - Math.log(z);
}

export function leftPad(seqs: number[][], pad = 0): { tokens: Int32Array; mask: Int32Array; B: number; T: number } {
  const B = seqs.length;
  if (B === 0) throw new SoupError('ERR_SOUP_INVALID_ARG', 'empty batch');
  const T = Math.max(...seqs.map((s) => s.length));
  if (T === 0) throw new SoupError('ERR_SOUP_INVALID_ARG', 'every sequence is empty');
  const tokens = new Int32Array(B * T).fill(pad);
  const mask = new Int32Array(B * T);
  seqs.forEach((s, b) => {
    const off = b * T + (T - s.length);
    for (let i = 0; i < s.length; i++) {
      const v = s[i];
      if (!Number.isInteger(v)) throw new SoupError('ERR_SOUP_INVALID_ARG', `token [${b}][${i}] is not an integer: ${v}`);
      tokens[off + i] = v;
      mask[off + i] = 1;
    }
  });
  return { tokens, mask, B, T };
}

/** What generate() takes: the sampling settings default to transformers' (genOptions fills them). */
export interface GenerateOptions extends Partial<NativeGenOptions> {
  maxNewTokens: number;
  /** The paper's fixed-length mode: no EOS stop, length drawn uniformly in [min, max) per batch (trl LengthSampler). */
  fixedLength?: { min: number; max: number };
}

/** A seeded uniform integer in [min, max) (the paper's LengthSampler), from a 32-bit mix of seed. */
export function lengthSample(min: number, max: number, seed: number): number {
  if (!(max > min)) throw new SoupError('ERR_SOUP_INVALID_ARG', `fixed length range [${min}, ${max}) is empty`);
  return min + Math.floor(mulberry32(seed)() * (max - min));
}

export { mulberry32 };

/** The architecture fields the torch addon's model builders read (lmCreate, serveCreate). */
export function nativeLlamaConfig(c: LlamaConfig): NativeLlamaConfig {
  return {
    vocabSize: c.vocabSize,
    hiddenSize: c.hiddenSize,
    intermediateSize: c.intermediateSize,
    numHiddenLayers: c.numHiddenLayers,
    numAttentionHeads: c.numAttentionHeads,
    numKeyValueHeads: c.numKeyValueHeads,
    rmsNormEps: c.rmsNormEps,
    ropeTheta: c.ropeTheta,
    tieWordEmbeddings: c.tieWordEmbeddings,
  };
}

export class CausalLM {
  #h: ModelHandle | undefined;
  readonly config: LlamaConfig;
  readonly dtype: ComputeDType;
  readonly lora: Required<Omit<LoraOptions, 'bias'>> | undefined;
  readonly hasValueHead: boolean;
  tokenizer: Tokenizer | undefined;
  /** Where the weights came from (config.json's dir), for adapter_config.json's base_model_name_or_path. */
  source = '';

  private constructor(h: ModelHandle, config: LlamaConfig, dtype: ComputeDType, lora: CausalLM['lora'], valueHead: boolean) {
    this.#h = h;
    this.config = config;
    this.dtype = dtype;
    this.lora = lora;
    this.hasValueHead = valueHead;
  }

  /** Loads a Hugging Face LLaMA dir (config.json + safetensors, sharded or not, + tokenizer.json). */
  static async fromPretrained(dir: string, opts: LoadOptions = {}): Promise<CausalLM> {
    checkDevice(opts.device);
    const { config: raw, tensors } = await loadModelDir(dir);
    const config = llamaConfigFromHF(raw, join(dir, 'config.json'));
    let tokenizer: Tokenizer | undefined;
    if (opts.tokenizer !== false) {
      const tp = join(dir, 'tokenizer.json');
      if (!existsSync(tp)) throw new SoupError('ERR_SOUP_IO', `missing tokenizer: ${tp} does not exist (pass tokenizer: false to load without one)`);
      tokenizer = loadTokenizer(tp);
    }
    let adapter: { config: Record<string, unknown>; tensors: TensorMap } | undefined;
    let lora = opts.lora;
    if (typeof lora === 'string') {
      adapter = await readPeftAdapter(lora);
      lora = normalizeLora(adapter.config, join(lora, 'adapter_config.json'));
    }
    const m = await CausalLM.fromTensors(config, tensors, { ...opts, lora });
    m.tokenizer = tokenizer;
    m.source = dir;
    if (adapter) await m.setTensors('lora', adapter.tensors);
    return m;
  }

  /** Builds a model from a TensorMap of HF names, or with HF's random init when `tensors` is null. */
  static async fromTensors(config: LlamaConfig, tensors: TensorMap | null, opts: Omit<LoadOptions, 'lora'> & { lora?: LoraOptions } = {}): Promise<CausalLM> {
    checkDevice(opts.device);
    const dtype = opts.dtype ?? 'float32';
    if (dtype === 'float16')
      throw new SoupError('ERR_SOUP_CONFIG', "float16 compute is not supported by libtorch on CPU: load float16 weights with dtype 'float32' or 'bfloat16'");
    const lora = opts.lora ? normalizeLora(opts.lora) : undefined;
    const h = await callNative('lmCreate', {
      config: nativeLlamaConfig(config),
      weights: tensors,
      dtype,
      seed: opts.seed ?? 0,
      ...(opts.threads ? { threads: opts.threads } : {}),
      lora: lora
        ? { r: lora.r, loraAlpha: lora.lora_alpha, loraDropout: lora.lora_dropout, targetModules: lora.target_modules, useRslora: lora.use_rslora }
        : null,
      valueHead: opts.valueHead ?? false,
      device: opts.device ?? 'cpu',
      autocast: opts.autocast ?? true,
    });
    return new CausalLM(h, config, dtype, lora, opts.valueHead ?? false);
  }

  get handle(): ModelHandle {
    if (!this.#h) throw new SoupError('ERR_SOUP_INVALID_ARG', 'the model was disposed');
    return this.#h;
  }

  /** Logits [batch, time, vocab] (Float32Array; Float64Array for float64 models). Ragged batches are left-padded. */
  async logits(tokens: number[][]): Promise<Float32Array | Float64Array> {
    const t = await this.logitsTensor(tokens);
    return t.data as Float32Array | Float64Array;
  }

  async logitsTensor(tokens: number[][]) {
    const p = leftPad(tokens, this.config.padTokenId ?? 0);
    const ragged = tokens.some((s) => s.length !== p.T);
    return callNative('lmLogits', this.handle, p.tokens, p.B, p.T, ragged ? p.mask : null);
  }

  /** Generates with the KV cache; returns the new tokens of each prompt (up to and including EOS). */
  async generate(prompts: number[][], o: GenerateOptions): Promise<number[][]> {
    const pad = o.padTokenId ?? this.config.padTokenId ?? 0;
    const p = leftPad(prompts, pad);
    const g = genOptions(o, this.config);
    const r = await callNative('lmGenerate', this.handle, p.tokens, p.B, p.T, p.mask, g);
    const out: number[][] = [];
    for (let b = 0; b < p.B; b++) out.push(Array.from(r.tokens.subarray(b * r.width, b * r.width + r.lengths[b])));
    return out;
  }

  /** Text in, text out (needs a tokenizer). */
  async generateText(prompts: string[], o: GenerateOptions): Promise<string[]> {
    const tok = this.requireTokenizer();
    const ids = await Promise.all(prompts.map(async (s) => (await tok.encode(s)).getIds()));
    const out = await this.generate(ids, o);
    return Promise.all(out.map((t) => tok.decode(t, true)));
  }

  requireTokenizer(): Tokenizer {
    if (!this.tokenizer) throw new SoupError('ERR_SOUP_INVALID_ARG', 'this model has no tokenizer (load a dir with tokenizer.json)');
    return this.tokenizer;
  }

  getTensors(group: Exclude<TensorGroup, 'refAdapter'>): Promise<TensorMap> {
    return callNative('lmGetTensors', this.handle, group);
  }

  /** Loads tensors into the model (copies): 'lora' takes peft key names, e.g. a soup of adapters. */
  setTensors(group: TensorGroup, t: TensorMap): Promise<void> {
    return callNative('lmSetTensors', this.handle, group, t);
  }

  /** Saves the adapter as peft does (adapter_config.json + adapter_model.safetensors). */
  async saveAdapter(dir: string): Promise<void> {
    if (!this.lora) throw new SoupError('ERR_SOUP_INVALID_ARG', 'this model has no LoRA adapter');
    await writePeftAdapter(dir, await this.getTensors('lora'), peftAdapterConfig(this.lora, this.source));
  }

  async loadAdapter(dir: string): Promise<void> {
    const a = await readPeftAdapter(dir);
    const l = normalizeLora(a.config, join(dir, 'adapter_config.json'));
    if (!this.lora || l.r !== this.lora.r || l.target_modules.join() !== this.lora.target_modules.join()) {
      throw new SoupError(
        'ERR_SOUP_CONFIG',
        `${dir}: adapter (r=${l.r}, target_modules ${l.target_modules.join(',')}) does not match this model's LoRA config`,
      );
    }
    await this.setTensors('lora', a.tensors);
  }

  /** Saves the base weights as a Hugging Face dir (config.json + model.safetensors). */
  async save(dir: string): Promise<void> {
    await saveModelDir(dir, await this.getTensors('base'), { config: llamaConfigToHF(this.config, this.dtype) });
  }

  merge(): Promise<void> {
    return callNative('lmOp', this.handle, 'merge');
  }
  unmerge(): Promise<void> {
    return callNative('lmOp', this.handle, 'unmerge');
  }
  enableAdapter(): Promise<void> {
    return callNative('lmOp', this.handle, 'enableAdapter');
  }
  disableAdapter(): Promise<void> {
    return callNative('lmOp', this.handle, 'disableAdapter');
  }
  /** Freezes a copy of the current adapter as the PPO reference (instead of the adapter-disabled base). */
  snapshotReference(): Promise<void> {
    return callNative('lmOp', this.handle, 'snapshotRef');
  }

  /** Mean next-token loss and its gradients (LoRA + value head, or every base weight), no dropout. */
  lossAndGrad(tokens: number[][], params: 'lora' | 'all' = 'lora'): Promise<{ loss: number; grads: TensorMap }> {
    const p = leftPad(tokens, this.config.padTokenId ?? 0);
    const ragged = tokens.some((s) => s.length !== p.T);
    return callNative('lmLossGrad', this.handle, p.tokens, p.B, p.T, ragged ? p.mask : null, params);
  }

  /** One AdamW step on the next-token loss: pre-training ('all') or supervised adapter tuning ('lora'). */
  trainStep(
    tokens: Int32Array,
    B: number,
    T: number,
    o: { lr: number; beta1?: number; beta2?: number; eps?: number; weightDecay?: number; maxGradNorm?: number; params?: 'all' | 'lora'; mask?: Int32Array },
  ): Promise<{ loss: number; gradNorm: number }> {
    const { mask, ...rest } = o;
    // native reads every setting as given (torch.optim.AdamW's defaults; no clipping, every weight)
    const given = Object.fromEntries(Object.entries(rest).filter(([, v]) => v !== undefined));
    return callNative('lmTrainStep', this.handle, tokens, B, T, mask ?? null, {
      beta1: 0.9,
      beta2: 0.999,
      eps: 1e-8,
      weightDecay: 0,
      maxGradNorm: 0,
      params: 'all',
      ...given,
      lr: o.lr,
    });
  }

  async dispose(): Promise<void> {
    const h = this.#h;
    this.#h = undefined;
    if (h) await callNative('lmOp', h, 'dispose');
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.dispose();
  }
}

export function loadTokenizer(path: string): Tokenizer {
  if (!existsSync(path)) throw new SoupError('ERR_SOUP_IO', `missing tokenizer: ${path} does not exist`);
  try {
    return Tokenizer.fromFile(path);
  } catch (e) {
    throw new SoupError('ERR_SOUP_FORMAT', `${path}: not a tokenizers JSON file (${(e as Error).message})`, { cause: e });
  }
}

export function genOptions(o: GenerateOptions, c: LlamaConfig): NativeGenOptions {
  let maxNew = o.maxNewTokens;
  let eos = o.eosTokenId ?? c.eosTokenId ?? -1;
  if (o.fixedLength) {
    maxNew = lengthSample(o.fixedLength.min, o.fixedLength.max, (o.seed ?? 0) ^ 0x5eed);
    eos = -1;
  }
  if (!Number.isInteger(maxNew) || maxNew < 1) throw new SoupError('ERR_SOUP_INVALID_ARG', `maxNewTokens must be a positive integer, got ${maxNew}`);
  return {
    maxNewTokens: maxNew,
    minNewTokens: o.minNewTokens ?? 0,
    doSample: o.doSample ?? true,
    temperature: o.temperature ?? 1,
    topK: o.topK ?? 0,
    topP: o.topP ?? 1,
    eosTokenId: eos,
    padTokenId: o.padTokenId ?? c.padTokenId ?? 0,
    ...(o.seed !== undefined ? { seed: o.seed } : {}),
  };
}
