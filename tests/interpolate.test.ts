import { describe, expect, it } from 'vitest';
import { interpolate, SoupError, type DType, type TensorMap } from '../src/index.js';
import { coreAddon } from '../src/native/index.js';
import { rng, randomTensor } from './helpers/random.js';
import { checkAgainst, sameBits, poisoned } from './helpers/reference.js';

const DTYPES: DType[] = ['float32', 'float16', 'bfloat16', 'float64'];
const SIMDS = (['scalar', 'avx2', 'avx512'] as const).filter((s) => {
  const best = coreAddon().info().simd;
  return s === 'scalar' || s === best || (s === 'avx2' && best === 'avx512');
});
// sizes around the 64Ki-element chunk boundary, vector widths and odd sizes
const SIZES = [1, 7, 15, 16, 17, 33, 127, 1023, 65535, 65536, 65537, 131073];

function weightsFor(n: number, r: () => number): number[] {
  const w = Array.from({ length: n }, () => 0.05 + r());
  const s = w.reduce((a, b) => a + b, 0);
  return w.map((x) => x / s);
}

function sources(n: number, dtype: DType, sizes: number[], seed: number): TensorMap[] {
  const r = rng(seed);
  return Array.from({ length: n }, () => Object.fromEntries(sizes.map((s, k) => [`t${k}`, randomTensor(dtype, [s], r)])));
}

describe('interpolate: accuracy against a float64 reference', () => {
  for (const dtype of DTYPES) {
    for (const n of [1, 2, 3, 8]) {
      it(`${dtype}, N=${n}, sizes around chunk boundaries`, async () => {
        const src = sources(n, dtype, SIZES, 100 + n);
        const w = weightsFor(n, rng(5 + n));
        const out: TensorMap = Object.fromEntries(Object.entries(src[0]).map(([k, t]) => [k, poisoned(dtype, t.shape)]));
        await interpolate(src, w, { out });
        let relaxed = 0, total = 0;
        for (const k of Object.keys(out)) {
          const res = checkAgainst(out[k], src.map((s) => s[k]), w);
          relaxed += res.relaxed;
          total += out[k].data.length;
          if (dtype === 'float32') expect(res.worst, k).toBeLessThanOrEqual(1e-6);
          else if (dtype === 'float64') expect(res.worst, k).toBeLessThanOrEqual(1e-14);
          else expect(res.worst, k).toBeLessThanOrEqual(1);
        }
        // elements allowed beyond 1 ulp only through near-total cancellation: a tiny fraction
        expect(relaxed / total).toBeLessThan(1e-3);
      });
    }
  }

  it('converts between storage dtypes (bf16 in, fp32/fp16/fp64 out; fp32 in, bf16 out)', async () => {
    for (const [inD, outD] of [['bfloat16', 'float32'], ['bfloat16', 'float16'], ['float32', 'bfloat16'], ['float16', 'float64']] as [DType, DType][]) {
      const src = sources(3, inD, [1000, 4099], 9);
      const w = weightsFor(3, rng(1));
      const out = await interpolate(src, w, { dtype: outD });
      for (const k of Object.keys(out)) {
        expect(out[k].dtype).toBe(outD);
        const res = checkAgainst(out[k], src.map((s) => s[k]), w);
        expect(res.worst, `${inD}->${outD}`).toBeLessThanOrEqual(outD === 'float32' || outD === 'float64' ? 1e-6 : 1);
      }
    }
  });

  it('10 000 tiny tensors in one call (bf16, N=3)', async () => {
    const r = rng(42);
    const sizes = Array.from({ length: 10_000 }, () => 1 + Math.floor(r() * 17));
    const src = sources(3, 'bfloat16', sizes, 77);
    const w = weightsFor(3, rng(2));
    const out = await interpolate(src, w);
    let worst = 0;
    for (const k of Object.keys(out)) worst = Math.max(worst, checkAgainst(out[k], src.map((s) => s[k]), w).worst);
    expect(worst).toBeLessThanOrEqual(1);
  });
});

