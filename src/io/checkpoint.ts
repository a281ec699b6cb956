// SPDX-License-Identifier: MIT
// Checkpoints as users bring them: a .safetensors file, a Hugging Face model dir (single file or
// sharded with model.safetensors.index.json), or a PEFT adapter dir (adapter_config.json +
// adapter_model.safetensors). One table of tensor locations, whatever the layout.
import { existsSync, statSync, lstatSync, readdirSync, realpathSync, type Stats } from 'node:fs';
import { open, readFile, writeFile } from 'node:fs/promises';
import { join, basename } from 'node:path';
import { SoupError } from '../errors.js';
import { atomicWriteDir, writeAll } from './atomic.js';
import { readHeader, mapTensors, buildHeader, checkTensor, type SafetensorsEntry, type SafetensorsHeader } from './safetensors.js';
import type { TensorMap } from './tensor.js';

export type CheckpointKind = 'file' | 'hf' | 'peft';

export interface TensorLocation extends SafetensorsEntry {
  file: string;
}

export interface Checkpoint {
  path: string;
  kind: CheckpointKind;
  /** Files holding the tensors, in a stable order. */
  files: string[];
  /** Tensor name -> location, in the checkpoint's own order. */
  tensors: Map<string, TensorLocation>;
  /** config.json of an HF dir. */
  config?: Record<string, unknown>;
  /** adapter_config.json of a PEFT dir. */
  adapterConfig?: Record<string, unknown>;
  /** __metadata__ of the (first) file. */
  metadata: Record<string, string>;
  /** Total bytes of tensor data. */
  totalBytes: number;
}

export const INDEX_NAME = 'model.safetensors.index.json';
export const ADAPTER_CONFIG = 'adapter_config.json';
export const ADAPTER_WEIGHTS = 'adapter_model.safetensors';

async function readJson(path: string): Promise<Record<string, unknown>> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (e) {
    throw new SoupError('ERR_SOUP_IO', `cannot read '${path}': ${(e as Error).message}`);
  }
  try {
    const v = JSON.parse(text);
    if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new Error('not a JSON object');
    return v as Record<string, unknown>;
  } catch (e) {
    throw new SoupError('ERR_SOUP_FORMAT', `${path}: invalid JSON (${(e as Error).message})`);
  }
}

function addAll(ck: Checkpoint, h: SafetensorsHeader, only?: Set<string>): void {
  for (const e of h.entries) {
    if (only && !only.has(e.name)) continue;
    if (ck.tensors.has(e.name)) throw new SoupError('ERR_SOUP_FORMAT', `${ck.path}: tensor '${e.name}' appears in two shards`);
    ck.tensors.set(e.name, { ...e, file: h.path });
    ck.totalBytes += e.byteLength;
  }
}

function nodeKind(st: Stats): string {
  if (st.isFIFO()) return 'a FIFO (named pipe)';
  if (st.isCharacterDevice()) return 'a character device';
  if (st.isBlockDevice()) return 'a block device';
  if (st.isSocket()) return 'a socket';
  return 'not a regular file';
}

/** Weight files a checkpoint dir may hold that are not safetensors (pickles, mostly). */
const PICKLE_WEIGHTS = /^(pytorch_model.*\.bin|adapter_model\.bin|.*\.(bin|pt|pth|ckpt))$|^pytorch_model\.bin\.index\.json$/;

