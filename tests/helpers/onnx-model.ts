// SPDX-License-Identifier: MIT
// Writes small ONNX models for the reward-model tests with a hand-written protobuf encoder (no
// Python, no download). The classifier is an embedding bag + linear layer whose weights the test
// knows, so its logits can be recomputed by hand:
//   logits[b] = (Σ_t mask[b,t] E[ids[b,t]]) / (Σ_t mask[b,t]) · W + bias
import { writeFileSync } from 'node:fs';

// ---- protobuf wire format ------------------------------------------------------------------------
function varint(n: number | bigint): number[] {
  let v = BigInt.asUintN(64, BigInt(n));
  const out: number[] = [];
  do {
    let byte = Number(v & 0x7fn);
    v >>= 7n;
    if (v !== 0n) byte |= 0x80;
    out.push(byte);
  } while (v !== 0n);
  return out;
}
const key = (field: number, wire: number) => varint((field << 3) | wire);
const fInt = (field: number, n: number | bigint) => [...key(field, 0), ...varint(n)];
function fBytes(field: number, bytes: ArrayLike<number>): number[] {
  return [...key(field, 2), ...varint(bytes.length), ...Array.from(bytes)];
}
const fStr = (field: number, s: string) => fBytes(field, Buffer.from(s, 'utf8'));

// ---- ONNX messages (onnx.proto field numbers) ------------------------------------------------------
const FLOAT = 1;
const INT64 = 7;

export type Dim = number | string;

function tensorType(elem: number, dims: Dim[]): number[] {
  const shape = dims.flatMap((d) => fBytes(1, typeof d === 'number' ? fInt(1, d) : fStr(2, d)));
  const tensor = [...fInt(1, elem), ...fBytes(2, shape)];
  return fBytes(1, tensor); // TypeProto.tensor_type
}
function valueInfo(name: string, elem: number, dims: Dim[]): number[] {
  return [...fStr(1, name), ...fBytes(2, tensorType(elem, dims))];
}
function floatTensor(name: string, dims: number[], data: Float32Array): number[] {
  return [...dims.flatMap((d) => fInt(1, d)), ...fInt(2, FLOAT), ...fStr(8, name), ...fBytes(9, new Uint8Array(data.buffer, data.byteOffset, data.byteLength))];
}
function int64Tensor(name: string, dims: number[], data: bigint[]): number[] {
  const b = new BigInt64Array(data);
  return [...dims.flatMap((d) => fInt(1, d)), ...fInt(2, INT64), ...fStr(8, name), ...fBytes(9, new Uint8Array(b.buffer))];
}
function attrInt(name: string, v: number): number[] {
  return [...fStr(1, name), ...fInt(3, v), ...fInt(20, 2)]; // type INT = 2
}
function attrInts(name: string, v: number[]): number[] {
  return [...fStr(1, name), ...v.flatMap((x) => fInt(8, x)), ...fInt(20, 7)]; // type INTS = 7
}
function node(op: string, inputs: string[], outputs: string[], attrs: number[][] = []): number[] {
  return [
    ...inputs.flatMap((i) => fStr(1, i)),
    ...outputs.flatMap((o) => fStr(2, o)),
    ...fStr(3, `${op}_${outputs[0]}`),
    ...fStr(4, op),
    ...attrs.flatMap((a) => fBytes(5, a)),
  ];
}
function model(graph: number[]): Uint8Array {
  const opset = [...fStr(1, ''), ...fInt(2, 13)];
  return Uint8Array.from([...fInt(1, 8), ...fStr(2, 'rewarded-soups-tests'), ...fBytes(7, graph), ...fBytes(8, opset)]);
}

export interface BagModel {
  vocab: number;
  dim: number;
  classes: number;
  E: Float32Array; // vocab x dim
  W: Float32Array; // dim x classes
  b: Float32Array; // classes
}

