// SPDX-License-Identifier: MIT
// SoupEngine: the native batched decoding engine of `rsoup serve` (native/torch/serve.h): one frozen
// LLaMA base, N LoRA experts rank-concatenated once, and sequences that each carry their own λ and mode.
// Sequences join with add() (a prefill that samples their first token), advance together with step()
// and leave with remove(); every call is queued to the engine's own native thread, in call order.
import { join } from 'node:path';
import { SoupError } from '../errors.js';
import { loadModelDir, readPeftAdapter, type Tensor, type TensorMap } from '../io/index.js';
import { callTorch, type EngineHandle } from '../native/torch.js';
import { llamaConfigFromHF, nativeLlamaConfig, type ComputeDType, type LlamaConfig } from '../train/llama.js';

export type SoupMode = 'soup' | 'soup-ab' | 'ensemble';
export const SOUP_MODES: readonly SoupMode[] = ['soup', 'soup-ab', 'ensemble'];

/** One LoRA module of an expert: peft factors and its scaling sᵢ (lora_alpha / r, or / √r with rsLoRA). */
export interface ExpertModule {
  A: Tensor;
  B: Tensor;
  scaling: number;
}
export interface ExpertAdapter {
  name: string;
  modules: Record<string, ExpertModule>;
}

// the engine's functions and batons are declared in src/native/torch.ts
const call = callTorch;

const PEFT_PREFIX = 'base_model.model.';
const LORA_KEY = /^(.*)\.lora_([AB])(?:\.[A-Za-z0-9_-]+)?\.weight$/;

function patternValue(pattern: unknown, module: string): number | undefined {
  if (typeof pattern !== 'object' || pattern === null) return undefined;
  for (const [k, v] of Object.entries(pattern as Record<string, unknown>)) {
    if (typeof v === 'number' && (module === k || module.endsWith(`.${k}`))) return v;
  }
  return undefined;
}

/**
 * A peft adapter's LoRA modules with their scalings (peft semantics: sᵢ = lora_alpha / r, or
 * lora_alpha / √r with use_rslora; alpha_pattern honoured; the rank of each module is its lora_A's rows,
 * so rank_pattern is too). Module names are the base model's ("model.layers.0.self_attn.q_proj").
 */
export function adapterModules(name: string, config: Record<string, unknown>, tensors: TensorMap): ExpertAdapter {
  const where = `expert '${name}'`;
  if (config.peft_type !== undefined && config.peft_type !== 'LORA')
    throw new SoupError('ERR_SOUP_CONFIG', `${where}: peft_type ${JSON.stringify(config.peft_type)} is not supported (LORA)`);
  if (config.use_dora === true) throw new SoupError('ERR_SOUP_CONFIG', `${where}: DoRA adapters are not supported`);
  if (config.fan_in_fan_out === true) throw new SoupError('ERR_SOUP_CONFIG', `${where}: fan_in_fan_out adapters do not fit LLaMA's Linear layers`);
  const alphaRaw = config.lora_alpha ?? config.r ?? 8;
  const alpha = Number(alphaRaw);
  if (!Number.isFinite(alpha)) throw new SoupError('ERR_SOUP_CONFIG', `${where}: lora_alpha must be a number`);
  const rslora = config.use_rslora === true;
  const parts = new Map<string, { A?: Tensor; B?: Tensor }>();
  for (const [key, t] of Object.entries(tensors)) {
    const m = LORA_KEY.exec(key);
    if (!m) continue; // modules_to_save copies, heads: not part of the soup
    const mod = m[1].startsWith(PEFT_PREFIX) ? m[1].slice(PEFT_PREFIX.length) : m[1];
    const p = parts.get(mod) ?? {};
    p[m[2] as 'A' | 'B'] = t;
    parts.set(mod, p);
  }
  const modules: Record<string, ExpertModule> = {};
  for (const [mod, p] of parts) {
    if (!p.A || !p.B) throw new SoupError('ERR_SOUP_MISSING_TENSOR', `${where}: LoRA module '${mod}' lacks lora_${p.A ? 'B' : 'A'}`);
    const r = p.A.shape[0];
    const a = patternValue(config.alpha_pattern, mod) ?? alpha;
    modules[mod] = { A: p.A, B: p.B, scaling: r === 0 ? 0 : rslora ? a / Math.sqrt(r) : a / r };
  }
  if (!Object.keys(modules).length) throw new SoupError('ERR_SOUP_FORMAT', `${where}: the adapter holds no LoRA tensors`);
  return { name, modules };
}

export async function loadExpert(name: string, dir: string): Promise<ExpertAdapter> {
  const a = await readPeftAdapter(dir);
  return adapterModules(name, a.config, a.tensors);
}

