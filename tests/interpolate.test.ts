import { describe, expect, it } from 'vitest';
import { interpolate, prepareInterpolation, SoupError, type DType, type TensorMap } from '../src/index.js';
import { coreAddon } from '../src/native/index.js';
import { rng, randomTensor } from './helpers/random.js';
import { checkAgainst, sameBits, poisoned } from './helpers/reference.js';

const DTYPES: DType[] = ['float32', 'float16', 'bfloat16', 'float64'];
// every level this CPU runs: the ones at and below the best (the order of the Simd type)
const LEVELS = ['scalar', 'avx2', 'avx512', 'avx512bf16'] as const;
const SIMDS = LEVELS.slice(0, LEVELS.indexOf(coreAddon().info().simd) + 1);
// vector widths, odd sizes and sizes around 2^16 (chunk boundaries: see the chunkElems test below)
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
        let relaxed = 0,
          total = 0;
        for (const k of Object.keys(out)) {
          const res = checkAgainst(
            out[k],
            src.map((s) => s[k]),
            w,
          );
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
    for (const [inD, outD] of [
      ['bfloat16', 'float32'],
      ['bfloat16', 'float16'],
      ['float32', 'bfloat16'],
      ['float16', 'float64'],
    ] as [DType, DType][]) {
      const src = sources(3, inD, [1000, 4099], 9);
      const w = weightsFor(3, rng(1));
      const out = await interpolate(src, w, { dtype: outD });
      for (const k of Object.keys(out)) {
        expect(out[k].dtype).toBe(outD);
        const res = checkAgainst(
          out[k],
          src.map((s) => s[k]),
          w,
        );
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
    for (const k of Object.keys(out))
      worst = Math.max(
        worst,
        checkAgainst(
          out[k],
          src.map((s) => s[k]),
          w,
        ).worst,
      );
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

  it('any chunk size gives the same bits: chunks of 64 and 1000 elements span many tensors, 65536 splits them', async () => {
    const src = sources(3, 'bfloat16', [1, 63, 64, 65, 999, 1001, 65537, 7], 11);
    const w = weightsFor(3, rng(11));
    const ref = await interpolate(src, w, { threads: 1, simd: 'scalar' });
    for (const chunkElems of [64, 1000, 65536]) {
      for (const simd of SIMDS) {
        const out = await interpolate(src, w, { chunkElems, simd, threads: 2, nonTemporal: true });
        for (const k of Object.keys(ref)) expect(sameBits(out[k], ref[k]), `chunk ${chunkElems} ${simd} ${k}`).toBe(true);
      }
    }
    for (const bad of [0, -64, 1.5, NaN]) await expect(interpolate(src, w, { chunkElems: bad })).rejects.toThrow(/chunkElems must be a positive integer/);
  });

  it('bf16 special values (NaN, ±Inf, subnormals, ±0, rounding ties): every kernel bit-identical to scalar', async () => {
    // bf16 bit patterns: quiet and signalling NaN, ±Inf, subnormals, ±0, largest finite, and random
    // normals; weights 1/3-ish make many fp32 results land on bf16 rounding ties. The 'tiny' tensors
    // hold only subnormals, zeros and the smallest normals, so most sums are subnormal: the avx512bf16
    // kernel rounds with vcvtne2ps2bf16, which flushes subnormals, and must fall back for those vectors;
    // the other tensors have few subnormal sums and exercise the instruction itself (NaN, Inf, ties).
    const special = [0x7fc0, 0x7f81, 0xff80, 0x7f80, 0x0001, 0x8001, 0x007f, 0x0000, 0x8000, 0x7f7f, 0xff7f, 0x0080];
    const tiny = [0x0001, 0x8001, 0x007f, 0x807f, 0x0040, 0x0000, 0x8000, 0x0080, 0x8080];
    const r = rng(31);
    const make = (len: number, pool: 'mixed' | 'tiny') => {
      const d = new Uint16Array(len);
      for (let i = 0; i < len; i++) {
        if (pool === 'tiny') d[i] = tiny[Math.floor(r() * tiny.length)];
        else d[i] = r() < 0.15 ? special[Math.floor(r() * special.length)] : 0x3000 + Math.floor(r() * 0x1800) + (r() < 0.5 ? 0x8000 : 0);
      }
      return { dtype: 'bfloat16' as const, shape: [len], data: d };
    };
    const sizes = [64, 65, 95, 127, 1000, 4099];
    let subnormalSums = 0;
    for (const n of [1, 2, 3, 8]) {
      const src: TensorMap[] = Array.from({ length: n }, () => ({
        ...Object.fromEntries(sizes.map((s, k) => [`t${k}`, make(s, 'mixed')])),
        ...Object.fromEntries(sizes.map((s, k) => [`tiny${k}`, make(s, 'tiny')])),
      }));
      const w = n === 1 ? [1] : weightsFor(n, r).map((x, i, a) => (i === 0 ? 1 - a.slice(1).reduce((p, q) => p + q, 0) : x));
      const ref = await interpolate(src, w, { simd: 'scalar', threads: 1, allowExtrapolation: true });
      // the fallback is reached: subnormal bf16 results in the tiny tensors
      for (const k of Object.keys(ref))
        if (k.startsWith('tiny')) for (const v of ref[k].data as Uint16Array) if ((v & 0x7f80) === 0 && (v & 0x7f) !== 0) subnormalSums++;
      for (const simd of SIMDS) {
        for (const nonTemporal of [false, true]) {
          const out = await interpolate(src, w, { simd, nonTemporal, allowExtrapolation: true });
          for (const k of Object.keys(ref)) expect(sameBits(out[k], ref[k]), `N=${n} ${simd} nt=${nonTemporal} ${k}`).toBe(true);
        }
      }
    }
    expect(subnormalSums).toBeGreaterThan(1000);
  });

  it('fp32 -> bf16 output with special values: every kernel bit-identical to scalar', async () => {
    // fp32 sources whose sums are NaN, ±Inf, subnormal, zero, bf16 ties or ordinary values, written as bf16
    const r = rng(37);
    const pick = (): number => {
      const u = r();
      if (u < 0.05) return NaN;
      if (u < 0.1) return r() < 0.5 ? Infinity : -Infinity;
      if (u < 0.3) return (r() - 0.5) * 2 ** -127; // subnormal in fp32 (and bf16)
      if (u < 0.35) return 0;
      if (u < 0.5) return (1 + (Math.floor(r() * 128) + 0.5) / 128) * 2 ** Math.floor(r() * 20 - 10); // bf16 tie
      return (r() - 0.5) * 100;
    };
    for (const n of [1, 2, 5]) {
      const src: TensorMap[] = Array.from({ length: n }, () =>
        Object.fromEntries(
          [16, 33, 257, 4099].map((len, k) => [`t${k}`, { dtype: 'float32' as const, shape: [len], data: Float32Array.from({ length: len }, pick) }]),
        ),
      );
      const w = n === 1 ? [1] : weightsFor(n, r);
      const ref = await interpolate(src, w, { simd: 'scalar', threads: 1, dtype: 'bfloat16' });
      for (const simd of SIMDS) {
        for (const nonTemporal of [false, true]) {
          const out = await interpolate(src, w, { simd, nonTemporal, dtype: 'bfloat16' });
          for (const k of Object.keys(ref)) expect(sameBits(out[k], ref[k]), `N=${n} ${simd} nt=${nonTemporal} ${k}`).toBe(true);
        }
      }
    }
  });

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
    const e = await p.then(
      () => undefined,
      (x) => x,
    );
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

  it('names a malformed tensor and says what is wrong with it (first source, later sources, out)', async () => {
    const t0 = src[0].t0;
    const cases: [TensorMap, string, RegExp][] = [
      [{ t0: { ...t0, data: undefined } } as never, 'ERR_SOUP_DTYPE_MISMATCH', /\['t0'\]': dtype float32 needs a Float32Array, got undefined/],
      [{ t0: { ...t0, shape: 'big' } } as never, 'ERR_SOUP_SHAPE_MISMATCH', /\['t0'\]': shape must be an array of non-negative integers, got "big"/],
      [{ t0: { ...t0, dtype: 'int8' } } as never, 'ERR_SOUP_DTYPE_MISMATCH', /\['t0'\]': unknown dtype "int8"/],
      [{ t0: { ...t0, data: new Uint16Array(t0.data.length) } }, 'ERR_SOUP_DTYPE_MISMATCH', /\['t0'\]': dtype float32 needs a Float32Array, got Uint16Array/],
      [{ t0: { ...t0, shape: [t0.data.length + 1] } }, 'ERR_SOUP_SHAPE_MISMATCH', /\['t0'\]': shape \[\d+\] has \d+ elements but data has \d+/],
      [{ t0: null } as never, 'ERR_SOUP_INVALID_ARG', /\['t0'\]' must be an object/],
    ];
    const good = { t0 } as TensorMap;
    for (const [bad, code, msg] of cases) {
      await expectCode(interpolate([bad, good], [0.5, 0.5]), code, new RegExp(`sources\\[0\\]${msg.source}`));
      await expectCode(interpolate([good, bad], [0.5, 0.5]), code, new RegExp(`sources\\[1\\]${msg.source}`));
      await expectCode(interpolate([good, good], [0.5, 0.5], { out: bad }), code, new RegExp(`out${msg.source}`));
    }
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

describe('prepareInterpolation: a soup prepared once, run for many λ', () => {
  for (const dtype of ['float32', 'bfloat16', 'float64'] as DType[]) {
    it(`${dtype}: every run equals interpolate() bit for bit and the float64 reference, into the same outputs`, async () => {
      const src = sources(3, dtype, [1, 17, 65537, 131073], 21);
      const out: TensorMap = Object.fromEntries(Object.entries(src[0]).map(([k, t]) => [k, poisoned(dtype, t.shape)]));
      const soup = prepareInterpolation(src, { out });
      expect(soup.out).toBe(out);
      const r = rng(77);
      for (let run = 0; run < 4; run++) {
        const w = weightsFor(3, r);
        for (const t of Object.values(out)) t.data.set(poisoned(dtype, t.shape).data); // poison between runs
        expect(await soup.run(w)).toBe(out);
        const ref = await interpolate(src, w);
        for (const k of Object.keys(out)) {
          expect(sameBits(out[k], ref[k]), `run ${run} ${k}`).toBe(true);
          const res = checkAgainst(
            out[k],
            src.map((s) => s[k]),
            w,
          );
          if (dtype === 'float32') expect(res.worst, k).toBeLessThanOrEqual(1e-6);
          if (dtype === 'float64') expect(res.worst, k).toBeLessThanOrEqual(1e-14);
        }
      }
    });
  }

  it('reads the sources when it runs: changed contents give the new soup', async () => {
    const src = sources(2, 'float32', [1000, 3], 4);
    const soup = prepareInterpolation(src, { dtype: 'bfloat16' });
    expect(soup.out.t0.dtype).toBe('bfloat16');
    await soup.run([0.25, 0.75]);
    const fresh = randomTensor('float32', [1000], rng(99));
    src[1].t0.data.set(fresh.data);
    await soup.run([0.25, 0.75]);
    const ref = await interpolate(src, [0.25, 0.75], { dtype: 'bfloat16' });
    expect(sameBits(soup.out.t0, ref.t0)).toBe(true);
    expect(sameBits(soup.out.t1, ref.t1)).toBe(true);
  });

  it('one run at a time; weight rules, cancellation and bad sources as in interpolate()', async () => {
    const src = sources(2, 'float32', [1 << 20, 9], 5);
    const soup = prepareInterpolation(src);
    const first = soup.run([0.5, 0.5]);
    const second = await soup.run([0.5, 0.5]).then(
      () => undefined,
      (e) => e,
    );
    expect((second as SoupError).code).toBe('ERR_SOUP_BUSY');
    await first;
    await soup.run([0.3, 0.7]); // free again once the first finished
    const codeOf = (p: Promise<unknown>) =>
      p.then(
        () => 'ok',
        (e) => (e as SoupError).code,
      );
    expect(await codeOf(soup.run([1]))).toBe('ERR_SOUP_WEIGHTS');
    expect(await codeOf(soup.run([1.5, -0.5]))).toBe('ERR_SOUP_WEIGHTS');
    const ac = new AbortController();
    ac.abort();
    expect(await codeOf(soup.run([0.5, 0.5], { signal: ac.signal }))).toBe('ERR_SOUP_ABORTED');
    const stats = { seconds: 0, bytes: 0, kernel: '', nonTemporal: false };
    await soup.run([1.5, -0.5], { allowExtrapolation: true, stats });
    expect(checkAgainst(soup.out.t1, [src[0].t1, src[1].t1], [1.5, -0.5]).worst).toBeLessThanOrEqual(1e-6);
    expect(stats.bytes).toBe(3 * ((1 << 20) + 9) * 4);
    const bad = { t0: src[1].t0, t1: randomTensor('float32', [10], rng(1)) };
    expect(() => prepareInterpolation([src[0], bad])).toThrow(/sources\[1\]\['t1'\] shape \[10\]/);
  });
});

describe('bandwidth probe on caller arrays', () => {
  it('computes the triad a = b + 0.5·c into the given arrays and rejects bad ones', async () => {
    const n = 100_003;
    const r = rng(3);
    const b = Float32Array.from({ length: n }, () => r() - 0.5),
      c = Float32Array.from({ length: n }, () => r() - 0.5);
    const a = new Float32Array(n).fill(NaN);
    const probe = coreAddon().bandwidthProbe as (o: Record<string, unknown>) => Promise<{ seconds: number[]; bytesPerRep: number }>;
    const expectTriad = (what: string) => {
      for (let i = 0; i < n; i++) if (a[i] !== Math.fround(b[i] + 0.5 * c[i])) throw new Error(`${what}: a[${i}] = ${a[i]}, expected ${b[i] + 0.5 * c[i]}`);
    };
    const res = await probe({ bytes: n * 4, reps: 3, arrays: [a, b, c] });
    expect(res.seconds).toHaveLength(3);
    expect(res.bytesPerRep).toBe(12 * n);
    expectTriad('3 reps');
    // warmup: false — the one timed pass is the only pass, and it still writes every element
    a.fill(NaN);
    const cold = await probe({ bytes: n * 4, reps: 1, arrays: [a, b, c], warmup: false });
    expect(cold.seconds).toHaveLength(1);
    expectTriad('warmup false');
    expect(() => probe({ bytes: n * 4, arrays: [a, b, c], warmup: 'no' })).toThrow(/warmup must be a boolean/);
    expect(() => probe({ bytes: n * 4, arrays: [a, b] })).toThrow(/three Float32Arrays/);
    expect(() => probe({ bytes: n * 4, arrays: [a, b, new Float64Array(n)] })).toThrow(/arrays\[2\] must be a Float32Array/);
    expect(() => probe({ bytes: n * 4 + 4, arrays: [a, b, c] })).toThrow(/arrays\[0\] holds/);
  });
});

describe('read-only bandwidth probe', () => {
  const probe = coreAddon().bandwidthProbe as (o: Record<string, unknown>) => Promise<{ seconds: number[]; bytesPerRep: number; sum: number }>;
  it('reads 1..8 arrays of odd length at every SIMD level: its sum matches a float64 sum', async () => {
    const r = rng(17);
    for (const n of [1, 17, 100_003]) {
      const arrays = Array.from({ length: 8 }, () => Float32Array.from({ length: n }, () => 0.5 + r()));
      for (let k = 1; k <= 8; k++) {
        let ref = 0;
        for (let j = 0; j < k; j++) for (let i = 0; i < n; i++) ref += arrays[j][i];
        for (const simd of SIMDS) {
          const res = await probe({ kind: 'read', bytes: n * 4, reps: 2, arrays: arrays.slice(0, k), simd, threads: 2, warmup: k % 2 === 0 });
          expect(res.seconds).toHaveLength(2);
          expect(res.bytesPerRep).toBe(4 * n * k);
          // fp32 lanes within a chunk: relative error well under 1e-5 for positive values
          if (Math.abs(res.sum - ref) > 1e-5 * ref) throw new Error(`n=${n} k=${k} ${simd}: sum ${res.sum}, float64 ${ref}`);
        }
      }
    }
  });
  it('rejects a bad kind or array count, naming the field', () => {
    const a = new Float32Array(64).fill(1);
    expect(() => probe({ kind: 'write', bytes: 256, arrays: [a, a, a] })).toThrow(/kind must be 'triad' or 'read'/);
    expect(() => probe({ kind: 'read', bytes: 256 })).toThrow(/kind 'read' needs arrays/);
    expect(() => probe({ kind: 'read', bytes: 256, arrays: Array(9).fill(a) })).toThrow(/1 to 8 Float32Arrays/);
    expect(() => probe({ kind: 'read', bytes: 256, arrays: [] })).toThrow(/1 to 8 Float32Arrays/);
    expect(() => probe({ kind: 'read', bytes: 512, arrays: [a] })).toThrow(/arrays\[0\] holds 256 bytes/);
  });
});

describe('allocBuffer', () => {
  const alloc = coreAddon().allocBuffer as (n: number, hugePages?: unknown) => ArrayBuffer;
  it('gives writable buffers of the asked size, huge-page advised or not, and checks its flag', () => {
    for (const bytes of [1, 4096, (2 << 20) - 4, 2 << 20, (5 << 20) + 12]) {
      for (const huge of [undefined, true, false]) {
        const b = alloc(bytes, huge);
        expect(b.byteLength).toBe(bytes);
        const u = new Uint8Array(b);
        u[0] = 7;
        u[bytes - 1] = 9;
        expect(u[0] + u[bytes - 1]).toBe(bytes === 1 ? 18 : 16);
      }
    }
    expect(() => alloc(64, 'yes')).toThrow(/hugePages must be a boolean/);
  });
});
