// SPDX-License-Identifier: MIT
// Reward models run as black-box sequence classifiers (the paper's HF text-classification pipelines
// with function_to_apply = "none"): an ONNX graph via onnxruntime-node plus an HF tokenizer.json.
// onnxruntime-node is an optional dependency, imported on first use: an install without it still works.
// Score formats: "k" = logit of class k, "a-b" = logit_a − logit_b, "prob:k" = softmax probability.
import { existsSync, statSync } from 'node:fs';
import { join } from 'node:path';
import type * as Ort from 'onnxruntime-node';
import { Tokenizer } from 'tokenizers';
import { SoupError } from '../errors.js';
import { BatchedReward, rewardError, type BatchingOptions, type Sample, type ScoreOptions } from './types.js';

export type ScoreFormat = { kind: 'logit'; k: number } | { kind: 'diff'; a: number; b: number } | { kind: 'prob'; k: number };

export function parseFormat(f: string | number): ScoreFormat {
  const s = String(f).trim();
  let m = /^(\d+)$/.exec(s);
  if (m) return { kind: 'logit', k: Number(m[1]) };
  m = /^(\d+)-(\d+)$/.exec(s);
  if (m) return { kind: 'diff', a: Number(m[1]), b: Number(m[2]) };
  m = /^prob:(\d+)$/.exec(s);
  if (m) return { kind: 'prob', k: Number(m[1]) };
  throw new SoupError('ERR_SOUP_INVALID_ARG', `unknown score format '${s}' (expected "k", "a-b" or "prob:k", e.g. "0", "1-0", "prob:1")`);
}

/**
 * One entry of the paper's `--reward_formats`: a format with an optional "xC" weight suffix,
 * e.g. "1-0x0.6" -> format 1-0, weight 0.6 ("0" -> weight 1).
 */
export function parseWeightedFormat(spec: string): { format: string; weight: number } {
  const m = /^(.*?)(?:x([0-9]*\.?[0-9]+(?:e-?[0-9]+)?))?$/.exec(String(spec).trim());
  const format = m ? m[1] : String(spec);
  parseFormat(format);
  const weight = m && m[2] !== undefined ? Number(m[2]) : 1;
  return { format, weight };
}

function maxClass(f: ScoreFormat): number {
  return f.kind === 'diff' ? Math.max(f.a, f.b) : f.k;
}

/** Applies a format to one row of logits. */
export function applyFormat(f: ScoreFormat, logits: ArrayLike<number>): number {
  if (f.kind === 'logit') return logits[f.k];
  if (f.kind === 'diff') return logits[f.a] - logits[f.b];
  let mx = -Infinity;
  for (let i = 0; i < logits.length; i++) mx = Math.max(mx, logits[i]);
  let z = 0;
  for (let i = 0; i < logits.length; i++) z += Math.exp(logits[i] - mx);
  return Math.exp(logits[f.k] - mx) / z;
}

/**
 * How a sample becomes the model's text. 'pair' encodes (prompt, response) as a sentence pair so the
 * tokenizer's post-processor inserts its separators (question + sep + answer, OpenAssistant RMs);
 * 'response' scores the response alone; any other string is a template with {prompt}, {response}
 * and {sep}/{bos}/{eos} (the tokenizer's special tokens, e.g. "{response}{eos}{eos}{prompt}" for
 * the paper's BART faithfulness detector, "{response} {bos} {prompt}" for its GPT-2 RM).
 */
export type InputFormat = 'pair' | 'response' | string;

/** Input formats of the paper's reward models (alexrame/rewardedsoups llama/tasks/*.py), by name. */
export const INPUT_PRESETS: Readonly<Record<string, string>> = {
  /** OpenAssistant DeBERTa RMs: question + sep + answer. */
  openassistant: 'pair',
  /** BART faithfulness detector: response + eos + eos + post. */
  'bart-faithfulness': '{response}{eos}{eos}{prompt}',
  /** GPT-2 RM: response + " " + bos + " " + post. */
  'gpt2-rm': '{response} {bos} {prompt}',
};

