# SPDX-License-Identifier: MIT
"""The fused interpolation kernel against PyTorch on the same device buffers, in one process.

    python3 bench/gpu_torch.py --lib build-cuda/libsoup_cuda_capi.so --out $OUT/kernels.json
    python3 bench/gpu_torch.py --summary $OUT          # the final table of bench/gpu.sh
    python3 bench/gpu_torch.py --dry-run --lib libsoup_cuda_emu_capi.so --out x.json
        # no GPU: CPU torch tensors, tiny sizes, the C ABI over the CPU emulation (tests/cuda.test.ts)

The kernel is reached through libsoup_cuda_capi.so (native/cuda/capi.cc) with ctypes and tensor.data_ptr(),
so it, torch._foreach_mul/_foreach_add_ and eager sum(l*t) read the very same tensors. Timing: CUDA
events around each repetition, after warm-up, median of the repetitions (METHOD.md). Effective GB/s
counts (N+1)*bytes per source (each source read once, the output written once); the ceiling is a
measured device-to-device copy, counting bytes read plus bytes written. Inputs are random normal (never
zeros); the kernel's output is poisoned with NaN first and checked against a float64 reference.
"""
import argparse
import ctypes
import json
import math
import os
import statistics
import sys
import time

GIB = 1 << 30


def load_lib(path):
    lib = ctypes.CDLL(path)
    P = ctypes.POINTER
    lib.soup_cuda_last_error.restype = ctypes.c_char_p
    lib.soup_cuda_plan_create.argtypes = [P(ctypes.c_void_p), ctypes.c_int, ctypes.c_int64, P(ctypes.c_uint64), P(ctypes.c_uint64),
                                          P(ctypes.c_int64), P(ctypes.c_int32), P(ctypes.c_int32)]
    lib.soup_cuda_plan_run.argtypes = [ctypes.c_void_p, P(ctypes.c_double), ctypes.c_void_p]
    lib.soup_cuda_plan_launches.argtypes = [ctypes.c_void_p]
    lib.soup_cuda_plan_destroy.argtypes = [ctypes.c_void_p]
    lib.soup_cuda_set_variant.argtypes = [ctypes.c_int]
    lib.soup_cuda_interpolate_once.argtypes = [ctypes.c_int, ctypes.c_int64, P(ctypes.c_uint64), P(ctypes.c_uint64), P(ctypes.c_int64),
                                               P(ctypes.c_int32), P(ctypes.c_int32), P(ctypes.c_double), ctypes.c_void_p, P(ctypes.c_int64)]
    return lib


def check(lib, rc):
    if rc != 0:
        raise RuntimeError(lib.soup_cuda_last_error().decode())


class Soup:
    """Device tensors -> the C ABI's arrays, kept alive as long as the plan."""

    def __init__(self, lib, torch, srcs, outs):
        self.lib, self.n, self.T = lib, len(srcs), len(outs)
        code = {torch.float32: 0, torch.float16: 1, torch.bfloat16: 2, torch.float64: 3}
        self.ptrs = (ctypes.c_uint64 * (self.T * self.n))(*[srcs[i][t].data_ptr() for t in range(self.T) for i in range(self.n)])
        self.outp = (ctypes.c_uint64 * self.T)(*[o.data_ptr() for o in outs])
        self.numel = (ctypes.c_int64 * self.T)(*[o.numel() for o in outs])
        self.ind = (ctypes.c_int32 * self.T)(*[code[srcs[0][t].dtype] for t in range(self.T)])
        self.outd = (ctypes.c_int32 * self.T)(*[code[o.dtype] for o in outs])
        self.plan = ctypes.c_void_p()
        check(lib, lib.soup_cuda_plan_create(ctypes.byref(self.plan), self.n, self.T, self.ptrs, self.outp, self.numel, self.ind, self.outd))

    def run(self, weights, stream=0):
        w = (ctypes.c_double * self.n)(*weights)
        check(self.lib, self.lib.soup_cuda_plan_run(self.plan, w, ctypes.c_void_p(stream)))

    def once(self, weights, stream=0):
        w = (ctypes.c_double * self.n)(*weights)
        launches = ctypes.c_int64()
        check(self.lib, self.lib.soup_cuda_interpolate_once(self.n, self.T, self.ptrs, self.outp, self.numel, self.ind, self.outd, w,
                                                            ctypes.c_void_p(stream), ctypes.byref(launches)))
        return launches.value

    def close(self):
        self.lib.soup_cuda_plan_destroy(self.plan)