/** Deterministic pseudo-random weights (never zeros). */
export function makeBagWeights(vocab: number, dim: number, classes: number, seed = 1): BagModel {
  let s = seed >>> 0;
  const rnd = () => {
    s = (s * 1664525 + 1013904223) >>> 0;
    return (s / 2 ** 32) * 2 - 1;
  };
  const fill = (n: number) => Float32Array.from({ length: n }, () => rnd());
  return { vocab, dim, classes, E: fill(vocab * dim), W: fill(dim * classes), b: fill(classes) };
}

export interface WriteOptions {
  /** Name of the id input (a mismatching name tests the error path). */
  idsName?: string;
  idsDims?: Dim[];
  withMask?: boolean;
  /** BERT-style segment input: adds `token_type_ids` and a 2-row type embedding T to each token. */
  typeEmbedding?: Float32Array;
}

/** Writes the embedding-bag classifier to `path`. */
export function writeBagModel(path: string, m: BagModel, opts: WriteOptions = {}): void {
  const ids = opts.idsName ?? 'input_ids';
  const withMask = opts.withMask ?? true;
  const idsDims = opts.idsDims ?? ['batch', 'seq'];
  const T = opts.typeEmbedding;
  const nodes: number[][] = [node('Gather', ['E', ids], [T ? 'tokemb' : 'emb'], [attrInt('axis', 0)])];
  const inits = [
    floatTensor('E', [m.vocab, m.dim], m.E),
    floatTensor('W', [m.dim, m.classes], m.W),
    floatTensor('bias', [m.classes], m.b),
    int64Tensor('ax1', [1], [1n]),
    int64Tensor('ax2', [1], [2n]),
  ];
  const inputs = [valueInfo(ids, INT64, idsDims)];
  if (T) {
    inits.push(floatTensor('T', [2, m.dim], T));
    inputs.push(valueInfo('token_type_ids', INT64, ['batch', 'seq']));
    nodes.push(node('Gather', ['T', 'token_type_ids'], ['typeemb'], [attrInt('axis', 0)]), node('Add', ['tokemb', 'typeemb'], ['emb']));
  }
  if (withMask) {
    inputs.push(valueInfo('attention_mask', INT64, ['batch', 'seq']));
    nodes.push(
      node('Cast', ['attention_mask'], ['maskf'], [attrInt('to', FLOAT)]),
      node('Unsqueeze', ['maskf', 'ax2'], ['mask3']),
      node('Mul', ['emb', 'mask3'], ['memb']),
      node('ReduceSum', ['memb', 'ax1'], ['sum'], [attrInt('keepdims', 0)]),
      node('ReduceSum', ['maskf', 'ax1'], ['cnt'], [attrInt('keepdims', 1)]),
      node('Div', ['sum', 'cnt'], ['mean']),
    );
  } else {
    nodes.push(node('ReduceMean', ['emb'], ['mean'], [attrInts('axes', [1]), attrInt('keepdims', 0)]));
  }
  nodes.push(node('MatMul', ['mean', 'W'], ['mw']), node('Add', ['mw', 'bias'], ['logits']));
  const graph = [
    ...nodes.flatMap((n) => fBytes(1, n)),
    ...fStr(2, 'bag'),
    ...inits.flatMap((t) => fBytes(5, t)),
    ...inputs.flatMap((i) => fBytes(11, i)),
    ...fBytes(12, valueInfo('logits', FLOAT, ['batch', m.classes])),
  ];
  writeFileSync(path, model(graph));
}

/** float64 reference of the same graph (weights read back as float32 values). */
export function bagLogits(m: BagModel, ids: number[], mask: number[], types?: { T: Float32Array; ids: number[] }): number[] {
  const mean = new Array<number>(m.dim).fill(0);
  let cnt = 0;
  ids.forEach((id, t) => {
    if (!mask[t]) return;
    cnt++;
    for (let d = 0; d < m.dim; d++) mean[d] += m.E[id * m.dim + d] + (types ? types.T[types.ids[t] * m.dim + d] : 0);
  });
  for (let d = 0; d < m.dim; d++) mean[d] /= cnt;
  return Array.from({ length: m.classes }, (_, c) => {
    let s = m.b[c];
    for (let d = 0; d < m.dim; d++) s += mean[d] * m.W[d * m.classes + c];
    return s;
  });
}
