// SPDX-License-Identifier: MIT
// CUDA on any machine: the kernels are compiled in (when nvcc exists), the addon loads, and without a GPU
// every CUDA entry point fails with ERR_SOUP_NO_CUDA saying why. On a GPU machine the GPU tests run:
// interpolateCuda / merge({ device: 'cuda' }) equal the CPU path bit for bit.
import { describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SoupError } from '../src/errors.js';
import { torchAddon, packageRoot } from '../src/native/index.js';
import { CudaResident, cudaAvailable, cudaStatus, interpolateCuda, mergeFilesCuda, requireCuda } from '../src/native/cuda.js';
import { interpolate, merge, writeSafetensors, type TensorMap, type Tensor } from '../src/index.js';
import { rng, randomTensor } from './helpers/random.js';

const status = cudaStatus();
const available = cudaAvailable();
const noGpuReason = available ? '' : status.reason;
const nvcc = ['/usr/local/cuda/bin/nvcc', '/usr/local/cuda-13.0/bin/nvcc', '/usr/local/bin/nvcc'].find((p) => existsSync(p));
const testBinary = join(packageRoot, 'build-torch', 'native', 'cuda', 'tests', 'soup_cuda_tests');
const emuBinary = join(packageRoot, 'build-torch', 'native', 'cuda', 'soup_cuda_emu_tests');
const emuBench = join(packageRoot, 'build-torch', 'native', 'cuda', 'soup_cuda_emu_bench');
const emuCapi = join(packageRoot, 'build-torch', 'Release', 'libsoup_cuda_emu_capi.so');
const pyTorch = spawnSync('/usr/bin/python3', ['-c', 'import torch'], { encoding: 'utf8' }).status === 0;
const torchCheckBinary = join(packageRoot, 'build-torch', 'native', 'cuda', 'tests', 'soup_torch_cuda_check');

type Raw = Record<string, (b: unknown) => Promise<unknown>>;
const raw = () => torchAddon() as unknown as Raw;

async function rejection(p: Promise<unknown>): Promise<Error> {
  try {
    await p;
  } catch (e) {
    return e as Error;
  }
  throw new Error('expected a rejection');
}

function model(seed: number, names: string[], shapes: number[][], dtype: Tensor['dtype']): TensorMap {
  const r = rng(seed);
  return Object.fromEntries(names.map((n, i) => [n, randomTensor(dtype, shapes[i], r)]));
}

const oneTensorBaton = () => ({
  sources: [[new Float32Array([1, 2, 3])], [new Float32Array([4, 5, 6])]],
  inDtypes: new Int32Array([0]),
  outs: [new Float32Array(3)],
  outDtypes: new Int32Array([0]),
  weights: new Float64Array([0.25, 0.75]),
  control: new Float64Array(2),
});