/** Opens a checkpoint: reads headers and configs only, no tensor data. */
export async function openCheckpoint(path: string): Promise<Checkpoint> {
  if (!existsSync(path)) throw new SoupError('ERR_SOUP_IO', `'${path}' does not exist`);
  const st = statSync(path);
  if (!st.isFile() && !st.isDirectory()) {
    const link = lstatSync(path).isSymbolicLink() ? ` (a symlink to '${realpathSync(path)}')` : '';
    throw new SoupError(
      'ERR_SOUP_IO',
      `'${path}'${link} is ${nodeKind(st)}, not a checkpoint: give a .safetensors file, a Hugging Face model dir or a PEFT adapter dir`,
    );
  }
  const ck: Checkpoint = { path, kind: 'file', files: [], tensors: new Map(), metadata: {}, totalBytes: 0 };
  if (st.isFile()) {
    const h = await readHeader(path);
    ck.files = [path];
    ck.metadata = h.metadata;
    addAll(ck, h);
    return ck;
  }
  if (existsSync(join(path, ADAPTER_CONFIG))) {
    ck.kind = 'peft';
    ck.adapterConfig = await readJson(join(path, ADAPTER_CONFIG));
    const w = join(path, ADAPTER_WEIGHTS);
    if (!existsSync(w)) {
      const bin = existsSync(join(path, 'adapter_model.bin'));
      throw new SoupError(
        'ERR_SOUP_FORMAT',
        `${path}: no ${ADAPTER_WEIGHTS}${bin ? ' (pickled adapter_model.bin is not read: convert it to safetensors)' : ''}`,
      );
    }
    const h = await readHeader(w);
    ck.files = [w];
    ck.metadata = h.metadata;
    addAll(ck, h);
    return ck;
  }
  ck.kind = 'hf';
  if (existsSync(join(path, 'config.json'))) ck.config = await readJson(join(path, 'config.json'));
  const index = join(path, INDEX_NAME);
  if (existsSync(index)) {
    const idx = await readJson(index);
    const wm = idx.weight_map;
    if (typeof wm !== 'object' || wm === null || Array.isArray(wm)) throw new SoupError('ERR_SOUP_FORMAT', `${index}: weight_map must be an object`);
    const byFile = new Map<string, Set<string>>();
    for (const [name, file] of Object.entries(wm as Record<string, unknown>)) {
      if (typeof file !== 'string' || file.includes('/') || file.includes('\\'))
        throw new SoupError('ERR_SOUP_FORMAT', `${index}: weight_map['${name}'] must be a file name in the same directory`);
      if (!byFile.has(file)) byFile.set(file, new Set());
      byFile.get(file)!.add(name);
    }
    for (const [file, names] of [...byFile].sort((a, b) => a[0].localeCompare(b[0]))) {
      const fp = join(path, file);
      if (!existsSync(fp)) throw new SoupError('ERR_SOUP_IO', `${index}: shard '${file}' does not exist`);
      const h = await readHeader(fp);
      const present = new Set(h.entries.map((e) => e.name));
      for (const n of names)
        if (!present.has(n)) throw new SoupError('ERR_SOUP_MISSING_TENSOR', `${index}: weight_map says '${n}' is in '${file}', but it is not there`);
      ck.files.push(fp);
      if (ck.files.length === 1) ck.metadata = h.metadata;
      addAll(ck, h, names);
    }
    return ck;
  }
  const single = join(path, 'model.safetensors');
  const files = existsSync(single)
    ? [single]
    : readdirSync(path)
        .filter((f) => f.endsWith('.safetensors'))
        .sort()
        .map((f) => join(path, f));
  if (files.length === 0) {
    const pickles = readdirSync(path)
      .filter((f) => PICKLE_WEIGHTS.test(f))
      .sort();
    if (pickles.length)
      throw new SoupError(
        'ERR_SOUP_FORMAT',
        `${path}: only PyTorch pickle weights (${pickles.slice(0, 3).join(', ')}${pickles.length > 3 ? ', …' : ''}), no .safetensors file; rsoup reads safetensors only (unpickling can run code): convert the model first, e.g. in Python: AutoModelForCausalLM.from_pretrained(dir).save_pretrained(out, safe_serialization=True)`,
      );
    throw new SoupError('ERR_SOUP_FORMAT', `${path}: no .safetensors file, ${INDEX_NAME} or ${ADAPTER_CONFIG} found`);
  }
  if (files.length > 1) throw new SoupError('ERR_SOUP_FORMAT', `${path}: several .safetensors files but no ${INDEX_NAME}`);
  const h = await readHeader(files[0]);
  ck.files = files;
  ck.metadata = h.metadata;
  addAll(ck, h);
  return ck;
}

/** Loads tensors of a checkpoint (all by default), in the given order: zero-copy views over memory
 *  mappings where aligned, whatever the file sizes. */
export function loadTensors(ck: Checkpoint, opts: { names?: string[] } = {}): TensorMap {
  const byFile = new Map<string, TensorLocation[]>();
  const names = opts.names ?? [...ck.tensors.keys()];
  for (const name of names) {
    const loc = ck.tensors.get(name);
    if (!loc) throw new SoupError('ERR_SOUP_MISSING_TENSOR', `${ck.path}: no tensor '${name}'`);
    if (!byFile.has(loc.file)) byFile.set(loc.file, []);
    byFile.get(loc.file)!.push(loc);
  }
  const views: TensorMap = {};
  for (const [file, locs] of byFile) Object.assign(views, mapTensors(file, locs));
  const out: TensorMap = {};
  for (const name of names) out[name] = views[name];
  return out;
}

/** An HF model dir in memory: config.json and all tensors. */
export async function loadModelDir(dir: string): Promise<{ config: Record<string, unknown>; tensors: TensorMap }> {
  const ck = await openCheckpoint(dir);
  if (ck.kind !== 'hf')
    throw new SoupError('ERR_SOUP_FORMAT', `${dir}: expected a Hugging Face model dir, found a ${ck.kind === 'peft' ? 'PEFT adapter dir' : 'single file'}`);
  if (!ck.config) throw new SoupError('ERR_SOUP_FORMAT', `${dir}: no config.json`);
  return { config: ck.config, tensors: loadTensors(ck) };
}

