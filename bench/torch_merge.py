# SPDX-License-Identifier: MIT
# PyTorch baselines for `rsoup bench merge` (src/bench/merge.ts): the same shapes, dtype and N as the soup kernel, in one process that
# the bench keeps open and asks for one timed rep at a time, so that each rep sits between two runs of the
# bandwidth probe (this VM's bandwidth drifts by ±20 % over seconds; docs/notes/merge-measuring.md, "Measuring").
#   sum       sum(l*t) per tensor, as mergekit's linear merge and model-soups do (allocates temporaries)
#   inplace   mul_/add_ per tensor, in place into a preallocated output (out.copy_(x0).mul_(l0); out.add_(xi, alpha=li))
# Protocol: first stdin line {"shapes", "dtype", "n", "threads"}; answers {"ready": true}. Then one method
# name per line; answers {"method", "seconds"} for one rep of it. EOF ends the process.
import json, sys, time
import torch

cfg = json.loads(sys.stdin.readline())
torch.set_num_threads(cfg["threads"])
dt = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16, "float64": torch.float64}[cfg["dtype"]]
n = cfg["n"]
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


methods = {"sum": sum_lt, "inplace": inplace}
print(json.dumps({"ready": True}), flush=True)
for line in sys.stdin:
    name = line.strip()
    if not name:
        continue
    fn = methods[name]
    t0 = time.perf_counter()
    r = fn()
    s = time.perf_counter() - t0
    del r
    print(json.dumps({"method": name, "seconds": s}), flush=True)