export interface EngineOptions {
  dtype?: ComputeDType;
  device?: 'cpu' | 'cuda';
  autocast?: boolean;
  /** libtorch threads of the engine's native thread (default: all cores). */
  threads?: number;
}

export interface SeqSpec {
  id: number;
  tokens: number[];
  lambda: number[];
  mode?: SoupMode;
  temperature?: number;
  topP?: number;
  topK?: number;
  seed?: number;
  maxTokens: number;
}

export interface StepResult {
  /** Sequence ids and their new tokens (-1: the sequence reached its capacity, prompt + maxTokens). */
  ids: Int32Array;
  tokens: Int32Array;
  /** With wantLogits: one row per sample whose token is not -1 ([n, V], float32): the raw logits, or for
   *  'ensemble' log Σ λᵢ softmax(logitsᵢ) (the λ-mixture of the experts' distributions at T = 1). */
  logits?: Float32Array;
}

export class SoupEngine {
  #h: EngineHandle | undefined;
  readonly config: LlamaConfig;
  readonly experts: string[];
  /** Why 'soup-ab' cannot run with these experts (undefined: it can). */
  readonly abUnavailable: string | undefined;

  private constructor(h: EngineHandle, config: LlamaConfig, experts: string[], ab: string) {
    this.#h = h;
    this.config = config;
    this.experts = experts;
    this.abUnavailable = ab || undefined;
  }

  /** A base model's weights (HF names) and N experts. */
  static async create(config: LlamaConfig, weights: TensorMap, experts: ExpertAdapter[], o: EngineOptions = {}): Promise<SoupEngine> {
    const names = new Set<string>();
    for (const e of experts) {
      if (names.has(e.name)) throw new SoupError('ERR_SOUP_CONFIG', `two experts are named '${e.name}'`);
      names.add(e.name);
    }
    const h = await call('serveCreate', {
      config: nativeLlamaConfig(config),
      weights,
      dtype: o.dtype ?? 'float32',
      device: o.device ?? 'cpu',
      autocast: o.autocast ?? true,
      ...(o.threads ? { threads: o.threads } : {}),
      experts: experts.map((e) => ({ name: e.name, modules: e.modules })),
    });
    const info = await call('serveInfo', h);
    return new SoupEngine(
      h,
      config,
      experts.map((e) => e.name),
      info.abUnavailable,
    );
  }

  /** A Hugging Face base dir and PEFT adapter dirs (names default to the dirs' last component). */
  static async load(base: string, experts: Array<{ name: string; dir: string }>, o: EngineOptions = {}): Promise<SoupEngine> {
    const { config: raw, tensors } = await loadModelDir(base);
    const config = llamaConfigFromHF(raw, join(base, 'config.json'));
    const ex = await Promise.all(experts.map((e) => loadExpert(e.name, e.dir)));
    return SoupEngine.create(config, tensors, ex, o);
  }

  get handle(): EngineHandle {
    if (!this.#h) throw new SoupError('ERR_SOUP_INVALID_ARG', 'the serving engine was disposed');
    return this.#h;
  }

  /** Prefills new sequences and samples the first token of each. */
  async add(seqs: SeqSpec[], wantLogits = false): Promise<StepResult> {
    const r = await call(
      'serveAdd',
      this.handle,
      seqs.map((s) => ({
        id: s.id,
        tokens: Int32Array.from(s.tokens),
        lambda: Float64Array.from(s.lambda),
        mode: s.mode ?? 'soup',
        temperature: s.temperature ?? 1,
        topP: s.topP ?? 1,
        topK: s.topK ?? 0,
        seed: s.seed ?? 0,
        maxTokens: s.maxTokens,
      })),
      wantLogits,
    );
    return { ids: r.ids, tokens: r.tokens, ...(r.logits ? { logits: r.logits.data as Float32Array } : {}) };
  }

  /** One decoding step over every active sequence. */
  async step(wantLogits = false): Promise<StepResult> {
    const r = await call('serveStep', this.handle, wantLogits);
    return { ids: r.ids, tokens: r.tokens, ...(r.logits ? { logits: r.logits.data as Float32Array } : {}) };
  }

  remove(ids: number[]): Promise<void> {
    return call('serveRemove', this.handle, Int32Array.from(ids));
  }

  info(): Promise<{ sequences: number; rows: number; maxRank: number }> {
    return call('serveInfo', this.handle);
  }

  async dispose(): Promise<void> {
    const h = this.#h;
    this.#h = undefined;
    if (h) await call('serveDispose', h);
  }
}
