// SPDX-License-Identifier: MIT
// LLaMA forward (Hugging Face LlamaForCausalLM semantics), LoRA (peft), value head (trl), KV-cache
// generation (transformers' sampling warpers), Adam(W). All ops are plain ATen calls so autograd works and
// the same code runs in fp64 (tests), fp32 and bf16/fp16.
#include "torch/llama.h"
#include "torch/shape_str.h"

#include <c10/core/GradMode.h>

#include <cmath>
#include <limits>
#include <mutex>
#include <sstream>
#include <stdexcept>

namespace soup {

void Fail(const char* code, const std::string& msg) { throw std::runtime_error(std::string("[ERR_SOUP_") + code + "] " + msg); }

double LoraConfig::scaling() const { return rslora ? alpha / std::sqrt(double(r)) : alpha / double(r); }

static at::ScalarType OpMath(at::ScalarType t) { return t == at::kDouble ? at::kDouble : at::kFloat; }

// ---------------------------------------------------------------------------------------------------
// weights

static const char* kAttn[] = {"q_proj", "k_proj", "v_proj", "o_proj"};
static const char* kMlp[] = {"gate_proj", "up_proj", "down_proj"};

std::vector<std::pair<std::string, std::vector<int64_t>>> LlamaModel::ExpectedBase(const LlamaConfig& c) {
  std::vector<std::pair<std::string, std::vector<int64_t>>> e;
  const int64_t H = c.hidden, D = c.headDim(), I = c.intermediate;
  e.push_back({"model.embed_tokens.weight", {c.vocab, H}});
  for (int64_t l = 0; l < c.layers; l++) {
    std::string p = "model.layers." + std::to_string(l) + ".";
    e.push_back({p + "input_layernorm.weight", {H}});
    e.push_back({p + "self_attn.q_proj.weight", {c.heads * D, H}});
    e.push_back({p + "self_attn.k_proj.weight", {c.kvHeads * D, H}});
    e.push_back({p + "self_attn.v_proj.weight", {c.kvHeads * D, H}});
    e.push_back({p + "self_attn.o_proj.weight", {H, c.heads * D}});
    e.push_back({p + "post_attention_layernorm.weight", {H}});
    e.push_back({p + "mlp.gate_proj.weight", {I, H}});
    e.push_back({p + "mlp.up_proj.weight", {I, H}});
    e.push_back({p + "mlp.down_proj.weight", {H, I}});
  }
  e.push_back({"model.norm.weight", {H}});
  if (!c.tied) e.push_back({"lm_head.weight", {c.vocab, H}});
  return e;
}

void LlamaModel::Seed(uint64_t seed) {
  if (!gen.defined()) gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  std::lock_guard<std::mutex> lock(gen.mutex());
  gen.set_current_seed(seed);
}

void LlamaModel::SetDevice(const std::string& dev, bool bf16Matmuls) {
  if (dev == "cpu") {
    device = at::kCPU;
    amp = false;
    return;
  }
  if (dev != "cuda") Fail("CONFIG", "device must be 'cpu' or 'cuda', got '" + dev + "'");
  if (!at::hasCUDA()) Fail("NO_CUDA", "device 'cuda': this libtorch has no usable CUDA device (CPU-only build or no GPU); use device 'cpu'");
  device = at::Device(at::kCUDA, 0);
  amp = bf16Matmuls;
}

void LlamaModel::Init(const LlamaConfig& c, at::ScalarType dt, const std::map<std::string, at::Tensor>* w, uint64_t seed) {
  if (c.hidden <= 0 || c.heads <= 0 || c.kvHeads <= 0 || c.layers <= 0 || c.vocab <= 0 || c.intermediate <= 0)
    Fail("CONFIG", "config: hidden_size, num_attention_heads, num_key_value_heads, num_hidden_layers, vocab_size and intermediate_size must be positive");
  if (c.hidden % c.heads)
    Fail("CONFIG", "config: hidden_size " + std::to_string(c.hidden) + " is not a multiple of num_attention_heads " + std::to_string(c.heads));
  if (c.heads % c.kvHeads)
    Fail("CONFIG", "config: num_attention_heads " + std::to_string(c.heads) + " is not a multiple of num_key_value_heads " + std::to_string(c.kvHeads));
  if (c.headDim() % 2) Fail("CONFIG", "config: head dimension " + std::to_string(c.headDim()) + " must be even for rotary embeddings");
  cfg = c;
  dtype = dt;
  paramDtype = dt == at::kDouble ? at::kDouble : at::kFloat;
  Seed(seed);
  c10::NoGradGuard ng;
  base.clear();
  catCache.clear();
  lowCache.clear();
  // NOTE: [fused projections] q/k/v and gate/up weights are laid out as row blocks of one tensor per
  // layer, so the fused GEMM reads that tensor and the model holds each weight once (a cached
  // concatenation beside separate weights cost 70 % more memory: 21.9 GB for a 12.6 GB LLaMA-7B).
  const auto expected = ExpectedBase(c);
  const std::map<std::string, std::vector<int64_t>> shapes(expected.begin(), expected.end());
  std::map<std::string, std::pair<std::string, int64_t>> groupOf;  // module weight -> (cat key, row offset)
  std::map<std::string, int64_t> groupRows;
  for (int64_t l = 0; l < c.layers; l++) {
    const std::string p = "model.layers." + std::to_string(l) + ".";
    for (const auto& [key, mods] : FusedGroups(p)) {
      int64_t off = 0;
      for (const auto& mod : mods) {
        groupOf[mod + ".weight"] = {key, off};
        off += shapes.at(mod + ".weight")[0];
      }
      groupRows[key] = off;
    }
  }
  for (auto& [name, shape] : expected) {
    at::Tensor src;  // the weight's values, in any dtype, on the CPU
    if (w) {
      auto it = w->find(name);
      if (it == w->end())
        Fail("MISSING_TENSOR", "weights lack tensor '" + name + "' that config.json implies (" + std::to_string(c.layers) + " layers" +
                                   (c.tied ? ", tied embeddings" : ", untied lm_head") + ")");
      if (it->second.sizes() != at::IntArrayRef(shape))
        Fail("SHAPE_MISMATCH", "tensor '" + name + "' has shape " + ShapeStr(it->second.sizes()) + " but config.json implies " + ShapeStr(shape));
      src = it->second;
    } else if (name.find("norm") != std::string::npos) {
      src = at::ones(shape, at::TensorOptions().dtype(dt));
    } else {
      src = at::empty(shape, at::TensorOptions().dtype(at::kFloat)).normal_(0.0, 0.02, gen).to(dt);
    }
    auto g = groupOf.find(name);
    if (g == groupOf.end()) {
      base[name] = Dev(src.to(dt, false, /*copy=*/true).contiguous());
      continue;
    }
    CatEntry& e = catCache[g->second.first];
    if (!e.w.defined()) e.w = at::empty({groupRows.at(g->second.first), shape[1]}, Opts(dt));
    at::Tensor rows = e.w.narrow(0, g->second.second, shape[0]);
    rows.copy_(src);
    base[name] = rows;
  }
}

std::vector<std::pair<std::string, std::vector<std::string>>> LlamaModel::FusedGroups(const std::string& p) {
  return {{p + "qkv", {p + "self_attn.q_proj", p + "self_attn.k_proj", p + "self_attn.v_proj"}}, {p + "gate_up", {p + "mlp.gate_proj", p + "mlp.up_proj"}}};
}

void LlamaModel::AddLora(const LoraConfig& lc, uint64_t seed) {
  if (lc.r <= 0) Fail("CONFIG", "lora: r must be positive, got " + std::to_string(lc.r));
  if (lc.dropout < 0 || lc.dropout >= 1) Fail("CONFIG", "lora: lora_dropout must be in [0, 1)");
  if (lc.targets.empty()) Fail("CONFIG", "lora: target_modules is empty");
  for (auto& t : lc.targets) {
    bool ok = false;
    for (auto* n : kAttn) ok |= t == n;
    for (auto* n : kMlp) ok |= t == n;
    if (!ok)
      Fail("CONFIG",
           "lora: target_modules entry '" + t + "' matches no module of LlamaForCausalLM (q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj)");
  }
  lora = lc;
  adapter.clear();
  refAdapter.clear();
  Seed(seed);
  c10::NoGradGuard ng;
  for (int64_t l = 0; l < cfg.layers; l++) {
    for (auto& t : lc.targets) {
      bool attn = false;
      for (auto* n : kAttn) attn |= t == n;
      std::string mod = "model.layers." + std::to_string(l) + (attn ? ".self_attn." : ".mlp.") + t;
      auto& W = base.at(mod + ".weight");
      const int64_t out = W.size(0), in = W.size(1);
      // peft default init: A = kaiming_uniform(a=sqrt(5)) = U(-1/sqrt(in), 1/sqrt(in)), B = 0.
      double bound = 1.0 / std::sqrt(double(in));
      LoraPair p;
      p.A = Dev(at::empty({lc.r, in}, at::TensorOptions().dtype(paramDtype)).uniform_(-bound, bound, gen));
      p.B = at::zeros({out, lc.r}, Opts(paramDtype));
      p.A.requires_grad_(true);
      p.B.requires_grad_(true);
      adapter[mod] = p;
    }
  }
  adam = AdamState();
}

void LlamaModel::InitValueHead(uint64_t seed) {
  Seed(seed);
  c10::NoGradGuard ng;
  double bound = 1.0 / std::sqrt(double(cfg.hidden));  // torch.nn.Linear default init
  vHeadW = Dev(at::empty({1, cfg.hidden}, at::TensorOptions().dtype(paramDtype)).uniform_(-bound, bound, gen));
  vHeadB = Dev(at::empty({1}, at::TensorOptions().dtype(paramDtype)).uniform_(-bound, bound, gen));
  vHeadW.requires_grad_(true);
  vHeadB.requires_grad_(true);
  adam = AdamState();
}

// ---------------------------------------------------------------------------------------------------
// forward

at::Tensor LlamaModel::Dropout(const at::Tensor& x, double p) {
  if (p <= 0) return x;
  at::Tensor keep;
  {
    c10::NoGradGuard ng;
    // Drawn on the CPU generator (CUDA tensors get the same mask as CPU ones, then move).
    keep = x.is_cpu() ? at::empty_like(x).bernoulli_(1.0 - p, gen).div_(1.0 - p)
                      : at::empty(x.sizes(), x.options().device(at::kCPU)).bernoulli_(1.0 - p, gen).div_(1.0 - p).to(x.device());
  }
  return x * keep;
}

at::Tensor LlamaModel::RmsNorm(const at::Tensor& x, const at::Tensor& w) {
  // HF: variance in fp32, normalise, cast back, then scale.
  auto xf = x.to(OpMath(dtype));
  auto var = xf.pow(2).mean(-1, true);
  xf = xf * at::rsqrt(var + cfg.eps);
  return w * xf.to(x.scalar_type());
}

// bf16 copy of a weight for amp matmuls, cached while the weight is unchanged (frozen base weights).
at::Tensor LlamaModel::LowW(const at::Tensor& w) {
  if (w.scalar_type() != at::kFloat) return w.to(at::kBFloat16);
  if (w.requires_grad() && c10::GradMode::is_enabled()) return w.to(at::kBFloat16);  // keep the graph
  auto& e = lowCache[w.unsafeGetTensorImpl()];                                       // the entry holds `src`, so the address is not reused
  if (!e.src.is_same(w) || e.version != int64_t(w._version())) {
    c10::NoGradGuard ng;
    e.src = w;
    e.low = w.detach().to(at::kBFloat16);
    e.version = int64_t(w._version());
  }
  return e.low;
}

at::Tensor LlamaModel::Mm(const at::Tensor& x, const at::Tensor& w) {
  if (amp && x.scalar_type() == at::kFloat) return at::linear(x.to(at::kBFloat16), LowW(w)).to(at::kFloat);
  return at::linear(x, w);
}

at::Tensor LlamaModel::Bmm(const at::Tensor& a, const at::Tensor& b) {
  if (amp && a.scalar_type() == at::kFloat) return at::matmul(a.to(at::kBFloat16), b.to(at::kBFloat16)).to(at::kFloat);
  return at::matmul(a, b);
}

at::Tensor LlamaModel::Linear(const at::Tensor& x, const std::string& module) {
  if (!fused.empty()) {
    auto f = fused.find(module);
    return Mm(x, f != fused.end() ? f->second : base.at(module + ".weight"));
  }
  return LoraDelta(x, module, Mm(x, base.at(module + ".weight")));
}

// y (the base projection of x) plus the module's LoRA term, when an adapter applies to it.
at::Tensor LlamaModel::LoraDelta(const at::Tensor& x, const std::string& module, const at::Tensor& y) {
  if (!lora || merged || !fused.empty()) return y;
  const std::map<std::string, LoraPair>* ad = nullptr;
  if (mode == AdapterMode::Active)
    ad = &adapter;
  else if (mode == AdapterMode::Reference)
    ad = &refAdapter;
  if (!ad) return y;
  auto it = ad->find(module);
  if (it == ad->end()) return y;
  at::Tensor xi = x.to(paramDtype);
  if (training) xi = Dropout(xi, lora->dropout);  // peft: dropout on the input of A only
  at::Tensor d = Mm(Mm(xi, it->second.A), it->second.B);
  if (d.scalar_type() == y.scalar_type()) return y.add(d, lora->scaling());  // one op: y + s*d
  return y + (d * lora->scaling()).to(y.scalar_type());
}

const at::Tensor& LlamaModel::CatWeight(const std::string& key, const std::vector<std::string>& modules) {
  if (!fused.empty()) {  // generation: FusedEval built the concatenation of the merged weights
    auto f = fused.find(key);
    if (f != fused.end()) return f->second;
  }
  CatEntry& e = catCache[key];
  // the weights are still the row blocks of e.w that Init made (in-place updates included): no copy
  if (e.w.defined()) {
    bool blocks = true;
    int64_t off = 0;
    for (size_t i = 0; blocks && i < modules.size(); i++) {
      const at::Tensor& W = base.at(modules[i] + ".weight");
      blocks = W.is_alias_of(e.w) && W.data_ptr() == e.w[off].data_ptr() && W.is_contiguous();
      off += W.size(0);
    }
    if (blocks && off == e.w.size(0)) return e.w;
  }
  bool ok = e.w.defined() && e.ptrs.size() == modules.size();
  for (size_t i = 0; ok && i < modules.size(); i++) {
    const at::Tensor& W = base.at(modules[i] + ".weight");
    ok = W.unsafeGetTensorImpl() == e.ptrs[i] && int64_t(W._version()) == e.versions[i];
  }
  if (!ok) {
    c10::NoGradGuard ng;
    if (e.w.defined()) lowCache.erase(e.w.unsafeGetTensorImpl());
    std::vector<at::Tensor> ws;
    e.ptrs.clear();
    e.versions.clear();
    for (auto& mname : modules) {
      const at::Tensor& W = base.at(mname + ".weight");
      ws.push_back(W);
      e.ptrs.push_back(W.unsafeGetTensorImpl());
      e.versions.push_back(int64_t(W._version()));
    }
    e.w = at::cat(ws, 0);
  }
  return e.w;
}

at::Tensor LlamaModel::Hidden(const at::Tensor& tokensIn, const at::Tensor& maskIn, KVCache* cache) {
  const at::Tensor tokens = Dev(tokensIn);
  const int64_t B = tokens.size(0), T = tokens.size(1);
  const int64_t past = cache ? cache->len : 0, S = past + T;
  const int64_t nh = cfg.heads, nkv = cfg.kvHeads, D = cfg.headDim(), H = cfg.hidden;
  const auto om = OpMath(dtype);
  at::Tensor mask = maskIn.defined() ? Dev(maskIn.to(at::kLong)) : at::ones({B, S}, Opts(at::kLong));
  if (mask.size(0) != B || mask.size(1) != S)
    Fail("SHAPE_MISMATCH", "attention mask shape " + ShapeStr(mask.sizes()) + " != [" + std::to_string(B) + "," + std::to_string(S) + "]");
  at::Tensor cos, sin, notAllowed;
  {
    c10::NoGradGuard ng;
    // Positions count real tokens only (HF generate: cumsum(mask) - 1), so left padding does not shift RoPE.
    at::Tensor pos = (mask.cumsum(1) - 1).clamp_min(0).narrow(1, past, T).to(at::kDouble);
    at::Tensor inv = at::pow(cfg.ropeTheta, at::arange(0, D, 2, Opts(at::kDouble)) / double(D)).reciprocal();
    at::Tensor f = pos.unsqueeze(-1) * inv;  // [B, T, D/2]
    at::Tensor emb = at::cat({f, f}, -1).unsqueeze(1);
    cos = emb.cos().to(dtype);
    // rotate_half(x)·sin = roll(x, D/2)·[-sin, sin]: one op on x instead of narrow/neg/cat (exact).
    at::Tensor sn = emb.sin();
    sn.narrow(-1, 0, D / 2).neg_();
    sin = sn.to(dtype);
    at::Tensor causal = at::arange(S, Opts(at::kLong)).unsqueeze(0) <= (at::arange(T, Opts(at::kLong)) + past).unsqueeze(1);
    notAllowed = (causal.unsqueeze(0) & mask.to(at::kBool).unsqueeze(1)).unsqueeze(1).logical_not();  // [B,1,T,S]
  }
  const double lowest = std::numeric_limits<float>::lowest();
  at::Tensor x = at::embedding(base.at("model.embed_tokens.weight"), tokens);
  const int64_t nq = nh * D, nk = nkv * D, I = cfg.intermediate;
  for (int64_t l = 0; l < cfg.layers; l++) {
    std::string p = "model.layers." + std::to_string(l) + ".";
    const std::string mq = p + "self_attn.q_proj", mk = p + "self_attn.k_proj", mv = p + "self_attn.v_proj";
    const std::string mg = p + "mlp.gate_proj", mu = p + "mlp.up_proj";
    // Fused projections need frozen base weights (pre-training differentiates each one).
    const bool fuse = !(c10::GradMode::is_enabled() && base.at(mq + ".weight").requires_grad());
    at::Tensor h = RmsNorm(x, base.at(p + "input_layernorm.weight"));
    at::Tensor q, k, v;
    if (fuse) {
      at::Tensor qkv = Mm(h, CatWeight(p + "qkv", {mq, mk, mv}));  // keys and members: FusedGroups
      q = LoraDelta(h, mq, qkv.narrow(-1, 0, nq));
      k = LoraDelta(h, mk, qkv.narrow(-1, nq, nk));
      // Contiguous as an unfused projection's output is: kernels that vectorise a contiguous run
      // (silu's exp, the batched GEMM) round their tails differently on a strided view, and an
      // adapter with B = 0 must reproduce the base model exactly.
      v = LoraDelta(h, mv, qkv.narrow(-1, nq + nk, nk)).contiguous();
    } else {
      q = Linear(h, mq);
      k = Linear(h, mk);
      v = Linear(h, mv);
    }
    q = q.view({B, T, nh, D}).transpose(1, 2);
    k = k.view({B, T, nkv, D}).transpose(1, 2);
    v = v.view({B, T, nkv, D}).transpose(1, 2);
    q = q * cos + at::roll(q, D / 2, -1) * sin;
    k = k * cos + at::roll(k, D / 2, -1) * sin;
    if (cache) {
      cache->k[l].narrow(2, past, T).copy_(k);
      cache->v[l].narrow(2, past, T).copy_(v);
      k = cache->k[l].narrow(2, 0, S);
      v = cache->v[l].narrow(2, 0, S);
    }
    if (nkv != nh) {  // GQA: kv head j serves query heads j*rep .. j*rep+rep-1 (HF repeat_kv)
      k = k.repeat_interleave(nh / nkv, 1);
      v = v.repeat_interleave(nh / nkv, 1);
    }
    // In place on the fresh matmul output (its backward does not need it), then the scale's.
    at::Tensor s = Bmm(q, k.transpose(-1, -2)).to(om);
    s.div_(std::sqrt(double(D)));
    // Fully masked rows (left-padding queries) get a uniform softmax instead of NaN.
    s.masked_fill_(notAllowed, lowest);
    at::Tensor a = at::softmax(s, -1).to(dtype);
    at::Tensor o = Bmm(a, v).transpose(1, 2).reshape({B, T, H});
    x = x + Linear(o, p + "self_attn.o_proj");
    h = RmsNorm(x, base.at(p + "post_attention_layernorm.weight"));
    at::Tensor gate, up;
    if (fuse) {
      at::Tensor gu = Mm(h, CatWeight(p + "gate_up", {mg, mu}));
      gate = LoraDelta(h, mg, gu.narrow(-1, 0, I)).contiguous();
      up = LoraDelta(h, mu, gu.narrow(-1, I, I));
    } else {
      gate = Linear(h, mg);
      up = Linear(h, mu);
    }
    x = x + Linear(at::silu(gate) * up, p + "mlp.down_proj");
  }
  if (cache) cache->len = S;
  return RmsNorm(x, base.at("model.norm.weight"));
}

at::Tensor LlamaModel::Logits(const at::Tensor& hidden) {
  const at::Tensor& W = cfg.tied ? base.at("model.embed_tokens.weight") : base.at("lm_head.weight");
  return Mm(hidden, W).to(OpMath(dtype));
}

at::Tensor LlamaModel::Values(const at::Tensor& hidden) {
  if (!vHeadW.defined()) Fail("INVALID_ARG", "this model has no value head");
  at::Tensor h = hidden.to(paramDtype);
  if (training) h = Dropout(h, vHeadDropout);  // trl ValueHead: dropout, then Linear(hidden, 1)
  return at::linear(h, vHeadW, vHeadB).squeeze(-1);
}

at::Tensor LlamaModel::NextTokenLoss(const at::Tensor& tokensIn, const at::Tensor& maskIn) {
  const at::Tensor tokens = Dev(tokensIn);
  const at::Tensor mask = maskIn.defined() ? Dev(maskIn) : maskIn;
  const int64_t T = tokens.size(1);
  if (T < 2) Fail("INVALID_ARG", "next-token loss needs sequences of at least 2 tokens");
  at::Tensor h = Hidden(tokens, mask, nullptr).narrow(1, 0, T - 1);
  at::Tensor lsm = at::log_softmax(Logits(h), -1);
  at::Tensor nll = -lsm.gather(-1, tokens.narrow(1, 1, T - 1).unsqueeze(-1)).squeeze(-1);
  if (!mask.defined()) return nll.mean();
  at::Tensor w = mask.narrow(1, 1, T - 1).to(nll.scalar_type());
  return (nll * w).sum() / w.sum();
}

// ---------------------------------------------------------------------------------------------------
// generation

namespace {
// Builds model.fused for the adapter the current mode uses (none when disabled or merged); clears it after.
struct FusedEval {
  LlamaModel& m;
  explicit FusedEval(LlamaModel& mm) : m(mm) {
    m.fused.clear();
    if (!m.lora || m.merged || m.training || m.mode == AdapterMode::Disabled) return;
    const auto& ad = m.mode == AdapterMode::Active ? m.adapter : m.refAdapter;
    // Under amp the merged weights are stored in bf16 once (the matmuls' operand dtype).
    const bool low = m.amp && m.dtype == at::kFloat;
    for (auto& [mod, p] : ad) {
      const at::Tensor& W = m.base.at(mod + ".weight");
      m.fused[mod] = (W.to(m.paramDtype) + at::matmul(p.B, p.A) * m.lora->scaling()).to(low ? at::kBFloat16 : W.scalar_type());
    }
    // [fused projections]: the concatenations of the merged (or base) weights, once per call.
    auto get = [&](const std::string& mod) {
      auto f = m.fused.find(mod);
      const at::Tensor& W = f != m.fused.end() ? f->second : m.base.at(mod + ".weight");
      return low ? W.to(at::kBFloat16) : W;
    };
    for (int64_t l = 0; l < m.cfg.layers; l++) {
      std::string p = "model.layers." + std::to_string(l) + ".";
      m.fused[p + "qkv"] = at::cat({get(p + "self_attn.q_proj"), get(p + "self_attn.k_proj"), get(p + "self_attn.v_proj")}, 0);
      m.fused[p + "gate_up"] = at::cat({get(p + "mlp.gate_proj"), get(p + "mlp.up_proj")}, 0);
    }
  }
  ~FusedEval() { m.fused.clear(); }
};

struct TrainingOff {
  LlamaModel& m;
  bool was;
  explicit TrainingOff(LlamaModel& mm) : m(mm), was(mm.training) { m.training = false; }
  ~TrainingOff() { m.training = was; }
};
}  // namespace

// transformers' warpers in their order: temperature, top-k, top-p; then multinomial.
static at::Tensor Pick(at::Tensor lg, const GenOptions& o, at::Generator& gen) {
  if (!at::isfinite(lg).logical_or(lg.eq(-std::numeric_limits<double>::infinity())).all().item<bool>())
    Fail("TRAIN", "non-finite logits during generation (the weights contain NaN or Inf)");
  if (!o.sample || o.temperature <= 0) return lg.argmax(-1);
  const double ninf = -std::numeric_limits<double>::infinity();
  lg = lg / o.temperature;
  const int64_t V = lg.size(-1);
  if (o.topK > 0 && o.topK < V) {
    at::Tensor kth = std::get<0>(at::topk(lg, o.topK, -1)).narrow(-1, o.topK - 1, 1);
    lg = lg.masked_fill(lg < kth, ninf);
  }
  if (o.topP < 1.0) {
    auto sorted = at::sort(lg, -1, /*descending=*/false);
    at::Tensor cum = at::softmax(std::get<0>(sorted), -1).cumsum(-1);
    at::Tensor remove = cum <= (1.0 - o.topP);
    remove.narrow(-1, V - 1, 1).fill_(false);
    lg = lg.masked_fill(remove.scatter(-1, std::get<1>(sorted), remove), ninf);
  }
  // The CPU generator draws (CUDA probabilities come over: one [B, V] copy per token, same draws as CPU).
  at::Tensor probs = at::softmax(lg, -1);
  return at::multinomial(probs.is_cpu() ? probs : probs.to(at::kCPU), 1, false, gen).squeeze(-1).to(lg.device());
}

GenResult LlamaModel::Generate(const at::Tensor& tokensIn, const at::Tensor& maskIn, const GenOptions& o) {
  c10::NoGradGuard ng;
  const at::Tensor tokens = Dev(tokensIn);
  TrainingOff off(*this);
  FusedEval fusedEval(*this);
  const int64_t B = tokens.size(0), P = tokens.size(1);
  if (o.maxNew < 1) Fail("INVALID_ARG", "generate: maxNewTokens must be >= 1");
  if (P < 1) Fail("INVALID_ARG", "generate: prompts must have at least one token");
  const int64_t cap = P + o.maxNew;
  KVCache cache;
  for (int64_t l = 0; l < cfg.layers; l++) {
    cache.k.push_back(at::zeros({B, cfg.kvHeads, cap, cfg.headDim()}, Opts(dtype)));
    cache.v.push_back(at::zeros({B, cfg.kvHeads, cap, cfg.headDim()}, Opts(dtype)));
  }
  at::Tensor full = at::ones({B, cap}, Opts(at::kLong));
  if (maskIn.defined()) full.narrow(1, 0, P).copy_(maskIn);
  at::Tensor h = Hidden(tokens, full.narrow(1, 0, P), &cache).narrow(1, P - 1, 1);
  at::Tensor lg = Logits(h).select(1, 0);
  GenResult r;
  r.tokens = at::full({B, o.maxNew}, o.pad, Opts(at::kLong));
  r.lengths = at::zeros({B}, Opts(at::kLong));
  const bool values = o.collect && vHeadW.defined();
  if (o.collect) r.logp = at::zeros({B, o.maxNew}, lg.options());
  if (o.collect) r.entropy = at::zeros({B, o.maxNew}, lg.options());
  if (values) r.values = at::zeros({B, o.maxNew}, lg.options());
  at::Tensor finished = at::zeros({B}, Opts(at::kBool));
  for (int64_t i = 0; i < o.maxNew; i++) {
    at::Tensor lsm;
    if (o.collect) {
      lsm = at::log_softmax(lg, -1);  // raw logits, as trl's forward pass sees them
      r.entropy.select(1, i).copy_(-(lsm.exp() * lsm).sum(-1));
    }
    if (values) r.values.select(1, i).copy_(Values(h).select(1, 0).to(lg.scalar_type()));
    if (o.eos >= 0 && i < o.minNew && o.eos < lg.size(-1)) lg.select(-1, o.eos).fill_(-std::numeric_limits<double>::infinity());
    at::Tensor next = Pick(lg, o, gen);
    if (o.collect) r.logp.select(1, i).copy_(lsm.gather(-1, next.unsqueeze(-1)).squeeze(-1));
    if (o.eos >= 0) next = at::where(finished, at::full_like(next, o.pad), next);
    r.tokens.select(1, i).copy_(next);
    r.lengths += finished.logical_not().to(at::kLong);
    if (o.eos >= 0) {
      finished = finished.logical_or(next.eq(o.eos));
      if (finished.all().item<bool>()) break;
    }
    if (i + 1 == o.maxNew) break;
    h = Hidden(next.unsqueeze(1), full.narrow(1, 0, P + i + 1), &cache);
    lg = Logits(h).select(1, 0);
  }
  return r;
}

// ---------------------------------------------------------------------------------------------------
// LoRA tensors, merge

static std::string PeftName(const std::string& module, const char* ab) { return "base_model.model." + module + ".lora_" + ab + ".weight"; }

std::vector<std::pair<std::string, at::Tensor>> LlamaModel::LoraTensors() {
  std::vector<std::pair<std::string, at::Tensor>> out;
  for (auto& [mod, p] : adapter) {
    out.push_back({PeftName(mod, "A"), p.A});
    out.push_back({PeftName(mod, "B"), p.B});
  }
  return out;
}

void LlamaModel::SetLora(const std::map<std::string, at::Tensor>& t) {
  if (!lora) Fail("INVALID_ARG", "this model has no LoRA adapter");
  if (merged) Fail("INVALID_ARG", "the adapter is merged into the weights: unmerge it before loading new LoRA weights");
  size_t used = 0;
  c10::NoGradGuard ng;
  for (auto& [mod, p] : adapter) {
    for (const char* ab : {"A", "B"}) {
      std::string n = PeftName(mod, ab);
      auto it = t.find(n);
      if (it == t.end()) Fail("MISSING_TENSOR", "adapter lacks tensor '" + n + "'");
      at::Tensor& dst = ab[0] == 'A' ? p.A : p.B;
      if (it->second.sizes() != dst.sizes())
        Fail("SHAPE_MISMATCH", "adapter tensor '" + n + "' has shape " + ShapeStr(it->second.sizes()) + " but this model expects " + ShapeStr(dst.sizes()) +
                                   " (r=" + std::to_string(lora->r) + ")");
      used++;
    }
  }
  if (used != t.size()) {
    for (auto& [n, v] : t) {
      bool found = false;
      for (auto& [mod, p] : adapter) found |= n == PeftName(mod, "A") || n == PeftName(mod, "B");
      if (!found) Fail("WEIGHTS", "adapter tensor '" + n + "' matches no LoRA module of this model (target_modules of the model's LoRA config)");
    }
  }
  for (auto& [mod, p] : adapter) {
    p.A.copy_(t.at(PeftName(mod, "A")));
    p.B.copy_(t.at(PeftName(mod, "B")));
  }
}

void LlamaModel::Merge() {
  if (!lora) Fail("INVALID_ARG", "merge: this model has no LoRA adapter");
  if (merged) Fail("INVALID_ARG", "merge: the adapter is already merged");
  c10::NoGradGuard ng;
  for (auto& [mod, p] : adapter) {
    auto& W = base.at(mod + ".weight");
    W.copy_((W.to(paramDtype) + at::matmul(p.B, p.A) * lora->scaling()).to(dtype));
  }
  merged = true;
}

void LlamaModel::Unmerge() {
  if (!merged) Fail("INVALID_ARG", "unmerge: the adapter is not merged");
  c10::NoGradGuard ng;
  for (auto& [mod, p] : adapter) {
    auto& W = base.at(mod + ".weight");
    W.copy_((W.to(paramDtype) - at::matmul(p.B, p.A) * lora->scaling()).to(dtype));
  }
  merged = false;
}

std::vector<std::pair<std::string, at::Tensor>> LlamaModel::TrainableParams(bool all) {
  std::vector<std::pair<std::string, at::Tensor>> out;
  if (all) {
    for (auto& [n, t] : base) out.push_back({n, t});
    return out;
  }
  out = LoraTensors();
  if (vHeadW.defined()) {
    out.push_back({"v_head.summary.weight", vHeadW});
    out.push_back({"v_head.summary.bias", vHeadB});
  }
  return out;
}

// ---------------------------------------------------------------------------------------------------
// Adam(W), torch.optim semantics

void AdamState::Reset(const std::vector<std::string>& n, const std::vector<at::Tensor>& p) {
  names = n;
  params = p;
  m.clear();
  v.clear();
  for (auto& t : p) {
    // Moments in fp32 (fp64 for fp64 params) whatever the storage dtype.
    auto opts = t.options().dtype(OpMath(t.scalar_type()));
    m.push_back(at::zeros(t.sizes(), opts));
    v.push_back(at::zeros(t.sizes(), opts));
  }
  step = 0;
}

void AdamState::Step(double lr, double b1, double b2, double eps, double wd, bool decoupled) {
  c10::NoGradGuard ng;
  step++;
  const double bc1 = 1 - std::pow(b1, double(step)), bc2 = 1 - std::pow(b2, double(step));
  for (size_t i = 0; i < params.size(); i++) {
    at::Tensor& p = params[i];
    if (!p.grad().defined()) continue;
    at::Tensor g = p.grad().to(m[i].scalar_type());
    if (wd != 0 && !decoupled) g = g + wd * p.to(g.scalar_type());
    m[i].mul_(b1).add_(g, 1 - b1);
    v[i].mul_(b2).addcmul_(g, g, 1 - b2);
    at::Tensor denom = v[i].sqrt().div_(std::sqrt(bc2)).add_(eps);
    if (decoupled && wd != 0) p.mul_(1 - lr * wd);
    if (p.scalar_type() == m[i].scalar_type()) {
      p.addcdiv_(m[i], denom, -lr / bc1);
    } else {  // bf16/fp16 weights: update in fp32, round once
      p.copy_((p.to(m[i].scalar_type()).addcdiv_(m[i], denom, -lr / bc1)).to(p.scalar_type()));
    }
  }
}

std::pair<std::vector<std::string>, std::vector<at::Tensor>> LlamaModel::TrainableLists(bool all) {
  std::pair<std::vector<std::string>, std::vector<at::Tensor>> out;
  for (auto& [n, p] : TrainableParams(all)) {
    out.first.push_back(n);
    out.second.push_back(p);
  }
  return out;
}

// ---------------------------------------------------------------------------------------------------
// State dicts by group, under the names checkpoints use (HF, peft, trl's v_head, the optimizer's moments).

std::vector<std::pair<std::string, at::Tensor>> LlamaModel::StateDict(const std::string& which) {
  LlamaModel& m = *this;
  std::vector<std::pair<std::string, at::Tensor>> v;
  c10::NoGradGuard ng;
  if (which == "base") {
    for (auto& [n, t] : m.base) v.push_back({n, t.detach().clone()});
  } else if (which == "lora") {
    for (auto& [n, t] : m.LoraTensors()) v.push_back({n, t.detach().clone()});
  } else if (which == "valueHead") {
    if (m.vHeadW.defined()) {
      v.push_back({"v_head.summary.weight", m.vHeadW.detach().clone()});
      v.push_back({"v_head.summary.bias", m.vHeadB.detach().clone()});
    }
  } else if (which == "optimizer") {
    for (size_t i = 0; i < m.adam.params.size(); i++) {
      v.push_back({"adam.m." + m.adam.names[i], m.adam.m[i].clone()});
      v.push_back({"adam.v." + m.adam.names[i], m.adam.v[i].clone()});
    }
    v.push_back({"adam.step", at::full({1}, double(m.adam.step), at::kDouble)});
  } else {
    Fail("INVALID_ARG", "unknown tensor group '" + which + "' (base, lora, valueHead, optimizer)");
  }
  return v;
}

void LlamaModel::LoadStateDict(const std::string& which, const std::map<std::string, at::Tensor>& t) {
  LlamaModel& m = *this;
  c10::NoGradGuard ng;
  if (which == "lora") {
    m.SetLora(t);
  } else if (which == "refAdapter") {
    if (!m.lora) Fail("INVALID_ARG", "this model has no LoRA adapter");
    for (auto& [mod, p] : m.adapter) {
      LoraPair r;
      auto a = t.find("base_model.model." + mod + ".lora_A.weight"), b = t.find("base_model.model." + mod + ".lora_B.weight");
      if (a == t.end() || b == t.end()) Fail("MISSING_TENSOR", "reference adapter lacks module '" + mod + "'");
      if (a->second.sizes() != p.A.sizes() || b->second.sizes() != p.B.sizes())
        Fail("SHAPE_MISMATCH", "reference adapter module '" + mod + "' has other shapes than the adapter");
      r.A = m.Dev(a->second.to(m.paramDtype, false, true));
      r.B = m.Dev(b->second.to(m.paramDtype, false, true));
      m.refAdapter[mod] = r;
    }
  } else if (which == "valueHead") {
    if (!m.vHeadW.defined()) Fail("INVALID_ARG", "this model has no value head");
    for (const char* n : {"v_head.summary.weight", "v_head.summary.bias"}) {
      auto it = t.find(n);
      if (it == t.end()) Fail("MISSING_TENSOR", std::string("value head lacks tensor '") + n + "'");
      at::Tensor& dst = n[15] == 'w' ? m.vHeadW : m.vHeadB;
      if (it->second.sizes() != dst.sizes()) Fail("SHAPE_MISMATCH", std::string("value head tensor '") + n + "' has the wrong shape");
      dst.copy_(it->second);
    }
  } else if (which == "base") {
    for (auto& [n, shape] : LlamaModel::ExpectedBase(m.cfg)) {
      auto it = t.find(n);
      if (it == t.end()) Fail("MISSING_TENSOR", "weights lack tensor '" + n + "'");
      if (it->second.sizes() != at::IntArrayRef(shape)) Fail("SHAPE_MISMATCH", "tensor '" + n + "' has the wrong shape");
    }
    if (m.merged) Fail("INVALID_ARG", "unmerge the adapter before replacing the base weights");
    for (auto& [n, shape] : LlamaModel::ExpectedBase(m.cfg)) m.base[n].copy_(t.at(n));
  } else if (which == "optimizer") {
    auto [names, ps] = m.TrainableLists(false);
    m.adam.Reset(names, ps);
    for (size_t i = 0; i < names.size(); i++) {
      auto a = t.find("adam.m." + names[i]), b = t.find("adam.v." + names[i]);
      if (a == t.end() || b == t.end()) Fail("MISSING_TENSOR", "optimizer state lacks moments of '" + names[i] + "'");
      m.adam.m[i].copy_(a->second);
      m.adam.v[i].copy_(b->second);
    }
    auto st = t.find("adam.step");
    if (st == t.end()) Fail("MISSING_TENSOR", "optimizer state lacks 'adam.step'");
    m.adam.step = int64_t(st->second.to(at::kDouble).item<double>());
  } else {
    Fail("INVALID_ARG", "unknown tensor group '" + which + "' (base, lora, refAdapter, valueHead, optimizer)");
  }
}

// ---------------------------------------------------------------------------------------------------
// One AdamW step on the next-token loss (pre-training from scratch, or supervised tuning of the adapter):
// the gradient norm over every trainable tensor, clipped to maxGradNorm, then the optimizer.

TrainStepResult LlamaModel::TrainStep(const at::Tensor& tokens, const at::Tensor& mask, const AdamWOptions& o, bool all) {
  LlamaModel& m = *this;
  auto [names, ps] = m.TrainableLists(all);
  for (auto& p : ps) {
    p.requires_grad_(true);
    p.mutable_grad() = at::Tensor();
  }
  if (m.adam.names != names) m.adam.Reset(names, ps);
  bool was = m.training;
  m.training = true;
  at::Tensor l;
  try {
    l = m.NextTokenLoss(tokens, mask);
  } catch (...) {
    m.training = was;
    throw;
  }
  m.training = was;
  double lv = l.item<double>();
  if (!std::isfinite(lv)) Fail("TRAIN", "training loss is not finite (" + std::to_string(lv) + ")");
  l.backward();
  double gn = 0;
  {
    c10::NoGradGuard ng;
    for (auto& p : ps)
      if (p.grad().defined()) gn += p.grad().to(at::kDouble).pow(2).sum().item<double>();
    gn = std::sqrt(gn);
    if (o.maxGradNorm > 0 && gn > o.maxGradNorm)
      for (auto& p : ps)
        if (p.grad().defined()) p.mutable_grad().mul_(o.maxGradNorm / (gn + 1e-6));
  }
  m.adam.Step(o.lr, o.beta1, o.beta2, o.eps, o.weightDecay, true);
  for (auto& p : ps) {
    p.mutable_grad() = at::Tensor();
    if (all) p.requires_grad_(false);  // base weights stay frozen outside pre-training steps
  }
  return {lv, gn};
}

}  // namespace soup