DRY = False  # --dry-run: CPU tensors and wall-clock timing


def sync(torch):
    if not DRY:
        torch.cuda.synchronize()


def timed(torch, fn, reps, warm=2):
    for _ in range(warm):
        fn()
    sync(torch)
    times = []
    for _ in range(reps):
        if DRY:
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
            continue
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record()
        fn()
        b.record()
        b.synchronize()
        times.append(a.elapsed_time(b) / 1e3)
    return statistics.median(times), min(times), max(times)


def verify(torch, outs, srcs, lams, picks, tag):
    """Kernel output vs float64 reference on some tensors: every element written, within fp32 tolerance."""
    n = len(srcs)
    eps_out = {torch.float32: 2.0 ** -24, torch.bfloat16: 2.0 ** -8, torch.float16: 2.0 ** -11}[outs[0].dtype]
    if bool(torch.isnan(torch.cat([o.flatten() for o in outs])).any()):
        raise AssertionError(f'{tag}: unwritten (NaN-poisoned) output elements')
    worst = 0.0
    for t in picks:
        o = outs[t].double()
        if torch.isnan(o).any():
            raise AssertionError(f'{tag}: tensor {t} has unwritten (NaN-poisoned) elements')
        ref = torch.zeros_like(o)
        scale = torch.zeros_like(o)
        for i in range(n):
            term = srcs[i][t].double() * float(torch.tensor(lams[i], dtype=torch.float32))
            ref += term
            scale += term.abs()
        tol = (n + 1) * 2.0 ** -24 * scale + eps_out * ref.abs() + 2.0 ** -25
        err = (o - ref).abs()
        ratio = float((err / tol).max())
        worst = max(worst, ratio)
        if ratio > 1:
            k = int((err / tol).argmax())
            raise AssertionError(f'{tag}: tensor {t} element {k}: {float(o.flatten()[k])} vs float64 {float(ref.flatten()[k])}')
    return worst