/** The first sentence of a text (up to the first . ! or ? followed by a space or the end), trimmed. */
export function firstSentence(text: string): string {
  const m = /^\s*([\s\S]*?[.!?])(\s|$)/.exec(text);
  return (m ? m[1] : text).trim();
}

export interface OnnxRewardOptions extends BatchingOptions {
  name?: string;
  /** Path to model.onnx (or a folder holding model.onnx and tokenizer.json). */
  model: string;
  /** Path to tokenizer.json (default: beside the model). */
  tokenizer?: string;
  format?: string | number;
  input?: InputFormat;
  /** 'first-sentence' keeps only the first sentence of the response (the paper's summary task). */
  response?: 'full' | 'first-sentence';
  /** Special tokens for templates (defaults: the tokenizer's [SEP]/</s>, <s>/[CLS], </s>). */
  specialTokens?: { sep?: string; bos?: string; eos?: string };
  maxLength?: number;
  /** Output to read (default: 'logits' if present, else the first output). */
  output?: string;
  /** Pad id (default: the tokenizer's pad token, else 0). */
  padId?: number;
  /** Run `sessionOptions.intraOpNumThreads` threads (default: onnxruntime's choice). */
  threads?: number;
}

const SUPPORTED_INPUTS = ['input_ids', 'attention_mask', 'token_type_ids', 'position_ids'] as const;

function firstExisting(tok: Tokenizer, cands: string[]): string | undefined {
  return cands.find((c) => tok.tokenToId(c) !== null && tok.tokenToId(c) !== undefined);
}

let ortModule: typeof Ort | undefined;

/** onnxruntime-node, loaded on first use (an optional dependency); a clear error when it is absent. */
async function loadOrt(name: string): Promise<typeof Ort> {
  if (ortModule) return ortModule;
  try {
    ortModule = (await import('onnxruntime-node')) as typeof Ort;
  } catch (err) {
    throw new SoupError(
      'ERR_SOUP_NATIVE_LOAD',
      `reward '${name}': ONNX reward models need the optional dependency onnxruntime-node, which is not installed or does not load here (${(err as Error).message.split('\n')[0]}). Install it: npm install onnxruntime-node (ONNXRUNTIME_NODE_INSTALL=skip keeps its install script from fetching CUDA binaries)`,
      { cause: err },
    );
  }
  return ortModule;
}

export class OnnxReward extends BatchedReward {
  private constructor(
    name: string,
    private readonly ort: typeof Ort,
    private readonly session: Ort.InferenceSession,
    private readonly tok: Tokenizer,
    private readonly fmt: ScoreFormat,
    private readonly o: OnnxRewardOptions,
    private readonly inputs: Array<{ name: string; type: 'int64' | 'int32'; fixedLen?: number }>,
    private readonly outputName: string,
    private readonly special: { sep: string; bos: string; eos: string },
    private readonly padId: number,
    readonly modelPath: string,
    readonly tokenizerPath: string,
  ) {
    super(name, { batchSize: 8, ...o });
  }