describe('CUDA: build and status (any machine)', () => {
  it.skipIf(!nvcc)('the CUDA kernels are compiled into the torch addon when nvcc exists', () => {
    const info = torchAddon().info();
    expect(info.cuda.compiled).toBe(true);
    expect(status.compiled).toBe(true);
    expect(typeof raw().interpolateCuda).toBe('function');
    expect(typeof raw().mergeFilesCuda).toBe('function');
  });

  it('info().cuda and cudaStatus() agree, and a missing GPU comes with a reason', () => {
    const info = torchAddon().info();
    expect(status.compiled).toBe(info.cuda.compiled);
    expect(status.available).toBe(info.cuda.available);
    expect(status.devices).toBe(info.cuda.devices);
    if (!available) {
      expect(status.reason).toMatch(/no device|no CUDA kernels|did not load/i);
      expect(info.cuda.devices).toBe(0);
    } else {
      expect(status.device).toMatch(/cc \d+\.\d+/);
    }
  });

  it.skipIf(!nvcc || available)('rsoup doctor reports "CUDA compiled, no device"', () => {
    const r = spawnSync(process.execPath, ['--import', 'tsx', join(packageRoot, 'src', 'cli', 'main.ts'), 'doctor', '--json'], {
      encoding: 'utf8',
      timeout: 60_000,
    });
    const report = JSON.parse(r.stdout.trim().split('\n').pop()!);
    expect(report.cudaStatus).toBe('CUDA compiled, no device');
  });

  it.skipIf(!nvcc)('CI compiles every CUDA source for sm_80 and sm_90 (machine code) plus compute_90 PTX', () => {
    const ninja = readFileSync(join(packageRoot, 'build-torch', 'build.ninja'), 'utf8');
    expect(ninja).toContain('native/cuda/interpolate.cu');
    expect(ninja).toContain('generate-code=arch=compute_80,code=[sm_80]');
    expect(ninja).toContain('generate-code=arch=compute_90,code=[compute_90,sm_90]');
    // Built, not only configured: the static library and the C ABI exist next to the addon.
    expect(existsSync(join(packageRoot, 'build-torch', 'native', 'cuda', 'libsoup_cuda.a'))).toBe(true);
    expect(existsSync(join(packageRoot, 'build-torch', 'Release', 'libsoup_cuda_capi.so'))).toBe(true); // cmake-js puts shared libraries in Release/
  });

  it.skipIf(!existsSync(emuBinary))(
    'the kernels, tables and pipeline pass every GPU test under the CPU emulation (fresh random data)',
    () => {
      const seed = String(Date.now());
      const r = spawnSync(emuBinary, ['--seed', seed, '--quick'], { encoding: 'utf8', timeout: 600_000 });
      expect(r.status, `seed ${seed}\n${r.stdout}${r.stderr}`).toBe(0);
      expect(r.stdout).toMatch(/device: CPU emulation/);
      expect(r.stdout).not.toMatch(/^SKIP/m);
      expect(r.stdout.trim().split('\n').pop()).toMatch(/^1[0-9] passed, 0 failed$/);
    },
    600_000,
  );

  it.skipIf(!existsSync(emuBench))(
    'the file-merge bench runs end to end over the emulation (its timings mean nothing there)',
    () => {
      const d = mkdtempSync(join(tmpdir(), 'soup-emu-bench-'));
      const r = spawnSync(emuBench, ['--dir', d, '--n', '3', '--mib', '40', '--json', join(d, 'm.json')], { encoding: 'utf8', timeout: 300_000 });
      expect(r.status, r.stdout + r.stderr).toBe(0);
      const m = JSON.parse(readFileSync(join(d, 'm.json'), 'utf8'));
      expect(m.n).toBe(3);
      expect(m.bytesPerSource).toBe(32 * 2 ** 20 + 2 * (4097 + 65537 + 333 + 2 ** 20));
      for (const k of ['mergeS', 'readS', 'writeS', 'linkS', 'kernelS', 'mergeOverBound']) expect(m[k], k).toBeGreaterThan(0);
      expect(m.kernel).toMatch(/soup_interpolate_multi_cuda/);
    },
    300_000,
  );

  it.skipIf(!existsSync(emuCapi) || !pyTorch)(
    'bench/gpu_torch.py runs end to end (--dry-run: CPU torch over the emulated C ABI)',
    () => {
      const d = mkdtempSync(join(tmpdir(), 'soup-gpu-dry-'));
      const script = join(packageRoot, 'bench', 'gpu_torch.py');
      const r = spawnSync('/usr/bin/python3', [script, '--dry-run', '--lib', emuCapi, '--out', join(d, 'kernels.json'), '--reps', '2'], {
        encoding: 'utf8',
        timeout: 300_000,
        env: { ...process.env, PYTHONDONTWRITEBYTECODE: '1' },
      });
      expect(r.status, r.stdout + r.stderr).toBe(0);
      const k = JSON.parse(readFileSync(join(d, 'kernels.json'), 'utf8'));
      expect(k.rows).toHaveLength(8);
      for (const row of k.rows) {
        expect(row.worstErrOverTol).toBeLessThanOrEqual(1);
        expect(Object.keys(row.variantS).sort()).toEqual(['0', '1']);
        expect(row.kernelS).toBeGreaterThan(0);
      }
      const sum = spawnSync('/usr/bin/python3', [script, '--summary', d], { encoding: 'utf8', env: { ...process.env, PYTHONDONTWRITEBYTECODE: '1' } });
      expect(sum.status).toBe(0);
      expect(sum.stdout.match(/^(large|small) /gm)).toHaveLength(8);
    },
    300_000,
  );

  it.skipIf(!existsSync(torchCheckBinary))('the libtorch-linked check loads alongside libtorch (SKIP without a GPU)', () => {
    const r = spawnSync(torchCheckBinary, [], { encoding: 'utf8', timeout: 300_000 });
    expect(r.status, r.stdout + r.stderr).toBe(0);
    const last = r.stdout.trim().split('\n').pop()!;
    if (available) expect(last).toMatch(/^[1-9]\d* passed, 0 failed$/);
    else expect(last).toBe('0 passed, 0 failed, 1 skipped');
  });

  it.skipIf(!existsSync(testBinary))('the C++ kernel tests (native/tests) pass; their GPU cases skip with the reason here', () => {
    const r = spawnSync(testBinary, ['--seed', '12345'], { encoding: 'utf8', timeout: 600_000 });
    expect(r.status, r.stdout + r.stderr).toBe(0);
    const last = r.stdout.trim().split('\n').pop()!;
    expect(last).toMatch(/^\d+ passed, 0 failed/);
    if (!available) {
      expect(last).toMatch(/, [1-9]\d* skipped$/);
      expect(r.stdout).toMatch(/^SKIP .*: no usable NVIDIA driver|no CUDA device/m);
      expect(r.stdout).toMatch(/^ok {3}without a device: every entry point fails with ERR_SOUP_NO_CUDA/m);
    }
  });
});

