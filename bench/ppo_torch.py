# SPDX-License-Identifier: MIT
# The baseline of `rsoup bench ppo` (src/bench/ppo.ts): the same computation as the native PPO step, written in PyTorch eager
# (Debian's python3-torch): LLaMA (RMSNorm, rotate-half RoPE, GQA, SwiGLU, tied embeddings), LoRA on
# q/v with peft semantics, value head, KV-cache sampling (fixed length), trl 0.4.x PPO (rollout forward,
# reference forward with the adapter disabled, GAE, whitening, clipped losses, Adam per minibatch).
# Prints one JSON line: step and generation times.
import argparse
import json
import math
import time

import torch
import torch.nn.functional as F

p = argparse.ArgumentParser()
for k, v in dict(vocab=2048, hidden=128, layers=4, heads=4, kv=4, inter=344, batch=64, prompt=8, gen=24,
                 mb=16, epochs=4, steps=4, warmup=1, threads=1, r=8, alpha=16, seed=0).items():
    p.add_argument(f"--{k}", type=int, default=v)
args = p.parse_args()
torch.set_num_threads(args.threads)
torch.manual_seed(args.seed)
H, NH, NKV, D, I, V = args.hidden, args.heads, args.kv, args.hidden // args.heads, args.inter, args.vocab
EPS, THETA = 1e-6, 10000.0


def U(*shape, s=0.1):
    return (torch.rand(*shape) * 2 - 1) * s


W = {"embed": U(V, H), "norm": torch.ones(H)}
for l in range(args.layers):
    W.update({f"{l}.in": torch.ones(H), f"{l}.post": torch.ones(H), f"{l}.q": U(NH * D, H), f"{l}.k": U(NKV * D, H),
              f"{l}.v": U(NKV * D, H), f"{l}.o": U(H, NH * D), f"{l}.gate": U(I, H), f"{l}.up": U(I, H), f"{l}.down": U(H, I)})
LORA = {}
for l in range(args.layers):
    for m in ("q", "v"):
        out = W[f"{l}.{m}"].shape[0]
        LORA[f"{l}.{m}"] = (U(args.r, H, s=1 / math.sqrt(H)).requires_grad_(), torch.zeros(out, args.r).requires_grad_())
SCALE = args.alpha / args.r
VH_W = U(1, H, s=1 / math.sqrt(H)).requires_grad_()
VH_B = U(1, s=1 / math.sqrt(H)).requires_grad_()
PARAMS = [t for ab in LORA.values() for t in ab] + [VH_W, VH_B]
INV = 1.0 / (THETA ** (torch.arange(0, D, 2, dtype=torch.float64) / D))


def rms(x, w):
    xf = x.float()
    return w * (xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + EPS))


def lin(x, name, st):
    y = x @ W[name].t()
    if st["lora"] and name in LORA:
        A, B = LORA[name]
        xi = F.dropout(x, 0.05, training=True) if st["train"] else x
        y = y + (xi @ A.t() @ B.t()) * SCALE
    return y


def rot(x):
    h = x.shape[-1] // 2
    return torch.cat([-x[..., h:], x[..., :h]], -1)


