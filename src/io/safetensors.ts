// SPDX-License-Identifier: MIT
// safetensors: 8-byte little-endian header length, a JSON header {name: {dtype, shape, data_offsets},
// "__metadata__": {str: str}}, then the data buffer. The reader checks everything that could make a
// later read go wrong and names the file and tensor; the writer is atomic (temp file, fsync, rename).
import { open, stat } from 'node:fs/promises';
import { constants } from 'node:buffer';
import { SoupError } from '../errors.js';
import { coreAddon } from '../native/index.js';
import { atomicWriteFile } from './atomic.js';
import {
  DTYPES,
  SAFETENSORS_DTYPE,
  SAFETENSORS_SIZES,
  dtypeFromSafetensors,
  dtypeSize,
  isDType,
  numelOf,
  viewAs,
  type DType,
  type Tensor,
  type TensorMap,
} from './tensor.js';

export const MAX_HEADER_BYTES = 100_000_000;

export interface SafetensorsEntry {
  name: string;
  /** safetensors dtype name (F32, BF16, I64, ...). */
  stDtype: string;
  /** The float dtype, when it is one the merge engine handles. */
  dtype?: DType;
  shape: number[];
  /** Absolute byte offset of the data in the file. */
  offset: number;
  byteLength: number;
}

export interface SafetensorsHeader {
  path: string;
  fileSize: number;
  dataStart: number;
  entries: SafetensorsEntry[];
  metadata: Record<string, string>;
}

function fmtErr(path: string, msg: string): SoupError {
  return new SoupError('ERR_SOUP_FORMAT', `${path}: ${msg}`);
}

/** Top-level keys of a JSON object text in order, so duplicates (which JSON.parse hides) are caught. */
function topLevelKeys(text: string): string[] {
  const keys: string[] = [];
  let depth = 0;
  let expectKey = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (c === '"') {
      let j = i + 1;
      while (j < text.length && text[j] !== '"') j += text[j] === '\\' ? 2 : 1;
      if (depth === 1 && expectKey) keys.push(JSON.parse(text.slice(i, j + 1)) as string);
      expectKey = false;
      i = j;
    } else if (c === '{' || c === '[') {
      depth++;
      expectKey = c === '{' && depth === 1;
    } else if (c === '}' || c === ']') depth--;
    else if (c === ',' && depth === 1) expectKey = true;
  }
  return keys;
}

/** Parses and validates a header from its raw bytes. Exported for tests of each rejection. */
export function parseHeader(path: string, fileSize: number, headerBytes: Uint8Array): SafetensorsHeader {
  const dataStart = 8 + headerBytes.length;
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(headerBytes);
  } catch {
    throw fmtErr(path, 'header is not valid UTF-8');
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw fmtErr(path, `header is not valid JSON (${(e as Error).message})`);
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json)) throw fmtErr(path, 'header must be a JSON object');
  const keys = topLevelKeys(text);
  const seen = new Set<string>();
  for (const k of keys) {
    if (seen.has(k)) throw fmtErr(path, `duplicate tensor name '${k}' in header`);
    seen.add(k);
  }
  const dataLen = fileSize - dataStart;
  const entries: SafetensorsEntry[] = [];
  let metadata: Record<string, string> = {};
  for (const [name, raw] of Object.entries(json as Record<string, unknown>)) {
    if (name === '__metadata__') {
      if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw fmtErr(path, '__metadata__ must be an object of strings');
      for (const [k, v] of Object.entries(raw)) {
        if (typeof v !== 'string') throw fmtErr(path, `__metadata__['${k}'] must be a string`);
      }
      metadata = raw as Record<string, string>;
      continue;
    }
    const where = `tensor '${name}'`;
    if (typeof raw !== 'object' || raw === null) throw fmtErr(path, `${where}: entry must be an object`);
    const { dtype, shape, data_offsets: offs } = raw as Record<string, unknown>;
    if (typeof dtype !== 'string' || !(dtype in SAFETENSORS_SIZES)) throw fmtErr(path, `${where}: unknown dtype ${JSON.stringify(dtype)}`);
    if (!Array.isArray(shape) || !shape.every((s) => Number.isSafeInteger(s) && s >= 0))
      throw fmtErr(path, `${where}: shape must be an array of non-negative integers, got ${JSON.stringify(shape)}`);
    if (!Array.isArray(offs) || offs.length !== 2 || !offs.every((s) => Number.isSafeInteger(s) && s >= 0) || offs[0] > offs[1])
      throw fmtErr(path, `${where}: data_offsets must be [begin, end] with 0 <= begin <= end, got ${JSON.stringify(offs)}`);
    const [b, e] = offs as [number, number];
    if (e > dataLen) throw fmtErr(path, `${where}: data_offsets [${b}, ${e}] are beyond the data buffer (${dataLen} bytes)`);
    const need = numelOf(shape as number[]) * SAFETENSORS_SIZES[dtype];
    if (e - b !== need) throw fmtErr(path, `${where}: ${dtype} ${JSON.stringify(shape)} needs ${need} bytes but data_offsets span ${e - b}`);
    entries.push({ name, stDtype: dtype, dtype: dtypeFromSafetensors(dtype), shape: shape as number[], offset: dataStart + b, byteLength: e - b });
  }
  const sorted = [...entries].sort((x, y) => x.offset - y.offset || x.byteLength - y.byteLength);
  for (let i = 1; i < sorted.length; i++) {
    const prev = sorted[i - 1];
    if (sorted[i].offset < prev.offset + prev.byteLength) throw fmtErr(path, `tensors '${prev.name}' and '${sorted[i].name}' overlap in the data buffer`);
  }
  return { path, fileSize, dataStart, entries, metadata };
}