describe.skipIf(available)('CUDA: error paths without a GPU', () => {
  it('requireCuda throws ERR_SOUP_NO_CUDA naming the reason and the remedy', () => {
    let err: unknown;
    try {
      requireCuda();
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(SoupError);
    expect((err as SoupError).code).toBe('ERR_SOUP_NO_CUDA');
    expect((err as SoupError).message).toContain(status.reason);
    expect((err as SoupError).message).toMatch(/device 'cpu'/);
  });

  it('interpolateCuda / mergeFilesCuda (typed) reject with ERR_SOUP_NO_CUDA', async () => {
    const e1 = await rejection(interpolateCuda(oneTensorBaton()));
    expect(e1).toBeInstanceOf(SoupError);
    expect((e1 as SoupError).code).toBe('ERR_SOUP_NO_CUDA');
    const e2 = await rejection(
      mergeFilesCuda({ files: [], out: join(tmpdir(), 'never-written'), header: new Uint8Array(0), weights: new Float64Array([1]), tensors: [] }),
    );
    expect((e2 as SoupError).code).toBe('ERR_SOUP_NO_CUDA');
  });

  it.skipIf(!status.compiled)('the raw addon functions reject with "[ERR_SOUP_NO_CUDA] ..." and write nothing', async () => {
    const b = oneTensorBaton();
    b.outs[0].fill(-7);
    const e = await rejection(raw().interpolateCuda(b));
    expect(e.message).toMatch(/^\[ERR_SOUP_NO_CUDA\] device 'cuda' requested, but the CUDA kernels cannot run here: /);
    expect(Array.from(b.outs[0] as Float32Array)).toEqual([-7, -7, -7]);
    const out = join(mkdtempSync(join(tmpdir(), 'soup-cuda-')), 'out.bin');
    const e2 = await rejection(
      raw().mergeFilesCuda({ files: [], out, header: new Uint8Array(4), weights: new Float64Array([1]), tensors: [], control: new Float64Array(2) }),
    );
    expect(e2.message).toMatch(/^\[ERR_SOUP_NO_CUDA\]/);
    expect(existsSync(out)).toBe(false);
  });

  it('CudaResident (the λ sweep) rejects with ERR_SOUP_NO_CUDA; the raw functions check ids', async () => {
    const e = await rejection(CudaResident.create([[new Float32Array(3)]], new Int32Array([0]), new Int32Array([0])));
    expect((e as SoupError).code).toBe('ERR_SOUP_NO_CUDA');
    if (!status.compiled) return;
    const e2 = await rejection(raw().cudaResidentCreate({ sources: [[new Float32Array(3)]], inDtypes: new Int32Array([0]), outDtypes: new Int32Array([0]) }));
    expect(e2.message).toMatch(/^\[ERR_SOUP_NO_CUDA\]/);
    const e3 = await rejection(raw().cudaResidentRun({ id: 4242, weights: new Float64Array([1]), outs: [] }));
    expect(e3.message).toMatch(/^\[ERR_SOUP_INVALID_ARG\] id 4242 is not a live resident soup/);
    expect((torchAddon() as unknown as { cudaResidentFree(id: number): boolean }).cudaResidentFree(4242)).toBe(false);
    const e4 = await rejection(
      raw().cudaResidentCreate({ sources: [[new Float32Array(3)], [new Float32Array(4)]], inDtypes: new Int32Array([0]), outDtypes: new Int32Array([2]) }),
    );
    expect(e4.message).toMatch(/^\[ERR_SOUP_SHAPE_MISMATCH\] sources\[1\]\[0\] has 4 elements; sources\[0\]\[0\] has 3/);
  });

  it("interpolate(..., { device: 'cuda' }) and merge({ device: 'cuda' }) give ERR_SOUP_NO_CUDA, not a CPU fallback", async () => {
    const a = model(1, ['w'], [[10]], 'float32'),
      b = model(2, ['w'], [[10]], 'float32');
    const e = await rejection(interpolate([a, b], [0.5, 0.5], { device: 'cuda' }));
    expect((e as SoupError).code).toBe('ERR_SOUP_NO_CUDA');
    const d = mkdtempSync(join(tmpdir(), 'soup-cuda-'));
    await writeSafetensors(join(d, 'a.safetensors'), a);
    await writeSafetensors(join(d, 'b.safetensors'), b);
    const e2 = await rejection(
      merge({ sources: [join(d, 'a.safetensors'), join(d, 'b.safetensors')], weights: [1, 1], out: join(d, 'o.safetensors'), device: 'cuda' }),
    );
    expect((e2 as SoupError).code).toBe('ERR_SOUP_NO_CUDA');
    expect(existsSync(join(d, 'o.safetensors'))).toBe(false);
  });
});

describe.skipIf(!status.compiled)('CUDA: baton checks (before any device work, any machine)', () => {
  it('rejects bad batons with the field path', async () => {
    const cases: [string, (b: ReturnType<typeof oneTensorBaton>) => unknown, RegExp][] = [
      ['weights type', (b) => ({ ...b, weights: [0.5, 0.5] }), /^\[ERR_SOUP_INVALID_ARG\] weights must be a Float64Array/],
      [
        '17 sources',
        (b) => ({ ...b, weights: new Float64Array(17).fill(1) }),
        /^\[ERR_SOUP_INVALID_ARG\] weights has 17 entries; the CUDA kernel takes 1\.\.16/,
      ],
      ['NaN weight', (b) => ({ ...b, weights: new Float64Array([NaN, 1]) }), /^\[ERR_SOUP_WEIGHTS\] weights\[0\] is not finite/],
      ['source count', (b) => ({ ...b, sources: [b.sources[0]] }), /^\[ERR_SOUP_INVALID_ARG\] sources has 1 lists but weights has 2 entries/],
      ['dtype code', (b) => ({ ...b, inDtypes: new Int32Array([9]) }), /^\[ERR_SOUP_INVALID_ARG\] inDtypes\[0\] = 9 is not a dtype code/],
      ['dtype list length', (b) => ({ ...b, outDtypes: new Int32Array([0, 0]) }), /^\[ERR_SOUP_INVALID_ARG\] inDtypes \(1\) and outDtypes \(2\)/],
      [
        'byte length',
        (b) => ({ ...b, sources: [b.sources[0], [new Float32Array(4)]] }),
        /^\[ERR_SOUP_SHAPE_MISMATCH\] sources\[1\]\[0\] has 16 bytes; outs\[0\] holds 3 elements, so 12 bytes of float32/,
      ],
      ['not a view', (b) => ({ ...b, outs: [[1, 2, 3]] }), /^\[ERR_SOUP_INVALID_ARG\] outs\[0\] must be an ArrayBufferView/],
      ['control', (b) => ({ ...b, control: new Float64Array(1) }), /^\[ERR_SOUP_INVALID_ARG\] control must be a Float64Array of length >= 2/],
    ];
    for (const [name, make, re] of cases) {
      const e = await rejection(raw().interpolateCuda(make(oneTensorBaton())));
      expect(e.message, name).toMatch(re);
    }
    const mb = {
      files: ['/x'],
      out: '/tmp/never',
      header: new Uint8Array(0),
      weights: new Float64Array([1, 1]),
      tensors: [{ numel: 4, inDtype: 0, outDtype: 0, srcFile: new Int32Array([0, 3]), srcOffset: new Float64Array([0, 0]) }],
    };
    expect((await rejection(raw().mergeFilesCuda(mb))).message).toMatch(/^\[ERR_SOUP_INVALID_ARG\] tensors\[0\]\.srcFile\[1\] = 3 is not an index into files/);
    mb.tensors[0].srcFile = new Int32Array([0, 0]);
    mb.tensors[0].srcOffset = new Float64Array([0, -1]);
    expect((await rejection(raw().mergeFilesCuda(mb))).message).toMatch(
      /^\[ERR_SOUP_INVALID_ARG\] tensors\[0\]\.srcOffset\[1\] must be a non-negative integer/,
    );
    mb.tensors[0].srcOffset = new Float64Array([0, 0]);
    mb.tensors[0].numel = 2.5;
    expect((await rejection(raw().mergeFilesCuda(mb))).message).toMatch(/^\[ERR_SOUP_INVALID_ARG\] tensors\[0\]\.numel must be a non-negative integer/);
  });
});

describe.skipIf(!available)('CUDA: on a GPU', () => {
  it.skipIf(!available)('interpolate on cuda equals the CPU path bit for bit (fp32, fp16, bf16; chunk-edge sizes)', async () => {
    const names = ['a', 'b', 'c', 'd', 'e'];
    const shapes = [[65535], [65536], [65537], [3, 1001], [7]];
    for (const dtype of ['float32', 'float16', 'bfloat16'] as const) {
      const srcs = [11, 12, 13, 14].map((s) => model(s, names, shapes, dtype));
      const w = [0.1, -0.2, 0.7, 0.4];
      const cpu = await interpolate(srcs, w, { allowExtrapolation: true } as never);
      const gpu = await interpolate(srcs, w, { allowExtrapolation: true, device: 'cuda' } as never);
      for (const n of names)
        expect(
          Buffer.from(gpu[n].data.buffer, gpu[n].data.byteOffset, gpu[n].data.byteLength).equals(
            Buffer.from(cpu[n].data.buffer, cpu[n].data.byteOffset, cpu[n].data.byteLength),
          ),
          `${dtype} ${n}`,
        ).toBe(true);
    }
  });

  it.skipIf(!available)('CudaResident: a λ sweep over resident sources equals the CPU path bit for bit', async () => {
    const names = ['q', 'k', 'v'];
    const srcs = [21, 22, 23].map((s) => model(s, names, [[8, 4096], [4096, 8], [65537]], 'bfloat16'));
    const res = await CudaResident.create(
      srcs.map((m) => names.map((n) => m[n].data)),
      new Int32Array([2, 2, 2]),
      new Int32Array([2, 2, 2]),
    );
    try {
      for (const a of [0, 0.3, 0.7, 1]) {
        const w = [1 - a, a, 0.25];
        const cpu = await interpolate(srcs, w, { allowExtrapolation: true } as never);
        const outs = names.map((n) => new Uint16Array(srcs[0][n].data.length));
        await res.run(Float64Array.from(w), outs);
        names.forEach((n, t) =>
          expect(
            Buffer.from(outs[t].buffer).equals(Buffer.from((cpu[n].data as Uint16Array).buffer, cpu[n].data.byteOffset, cpu[n].data.byteLength)),
            `${n} a=${a}`,
          ).toBe(true),
        );
      }
    } finally {
      res.dispose();
    }
  });

  it.skipIf(!available)("merge({ device: 'cuda' }) writes the same file as the CPU merge", async () => {
    const d = mkdtempSync(join(tmpdir(), 'soup-cuda-'));
    const names = ['x', 'y', 'z'];
    const srcs = [1, 2, 3].map((s) => model(s, names, [[70001], [33, 65], [4]], 'bfloat16'));
    const paths = srcs.map((_, i) => join(d, `m${i}.safetensors`));
    for (let i = 0; i < 3; i++) await writeSafetensors(paths[i], srcs[i]);
    await merge({ sources: paths, weights: [0.2, 0.5, 0.3], out: join(d, 'cpu.safetensors') });
    const rep = await merge({ sources: paths, weights: [0.2, 0.5, 0.3], out: join(d, 'gpu.safetensors'), device: 'cuda', windowBytes: 1 << 16 });
    expect(rep.kernel).toMatch(/soup_interpolate_multi_cuda/);
    expect(readFileSync(join(d, 'gpu.safetensors')).equals(readFileSync(join(d, 'cpu.safetensors')))).toBe(true);
  });
});

if (!available) {
  // Say once, in the test output, why the GPU tests were skipped.
  describe('CUDA: GPU tests', () => {
    it.skip(`skipped: ${noGpuReason}`, () => {});
  });
}
