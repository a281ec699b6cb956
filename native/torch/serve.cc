// SPDX-License-Identifier: MIT
// Batched decoding with a λ per sequence (see serve.h, NOTE [exact soup]). The forward pass follows
// LlamaModel::Hidden (Hugging Face semantics: RMSNorm in fp32, rotate-half RoPE from token positions,
// GQA, SwiGLU), with per-row LoRA terms and one KV cache per row, so rows of different lengths and
// different λ share every projection GEMM; only attention runs per row.
#include "torch/serve.h"

#include <ATen/CPUGeneratorImpl.h>
#include <c10/core/GradMode.h>

#include <cmath>
#include <limits>
#include <set>

namespace soup {

namespace {
at::ScalarType OpMathOf(at::ScalarType t) { return t == at::kDouble ? at::kDouble : at::kFloat; }
const char* kModuleNames[] = {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"};
}  // namespace

void ServeEngine::Init(const LlamaConfig& c, at::ScalarType dt, const std::map<std::string, at::Tensor>& weights, const std::vector<ServeExpert>& experts,
                       const std::vector<std::string>& names) {
  c10::NoGradGuard ng;
  m.Init(c, dt, &weights, 0);
  N = int64_t(experts.size());
  expertNames = names;
  lora.clear();
  seqs.clear();
  ownCat.clear();
  abUnavailable.clear();
  std::set<std::string> mods;
  for (auto& e : experts)
    for (auto& [k, _] : e) mods.insert(k);
  std::set<std::string> first;
  if (N > 0)
    for (auto& [k, _] : experts[0]) first.insert(k);
  for (int64_t i = 1; i < N && abUnavailable.empty(); i++) {
    std::set<std::string> s;
    for (auto& [k, _] : experts[i]) s.insert(k);
    if (s != first)
      abUnavailable =
          "expert '" + names[i] + "' adapts other modules than expert '" + names[0] + "' (A/B interpolation needs the same tensors in every expert)";
  }
  for (const auto& mod : mods) {
    bool known = false;
    for (auto* n : kModuleNames) known |= mod.size() > std::string(n).size() && mod.compare(mod.size() - std::string(n).size(), std::string::npos, n) == 0;
    auto wIt = m.base.find(mod + ".weight");
    if (!known || wIt == m.base.end())
      Fail("WEIGHTS", "adapter module '" + mod + "' matches no linear layer of the base model (q/k/v/o_proj, gate/up/down_proj)");
    const int64_t out = wIt->second.size(0), in = wIt->second.size(1);
    std::vector<at::Tensor> As, Bs;
    std::vector<int64_t> seg;
    int64_t r0 = -1;
    double s0 = 0;
    bool uni = true;
    for (int64_t i = 0; i < N; i++) {
      auto it = experts[i].find(mod);
      if (it == experts[i].end()) {
        uni = false;
        continue;
      }
      const at::Tensor &A = it->second.A, &B = it->second.B;
      if (A.dim() != 2 || B.dim() != 2 || A.size(1) != in || B.size(0) != out || A.size(0) != B.size(1))
        Fail("SHAPE_MISMATCH", "expert '" + names[i] + "' module '" + mod + "': lora_A " + std::to_string(A.size(0)) + "x" +
                                   std::to_string(A.dim() > 1 ? A.size(1) : 0) + " and lora_B do not map " + std::to_string(in) + " -> " + std::to_string(out));
      const int64_t r = A.size(0);
      if (r0 < 0) {
        r0 = r;
        s0 = it->second.scaling;
      } else if (r != r0 || it->second.scaling != s0) {
        uni = false;
      }
      As.push_back(m.Dev(A.to(m.paramDtype, false, true)));
      Bs.push_back(m.Dev((B.to(at::kDouble) * it->second.scaling).to(m.paramDtype)));
      for (int64_t k = 0; k < r; k++) seg.push_back(i);
    }
    if (seg.empty()) continue;
    CatLora cl;
    cl.A = at::cat(As, 0).contiguous();
    cl.B = at::cat(Bs, 1).contiguous();
    cl.seg = m.Dev(at::tensor(seg, at::TensorOptions().dtype(at::kLong)));
    cl.uniform = uni && r0 > 0;
    cl.r = r0;
    if (!cl.uniform && abUnavailable.empty())
      abUnavailable = "module '" + mod +
                      "' has different ranks or scalings across the experts (A/B interpolation needs equal ranks and one scaling; use mode 'soup', which is "
                      "exact for any ranks)";
    lora[mod] = cl;
  }
}

int64_t ServeEngine::Rows() const {
  int64_t n = 0;
  for (auto& [_, s] : seqs) n += int64_t(s.rows.size());
  return n;
}

const at::Tensor& ServeEngine::Fused(const std::string& key, const std::vector<std::string>& mods) {
  auto it = m.catCache.find(key);
  if (it != m.catCache.end() && it->second.w.defined()) {
    // LlamaModel::Init lays these weights out as row blocks of one tensor: use it without a copy
    const at::Tensor& w = it->second.w;
    bool blocks = true;
    int64_t off = 0;
    for (size_t i = 0; blocks && i < mods.size(); i++) {
      const at::Tensor& W = m.base.at(mods[i] + ".weight");
      blocks = W.is_alias_of(w) && W.is_contiguous() && off < w.size(0) && W.data_ptr() == w[off].data_ptr();
      off += W.size(0);
    }
    if (blocks && off == w.size(0)) return w;
  }
  at::Tensor& o = ownCat[key];
  if (!o.defined()) {
    std::vector<at::Tensor> ws;
    for (auto& n : mods) ws.push_back(m.base.at(n + ".weight"));
    o = at::cat(ws, 0);
  }
  return o;
}

at::Tensor ServeEngine::Norm(const at::Tensor& x, const at::Tensor& w) {
  auto xf = x.to(OpMathOf(m.dtype));
  auto var = xf.pow(2).mean(-1, true);
  xf = xf * at::rsqrt(var + m.cfg.eps);
  return w * xf.to(x.scalar_type());
}

at::Tensor ServeEngine::Delta(const at::Tensor& h, const std::string& mod, const at::Tensor& y, const Lam& L) {
  auto it = lora.find(mod);
  if (it == lora.end()) return y;
  const CatLora& c = it->second;
  at::Tensor z = at::linear(h.to(m.paramDtype), c.A);  // [B, T, R]
  const int64_t Bn = z.size(0), T = z.size(1);
  at::Tensor v;
  auto exact = [&]() { return z * L.lam.index_select(1, c.seg).unsqueeze(1); };  // diag(λ_row ⊗ 1_r)
  if (L.anyAb && c.uniform) {
    at::Tensor lam4 = L.lam.view({Bn, 1, N, 1});
    at::Tensor u = (z.view({Bn, T, N, c.r}) * lam4).sum(2, true);  // A(λ)x
    at::Tensor vab = (lam4 * u).view({Bn, T, N * c.r});            // λᵢ A(λ)x per expert block
    v = L.allAb ? vab : at::where(L.abMask, vab, exact());
  } else {
    v = exact();
  }
  at::Tensor d = at::linear(v, c.B);
  // y is always a fresh projection output (or a block of the fused q|k|v, gate|up one): add in place
  return y.add_(d.scalar_type() == y.scalar_type() ? d : d.to(y.scalar_type()));
}

at::Tensor ServeEngine::Forward(const std::vector<Row*>& rows, const at::Tensor& tokens, const std::vector<int64_t>* real) {
  const LlamaConfig& cfg = m.cfg;
  const int64_t B = int64_t(rows.size()), T = tokens.size(1);
  const int64_t nh = cfg.heads, nkv = cfg.kvHeads, D = cfg.headDim(), H = cfg.hidden, I = cfg.intermediate, rep = nh / nkv;
  const int64_t nq = nh * D, nk = nkv * D;
  const at::ScalarType dt = m.dtype, om = OpMathOf(dt);
  Lam L;
  {
    std::vector<double> lv;
    std::vector<uint8_t> ab;
    L.allAb = true;
    for (auto* r : rows) {
      if (int64_t(r->lam.size()) != N) Fail("INTERNAL", "row λ of the wrong length");
      lv.insert(lv.end(), r->lam.begin(), r->lam.end());
      ab.push_back(r->ab ? 1 : 0);
      L.anyAb |= r->ab;
      L.allAb &= r->ab;
      if (r->len + T > r->cap) Fail("INVALID_ARG", "a sequence ran past its KV capacity (prompt + max_tokens)");
    }
    L.lam = m.Dev(at::tensor(lv, at::TensorOptions().dtype(at::kDouble)).view({B, N}).to(m.paramDtype));
    L.abMask = m.Dev(at::tensor(std::vector<int64_t>(ab.begin(), ab.end()), at::TensorOptions().dtype(at::kLong)).to(at::kBool).view({B, 1, 1}));
  }
  at::Tensor cos, sin;
  {
    std::vector<int64_t> pv;
    for (auto* r : rows)
      for (int64_t t = 0; t < T; t++) pv.push_back(r->len + t);
    at::Tensor pos = m.Dev(at::tensor(pv, at::TensorOptions().dtype(at::kLong)).view({B, T}).to(at::kDouble));
    at::Tensor inv = at::pow(cfg.ropeTheta, at::arange(0, D, 2, m.Opts(at::kDouble)) / double(D)).reciprocal();
    at::Tensor f = pos.unsqueeze(-1) * inv;             // [B, T, D/2]
    at::Tensor emb = at::cat({f, f}, -1).unsqueeze(2);  // [B, T, 1, D]
    cos = emb.cos().to(dt);
    at::Tensor sn = emb.sin();
    sn.narrow(-1, 0, D / 2).neg_();  // rotate_half(x)·sin = roll(x, D/2)·[-sin, sin]
    sin = sn.to(dt);
  }
  const double lowest = std::numeric_limits<float>::lowest();
  at::Tensor x = at::embedding(m.base.at("model.embed_tokens.weight"), tokens);  // [B, T, H]
  for (int64_t l = 0; l < cfg.layers; l++) {
    const std::string p = "model.layers." + std::to_string(l) + ".";
    const std::string mq = p + "self_attn.q_proj", mk = p + "self_attn.k_proj", mv = p + "self_attn.v_proj", mo = p + "self_attn.o_proj";
    const std::string mg = p + "mlp.gate_proj", mu = p + "mlp.up_proj", md = p + "mlp.down_proj";
    at::Tensor h = Norm(x, m.base.at(p + "input_layernorm.weight"));
    at::Tensor qkv = at::linear(h, Fused(p + "qkv", {mq, mk, mv}));
    at::Tensor q = Delta(h, mq, qkv.narrow(-1, 0, nq), L).reshape({B, T, nh, D});
    at::Tensor k = Delta(h, mk, qkv.narrow(-1, nq, nk), L).reshape({B, T, nkv, D});
    at::Tensor v = Delta(h, mv, qkv.narrow(-1, nq + nk, nk), L).reshape({B, T, nkv, D});
    q = q * cos + at::roll(q, D / 2, -1) * sin;
    k = k * cos + at::roll(k, D / 2, -1) * sin;
    std::vector<at::Tensor> outs;
    outs.reserve(size_t(B));
    for (int64_t b = 0; b < B; b++) {
      Row& r = *rows[size_t(b)];
      const int64_t S = r.len + T;
      r.k[size_t(l)].narrow(1, r.len, T).copy_(k[b].transpose(0, 1));
      r.v[size_t(l)].narrow(1, r.len, T).copy_(v[b].transpose(0, 1));
      at::Tensor K = r.k[size_t(l)].narrow(1, 0, S), V = r.v[size_t(l)].narrow(1, 0, S);  // [nkv, S, D]
      // query heads j·rep … j·rep+rep−1 share kv head j (HF repeat_kv): one GEMM per kv head group
      at::Tensor qg = q[b].permute({1, 0, 2}).reshape({nkv, rep * T, D});
      at::Tensor s = at::matmul(qg, K.transpose(-1, -2)).to(om);  // [nkv, rep·T, S]
      s.div_(std::sqrt(double(D)));
      if (T > 1) {
        at::Tensor na = at::arange(S, m.Opts(at::kLong)).unsqueeze(0) > (at::arange(T, m.Opts(at::kLong)) + r.len).unsqueeze(1);  // [T, S]
        s.view({nkv, rep, T, S}).masked_fill_(na, lowest);
      }
      at::Tensor a = at::softmax(s, -1).to(dt);
      outs.push_back(at::matmul(a, V).view({nh, T, D}).transpose(0, 1).reshape({T, H}));
    }
    at::Tensor att = at::stack(outs, 0);  // [B, T, H]
    x = x + Delta(att, mo, at::linear(att, m.base.at(mo + ".weight")), L);
    h = Norm(x, m.base.at(p + "post_attention_layernorm.weight"));
    at::Tensor gu = at::linear(h, Fused(p + "gate_up", {mg, mu}));
    at::Tensor gate = Delta(h, mg, gu.narrow(-1, 0, I), L), up = Delta(h, mu, gu.narrow(-1, I, I), L);
    at::Tensor act = at::silu(gate) * up;
    x = x + Delta(act, md, at::linear(act, m.base.at(md + ".weight")), L);
  }
  if (!real) {
    for (auto* r : rows) r->len += T;
    return Norm(x.narrow(1, T - 1, 1).squeeze(1), m.base.at("model.norm.weight"));  // [B, H]
  }
  std::vector<int64_t> at_;
  for (int64_t b = 0; b < B; b++) {
    at_.push_back(b * T + (*real)[size_t(b)] - 1);
    rows[size_t(b)]->len += (*real)[size_t(b)];
  }
  at::Tensor last = x.reshape({B * T, H}).index_select(0, m.Dev(at::tensor(at_, at::TensorOptions().dtype(at::kLong))));
  return Norm(last, m.base.at("model.norm.weight"));  // [B, H]
}

int64_t ServeEngine::Sample(Seq& s, const at::Tensor& lg, at::Tensor* mixed) {
  if (!at::isfinite(lg).all().item<bool>()) Fail("TRAIN", "non-finite logits during generation (the weights contain NaN or Inf)");
  const double ninf = -std::numeric_limits<double>::infinity();
  const bool greedy = s.temperature < 1e-4;  // smaller temperatures overflow float32 logits: greedy
  at::Tensor lp;                             // what is sampled from, as logits
  if (s.mode == ServeMode::Ensemble) {
    at::Tensor lw = at::tensor(s.weights, at::TensorOptions().dtype(at::kDouble)).log().to(lg.scalar_type()).to(lg.device()).unsqueeze(1);
    at::Tensor mix1 = at::logsumexp(at::log_softmax(lg, -1) + lw, 0);  // log Σ λᵢ softmax(logitsᵢ)
    if (mixed) *mixed = mix1;
    lp = greedy || s.temperature == 1 ? mix1 : at::logsumexp(at::log_softmax(lg / s.temperature, -1) + lw, 0);
  } else {
    lp = lg[0];
    if (mixed) *mixed = lp;
    if (!greedy && s.temperature != 1) lp = lp / s.temperature;
  }
  if (greedy) return lp.argmax().item<int64_t>();
  const int64_t V = lp.size(0);
  if (s.topK > 0 && s.topK < V) {
    at::Tensor kth = std::get<0>(at::topk(lp, s.topK)).narrow(0, s.topK - 1, 1);
    lp = lp.masked_fill(lp < kth, ninf);
  }
  if (s.topP < 1.0) {  // transformers' TopPLogitsWarper: drop the low tail whose mass is <= 1 − top_p
    auto sorted = at::sort(lp, 0, /*descending=*/false);
    at::Tensor cum = at::softmax(std::get<0>(sorted), 0).cumsum(0);
    at::Tensor remove = cum <= (1.0 - s.topP);
    remove.narrow(0, V - 1, 1).fill_(false);
    lp = lp.masked_fill(remove.scatter(0, std::get<1>(sorted), remove), ninf);
  }
  at::Tensor probs = at::softmax(lp, 0);
  return at::multinomial(probs.is_cpu() ? probs : probs.to(at::kCPU), 1, false, s.gen).item<int64_t>();
}

std::vector<ServeSample> ServeEngine::Add(const std::vector<ServeAdd>& adds, at::Tensor* logits) {
  c10::NoGradGuard ng;
  const int64_t nkv = m.cfg.kvHeads, D = m.cfg.headDim();
  // check everything first: a bad request fails the call before any sequence joins
  std::set<int64_t> ids;
  for (const ServeAdd& a : adds) {
    if (seqs.count(a.id) || !ids.insert(a.id).second) Fail("INVALID_ARG", "sequence id " + std::to_string(a.id) + " is already active");
    if (int64_t(a.lambda.size()) != N) Fail("INVALID_ARG", "lambda has " + std::to_string(a.lambda.size()) + " entries, expected " + std::to_string(N));
    if (a.tokens.empty()) Fail("INVALID_ARG", "the prompt has no tokens");
    for (int64_t t : a.tokens)
      if (t < 0 || t >= m.cfg.vocab) Fail("INVALID_ARG", "token ids must be in [0, " + std::to_string(m.cfg.vocab) + ")");
    if (a.maxTokens < 1) Fail("INVALID_ARG", "max_tokens must be >= 1");
    if (a.mode == ServeMode::SoupAB && !abUnavailable.empty()) Fail("INVALID_ARG", "mode 'soup-ab' is not available: " + abUnavailable);
    if (a.mode == ServeMode::Ensemble && N > 0) {
      bool any = false;
      for (double v : a.lambda) any |= v > 0;
      if (!any) Fail("INVALID_ARG", "mode 'ensemble' needs some lambda > 0");
    }
  }
  std::vector<Seq> news(adds.size());
  for (size_t k = 0; k < adds.size(); k++) {
    const ServeAdd& a = adds[k];
    Seq& s = news[k];
    s.id = a.id;
    s.mode = a.mode;
    s.temperature = a.temperature;
    s.topP = a.topP;
    s.topK = a.topK;
    s.gen = at::make_generator<at::CPUGeneratorImpl>(a.seed);
    auto newRow = [&](std::vector<double> lam, bool ab) {
      Row r;
      r.lam = std::move(lam);
      r.ab = ab;
      return r;
    };
    if (a.mode == ServeMode::Ensemble && N > 0) {
      for (int64_t i = 0; i < N; i++) {
        if (a.lambda[size_t(i)] <= 0) continue;
        std::vector<double> e(size_t(N), 0.0);
        e[size_t(i)] = 1;
        s.rows.push_back(newRow(e, false));
        s.weights.push_back(a.lambda[size_t(i)]);
      }
    } else {
      s.rows.push_back(newRow(a.lambda, a.mode == ServeMode::SoupAB));
      s.weights = {1.0};
      if (a.mode == ServeMode::Ensemble) s.mode = ServeMode::Soup;  // no experts: the base model
    }
  }
  // NOTE: [batched prefill] the new sequences' prompts run as one right-padded batch (chunks of about
  // kPrefillTokens padded tokens, whole sequences per chunk): one GEMM per projection instead of one per
  // prompt. Each row's cache holds max(prompt + max_tokens − 1, chunk width) positions.
  const int64_t kPrefillTokens = 4096;
  std::vector<int64_t> first(adds.size(), -1);
  std::vector<at::Tensor> mixedOut(adds.size());
  size_t k0 = 0;
  while (k0 < adds.size()) {
    size_t k1 = k0;
    int64_t rowsN = 0, Tmax = 0;
    while (k1 < adds.size()) {
      const int64_t P = int64_t(adds[k1].tokens.size()), R = int64_t(news[k1].rows.size());
      const int64_t T2 = std::max(Tmax, P);
      if (k1 > k0 && (rowsN + R) * T2 > kPrefillTokens) break;
      Tmax = T2;
      rowsN += R;
      k1++;
    }
    std::vector<Row*> rp;
    std::vector<int64_t> real, flat;
    for (size_t k = k0; k < k1; k++) {
      const ServeAdd& a = adds[k];
      const int64_t P = int64_t(a.tokens.size());
      for (auto& r : news[k].rows) {
        r.cap = std::max(P + a.maxTokens - 1, Tmax);
        for (int64_t l = 0; l < m.cfg.layers; l++) {
          r.k.push_back(at::empty({nkv, r.cap, D}, m.Opts(m.dtype)));
          r.v.push_back(at::empty({nkv, r.cap, D}, m.Opts(m.dtype)));
        }
        rp.push_back(&r);
        real.push_back(P);
        flat.insert(flat.end(), a.tokens.begin(), a.tokens.end());
        flat.insert(flat.end(), size_t(Tmax - P), 0);  // right padding
      }
    }
    at::Tensor tok = m.Dev(at::tensor(flat, at::TensorOptions().dtype(at::kLong)).view({rowsN, Tmax}));
    at::Tensor lg = m.Logits(Forward(rp, tok, &real));  // [rows, V]
    int64_t row = 0;
    for (size_t k = k0; k < k1; k++) {
      Seq& s = news[k];
      const int64_t R = int64_t(s.rows.size());
      s.last = Sample(s, lg.narrow(0, row, R), logits ? &mixedOut[k] : nullptr);
      first[k] = s.last;
      row += R;
    }
    k0 = k1;
  }
  std::vector<ServeSample> out;
  for (size_t k = 0; k < adds.size(); k++) {
    out.push_back({adds[k].id, first[k]});
    seqs.emplace(adds[k].id, std::move(news[k]));
  }
  if (logits) *logits = mixedOut.empty() ? at::empty({0, m.cfg.vocab}, at::kFloat) : at::stack(mixedOut, 0);
  return out;
}

std::vector<ServeSample> ServeEngine::Step(at::Tensor* logits) {
  c10::NoGradGuard ng;
  std::vector<ServeSample> out;
  std::vector<Row*> rows;
  std::vector<int64_t> toks;
  std::vector<std::pair<Seq*, int64_t>> live;  // sequence, first row
  for (auto& [id, s] : seqs) {
    bool full = false;
    for (auto& r : s.rows) full |= r.len + 1 > r.cap;
    if (full) {
      out.push_back({id, -1});  // capacity reached (max_tokens): the caller removes it
      continue;
    }
    live.push_back({&s, int64_t(rows.size())});
    for (auto& r : s.rows) {
      rows.push_back(&r);
      toks.push_back(s.last);
    }
  }
  std::vector<at::Tensor> lgs;
  if (!rows.empty()) {
    at::Tensor tok = m.Dev(at::tensor(toks, at::TensorOptions().dtype(at::kLong)).view({int64_t(rows.size()), 1}));
    at::Tensor lg = m.Logits(Forward(rows, tok));  // [B, V]
    for (auto& [s, start] : live) {
      at::Tensor mixed;
      s->last = Sample(*s, lg.narrow(0, start, int64_t(s->rows.size())), logits ? &mixed : nullptr);
      out.push_back({s->id, s->last});
      if (logits) lgs.push_back(mixed);
    }
  }
  if (logits) *logits = lgs.empty() ? at::empty({0, m.cfg.vocab}, at::kFloat) : at::stack(lgs, 0);
  return out;
}

void ServeEngine::Remove(const std::vector<int64_t>& ids) {
  for (int64_t id : ids) seqs.erase(id);
}

}  // namespace soup