  static async create(opts: OnnxRewardOptions): Promise<OnnxReward> {
    const name = opts.name ?? 'onnx';
    if (typeof opts.model !== 'string') throw rewardError(name, "'model' must be a path to an .onnx file");
    const ort = await loadOrt(name);
    let modelPath = opts.model;
    if (existsSync(modelPath) && statSync(modelPath).isDirectory()) modelPath = join(modelPath, 'model.onnx');
    if (!existsSync(modelPath)) throw new SoupError('ERR_SOUP_IO', `reward '${name}': model file not found: ${modelPath}`);
    const tokPath = opts.tokenizer ?? join(modelPath, '..', 'tokenizer.json');
    if (!existsSync(tokPath)) throw new SoupError('ERR_SOUP_IO', `reward '${name}': tokenizer.json not found: ${tokPath} (set 'tokenizer')`);
    const fmt = parseFormat(opts.format ?? '0');
    let tok: Tokenizer;
    try {
      tok = Tokenizer.fromFile(tokPath);
    } catch (err) {
      throw new SoupError('ERR_SOUP_FORMAT', `reward '${name}': cannot load tokenizer ${tokPath}: ${(err as Error).message}`, { cause: err });
    }
    let session: Ort.InferenceSession;
    try {
      session = await ort.InferenceSession.create(modelPath, opts.threads ? { intraOpNumThreads: opts.threads } : {});
    } catch (err) {
      throw new SoupError('ERR_SOUP_FORMAT', `reward '${name}': cannot load ONNX model ${modelPath}: ${(err as Error).message}`, { cause: err });
    }
    const inputs: Array<{ name: string; type: 'int64' | 'int32'; fixedLen?: number }> = [];
    for (const meta of session.inputMetadata) {
      const where = `ONNX model ${modelPath} input '${meta.name}'`;
      if (!(SUPPORTED_INPUTS as readonly string[]).includes(meta.name)) {
        throw new SoupError(
          'ERR_SOUP_SHAPE_MISMATCH',
          `reward '${name}': ${where} does not match the tokenizer ${tokPath}, which provides ${SUPPORTED_INPUTS.join(', ')} (model inputs: ${session.inputNames.join(', ')})`,
        );
      }
      if (!meta.isTensor || (meta.type !== 'int64' && meta.type !== 'int32')) {
        throw new SoupError(
          'ERR_SOUP_DTYPE_MISMATCH',
          `reward '${name}': ${where} has type ${meta.isTensor ? meta.type : 'non-tensor'}, expected int64 or int32 token ids`,
        );
      }
      if (meta.shape.length !== 2) {
        throw new SoupError(
          'ERR_SOUP_SHAPE_MISMATCH',
          `reward '${name}': ${where} has rank ${meta.shape.length} [${meta.shape.join(', ')}], expected [batch, sequence]`,
        );
      }
      const seq = meta.shape[1];
      inputs.push({ name: meta.name, type: meta.type, fixedLen: typeof seq === 'number' && seq > 0 ? seq : undefined });
    }
    if (!inputs.some((i) => i.name === 'input_ids'))
      throw new SoupError(
        'ERR_SOUP_SHAPE_MISMATCH',
        `reward '${name}': ONNX model ${modelPath} has no 'input_ids' input (inputs: ${session.inputNames.join(', ')})`,
      );
    const outputName = opts.output ?? (session.outputNames.includes('logits') ? 'logits' : session.outputNames[0]);
    if (!session.outputNames.includes(outputName))
      throw rewardError(name, `ONNX model ${modelPath} has no output '${outputName}' (outputs: ${session.outputNames.join(', ')})`);
    const special = {
      sep: opts.specialTokens?.sep ?? firstExisting(tok, ['[SEP]', '</s>']) ?? '',
      bos: opts.specialTokens?.bos ?? firstExisting(tok, ['<s>', '[CLS]', '<|endoftext|>']) ?? '',
      eos: opts.specialTokens?.eos ?? firstExisting(tok, ['</s>', '[SEP]', '<|endoftext|>']) ?? '',
    };
    const padTok = firstExisting(tok, ['<pad>', '[PAD]']);
    const padId = opts.padId ?? (padTok !== undefined ? (tok.tokenToId(padTok) as number) : 0);
    return new OnnxReward(name, ort, session, tok, fmt, opts, inputs, outputName, special, padId, modelPath, tokPath);
  }

  /** The text(s) handed to the tokenizer for one sample. */
  formatInput(s: Sample): [string, string | null] {
    const raw = this.o.input ?? 'pair';
    const input = INPUT_PRESETS[raw] ?? raw;
    const response = this.o.response === 'first-sentence' ? firstSentence(s.response) : s.response;
    if (input === 'pair') return [s.prompt, response];
    if (input === 'response') return [response, null];
    const text = input
      .replaceAll('{prompt}', s.prompt)
      .replaceAll('{response}', response)
      .replaceAll('{sep}', this.special.sep)
      .replaceAll('{bos}', this.special.bos)
      .replaceAll('{eos}', this.special.eos);
    return [text, null];
  }

