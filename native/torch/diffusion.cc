// SPDX-License-Identifier: MIT
// The conditional UNet, DDPM/DDIM and the reward-weighted loss (see diffusion.h). Plain ATen ops, so
// autograd works and one code path serves training, tests and sampling.
#include "torch/diffusion.h"

#include <ATen/CPUGeneratorImpl.h>
#include <c10/core/GradMode.h>

#include <cmath>
#include <sstream>

namespace soup {

namespace {
std::string ShapeOf(at::IntArrayRef s) {
  std::ostringstream o;
  o << "[";
  for (size_t i = 0; i < s.size(); i++) o << (i ? ", " : "") << s[i];
  o << "]";
  return o.str();
}
}  // namespace

// ---------------------------------------------------------------------------------------------------
// schedule

at::Tensor CosineAlphaBar(int64_t T, double s) {
  if (T < 2) Fail("INVALID_ARG", "diffusion: T must be >= 2, got " + std::to_string(T));
  auto f = [&](double t) {
    double c = std::cos((t / double(T) + s) / (1 + s) * M_PI / 2);
    return c * c;
  };
  at::Tensor ab = at::empty({T}, at::kDouble);
  double* a = ab.data_ptr<double>();
  double prod = 1;
  for (int64_t t = 0; t < T; t++) {
    double beta = std::min(1 - f(double(t + 1)) / f(double(t)), 0.999);
    prod *= 1 - beta;
    a[t] = prod;
  }
  return ab;
}

std::vector<int64_t> DdimTimesteps(int64_t T, int64_t S) {
  if (S < 1 || S > T) Fail("INVALID_ARG", "diffusion: sampling steps must be in [1, " + std::to_string(T) + "], got " + std::to_string(S));
  std::vector<int64_t> ts;
  for (int64_t k = S - 1; k >= 0; k--) ts.push_back(int64_t(std::floor(double(k + 1) * double(T) / double(S))) - 1);
  return ts;
}

at::Tensor NoiseFromSeeds(const std::vector<uint64_t>& seeds, int64_t C, int64_t H, int64_t W) {
  at::Tensor out = at::empty({int64_t(seeds.size()), C, H, W}, at::kFloat);
  for (size_t i = 0; i < seeds.size(); i++) {
    at::Generator g = at::make_generator<at::CPUGeneratorImpl>(seeds[i]);
    out[int64_t(i)].copy_(at::randn({C, H, W}, g, at::TensorOptions().dtype(at::kFloat)));
  }
  return out;
}

// ---------------------------------------------------------------------------------------------------
// parameters

namespace {
using Shapes = std::vector<std::pair<std::string, std::vector<int64_t>>>;
void AddLin(Shapes& e, const std::string& n, int64_t out, int64_t in) {
  e.push_back({n + ".weight", {out, in}});
  e.push_back({n + ".bias", {out}});
}
void AddConv(Shapes& e, const std::string& n, int64_t out, int64_t in, int64_t k) {
  e.push_back({n + ".weight", {out, in, k, k}});
  e.push_back({n + ".bias", {out}});
}
void AddNorm(Shapes& e, const std::string& n, int64_t c) {
  e.push_back({n + ".weight", {c}});
  e.push_back({n + ".bias", {c}});
}
void AddRes(Shapes& e, const std::string& n, int64_t cin, int64_t cout, const UNetConfig& c) {
  AddNorm(e, n + ".norm1", cin);
  AddConv(e, n + ".conv1", cout, cin, 3);
  AddLin(e, n + ".temb", cout, c.tembDim);
  AddNorm(e, n + ".norm2", cout);
  AddConv(e, n + ".conv2", cout, cout, 3);
  if (cin != cout) AddConv(e, n + ".skip", cout, cin, 1);
}
void AddAttn(Shapes& e, const std::string& n, int64_t C, const UNetConfig& c) {
  AddNorm(e, n + ".norm1", C);
  for (const char* k : {"q", "k", "v", "o"}) AddLin(e, n + ".self." + k, C, C);
  AddNorm(e, n + ".norm2", C);
  AddLin(e, n + ".cross.q", C, C);
  AddLin(e, n + ".cross.k", C, c.textDim);
  AddLin(e, n + ".cross.v", C, c.textDim);
  AddLin(e, n + ".cross.o", C, C);
}
bool EndsWith(const std::string& s, const std::string& x) { return s.size() >= x.size() && s.compare(s.size() - x.size(), x.size(), x) == 0; }
}  // namespace

std::vector<std::pair<std::string, std::vector<int64_t>>> UNet::Expected(const UNetConfig& c) {
  Shapes e;
  AddLin(e, "time.l1", c.tembDim, c.ch0);
  AddLin(e, "time.l2", c.tembDim, c.tembDim);
  e.push_back({"text.tok", {c.vocab, c.textDim}});
  e.push_back({"text.pos", {c.captionLen, c.textDim}});
  AddNorm(e, "text.norm", c.textDim);
  AddConv(e, "conv_in", c.ch0, c.channels, 3);
  AddRes(e, "down0.res", c.ch0, c.ch0, c);
  AddConv(e, "down0.down", c.ch0, c.ch0, 3);
  AddRes(e, "down1.res", c.ch0, c.ch1, c);
  AddAttn(e, "down1.attn", c.ch1, c);
  AddRes(e, "mid.res", c.ch1, c.ch1, c);
  AddAttn(e, "mid.attn", c.ch1, c);
  AddRes(e, "up1.res", 2 * c.ch1, c.ch1, c);
  AddAttn(e, "up1.attn", c.ch1, c);
  AddConv(e, "up1.up", c.ch1, c.ch1, 3);
  AddRes(e, "up0.res", c.ch1 + c.ch0, c.ch0, c);
  AddNorm(e, "out.norm", c.ch0);
  AddConv(e, "out.conv", c.channels, c.ch0, 3);
  return e;
}

bool UNet::InFinetuneSet(const std::string& n) {
  if (n.find(".cross.") != std::string::npos) return true;
  if (EndsWith(n, ".bias")) return true;
  // Normalisation scales: GroupNorm / LayerNorm weights (their names all contain "norm").
  size_t dot = n.rfind('.');
  return EndsWith(n, ".weight") && n.substr(0, dot).find("norm") != std::string::npos;
}

std::vector<std::string> UNet::Names(bool finetuneOnly) const {
  std::vector<std::string> v;
  for (auto& n : order)
    if (!finetuneOnly || InFinetuneSet(n)) v.push_back(n);
  return v;
}

void UNet::Seed(uint64_t seed) { gen = at::make_generator<at::CPUGeneratorImpl>(seed); }

void UNet::Init(const UNetConfig& c, uint64_t seed, const std::map<std::string, at::Tensor>* weights) {
  if (c.ch0 % c.groups || c.ch1 % c.groups || c.ch0 % 2) Fail("INVALID_ARG", "diffusion: channels must be multiples of groups (and ch0 even)");
  if (c.ch1 % c.heads) Fail("INVALID_ARG", "diffusion: ch1 must be a multiple of heads");
  if (c.imageSize % 2) Fail("INVALID_ARG", "diffusion: imageSize must be even");
  cfg = c;
  Seed(seed);
  alphaBar = CosineAlphaBar(c.T);
  auto shapes = Expected(c);
  if (weights) {
    std::string arch = "this UNet (ch " + std::to_string(c.ch0) + "/" + std::to_string(c.ch1) + ", text " + std::to_string(c.textDim) + ", vocab " +
                       std::to_string(c.vocab) + ")";
    std::map<std::string, bool> known;
    for (auto& [n, s] : shapes) {
      known[n] = true;
      auto it = weights->find(n);
      if (it == weights->end()) Fail("MISSING_TENSOR", "checkpoint lacks tensor '" + n + "' that " + arch + " needs: a checkpoint of another architecture?");
      if (it->second.sizes() != at::IntArrayRef(s))
        Fail("SHAPE_MISMATCH", "checkpoint tensor '" + n + "' has shape " + ShapeOf(it->second.sizes()) + " but " + arch + " expects " + ShapeOf(s) +
                                   ": a checkpoint of another architecture?");
    }
    for (auto& [n, t] : *weights)
      if (!known.count(n)) Fail("SHAPE_MISMATCH", "checkpoint has tensor '" + n + "' that " + arch + " does not have: a checkpoint of another architecture?");
  }
  c10::NoGradGuard ng;
  p.clear();
  order.clear();
  auto f32 = at::TensorOptions().dtype(at::kFloat);
  for (auto& [n, s] : shapes) {
    order.push_back(n);
    at::Tensor t;
    if (weights) {
      t = weights->at(n).to(at::kFloat).contiguous().clone();
    } else if (n == "text.tok" || n == "text.pos") {
      t = at::empty(s, f32).normal_(0, 1, gen);
    } else if (n.find("norm") != std::string::npos) {
      t = EndsWith(n, ".weight") ? at::ones(s, f32) : at::zeros(s, f32);
    } else if (n.rfind("out.conv", 0) == 0 || n.find(".conv2.") != std::string::npos || n.find(".self.o.") != std::string::npos ||
               n.find(".cross.o.") != std::string::npos) {
      // Zero-initialised output projections: every block starts as the identity (guided-diffusion practice).
      t = at::zeros(s, f32);
    } else {
      std::string wn = EndsWith(n, ".bias") ? n.substr(0, n.size() - 5) + ".weight" : n;
      std::vector<int64_t> wshape;
      for (auto& [m, ss] : shapes)
        if (m == wn) wshape = ss;
      int64_t fanIn = 1;
      for (size_t i = 1; i < wshape.size(); i++) fanIn *= wshape[i];
      double b = 1.0 / std::sqrt(double(fanIn));
      t = at::empty(s, f32).uniform_(-b, b, gen);
    }
    p[n] = t;
  }
  CopyToEma();
  adam = AdamState();
}

void UNet::CopyToEma() {
  c10::NoGradGuard ng;
  ema.clear();
  for (auto& [n, t] : p) ema[n] = t.detach().clone();
  emaSteps = 0;
}

// ---------------------------------------------------------------------------------------------------
// forward

const at::Tensor& UNet::W(const std::string& n) const {
  auto it = w_->find(n);
  if (it == w_->end()) Fail("INTERNAL", "diffusion: no parameter '" + n + "'");
  return it->second;
}

at::Tensor UNet::Lin(const at::Tensor& x, const std::string& n) const { return at::linear(x, W(n + ".weight"), W(n + ".bias")); }

at::Tensor UNet::Conv(const at::Tensor& x, const std::string& n, int64_t stride) const {
  const at::Tensor& w = W(n + ".weight");
  int64_t pad = w.size(2) / 2;
  return at::conv2d(x, w, W(n + ".bias"), {stride, stride}, {pad, pad});
}

at::Tensor UNet::GN(const at::Tensor& x, const std::string& n) const { return at::group_norm(x, cfg.groups, W(n + ".weight"), W(n + ".bias"), 1e-5); }

at::Tensor UNet::Res(const at::Tensor& x, const at::Tensor& temb, const std::string& n) const {
  at::Tensor h = Conv(at::silu(GN(x, n + ".norm1")), n + ".conv1");
  h = h + Lin(at::silu(temb), n + ".temb").unsqueeze(-1).unsqueeze(-1);
  h = Conv(at::silu(GN(h, n + ".norm2")), n + ".conv2");
  at::Tensor skip = w_->count(n + ".skip.weight") ? Conv(x, n + ".skip") : x;
  return skip + h;
}

at::Tensor UNet::MHA(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v) const {
  const int64_t B = q.size(0), Nq = q.size(1), Nk = k.size(1), C = q.size(2), h = cfg.heads, d = C / h;
  at::Tensor qh = q.view({B, Nq, h, d}).transpose(1, 2), kh = k.view({B, Nk, h, d}).transpose(1, 2), vh = v.view({B, Nk, h, d}).transpose(1, 2);
  at::Tensor a = at::softmax(at::matmul(qh, kh.transpose(-2, -1)) / std::sqrt(double(d)), -1);
  return at::matmul(a, vh).transpose(1, 2).reshape({B, Nq, C});
}

at::Tensor UNet::Attn(const at::Tensor& x, const at::Tensor& ctx, const std::string& n) const {
  const int64_t B = x.size(0), C = x.size(1), H = x.size(2), Wd = x.size(3);
  at::Tensor seq = x.flatten(2).transpose(1, 2);  // [B, HW, C]
  at::Tensor hn = GN(x, n + ".norm1").flatten(2).transpose(1, 2);
  seq = seq + Lin(MHA(Lin(hn, n + ".self.q"), Lin(hn, n + ".self.k"), Lin(hn, n + ".self.v")), n + ".self.o");
  at::Tensor hn2 = at::layer_norm(seq, {C}, W(n + ".norm2.weight"), W(n + ".norm2.bias"), 1e-5);
  seq = seq + Lin(MHA(Lin(hn2, n + ".cross.q"), Lin(ctx, n + ".cross.k"), Lin(ctx, n + ".cross.v")), n + ".cross.o");
  return seq.transpose(1, 2).reshape({B, C, H, Wd});
}

at::Tensor UNet::Eps(const at::Tensor& x, const at::Tensor& t, const at::Tensor& tokens, bool useEma) {
  w_ = useEma ? &ema : &p;
  const int64_t B = x.size(0), S = cfg.imageSize;
  if (x.dim() != 4 || x.size(1) != cfg.channels || x.size(2) != S || x.size(3) != S)
    Fail("SHAPE_MISMATCH", "diffusion: images must be [B, " + std::to_string(cfg.channels) + ", " + std::to_string(S) + ", " + std::to_string(S) + "], got " +
                               ShapeOf(x.sizes()));
  if (tokens.dim() != 2 || tokens.size(0) != B || tokens.size(1) != cfg.captionLen)
    Fail("SHAPE_MISMATCH", "diffusion: tokens must be [B, " + std::to_string(cfg.captionLen) + "], got " + ShapeOf(tokens.sizes()));
  if (tokens.numel() && (tokens.min().item<int64_t>() < 0 || tokens.max().item<int64_t>() >= cfg.vocab))
    Fail("INVALID_ARG", "diffusion: token ids must be in [0, " + std::to_string(cfg.vocab) + ")");
  // Sinusoidal time embedding (DDPM): [cos(t·f_i), sin(t·f_i)], f_i = 10000^(−i/half).
  const int64_t half = cfg.ch0 / 2;
  at::Tensor freqs = at::exp(at::arange(half, at::kFloat) * float(-std::log(10000.0) / double(half)));
  at::Tensor args = t.to(at::kFloat).view({B, 1}) * freqs.view({1, half});
  at::Tensor temb = Lin(at::silu(Lin(at::cat({at::cos(args), at::sin(args)}, 1), "time.l1")), "time.l2");
  at::Tensor ctx = at::embedding(W("text.tok"), tokens) + W("text.pos").unsqueeze(0);
  ctx = at::layer_norm(ctx, {cfg.textDim}, W("text.norm.weight"), W("text.norm.bias"), 1e-5);

  at::Tensor h0 = Conv(x, "conv_in");
  at::Tensor h1 = Res(h0, temb, "down0.res");
  at::Tensor h2 = Conv(h1, "down0.down", 2);
  at::Tensor h3 = Attn(Res(h2, temb, "down1.res"), ctx, "down1.attn");
  at::Tensor m = Attn(Res(h3, temb, "mid.res"), ctx, "mid.attn");
  at::Tensor u = Attn(Res(at::cat({m, h3}, 1), temb, "up1.res"), ctx, "up1.attn");
  const int64_t C1 = u.size(1), Hh = u.size(2), Wh = u.size(3);
  u = u.unsqueeze(3).unsqueeze(5).expand({B, C1, Hh, 2, Wh, 2}).reshape({B, C1, 2 * Hh, 2 * Wh});  // nearest 2x
  u = Conv(u, "up1.up");
  u = Res(at::cat({u, h1}, 1), temb, "up0.res");
  return Conv(at::silu(GN(u, "out.norm")), "out.conv");
}

at::Tensor UNet::PerExampleLoss(const at::Tensor& x0, const at::Tensor& tokens, const at::Tensor& t, const at::Tensor& noise, bool useEma) {
  const int64_t B = x0.size(0);
  if (t.numel() != B) Fail("SHAPE_MISMATCH", "diffusion: t must have one entry per image");
  at::Tensor tl = t.to(at::kLong);
  if (B && (tl.min().item<int64_t>() < 0 || tl.max().item<int64_t>() >= cfg.T))
    Fail("INVALID_ARG", "diffusion: timesteps must be in [0, " + std::to_string(cfg.T) + ")");
  if (noise.sizes() != x0.sizes()) Fail("SHAPE_MISMATCH", "diffusion: noise must have the images' shape");
  at::Tensor ab = alphaBar.index_select(0, tl);
  at::Tensor sa = ab.sqrt().to(at::kFloat).view({B, 1, 1, 1}), sb = (1 - ab).sqrt().to(at::kFloat).view({B, 1, 1, 1});
  at::Tensor xt = sa * x0 + sb * noise;
  at::Tensor pred = Eps(xt, tl, tokens, useEma);
  return (pred - noise).pow(2).mean({1, 2, 3});
}

double UNet::TrainStep(const at::Tensor& x0, const at::Tensor& tokens, const at::Tensor& w, const TrainOptions& o) {
  const int64_t B = x0.size(0);
  if (w.defined() && w.numel() != B) Fail("SHAPE_MISMATCH", "diffusion: one weight per image is needed");
  std::vector<std::string> names = Names(o.finetune);
  std::vector<at::Tensor> ps;
  for (auto& n : names) ps.push_back(p[n]);
  if (adam.names != names) adam.Reset(names, ps);
  for (auto& t : ps) {
    t.requires_grad_(true);
    t.mutable_grad() = at::Tensor();
  }
  auto f32 = at::TensorOptions().dtype(at::kFloat);
  at::Tensor t = at::randint(0, cfg.T, {B}, gen, at::TensorOptions().dtype(at::kLong));
  at::Tensor noise = at::randn(x0.sizes(), gen, f32);
  at::Tensor drop = at::rand({B}, gen, f32).lt(o.captionDropout).view({B, 1});
  at::Tensor tok = at::where(drop, at::zeros_like(tokens), tokens);  // id 0 = the null caption
  at::Tensor l;
  double lv = 0;
  try {
    at::Tensor per = PerExampleLoss(x0, tok, t, noise, false);
    l = w.defined() ? (per * w.to(at::kFloat)).mean() : per.mean();
    lv = l.item<double>();
    if (!std::isfinite(lv)) Fail("TRAIN", "diffusion: training loss is not finite (" + std::to_string(lv) + ")");
    l.backward();
  } catch (...) {
    for (auto& x : ps) {
      x.mutable_grad() = at::Tensor();
      x.requires_grad_(false);
    }
    throw;
  }
  {
    c10::NoGradGuard ng;
    if (o.maxGradNorm > 0) {
      double gn = 0;
      for (auto& x : ps)
        if (x.grad().defined()) gn += x.grad().to(at::kDouble).pow(2).sum().item<double>();
      gn = std::sqrt(gn);
      if (gn > o.maxGradNorm)
        for (auto& x : ps)
          if (x.grad().defined()) x.mutable_grad().mul_(o.maxGradNorm / (gn + 1e-6));
    }
    adam.Step(o.lr, o.b1, o.b2, o.eps, o.wd, true);
    // EMA with warm-up (diffusers' EMAModel): decay min(d, (1 + n)/(10 + n)), so early averages are not
    // dominated by the random initialisation.
    const double d = std::min(o.emaDecay, (1.0 + double(emaSteps)) / (10.0 + double(emaSteps)));
    emaSteps++;
    for (size_t i = 0; i < names.size(); i++) {
      ps[i].mutable_grad() = at::Tensor();
      ps[i].requires_grad_(false);
      at::Tensor& e = ema[names[i]];
      if (o.emaDecay > 0)
        e.mul_(d).add_(ps[i], 1 - d);
      else
        e.copy_(ps[i]);
    }
  }
  return lv;
}

at::Tensor UNet::Sample(const at::Tensor& tokens, const at::Tensor& noise, const SampleOptions& o) {
  c10::NoGradGuard ng;
  const int64_t B = tokens.size(0);
  if (noise.size(0) != B) Fail("SHAPE_MISMATCH", "diffusion: one noise image per caption is needed");
  std::vector<int64_t> ts = DdimTimesteps(cfg.T, o.steps);
  const double* ab = alphaBar.data_ptr<double>();
  at::Tensor x = noise.to(at::kFloat).clone();
  at::Tensor uncond = at::zeros_like(tokens);
  for (size_t k = 0; k < ts.size(); k++) {
    const int64_t t = ts[k];
    const double a = ab[t], ap = k + 1 < ts.size() ? ab[ts[k + 1]] : 1.0;
    at::Tensor e;
    if (o.guidance == 1.0) {
      e = Eps(x, at::full({B}, t, at::kLong), tokens, o.useEma);
    } else if (o.guidance == 0.0) {
      e = Eps(x, at::full({B}, t, at::kLong), uncond, o.useEma);
    } else {
      at::Tensor both = Eps(at::cat({x, x}), at::full({2 * B}, t, at::kLong), at::cat({tokens, uncond}), o.useEma);
      at::Tensor ec = both.narrow(0, 0, B), eu = both.narrow(0, B, B);
      e = eu + (ec - eu) * float(o.guidance);
    }
    at::Tensor x0 = (x - e * float(std::sqrt(1 - a))) / float(std::sqrt(a));
    if (o.clip) {
      x0 = x0.clamp(-1, 1);
      e = (x - x0 * float(std::sqrt(a))) / float(std::sqrt(1 - a));
    }
    x = x0 * float(std::sqrt(ap)) + e * float(std::sqrt(1 - ap));
  }
  return x;
}

}  // namespace soup
