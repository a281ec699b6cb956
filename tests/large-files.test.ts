// SPDX-License-Identifier: MIT
// Files past the runtime's ArrayBuffer limit (4 GiB on Node 20): a sparse safetensors file with random
// tensors placed past 4 GiB, read by readSafetensors and by an independent numpy reader; with the limit
// lowered (RSOUP_MAX_BUFFER_BYTES) the same windowing runs on small files: views split across buffers,
// a tensor over the limit refused by name, a LLaMA dir whose shard exceeds it loaded with the logits of
// small shards, in-memory soups whose outputs exceed it.
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, openSync, writeSync, closeSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { constants } from 'node:buffer';
import {
  buildHeader,
  readSafetensors,
  readHeader,
  planWindows,
  maxBufferBytes,
  saveModelDir,
  loadModelDir,
  bf16ToF32,
  f16ToF32,
  type DType,
  type TensorMap,
} from '../src/io/index.js';
import { interpolate } from '../src/soup/index.js';
import { CausalLM, llamaConfigToHF } from '../src/train/llama.js';
import { randomLlamaWeights, tinyLlama } from '../src/train/testing.js';
import { rng, randomMap } from './helpers/random.js';
import { needs } from './helpers/fixtures.js';

const tmp = mkdtempSync(join(tmpdir(), 'rsoup-large-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
afterEach(() => {
  delete process.env.RSOUP_MAX_BUFFER_BYTES;
});

const numpy = spawnSync('/usr/bin/python3', ['-c', 'import numpy'], { encoding: 'utf8' }).status === 0;

function bytesOf(d: ArrayBufferView): Buffer {
  return Buffer.from(d.buffer, d.byteOffset, d.byteLength);
}
function toF64(dtype: DType, d: ArrayLike<number>): Float64Array {
  const out = new Float64Array(d.length);
  for (let i = 0; i < d.length; i++) out[i] = dtype === 'bfloat16' ? bf16ToF32(d[i]) : dtype === 'float16' ? f16ToF32(d[i]) : d[i];
  return out;
}

// An independent reader: the header parsed by Python's json, each tensor read by numpy at its offset
// (bf16 widened by a 16-bit shift), printed as sha256 of its bytes and the float64 sum of its values.
const NUMPY_READER = `
import json, struct, sys, hashlib
import numpy as np
path = sys.argv[1]
with open(path, 'rb') as f:
    n = struct.unpack('<Q', f.read(8))[0]
    header = json.loads(f.read(n))
out = {}
for name, e in header.items():
    if name == '__metadata__':
        continue
    b, end = e['data_offsets']
    raw = np.fromfile(path, dtype=np.uint8, count=end - b, offset=8 + n + b).tobytes()
    if e['dtype'] == 'BF16':
        vals = (np.frombuffer(raw, dtype='<u2').astype(np.uint32) << 16).view(np.float32).astype(np.float64)
    else:
        vals = np.frombuffer(raw, dtype={'F32': '<f4', 'F16': '<f2', 'F64': '<f8'}[e['dtype']]).astype(np.float64)
    out[name] = {'sha256': hashlib.sha256(raw).hexdigest(), 'sum': float(vals.sum()), 'n': int(vals.size)}
print(json.dumps(out))
`;

/** Writes a safetensors file whose tensors sit at the given data offsets (gaps left as sparse holes). */
function writeSparse(path: string, tensors: { name: string; dtype: DType; shape: number[]; at: number; data: ArrayBufferView }[]): void {
  const { bytes } = buildHeader(tensors.map((t) => ({ name: t.name, dtype: t.dtype, shape: t.shape })));
  // buildHeader packs tensors back to back; rewrite the offsets to the wanted places, keeping the length
  const headerLen = Number(new DataView(bytes.buffer).getBigUint64(0, true));
  const json = JSON.parse(Buffer.from(bytes.subarray(8, 8 + headerLen)).toString('utf8')) as Record<string, { data_offsets: number[] }>;
  for (const t of tensors) json[t.name].data_offsets = [t.at, t.at + t.data.byteLength];
  let text = Buffer.from(JSON.stringify(json));
  const pad = (8 - ((text.length + 8) % 8)) % 8;
  text = Buffer.concat([text, Buffer.alloc(pad, 0x20)]);
  const head = Buffer.alloc(8);
  head.writeBigUInt64LE(BigInt(text.length));
  const fd = openSync(path, 'w');
  try {
    writeSync(fd, head, 0, 8, 0);
    writeSync(fd, text, 0, text.length, 8);
    for (const t of tensors) writeSync(fd, bytesOf(t.data), 0, t.data.byteLength, 8 + text.length + t.at);
  } finally {
    closeSync(fd);
  }
}

describe('safetensors files over 4 GiB', () => {
  it('reads random tensors placed past 4 GiB exactly as numpy reads them', async (ctx) => {
    needs(ctx, numpy, "python3 with numpy (Debian's python3-numpy, installed with python3-torch by the bootstrap)");
    const r = rng(41);
    const GiB = 2 ** 30;
    const m = {
      ...randomMap(['near'], [[17, 3]], 'float32', r),
      ...randomMap(['far.bf16'], [[333, 77]], 'bfloat16', r),
      ...randomMap(['far.f32'], [[1001]], 'float32', r),
      ...randomMap(['far.f16'], [[5, 9]], 'float16', r),
      ...randomMap(['far.f64'], [[129]], 'float64', r),
    };
    const at: Record<string, number> = {
      near: 0,
      'far.bf16': 4 * GiB + 64,
      'far.f32': 4 * GiB + 64 + 333 * 77 * 2 + 4,
      'far.f16': 5 * GiB - 2,
      'far.f64': 5 * GiB + 1024,
    };
    const path = join(tmp, 'big.safetensors');
    writeSparse(
      path,
      Object.entries(m).map(([name, t]) => ({ name, dtype: t.dtype, shape: t.shape, at: at[name], data: t.data })),
    );
    expect(statSync(path).size).toBeGreaterThan(5 * GiB);
    expect(maxBufferBytes()).toBe(constants.MAX_LENGTH);

    const { tensors } = await readSafetensors(path);
    const py = spawnSync('/usr/bin/python3', ['-c', NUMPY_READER, path], { encoding: 'utf8', maxBuffer: 1 << 24 });
    expect(py.stderr).toBe('');
    const ref = JSON.parse(py.stdout) as Record<string, { sha256: string; sum: number; n: number }>;
    expect(Object.keys(tensors).sort()).toEqual(Object.keys(ref).sort());
    for (const [name, t] of Object.entries(tensors)) {
      expect(t.shape).toEqual(m[name].shape);
      expect(createHash('sha256').update(bytesOf(t.data)).digest('hex'), name).toBe(ref[name].sha256);
      const sum = toF64(t.dtype, t.data).reduce((a, b) => a + b, 0);
      expect(Math.abs(sum - ref[name].sum), name).toBeLessThanOrEqual(1e-9 * Math.max(1, Math.abs(ref[name].sum)));
      expect(bytesOf(t.data).equals(bytesOf(m[name].data)), name).toBe(true);
    }
    // the unaligned f32 (offset ≡ 2 mod 4) is a copy; the aligned ones are views of the mapping
    expect((tensors['far.f32'].data as Float32Array).byteOffset).toBe(0);
  });
});

describe('windows under a lowered ArrayBuffer limit', () => {
  it('splits a file into windows of at most the limit, each tensor whole, aligned starts', async () => {
    const r = rng(5);
    const m: TensorMap = randomMap(['a', 'b', 'c', 'd', 'e'], [[100], [37, 3], [250], [1], [63]], 'float32', r);
    const path = join(tmp, 'win.safetensors');
    writeSparse(
      path,
      Object.entries(m).map(([name, t], i) => ({ name, dtype: t.dtype, shape: t.shape, at: i * 1100 + (i % 2) * 4, data: t.data })),
    );
    const h = await readHeader(path);
    const windows = planWindows(path, h.entries, 1200);
    expect(windows.length).toBeGreaterThan(1);
    for (const w of windows) {
      expect(w.length).toBeLessThanOrEqual(1200);
      for (const e of w.entries) expect(e.offset >= w.start && e.offset + e.byteLength <= w.start + w.length).toBe(true);
    }
    expect(windows.flatMap((w) => w.entries.map((e) => e.name)).sort()).toEqual(Object.keys(m).sort());

    process.env.RSOUP_MAX_BUFFER_BYTES = '1200';
    const { tensors } = await readSafetensors(path);
    expect(new Set(Object.values(tensors).map((t) => t.data.buffer)).size).toBeGreaterThan(1);
    for (const n of Object.keys(m)) expect(bytesOf(tensors[n].data).equals(bytesOf(m[n].data)), n).toBe(true);
    const copied = await readSafetensors(path, { copy: true });
    for (const n of Object.keys(m)) expect(bytesOf(copied.tensors[n].data).equals(bytesOf(m[n].data)), n).toBe(true);
  });

  it('refuses one tensor over the limit by file and name, before V8 sees it', async () => {
    const r = rng(6);
    const m = randomMap(['small', 'huge'], [[10], [400]], 'float32', r);
    const path = join(tmp, 'huge.safetensors');
    writeSparse(path, [
      { name: 'small', dtype: 'float32', shape: [10], at: 0, data: m.small.data },
      { name: 'huge', dtype: 'float32', shape: [400], at: 64, data: m.huge.data },
    ]);
    process.env.RSOUP_MAX_BUFFER_BYTES = '1000';
    await expect(readSafetensors(path)).rejects.toMatchObject({
      code: 'ERR_SOUP_TOO_LARGE',
      message: expect.stringMatching(/huge\.safetensors: tensor 'huge' is 1600 bytes, over the 1000-byte limit.*file-to-file/),
    });
  });

  it('in-memory soups whose outputs exceed the limit spread them over several buffers, exactly', async () => {
    const r = rng(8);
    const names = ['w0', 'w1', 'w2', 'w3'];
    const shapes = [[300], [7, 41], [513], [2]];
    const a = randomMap(names, shapes, 'float32', r),
      b = randomMap(names, shapes, 'float32', r);
    process.env.RSOUP_MAX_BUFFER_BYTES = '2100';
    const out = await interpolate([a, b], [0.3, 0.7]);
    expect(Object.keys(out)).toEqual(names);
    expect(new Set(Object.values(out).map((t) => t.data.buffer)).size).toBeGreaterThan(1);
    for (const n of names) {
      const got = out[n].data as Float32Array,
        x = a[n].data as Float32Array,
        y = b[n].data as Float32Array;
      for (let i = 0; i < got.length; i++) expect(Math.abs(got[i] - (0.3 * x[i] + 0.7 * y[i]))).toBeLessThanOrEqual(1e-6 * (Math.abs(x[i]) + Math.abs(y[i])));
    }
    process.env.RSOUP_MAX_BUFFER_BYTES = '2000';
    await expect(interpolate([a, b], [0.3, 0.7])).rejects.toMatchObject({
      code: 'ERR_SOUP_TOO_LARGE',
      message: expect.stringContaining("tensor 'w2' is 2052 bytes"),
    });
  });

  it('a LLaMA dir whose shard exceeds the limit loads with the logits of small shards', async () => {
    const cfg = tinyLlama({
      vocabSize: 41,
      hiddenSize: 24,
      intermediateSize: 36,
      numHiddenLayers: 2,
      numAttentionHeads: 4,
      numKeyValueHeads: 2,
      rmsNormEps: 1e-5,
      eosTokenId: 2,
      padTokenId: 0,
    });
    const W = randomLlamaWeights(cfg, 11, { dtype: 'float32' });
    const oneShard = join(tmp, 'llama-one'),
      small = join(tmp, 'llama-small');
    await saveModelDir(oneShard, W, { config: llamaConfigToHF(cfg) });
    await saveModelDir(small, W, { config: llamaConfigToHF(cfg), shardSize: 6000 });
    const toks = [5, 9, 3, 17, 40, 22, 8];
    const ref = await CausalLM.fromPretrained(small, { tokenizer: false });
    const want = await ref.logits([toks]);
    await ref.dispose();
    const shardBytes = statSync(join(oneShard, 'model.safetensors')).size;
    process.env.RSOUP_MAX_BUFFER_BYTES = '5000';
    expect(shardBytes).toBeGreaterThan(5000 * 4);
    const { tensors } = await loadModelDir(oneShard);
    expect(new Set(Object.values(tensors).map((t) => t.data.buffer)).size).toBeGreaterThan(3);
    const m = await CausalLM.fromPretrained(oneShard, { tokenizer: false });
    const got = await m.logits([toks]);
    await m.dispose();
    expect(got.length).toBe(want.length);
    expect(Buffer.from(got.buffer, got.byteOffset, got.byteLength).equals(Buffer.from(want.buffer, want.byteOffset, want.byteLength))).toBe(true);
  });
});