const CONVERT_HINT =
  'rsoup reads safetensors only (unpickling can run code): convert it first, e.g. in Python: safetensors.torch.save_file(torch.load(path), "model.safetensors"), or for a Hugging Face model: from_pretrained(dir).save_pretrained(out, safe_serialization=True)';

/** What a file whose first 8 bytes are no safetensors header length is, by its magic bytes. */
export function sniffOtherFormat(head: Uint8Array): string | undefined {
  const b = head;
  if (b[0] === 0x50 && b[1] === 0x4b && b[2] === 0x03 && b[3] === 0x04)
    return `this is a zip archive, as PyTorch's torch.save writes (a pickle / PyTorch checkpoint), not a safetensors file; ${CONVERT_HINT}`;
  if (b[0] === 0x80 && b[1] >= 2 && b[1] <= 5) return `this is a Python pickle (a PyTorch checkpoint from torch.save), not a safetensors file; ${CONVERT_HINT}`;
  if (b[0] === 0x47 && b[1] === 0x47 && b[2] === 0x55 && b[3] === 0x46) return 'this is a GGUF file (llama.cpp), not a safetensors file';
  if (b[0] === 0x93 && String.fromCharCode(...b.subarray(1, 6)) === 'NUMPY') return 'this is a NumPy .npy file, not a safetensors file';
  return undefined;
}

/** Reads and validates the header of a .safetensors file (reads only the header bytes). */
export async function readHeader(path: string): Promise<SafetensorsHeader> {
  let fh;
  try {
    fh = await open(path, 'r');
  } catch (e) {
    throw new SoupError('ERR_SOUP_IO', `cannot open '${path}': ${(e as Error).message}`);
  }
  try {
    const { size } = await fh.stat();
    if (size < 8) throw fmtErr(path, `truncated: ${size} bytes, a safetensors file needs at least 8`);
    const lenBuf = Buffer.alloc(8);
    await fh.read(lenBuf, 0, 8, 0);
    const n = lenBuf.readBigUInt64LE(0);
    if (n > BigInt(MAX_HEADER_BYTES) || 8n + n > BigInt(size)) {
      const other = sniffOtherFormat(lenBuf);
      if (other) throw fmtErr(path, other);
    }
    if (n > BigInt(MAX_HEADER_BYTES)) throw fmtErr(path, `header length ${n} exceeds the ${MAX_HEADER_BYTES}-byte limit`);
    if (8n + n > BigInt(size)) throw fmtErr(path, `header length ${n} is beyond the file size (${size} bytes): truncated or not a safetensors file`);
    const hb = Buffer.alloc(Number(n));
    await fh.read(hb, 0, hb.length, 8);
    return parseHeader(path, size, hb);
  } finally {
    await fh.close();
  }
}

export interface ReadOptions {
  /** Copy the data instead of viewing the memory mapping (default false: zero-copy where aligned). */
  copy?: boolean;
}

/** The largest ArrayBuffer this runtime makes (buffer.constants.MAX_LENGTH: 4 GiB on Node 20). The
 *  environment variable RSOUP_MAX_BUFFER_BYTES lowers it, so tests run the over-the-limit paths small. */