def hidden(tokens, mask, st, cache=None):
    Bn, T = tokens.shape
    past = cache["len"] if cache else 0
    S = past + T
    pos = (mask.cumsum(1) - 1).clamp_min(0)[:, past:S].double()
    f = pos.unsqueeze(-1) * INV
    emb = torch.cat([f, f], -1).unsqueeze(1)
    cos, sin = emb.cos().float(), emb.sin().float()
    causal = torch.arange(S).unsqueeze(0) <= (torch.arange(T) + past).unsqueeze(1)
    allowed = (causal.unsqueeze(0) & mask.bool().unsqueeze(1)).unsqueeze(1)
    x = W["embed"][tokens]
    for l in range(args.layers):
        h = rms(x, W[f"{l}.in"])
        q = lin(h, f"{l}.q", st).view(Bn, T, NH, D).transpose(1, 2)
        k = lin(h, f"{l}.k", st).view(Bn, T, NKV, D).transpose(1, 2)
        v = lin(h, f"{l}.v", st).view(Bn, T, NKV, D).transpose(1, 2)
        q = q * cos + rot(q) * sin
        k = k * cos + rot(k) * sin
        if cache is not None:
            cache["k"][l][:, :, past:S] = k
            cache["v"][l][:, :, past:S] = v
            k, v = cache["k"][l][:, :, :S], cache["v"][l][:, :, :S]
        if NKV != NH:
            k, v = k.repeat_interleave(NH // NKV, 1), v.repeat_interleave(NH // NKV, 1)
        s = (q @ k.transpose(-1, -2)) / math.sqrt(D)
        a = torch.softmax(s.masked_fill(~allowed, torch.finfo(torch.float32).min), -1)
        x = x + lin((a @ v).transpose(1, 2).reshape(Bn, T, H), f"{l}.o", st)
        h = rms(x, W[f"{l}.post"])
        x = x + lin(F.silu(lin(h, f"{l}.gate", st)) * lin(h, f"{l}.up", st), f"{l}.down", st)
    if cache is not None:
        cache["len"] = S
    return rms(x, W["norm"])


def logits(h):
    return h @ W["embed"].t()


@torch.no_grad()
def generate(q, qmask, n):
    Bn, P = q.shape
    st = {"lora": True, "train": False}
    cache = {"len": 0, "k": [torch.zeros(Bn, NKV, P + n, D) for _ in range(args.layers)],
             "v": [torch.zeros(Bn, NKV, P + n, D) for _ in range(args.layers)]}
    full = torch.ones(Bn, P + n, dtype=torch.long)
    full[:, :P] = qmask
    lg = logits(hidden(q, full[:, :P], st, cache)[:, -1])
    out = torch.zeros(Bn, n, dtype=torch.long)
    for i in range(n):
        nxt = torch.multinomial(torch.softmax(lg, -1), 1).squeeze(1)
        out[:, i] = nxt
        if i + 1 == n:
            break
        lg = logits(hidden(nxt.unsqueeze(1), full[:, :P + i + 1], st, cache)[:, 0])
    return out


def resp_forward(inp, mask, P, R, st):
    h = hidden(inp, mask, st)[:, P - 1:P + R - 1]
    lsm = torch.log_softmax(logits(h), -1)
    logp = lsm.gather(-1, inp[:, P:P + R].unsqueeze(-1)).squeeze(-1)
    vals = F.linear(F.dropout(h, 0.1, training=st["train"]), VH_W, VH_B).squeeze(-1)
    return logp, vals, lsm


def mmean(x, m):
    return (x * m).sum() / m.sum()


def whiten(x, m):
    mu = mmean(x, m)
    var = mmean((x - mu) ** 2, m)
    n = m.sum()
    var = var * n / (n - 1)
    return (x - mu) * torch.rsqrt(var + 1e-8)


optim = torch.optim.Adam(PARAMS, lr=1e-3)


def ppo_step(q, qmask, beta=0.2):
    t0 = time.perf_counter()
    R = args.gen
    resp = generate(q, qmask, R)
    tg = time.perf_counter() - t0
    P = q.shape[1]
    inp = torch.cat([q, resp], 1)
    mask = torch.cat([qmask, torch.ones_like(resp)], 1)
    rmask = torch.ones(q.shape[0], R)
    with torch.no_grad():
        old_logp, old_v, _ = resp_forward(inp, mask, P, R, {"lora": True, "train": False})
        ref_logp, _, _ = resp_forward(inp, mask, P, R, {"lora": False, "train": False})
    scores = (resp == 7).float().mean(1)
    rewards = -beta * (old_logp - ref_logp) * rmask
    rewards[:, -1] += scores
    Bn = q.shape[0]
    tu = time.perf_counter()
    for _ in range(args.epochs):
        perm = torch.randperm(Bn)
        for s in range(0, Bn, args.mb):
            idx = perm[s:s + args.mb]
            logp, vpred, lsm = resp_forward(inp[idx], mask[idx], P, R, {"lora": True, "train": True})
            m = rmask[idx]
            vals, rw = old_v[idx] * m, rewards[idx] * m
            with torch.no_grad():
                last = torch.zeros(len(idx))
                adv = []
                for t in reversed(range(R)):
                    nv = vals[:, t + 1] if t + 1 < R else torch.zeros(len(idx))
                    last = rw[:, t] + nv - vals[:, t] + 0.95 * last
                    adv.append(last)
                adv = torch.stack(adv[::-1], 1)
                ret = adv + vals
                adv = whiten(adv, m)
            vclip = torch.max(torch.min(vpred, vals + 0.2), vals - 0.2)
            vf = 0.5 * mmean(torch.max((vpred - ret) ** 2, (vclip - ret) ** 2), m)
            ratio = torch.exp(logp - old_logp[idx])
            pg = mmean(torch.max(-adv * ratio, -adv * torch.clamp(ratio, 0.8, 1.2)), m)
            loss = pg + 0.1 * vf
            with torch.no_grad():
                ent = mmean(-(lsm.exp() * lsm).sum(-1), m)  # the stats trl logs
            optim.zero_grad()
            loss.backward()
            optim.step()
    UPD.append(time.perf_counter() - tu)
    return time.perf_counter() - t0, tg


UPD = []
q = torch.randint(3, V, (args.batch, args.prompt))
qmask = torch.ones_like(q)
steps, gens = [], []
for i in range(args.warmup + args.steps):
    st, tg = ppo_step(q, qmask)
    if i >= args.warmup:
        steps.append(st)
        gens.append(tg)
print(json.dumps({"impl": "torch-eager", "torch": torch.__version__, "threads": torch.get_num_threads(),
                  "step_s": steps, "gen_s": gens, "update_s": UPD[args.warmup:], "gen_tokens": args.batch * args.gen}))