describe('interpolate: determinism', () => {
  for (const dtype of ['float32', 'bfloat16', 'float16'] as DType[]) {
    it(`${dtype}: bit-identical for 1 and 2 threads, every SIMD level, streaming stores on or off`, async () => {
      const src = sources(3, dtype, [65537, 131072 + 13, 5], 3);
      const w = weightsFor(3, rng(3));
      const ref = await interpolate(src, w, { threads: 1, simd: 'scalar' });
      for (const simd of SIMDS) {
        for (const threads of [1, 2]) {
          for (const nonTemporal of [false, true]) {
            const out = await interpolate(src, w, { threads, simd, nonTemporal });
            for (const k of Object.keys(ref)) expect(sameBits(out[k], ref[k]), `${simd} x${threads} nt=${nonTemporal} ${k}`).toBe(true);
          }
        }
      }
    });
  }

  it('λ = (1, 0, …) returns the first source bit for bit, in every dtype', async () => {
    for (const dtype of DTYPES) {
      const src = sources(4, dtype, [1, 100, 65537], 8);
      const out = await interpolate(src, [1, 0, 0, 0]);
      for (const k of Object.keys(out)) expect(sameBits(out[k], src[0][k]), `${dtype} ${k}`).toBe(true);
    }
  });

  it('uses the best kernel for this CPU and reports it', async () => {
    const stats = { seconds: 0, bytes: 0, kernel: '', nonTemporal: false };
    const src = sources(2, 'float32', [4096], 1);
    await interpolate(src, [0.5, 0.5], { stats });
    expect(stats.kernel).toBe(coreAddon().info().simd);
    expect(stats.bytes).toBe(3 * 4096 * 4);
  });
});

describe('interpolate: bad input', () => {
  const src = sources(2, 'float32', [8, 9], 1);
  const expectCode = async (p: Promise<unknown>, code: string, msg: RegExp) => {
    const e = await p.then(() => undefined, (x) => x);
    expect(e).toBeInstanceOf(SoupError);
    expect((e as SoupError).code).toBe(code);
    expect((e as Error).message).toMatch(msg);
  };
  it('rejects each with a message naming the field', async () => {
    await expectCode(interpolate(src, [1]), 'ERR_SOUP_WEIGHTS', /1 weight for 2 sources/);
    await expectCode(interpolate(src, [NaN, 1]), 'ERR_SOUP_WEIGHTS', /weights\[0\] is NaN/);
    await expectCode(interpolate(src, [1.5, -0.5]), 'ERR_SOUP_WEIGHTS', /off the simplex/);
    await expectCode(interpolate(src, [0.5, 0.6], { normalize: false }), 'ERR_SOUP_WEIGHTS', /sum to 1.1/);
    const bad = { t0: src[1].t0, t1: randomTensor('float32', [10], rng(1)) };
    await expectCode(interpolate([src[0], bad], [0.5, 0.5]), 'ERR_SOUP_SHAPE_MISMATCH', /sources\[1\]\['t1'\] shape \[10\]/);
    const badD = { t0: src[1].t0, t1: randomTensor('bfloat16', [9], rng(1)) };
    await expectCode(interpolate([src[0], badD], [0.5, 0.5]), 'ERR_SOUP_DTYPE_MISMATCH', /sources\[1\]\['t1'\] dtype bfloat16/);
    await expectCode(interpolate([src[0], { t0: src[1].t0 }], [0.5, 0.5]), 'ERR_SOUP_MISSING_TENSOR', /sources\[1\] has no tensor 't1'/);
    await expectCode(interpolate(src, [0.5, 0.5], { out: { t0: src[0].t0 } }), 'ERR_SOUP_MISSING_TENSOR', /out has no tensor 't1'/);
    await expectCode(interpolate(src, [0.5, 0.5], { device: 'cuda' }), 'ERR_SOUP_NO_CUDA', /cuda/i);
  });

  it('extrapolates only when allowed, with the weights exactly as given', async () => {
    const out = await interpolate(src, [1.5, -0.5], { allowExtrapolation: true });
    const res = checkAgainst(out.t0, [src[0].t0, src[1].t0], [1.5, -0.5]);
    expect(res.worst).toBeLessThanOrEqual(1e-6);
  });

  it('an aborted signal rejects with ERR_SOUP_ABORTED', async () => {
    const ac = new AbortController();
    ac.abort();
    await expectCode(interpolate(src, [0.5, 0.5], { signal: ac.signal }), 'ERR_SOUP_ABORTED', /aborted/);
  });
});