export function maxBufferBytes(): number {
  const cap = constants.MAX_LENGTH;
  const lowered = Number(process.env.RSOUP_MAX_BUFFER_BYTES);
  return Number.isSafeInteger(lowered) && lowered > 0 ? Math.min(lowered, cap) : cap;
}

/** Named refusal of one tensor that no ArrayBuffer of this runtime can hold. */
export function tooLargeError(file: string, name: string, bytes: number, limit: number): SoupError {
  return new SoupError(
    'ERR_SOUP_TOO_LARGE',
    `${file}: tensor '${name}' is ${bytes} bytes, over the ${limit}-byte limit of one ArrayBuffer in this runtime; ` +
      'in-memory APIs cannot hold it (file-to-file merges stream it: merge() or rsoup merge)',
  );
}

/** Windows start 64-byte aligned in the file, so a view's address is as aligned as its file offset. */
const WINDOW_ALIGN = 64;

export interface MapWindow {
  start: number;
  length: number;
  entries: SafetensorsEntry[];
}

/** Packs a file's tensors, in file order, into windows of at most `limit` bytes each (one ArrayBuffer
 *  each). A whole-file ArrayBuffer would cap files at the runtime's limit, one per tensor would make
 *  thousands of buffers; gaps between windows are never mapped into JS. */
export function planWindows(file: string, entries: SafetensorsEntry[], limit: number): MapWindow[] {
  const sorted = [...entries].sort((a, b) => a.offset - b.offset);
  const windows: MapWindow[] = [];
  let cur: MapWindow | undefined;
  for (const e of sorted) {
    if (e.byteLength > limit) throw tooLargeError(file, e.name, e.byteLength, limit);
    const end = e.offset + e.byteLength;
    if (cur && end - cur.start <= limit) {
      cur.entries.push(e);
      cur.length = end - cur.start;
      continue;
    }
    const aligned = e.offset - (e.offset % WINDOW_ALIGN);
    const start = end - aligned <= limit ? aligned : e.offset;
    cur = { start, length: end - start, entries: [e] };
    windows.push(cur);
  }
  return windows;
}

/** Views (or copies) of the given float tensors of one file, keyed by name in the given order. Unaligned
 *  tensors are copied (a typed array cannot start at an unaligned offset); non-float tensors are rejected
 *  with their name. */
export function mapTensors(file: string, entries: SafetensorsEntry[], opts: ReadOptions = {}): TensorMap {
  for (const e of entries)
    if (!e.dtype) throw new SoupError('ERR_SOUP_FORMAT', `${file}: tensor '${e.name}' has dtype ${e.stDtype}, only F32/F16/BF16/F64 are supported`);
  const limit = maxBufferBytes();
  const windows = planWindows(file, entries, limit);
  const spans = new Float64Array(windows.length * 2);
  windows.forEach((w, k) => ((spans[2 * k] = w.start), (spans[2 * k + 1] = w.length)));
  let buffers: ArrayBuffer[];
  try {
    buffers = coreAddon().mmapWindows(file, spans, limit);
  } catch (e) {
    throw new SoupError('ERR_SOUP_IO', `cannot map '${file}': ${(e as Error).message.replace(/^\[ERR_SOUP_[A-Z_]+\]\s*/, '')}`);
  }
  const views = new Map<string, Tensor>();
  windows.forEach((w, k) => {
    for (const e of w.entries) {
      const dtype = e.dtype!;
      const numel = numelOf(e.shape);
      const at = e.offset - w.start;
      const data =
        !opts.copy && e.offset % dtypeSize(dtype) === 0
          ? viewAs(dtype, buffers[k], at, numel)
          : viewAs(dtype, buffers[k].slice(at, at + e.byteLength), 0, numel);
      views.set(e.name, { dtype, shape: [...e.shape], data });
    }
  });
  const out: TensorMap = {};
  for (const e of entries) out[e.name] = views.get(e.name)!;
  return out;
}

/** Reads a .safetensors file: zero-copy views over a memory mapping, of any file size. */
export async function readSafetensors(path: string, opts: ReadOptions = {}): Promise<{ tensors: TensorMap; metadata: Record<string, string> }> {
  const header = await readHeader(path);
  return { tensors: mapTensors(path, header.entries, opts), metadata: header.metadata };
}

export interface HeaderEntryInput {
  name: string;
  dtype: DType;
  shape: number[];
}

/** Builds the bytes written before the data (length prefix + JSON padded with spaces to 8 bytes, as the
 *  Python writer does) and each tensor's offset relative to the data start, in the given order. */
