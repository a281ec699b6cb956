import { describe, expect, it } from 'vitest';
import { mkdtempSync, readFileSync, writeFileSync, readdirSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  readSafetensors,
  writeSafetensors,
  readHeader,
  openCheckpoint,
  saveModelDir,
  loadModelDir,
  readPeftAdapter,
  writePeftAdapter,
  bf16ToF32,
  f64ToBf16,
  f64ToF16,
  f16ToF32,
  type TensorMap,
} from '../src/io/index.js';
import { rng, randomMap } from './helpers/random.js';
import { fixture } from './helpers/fixtures.js';

const tmp = () => mkdtempSync(join(tmpdir(), 'soup-io-'));

function bytesOf(m: TensorMap, n: string): Buffer {
  const d = m[n].data;
  return Buffer.from(d.buffer, d.byteOffset, d.byteLength);
}

describe('safetensors round trip', () => {
  it('writes and reads back every dtype bit for bit, with metadata, at odd sizes', async () => {
    const r = rng(7);
    const m: TensorMap = {
      ...randomMap(['a'], [[3, 5]], 'float32', r),
      ...randomMap(['b'], [[7]], 'bfloat16', r),
      ...randomMap(['c'], [[2, 3, 1]], 'float16', r),
      ...randomMap(['d'], [[5]], 'float64', r),
    };
    const p = join(tmp(), 'x.safetensors');
    await writeSafetensors(p, m, { metadata: { format: 'pt', note: 'hi' } });
    const back = await readSafetensors(p);
    expect(back.metadata).toEqual({ format: 'pt', note: 'hi' });
    for (const n of Object.keys(m)) {
      expect(back.tensors[n].dtype).toBe(m[n].dtype);
      expect(back.tensors[n].shape).toEqual(m[n].shape);
      expect(bytesOf(back.tensors, n).equals(bytesOf(m, n))).toBe(true);
    }
    // header padded to 8 bytes like the Python writer, data starts aligned
    const h = await readHeader(p);
    expect(h.dataStart % 8).toBe(0);
  });

  it('reads the real PEFT adapter written by peft (25 F32 tensors)', async (ctx) => {
    const { config, tensors } = await readPeftAdapter(fixture(ctx, 'peft-gpt2-lora'));
    expect(config.fan_in_fan_out).toBe(true);
    expect(Object.keys(tensors)).toHaveLength(25);
    const a = tensors['base_model.model.transformer.h.0.attn.c_attn.lora_A.weight'];
    expect(a.shape).toEqual([8, 768]);
    expect(tensors['base_model.model.transformer.h.0.attn.c_attn.lora_B.weight'].shape).toEqual([2304, 8]);
    expect(tensors['base_model.model.score.weight'].shape).toEqual([6, 768]);
    // values are real numbers (kaiming-uniform A: |a| <= 1/sqrt(768) * sqrt(3) * ... bounded)
    const absMax = Math.max(...Array.from(a.data as Float32Array, Math.abs));
    expect(absMax).toBeGreaterThan(0);
    expect(absMax).toBeLessThan(1);
  });

  it('writes a sharded HF dir with index and reads it back', async () => {
    const r = rng(3);
    const names = Array.from({ length: 7 }, (_, i) => `model.layers.${i}.w`);
    const m = randomMap(
      names,
      names.map((_, i) => [4 + i, 3]),
      'bfloat16',
      r,
    );
    const dir = join(tmp(), 'model');
    await saveModelDir(dir, m, { config: { model_type: 'llama' }, shardSize: 60 });
    const files = readdirSync(dir).sort();
    expect(files).toContain('model.safetensors.index.json');
    const idx = JSON.parse(readFileSync(join(dir, 'model.safetensors.index.json'), 'utf8'));
    const total = names.reduce((a, n) => a + m[n].data.byteLength, 0);
    expect(idx.metadata.total_size).toBe(total);
    const shards = files.filter((f) => f.startsWith('model-'));
    expect(shards.length).toBeGreaterThan(1);
    expect(shards[0]).toBe(`model-00001-of-${String(shards.length).padStart(5, '0')}.safetensors`);
    const { config, tensors } = await loadModelDir(dir);
    expect(config.model_type).toBe('llama');
    for (const n of names) expect(bytesOf(tensors, n).equals(bytesOf(m, n))).toBe(true);
    // no temporary leftovers beside the output
    expect(readdirSync(join(dir, '..')).filter((f) => f.includes('.tmp-'))).toEqual([]);
  });

  it('writes a PEFT dir that reopens as a peft checkpoint', async () => {
    const r = rng(11);
    const m = randomMap(
      ['base_model.model.x.lora_A.weight', 'base_model.model.x.lora_B.weight'],
      [
        [2, 5],
        [6, 2],
      ],
      'float32',
      r,
    );
    const dir = join(tmp(), 'adapter');
    await writePeftAdapter(dir, m, { peft_type: 'LORA', r: 2, lora_alpha: 4 });
    const ck = await openCheckpoint(dir);
    expect(ck.kind).toBe('peft');
    expect(ck.adapterConfig!.lora_alpha).toBe(4);
    expect(existsSync(join(dir, 'adapter_model.safetensors'))).toBe(true);
  });
});

describe('half-precision conversions', () => {
  it('round to nearest even on ties and handle subnormals, overflow and NaN', () => {
    // 1 + 2^-8 is exactly halfway between bf16 1.0 and 1.0078125: ties to even (1.0)
    expect(bf16ToF32(f64ToBf16(1 + 2 ** -8))).toBe(1);
    expect(bf16ToF32(f64ToBf16(1 + 3 * 2 ** -8))).toBe(1 + 2 ** -6);
    expect(f16ToF32(f64ToF16(1 + 2 ** -11))).toBe(1);
    expect(f16ToF32(f64ToF16(2 ** -24))).toBe(2 ** -24);
    expect(f16ToF32(f64ToF16(2 ** -25))).toBe(0); // tie -> even (0)
    expect(f16ToF32(f64ToF16(65520))).toBe(Infinity);
    expect(f16ToF32(f64ToF16(65519))).toBe(65504);
    expect(Number.isNaN(f16ToF32(f64ToF16(NaN)))).toBe(true);
    writeFileSync(join(tmp(), 'unused'), '');
  });
});