def run_bench(args):
    import torch
    global DRY
    DRY = args.dry_run
    lib = load_lib(args.lib)
    dev = torch.device('cpu' if DRY else 'cuda')
    gen = torch.Generator(device=dev)
    gen.manual_seed(int(time.time()))
    if DRY:
        results = {'device': 'CPU (dry run over the emulation)', 'sms': 0, 'torch': torch.__version__, 'cudaRuntime': None, 'rows': []}
    else:
        props = torch.cuda.get_device_properties(0)
        results = {'device': torch.cuda.get_device_name(0), 'sms': props.multi_processor_count, 'torch': torch.__version__,
                   'cudaRuntime': torch.version.cuda, 'rows': []}
    rows = results['rows']
    scale = 1024 if DRY else 1  # dry run: 1 MiB per source instead of 1 GiB

    # Ceiling: device-to-device copy of 2 GiB, bytes read + bytes written.
    x = torch.empty(2 * GIB // scale, dtype=torch.uint8, device=dev)
    x.random_(0, 255, generator=gen)
    y = torch.empty_like(x)
    med, lo, hi = timed(torch, lambda: y.copy_(x), 10)
    copy_bw = 2 * x.numel() / med
    results['copyBps'] = copy_bw
    print(f'D2D copy: {copy_bw / 1e9:.0f} GB/s (median of 10, {2 * GIB // scale >> 20} MiB, read+write)', flush=True)
    del x, y

    def regime(name, dtype, n, sizes, reps, eager_reps):
        if not DRY:
            torch.cuda.empty_cache()
        esz = torch.tensor([], dtype=dtype).element_size()
        # One allocation per source, carved into 256-byte aligned views (like a state dict's tensors).
        offs, off = [], 0
        for s in sizes:
            offs.append(off)
            off += (s * esz + 255) // 256 * 256 // esz
        bases = [torch.randn(off, dtype=torch.float32, device=dev, generator=gen).to(dtype) for _ in range(n)]
        srcs = [[b[o:o + s] for o, s in zip(offs, sizes)] for b in bases]
        out_base = torch.full((off,), float('nan'), dtype=dtype, device=dev)
        outs = [out_base[o:o + s] for o, s in zip(offs, sizes)]
        lams = [((-1) ** i) * (0.3 + 0.7 * (i + 1) / n) for i in range(n)]
        byts = sum(sizes) * esz
        soup = Soup(lib, torch, srcs, outs)
        soup.run(lams)
        sync(torch)
        picks = sorted({0, len(sizes) // 2, len(sizes) - 1})
        worst = verify(torch, outs, srcs, lams, picks, f'{name} {dtype} N={n}')
        # Every compiled kernel variant (NOTE: [Variants]): each checked, each timed; the row keeps the best.
        per_variant = {}
        for var in (0, 1):
            if lib.soup_cuda_set_variant(var) != 0:
                continue
            if var:
                out_base.fill_(float('nan'))
                soup.run(lams)
                sync(torch)
                worst = max(worst, verify(torch, outs, srcs, lams, picks, f'{name} {dtype} N={n} variant {var}'))
            per_variant[var] = timed(torch, lambda: soup.run(lams), reps)
        best = min(per_variant, key=lambda v: per_variant[v][0])
        lib.soup_cuda_set_variant(best)
        k_med, k_lo, k_hi = per_variant[best]
        once_med = timed(torch, lambda: soup.once(lams), max(3, reps // 2))[0]
        lib.soup_cuda_set_variant(0)
        soup.close()

        def foreach():
            acc = torch._foreach_mul(srcs[0], lams[0])
            for i in range(1, n):
                torch._foreach_add_(acc, srcs[i], alpha=lams[i])
            return acc

        f_med = timed(torch, foreach, reps)[0]

        def eager():
            return [sum(lams[i] * srcs[i][t] for i in range(n)) for t in range(len(sizes))]

        e_med = timed(torch, eager, eager_reps, warm=1)[0]
        eff = (n + 1) * byts / k_med
        row = {'regime': name, 'dtype': str(dtype).replace('torch.', ''), 'n': n, 'tensors': len(sizes), 'bytesPerSource': byts,
               'kernelS': k_med, 'kernelMinS': k_lo, 'kernelMaxS': k_hi, 'kernelOnceS': once_med, 'effBps': eff,
               'pctCopy': eff / copy_bw, 'foreachS': f_med, 'eagerS': e_med, 'vsForeach': f_med / k_med, 'vsEager': e_med / k_med,
               'worstErrOverTol': worst, 'variant': best, 'variantS': {str(v): t[0] for v, t in per_variant.items()}}
        rows.append(row)
        print(f"{name:6s} {row['dtype']:8s} N={n} T={len(sizes):5d} {byts / GIB:.2f} GiB/src: kernel {k_med * 1e3:8.3f} ms "
              f"({eff / 1e9:6.0f} GB/s, {100 * eff / copy_bw:5.1f}% of copy; one-shot {once_med * 1e3:.3f} ms) | foreach {f_med * 1e3:8.3f} ms "
              f"(x{f_med / k_med:.1f}) | eager {e_med * 1e3:8.3f} ms (x{e_med / k_med:.1f}) | err/tol {worst:.2f} | variants "
              + ', '.join(f'{v}: {t[0] * 1e3:.3f} ms' for v, t in per_variant.items()), flush=True)
        del bases, srcs, out_base, outs

    big = [GIB // 16 // scale] * 16  # bytes per tensor: 64 MiB, 16 of them per source; element counts below
    for dtype in (torch.bfloat16, torch.float32):
        esz = torch.tensor([], dtype=dtype).element_size()
        for n in (2, 4, 8):
            regime('large', dtype, n, [b // esz for b in big], args.reps, 3)
    g = torch.Generator().manual_seed(1234)
    small = torch.randint(512, 32769, (16384 // (64 if DRY else 1),), generator=g).tolist()
    regime('small', torch.bfloat16, 4, small, args.reps, 2)
    regime('small', torch.float32, 4, small, args.reps, 2)
    with open(args.out, 'w') as f:
        json.dump(results, f, indent=1)


def summary(folder):
    def load(name):
        p = os.path.join(folder, name)
        if not os.path.exists(p):
            return None
        with open(p) as f:
            return json.load(f)

    k = load('kernels.json')
    m = load('file_merge.json')
    env = load('env.json') or {}
    t = load('tests.json') or {}
    ppo = load('ppo.json')
    lines = ['', '=' * 118, f"rewarded-soups GPU bench | {env.get('gpu', '?')} | driver {env.get('driver', '?')} | torch {env.get('torch', '?')} | "
             f"nvcc {env.get('nvcc', '?')}", '-' * 118,
             f"kernel tests (native/tests/soup_cuda_tests): {t.get('line', 'not run')}",
             f"SASS sm_90: {env.get('sass', '?')}"]
    if k:
        lines.append(f"D2D copy ceiling: {k['copyBps'] / 1e9:.0f} GB/s (read+write)")
        lines.append(f"{'regime':7s}{'dtype':9s}{'N':>3s}{'T':>7s}{'GiB/src':>8s}{'kernel ms':>11s}{'GB/s':>7s}{'%copy':>7s}{'target':>8s}"
                     f"{'foreach ms':>12s}{'xforeach':>9s}{'eager ms':>10s}{'xeager':>8s}{'err/tol':>8s}")
        for r in k['rows']:
            target = 0.85 if r['regime'] == 'large' else 0.50
            ok = r['pctCopy'] >= target and r['vsForeach'] > 1 and (r['regime'] != 'large' or r['vsEager'] >= 5)
            lines.append(f"{r['regime']:7s}{r['dtype']:9s}{r['n']:3d}{r['tensors']:7d}{r['bytesPerSource'] / GIB:8.2f}{r['kernelS'] * 1e3:11.3f}"
                         f"{r['effBps'] / 1e9:7.0f}{100 * r['pctCopy']:6.1f}%{('>=' + str(int(target * 100)) + '%'):>7s}{'' if ok else '!':1s}"
                         f"{r['foreachS'] * 1e3:12.3f}{r['vsForeach']:9.1f}{r['eagerS'] * 1e3:10.3f}{r['vsEager']:8.1f}{r['worstErrOverTol']:8.2f}  v{r.get('variant', 0)}")
    else:
        lines.append('kernel bench: not run (see log)')
    if m:
        lines.append(f"file merge N={m['n']} bf16 {m['bytesPerSource'] / GIB:.2f} GiB/src: merge {m['mergeS']:.2f} s; read {m['readS']:.2f} s, "
                     f"write+fsync {m['writeS']:.2f} s, host link {m['linkS']:.2f} s (H2D {m['h2dBps'] / 1e9:.1f} GB/s), kernel {m['kernelS'] * 1e3:.1f} ms "
                     f"-> merge/max(io) {m['mergeOverBound']:.2f}, kernel share {100 * m['kernelShare']:.1f}%")
    else:
        lines.append('file merge: not run (see log)')
    lines.append(f"PPO on GPU: {ppo['line'] if ppo else 'not run (see docs/cuda.md: native/torch/tools/ppo_check.cc)'}")
    lines.append('=' * 118)
    print('\n'.join(lines))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--lib')
    ap.add_argument('--out', default='kernels.json')
    ap.add_argument('--reps', type=int, default=10)
    ap.add_argument('--summary')
    ap.add_argument('--dry-run', action='store_true', help='no GPU: CPU tensors, tiny sizes, --lib over the CPU emulation')
    args = ap.parse_args()
    if args.summary:
        summary(args.summary)
        return
    run_bench(args)


if __name__ == '__main__':
    sys.exit(main())