export function buildHeader(entries: HeaderEntryInput[], metadata?: Record<string, string>): { bytes: Uint8Array; offsets: number[]; dataBytes: number } {
  const obj: Record<string, unknown> = {};
  if (metadata && Object.keys(metadata).length) obj.__metadata__ = metadata;
  const offsets: number[] = [];
  let off = 0;
  const seen = new Set<string>();
  for (const e of entries) {
    if (seen.has(e.name)) throw new SoupError('ERR_SOUP_INVALID_ARG', `duplicate tensor name '${e.name}'`);
    seen.add(e.name);
    const n = numelOf(e.shape) * dtypeSize(e.dtype);
    obj[e.name] = { dtype: SAFETENSORS_DTYPE[e.dtype], shape: e.shape, data_offsets: [off, off + n] };
    offsets.push(off);
    off += n;
  }
  let json = Buffer.from(JSON.stringify(obj), 'utf8');
  const pad = (8 - ((json.length + 8) % 8)) % 8;
  if (pad) json = Buffer.concat([json, Buffer.alloc(pad, 0x20)]);
  const bytes = new Uint8Array(8 + json.length);
  new DataView(bytes.buffer).setBigUint64(0, BigInt(json.length), true);
  bytes.set(json, 8);
  return { bytes, offsets, dataBytes: off };
}

/** Whether a tensor's data is the typed array its dtype needs, with one element per entry of its shape. */
export function isWellFormedTensor(t: Tensor): boolean {
  const d = t?.data;
  if (!d || !Array.isArray(t.shape) || d.length !== numelOf(t.shape)) return false;
  return t.dtype === 'float32'
    ? d instanceof Float32Array
    : t.dtype === 'float64'
      ? d instanceof Float64Array
      : (t.dtype === 'bfloat16' || t.dtype === 'float16') && d instanceof Uint16Array;
}

/** Checks a tensor's shape, dtype and data length agree; names the tensor. Hot callers test
 *  isWellFormedTensor first and build the label only when it fails. */
export function checkTensor(name: string, t: Tensor): void {
  if (isWellFormedTensor(t)) return;
  if (!t || typeof t !== 'object')
    throw new SoupError('ERR_SOUP_INVALID_ARG', `tensor '${name}' must be an object { dtype, shape, data }, got ${t === null ? 'null' : typeof t}`);
  if (!isDType(t.dtype))
    throw new SoupError('ERR_SOUP_DTYPE_MISMATCH', `tensor '${name}': unknown dtype ${JSON.stringify(t.dtype)} (expected one of ${DTYPES.join(', ')})`);
  if (!Array.isArray(t.shape) || !t.shape.every((x) => Number.isSafeInteger(x) && x >= 0))
    throw new SoupError('ERR_SOUP_SHAPE_MISMATCH', `tensor '${name}': shape must be an array of non-negative integers, got ${JSON.stringify(t.shape)}`);
  const want = t.dtype === 'float32' ? Float32Array : t.dtype === 'float64' ? Float64Array : Uint16Array;
  if (!(t.data instanceof want))
    throw new SoupError(
      'ERR_SOUP_DTYPE_MISMATCH',
      `tensor '${name}': dtype ${t.dtype} needs a ${want.name}, got ${t.data === undefined || t.data === null ? String(t.data) : ((t.data as object).constructor?.name ?? typeof t.data)}`,
    );
  const n = numelOf(t.shape);
  throw new SoupError('ERR_SOUP_SHAPE_MISMATCH', `tensor '${name}': shape ${JSON.stringify(t.shape)} has ${n} elements but data has ${t.data.length}`);
}

/** Writes tensors (in the map's order) to a .safetensors file atomically. */
export async function writeSafetensors(path: string, tensors: TensorMap, opts: { metadata?: Record<string, string> } = {}): Promise<void> {
  const names = Object.keys(tensors);
  for (const n of names) checkTensor(n, tensors[n]);
  const { bytes } = buildHeader(
    names.map((n) => ({ name: n, dtype: tensors[n].dtype, shape: tensors[n].shape })),
    opts.metadata,
  );
  const chunks: Uint8Array[] = [bytes];
  for (const n of names) {
    const d = tensors[n].data;
    chunks.push(new Uint8Array(d.buffer, d.byteOffset, d.byteLength));
  }
  await atomicWriteFile(path, chunks);
}

export async function fileSize(path: string): Promise<number> {
  return (await stat(path)).size;
}