export async function readPeftAdapter(dir: string): Promise<{ config: Record<string, unknown>; tensors: TensorMap }> {
  const ck = await openCheckpoint(dir);
  if (ck.kind !== 'peft') throw new SoupError('ERR_SOUP_FORMAT', `${dir}: expected a PEFT adapter dir (with ${ADAPTER_CONFIG})`);
  return { config: ck.adapterConfig!, tensors: loadTensors(ck) };
}

export const DEFAULT_SHARD_SIZE = 5_000_000_000;

/** Files of an HF dir that travel with merged weights (config, tokenizer), as mergekit copies them. */
export const SIDECAR_FILES = /^(config\.json|generation_config\.json|tokenizer.*|special_tokens_map\.json|vocab\.json|merges\.txt|.*\.model)$/;

/** Shard file names as transformers writes them. */
export function shardName(i: number, n: number): string {
  return `model-${String(i + 1).padStart(5, '0')}-of-${String(n).padStart(5, '0')}.safetensors`;
}

/** Groups tensors (name, bytes) into shards of at most `shardSize` bytes, in order (mergekit's rule:
 *  start a new shard when adding the next tensor would exceed the size; a larger tensor gets its own). */
export function planShards<T extends { name: string; bytes: number }>(items: T[], shardSize: number): T[][] {
  const shards: T[][] = [];
  let cur: T[] = [];
  let size = 0;
  for (const it of items) {
    if (cur.length && size + it.bytes > shardSize) {
      shards.push(cur);
      cur = [];
      size = 0;
    }
    cur.push(it);
    size += it.bytes;
  }
  if (cur.length || shards.length === 0) shards.push(cur);
  return shards;
}

export function indexJson(shards: { file: string; names: string[] }[], totalSize: number): string {
  const weight_map: Record<string, string> = {};
  for (const s of shards) for (const n of s.names) weight_map[n] = s.file;
  return `${JSON.stringify({ metadata: { total_size: totalSize }, weight_map }, null, 2)}\n`;
}

/** Writes one safetensors file (not atomic by itself: callers write into a temporary directory). */
async function writeTensorsFile(path: string, tensors: TensorMap, names: string[], metadata?: Record<string, string>): Promise<void> {
  const { bytes } = buildHeader(
    names.map((n) => ({ name: n, dtype: tensors[n].dtype, shape: tensors[n].shape })),
    metadata,
  );
  const fh = await open(path, 'w');
  try {
    await writeAll(fh, bytes);
    for (const n of names) {
      const d = tensors[n].data;
      await writeAll(fh, new Uint8Array(d.buffer, d.byteOffset, d.byteLength));
    }
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/** Writes an HF model dir atomically: model.safetensors, or shards + index when over `shardSize`. */
export async function saveModelDir(
  dir: string,
  tensors: TensorMap,
  opts: { config?: Record<string, unknown>; shardSize?: number; metadata?: Record<string, string> } = {},
): Promise<void> {
  const names = Object.keys(tensors);
  for (const n of names) checkTensor(n, tensors[n]);
  const shards = planShards(
    names.map((n) => ({ name: n, bytes: tensors[n].data.byteLength })),
    opts.shardSize ?? DEFAULT_SHARD_SIZE,
  );
  const metadata = { format: 'pt', ...opts.metadata };
  await atomicWriteDir(dir, async (tmp) => {
    if (opts.config) await writeFile(join(tmp, 'config.json'), `${JSON.stringify(opts.config, null, 2)}\n`);
    if (shards.length === 1) {
      await writeTensorsFile(
        join(tmp, 'model.safetensors'),
        tensors,
        shards[0].map((s) => s.name),
        metadata,
      );
      return;
    }
    const files: { file: string; names: string[] }[] = [];
    let total = 0;
    for (let i = 0; i < shards.length; i++) {
      const file = shardName(i, shards.length);
      const ns = shards[i].map((s) => s.name);
      await writeTensorsFile(join(tmp, file), tensors, ns, metadata);
      files.push({ file, names: ns });
      total += shards[i].reduce((a, s) => a + s.bytes, 0);
    }
    await writeFile(join(tmp, INDEX_NAME), indexJson(files, total));
  });
}

/** Writes a PEFT adapter dir atomically (adapter_config.json + adapter_model.safetensors). */
export async function writePeftAdapter(dir: string, tensors: TensorMap, config: Record<string, unknown>): Promise<void> {
  const names = Object.keys(tensors);
  for (const n of names) checkTensor(n, tensors[n]);
  await atomicWriteDir(dir, async (tmp) => {
    await writeFile(join(tmp, ADAPTER_CONFIG), `${JSON.stringify(config, null, 2)}\n`);
    await writeTensorsFile(join(tmp, ADAPTER_WEIGHTS), tensors, names, { format: 'pt' });
  });
}

export function describeCheckpoint(ck: Checkpoint): string {
  return `${basename(ck.path)} (${ck.kind}, ${ck.tensors.size} tensors, ${ck.files.length} file${ck.files.length === 1 ? '' : 's'})`;
}