  /** Token ids, attention mask and type ids for a batch (right-padded, truncated to maxLength). */
  async encode(batch: Sample[]): Promise<{ ids: number[][]; mask: number[][]; types: number[][]; len: number }> {
    const maxLen = this.o.maxLength ?? 512;
    const encs = await Promise.all(
      batch.map((s) => {
        const [a, b] = this.formatInput(s);
        return this.tok.encode(a, b);
      }),
    );
    let ids = encs.map((e) => e.getIds());
    let types = encs.map((e) => e.getTypeIds());
    ids = ids.map((x) => x.slice(0, maxLen));
    types = types.map((x) => x.slice(0, maxLen));
    const fixed = this.inputs.find((i) => i.fixedLen !== undefined)?.fixedLen;
    const len = fixed ?? Math.max(1, ...ids.map((x) => x.length));
    const mask = ids.map((x) => Array.from({ length: len }, (_, j) => (j < x.length ? 1 : 0)));
    ids = ids.map((x) => Array.from({ length: len }, (_, j) => (j < x.length ? x[j] : this.padId)));
    types = types.map((x) => Array.from({ length: len }, (_, j) => (j < x.length ? x[j] : 0)));
    return { ids, mask, types, len };
  }

  protected async scoreBatch(batch: Sample[], offsets: number[]): Promise<Float64Array> {
    const { ids, mask, types, len } = await this.encode(batch);
    const B = batch.length;
    const ort = this.ort;
    const feeds: Record<string, Ort.Tensor> = {};
    for (const inp of this.inputs) {
      const rows =
        inp.name === 'input_ids'
          ? ids
          : inp.name === 'attention_mask'
            ? mask
            : inp.name === 'token_type_ids'
              ? types
              : ids.map(() => Array.from({ length: len }, (_, j) => j));
      const flat = rows.flat();
      feeds[inp.name] =
        inp.type === 'int64'
          ? new ort.Tensor(
              'int64',
              BigInt64Array.from(flat, (v) => BigInt(v)),
              [B, len],
            )
          : new ort.Tensor('int32', Int32Array.from(flat), [B, len]);
    }
    let result: Ort.InferenceSession.OnnxValueMapType;
    try {
      result = await this.session.run(feeds);
    } catch (err) {
      const maxId = Math.max(...ids.flat());
      throw rewardError(
        this.name,
        `ONNX model ${this.modelPath} failed on samples ${offsets[0]}..${offsets[offsets.length - 1]} (largest token id ${maxId} from ${this.tokenizerPath}; does the model's vocabulary match the tokenizer?): ${(err as Error).message}`,
        err,
      );
    }
    const out = result[this.outputName] as Ort.Tensor;
    const dims = out.dims;
    const C = dims.length === 2 ? dims[1] : dims.length === 1 ? 1 : -1;
    if (dims[0] !== B || C < 1) throw rewardError(this.name, `ONNX output '${this.outputName}' has shape [${dims.join(', ')}], expected [${B}, classes]`);
    if (maxClass(this.fmt) >= C) throw rewardError(this.name, `score format refers to class ${maxClass(this.fmt)} but the model has ${C} classes`);
    const data = out.data as Float32Array | Float64Array;
    const scores = new Float64Array(B);
    for (let i = 0; i < B; i++) scores[i] = applyFormat(this.fmt, data.subarray(i * C, (i + 1) * C));
    return scores;
  }

  async dispose(): Promise<void> {
    await this.session.release();
  }
}

export function onnxReward(opts: OnnxRewardOptions): Promise<OnnxReward> {
  return OnnxReward.create(opts);
}
