# SPDX-License-Identifier: MIT
# PyTorch baselines for bench/merge: the same shapes, dtype and N as the soup kernel, timed in one process.
#   sum(l*t)      per tensor, as mergekit's linear merge and model-soups do (allocates temporaries)
#   mul_/add_     per tensor, in place into a preallocated output (out.copy_(x0).mul_(l0); out.add_(xi, alpha=li))
# Reads {"shapes", "dtype", "n", "reps", "threads"} on stdin; prints one JSON line per method.
import json, sys, time
import torch

cfg = json.load(sys.stdin)
torch.set_num_threads(cfg["threads"])
dt = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16, "float64": torch.float64}[cfg["dtype"]]
n, reps = cfg["n"], cfg["reps"]
srcs = [[torch.rand(tuple(s), dtype=torch.float32).to(dt) + 0.01 for s in cfg["shapes"]] for _ in range(n)]
w = [1.0 / n] * n
outs = [torch.empty_like(t) for t in srcs[0]]

def sum_lt():
    res = []
    for k in range(len(outs)):
        res.append(sum(w[i] * srcs[i][k] for i in range(n)))
    return res

def inplace():
    for k, o in enumerate(outs):
        o.copy_(srcs[0][k]).mul_(w[0])
        for i in range(1, n):
            o.add_(srcs[i][k], alpha=w[i])

for name, fn in (("torch sum(l*t)", sum_lt), ("torch mul_/add_", inplace)):
    fn()  # warm-up
    ts = []
    for _ in range(reps):
        t0 = time.perf_counter()
        r = fn()
        ts.append(time.perf_counter() - t0)
        del r
    print(json.dumps({"method": name, "seconds": ts}), flush=True)
