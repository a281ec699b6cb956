// SPDX-License-Identifier: MIT
// PPO for continuous control (see control.h). Semantics follow CleanRL's ppo_continuous_action.py with
// gym 0.23's NormalizeObservation / NormalizeReward wrappers; the one deliberate difference is that a
// time-limit truncation bootstraps from V(final observation) (SB3), where CleanRL treats it as a death.
#include "torch/control.h"
#include "torch/shape_str.h"

#include <c10/core/GradMode.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <sstream>
#include <stdexcept>

namespace soup {
namespace control {

void Fail(const char* code, const std::string& msg) { throw std::runtime_error(std::string("[ERR_SOUP_") + code + "] " + msg); }

// policies print shapes with a space after each comma
static std::string ShapeStr(at::IntArrayRef s) { return soup::ShapeStr(s, ", "); }

static std::string LayerName(const char* net, size_t layer, const char* what) { return std::string(net) + "." + std::to_string(2 * layer) + "." + what; }

// ---- running statistics ---------------------------------------------------------------------------
void RunningStat::Init(int64_t d) {
  mean = at::zeros({d}, at::kDouble);
  var = at::ones({d}, at::kDouble);
  count = 1e-4;
}

void RunningStat::Update(const at::Tensor& batch) {
  // gym RunningMeanStd.update: population variance of the batch, then the parallel merge (Chan et al.)
  const double bc = double(batch.size(0));
  at::Tensor bm = batch.mean(0);
  at::Tensor bv = (batch - bm).pow(2).mean(0);
  at::Tensor delta = bm - mean;
  const double tot = count + bc;
  at::Tensor m2 = var * count + bv * bc + delta.pow(2) * (count * bc / tot);
  mean = mean + delta * (bc / tot);
  var = m2 / tot;
  count = tot;
}

// ---- the policy -----------------------------------------------------------------------------------
void Policy::Init(int64_t obsDim, int64_t actDim, std::vector<int64_t> hiddenSizes, at::ScalarType dt, uint64_t seed) {
  if (obsDim < 1 || actDim < 1) Fail("INVALID_ARG", "obsDim and actDim must be positive");
  for (auto hsz : hiddenSizes)
    if (hsz < 1) Fail("INVALID_ARG", "hidden sizes must be positive");
  if (hiddenSizes.empty()) Fail("INVALID_ARG", "hidden must list at least one layer size");
  O = obsDim;
  A = actDim;
  hidden = hiddenSizes;
  dtype = dt;
  gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  specs.clear();
  int64_t off = 0;
  auto add = [&](const std::string& n, std::vector<int64_t> shape) {
    ParamSpec s;
    s.name = n;
    s.shape = shape;
    s.offset = off;
    s.numel = 1;
    for (auto d : shape) s.numel *= d;
    off += s.numel;
    specs.push_back(s);
  };
  for (const char* net : {"actor_mean", "critic"}) {
    int64_t in = O;
    const int64_t out = std::string(net) == "critic" ? 1 : A;
    for (size_t l = 0; l <= hidden.size(); l++) {
      int64_t o = l < hidden.size() ? hidden[l] : out;
      add(LayerName(net, l, "weight"), {o, in});
      add(LayerName(net, l, "bias"), {o});
      in = o;
    }
  }
  add("actor_logstd", {1, A});
  // CleanRL layer_init: orthogonal weights (gain √2 in hidden layers, 0.01 on the actor's output, 1 on
  // the critic's), zero biases, log-std 0. torch.nn.init.orthogonal_: QR of a N(0, 1) matrix with the
  // signs of R's diagonal, transposed when rows < cols.
  at::Tensor f = at::zeros({off}, at::kDouble);
  for (auto& s : specs) {
    if (s.shape.size() != 2 || s.name == "actor_logstd") continue;
    const bool last = s.name.find("." + std::to_string(2 * hidden.size()) + ".") != std::string::npos;
    const double gain = !last ? std::sqrt(2.0) : (s.name.rfind("critic", 0) == 0 ? 1.0 : 0.01);
    int64_t rows = s.shape[0], cols = s.shape[1];
    at::Tensor g = at::empty({rows, cols}, at::kDouble).normal_(0.0, 1.0, gen);
    if (rows < cols) g = g.t();
    auto qr = at::linalg_qr(g);
    at::Tensor q = std::get<0>(qr), r = std::get<1>(qr);
    q = q * r.diagonal().sign().unsqueeze(0);
    if (rows < cols) q = q.t();
    f.narrow(0, s.offset, s.numel).copy_(q.reshape({-1}) * gain);
  }
  flat = f.to(dtype).set_requires_grad(true);
  m = at::zeros({off}, at::TensorOptions().dtype(dtype));
  v = at::zeros({off}, at::TensorOptions().dtype(dtype));
  adamStep = 0;
  obsRms.Init(O);
  retRms.Init(1);
}

void Policy::SetRollout(int64_t numSteps, int64_t numEnvs) {
  if (numSteps < 1 || numEnvs < 1) Fail("INVALID_ARG", "rollout needs numSteps >= 1 and numEnvs >= 1");
  T = numSteps;
  N = numEnvs;
  auto o = at::TensorOptions().dtype(dtype);
  bObs = at::zeros({T, N, O}, o);
  bAct = at::zeros({T, N, A}, o);
  bLogp = at::zeros({T, N}, o);
  bVal = at::zeros({T, N}, o);
  retAcc = at::zeros({N}, at::kDouble);
  retRms.Init(1);
}

at::Tensor Policy::Param(const std::string& name) const {
  for (auto& s : specs)
    if (s.name == name) return flat.narrow(0, s.offset, s.numel).view(s.shape);
  Fail("INTERNAL", "no parameter " + name);
}

at::Tensor Policy::Normalize(const at::Tensor& obs64) const { return ((obs64 - obsRms.mean) / at::sqrt(obsRms.var + 1e-8)).clamp(-obsClip, obsClip).to(dtype); }

static at::Tensor Mlp(const Policy& p, const char* net, at::Tensor x) {
  const size_t L = p.hidden.size();
  for (size_t l = 0; l <= L; l++) {
    x = at::addmm(p.Param(LayerName(net, l, "bias")), x, p.Param(LayerName(net, l, "weight")).t());
    if (l < L) x = at::tanh(x);
  }
  return x;
}

at::Tensor Policy::ActorMean(const at::Tensor& x) const { return Mlp(*this, "actor_mean", x); }
at::Tensor Policy::Value(const at::Tensor& x) const { return Mlp(*this, "critic", x).squeeze(1); }
at::Tensor Policy::LogStd() const { return Param("actor_logstd").view({A}); }

static const double kHalfLog2Pi = 0.5 * std::log(2.0 * M_PI);

at::Tensor GaussianLogProb(const at::Tensor& a, const at::Tensor& mean, const at::Tensor& logstd) {
  // torch.distributions.Normal.log_prob summed over the action dims
  at::Tensor z = (a - mean) * at::exp(-logstd);
  return (-0.5 * z * z - logstd - kHalfLog2Pi).sum(1);
}

at::Tensor GaussianEntropy(const at::Tensor& logstd, int64_t batch) { return (0.5 + kHalfLog2Pi + logstd).sum().expand({batch}); }

void Policy::Act(const float* obs, float* actions, int64_t n, int64_t t, bool deterministic, bool train) {
  if (train) {
    if (T == 0) Fail("INVALID_ARG", "act(train): the policy has no rollout storage (setRollout first)");
    if (n != N) Fail("SHAPE_MISMATCH", "act(train): " + std::to_string(n) + " envs, rollout storage has " + std::to_string(N));
    if (t < 0 || t >= T) Fail("INVALID_ARG", "act(train): step " + std::to_string(t) + " outside the rollout's [0, " + std::to_string(T) + ")");
  }
  c10::NoGradGuard ng;
  at::Tensor o = at::from_blob(const_cast<float*>(obs), {n, O}, at::kFloat).to(at::kDouble);
  if (!at::isfinite(o).all().item<bool>()) Fail("INVALID_ARG", "act: the observations contain NaN or Inf");
  if (train && !frozen) obsRms.Update(o);
  at::Tensor x = Normalize(o);
  at::Tensor mean = ActorMean(x);
  at::Tensor logstd = LogStd();
  at::Tensor a = deterministic ? mean : mean + at::exp(logstd) * at::randn({n, A}, gen, at::TensorOptions().dtype(dtype));
  at::Tensor a32 = a.to(at::kFloat).contiguous();
  std::memcpy(actions, a32.data_ptr<float>(), sizeof(float) * n * A);
  if (train) {
    at::Tensor ab = a32.to(dtype);  // the action as the env and the rollout see it
    bObs.select(0, t).copy_(x);
    bAct.select(0, t).copy_(ab);
    bLogp.select(0, t).copy_(GaussianLogProb(ab, mean, logstd));
    bVal.select(0, t).copy_(Value(x));
  }
}

std::vector<std::pair<std::string, at::Tensor>> Policy::Tensors() const {
  std::vector<std::pair<std::string, at::Tensor>> out;
  c10::NoGradGuard ng;
  for (auto& s : specs) out.emplace_back(s.name, flat.narrow(0, s.offset, s.numel).view(s.shape).clone());
  out.emplace_back("obs_rms.mean", obsRms.mean.clone());
  out.emplace_back("obs_rms.var", obsRms.var.clone());
  out.emplace_back("obs_rms.count", at::full({}, obsRms.count, at::kDouble));
  return out;
}

void Policy::SetTensors(const std::map<std::string, at::Tensor>& t) {
  c10::NoGradGuard ng;
  for (auto& s : specs) {
    auto it = t.find(s.name);
    if (it == t.end()) Fail("MISSING_TENSOR", "policy tensors lack '" + s.name + "'");
    if (it->second.sizes() != at::IntArrayRef(s.shape))
      Fail("SHAPE_MISMATCH", "policy tensor '" + s.name + "' has shape " + ShapeStr(it->second.sizes()) + ", the policy needs " + ShapeStr(s.shape));
  }
  for (auto& [name, x] : t) {
    if (name.rfind("obs_rms.", 0) == 0) {
      const bool cnt = name == "obs_rms.count";
      if (!cnt && name != "obs_rms.mean" && name != "obs_rms.var") Fail("INVALID_ARG", "unknown policy tensor '" + name + "'");
      if (cnt ? x.numel() != 1 : x.sizes() != at::IntArrayRef({O}))
        Fail("SHAPE_MISMATCH", "policy tensor '" + name + "' has shape " + ShapeStr(x.sizes()) + ", the policy needs " + (cnt ? "[]" : ShapeStr({O})));
    } else {
      bool known = false;
      for (auto& s : specs) known = known || s.name == name;
      if (!known) Fail("INVALID_ARG", "unknown policy tensor '" + name + "'");
    }
  }
  for (auto& s : specs) flat.narrow(0, s.offset, s.numel).copy_(t.at(s.name).reshape({-1}).to(dtype));
  if (t.count("obs_rms.mean")) obsRms.mean = t.at("obs_rms.mean").to(at::kDouble).clone();
  if (t.count("obs_rms.var")) obsRms.var = t.at("obs_rms.var").to(at::kDouble).clone();
  if (t.count("obs_rms.count")) obsRms.count = t.at("obs_rms.count").to(at::kDouble).item<double>();
}

// ---- PPO pieces -----------------------------------------------------------------------------------
void Gae(const at::Tensor& rewards, const at::Tensor& values, const at::Tensor& dones, const at::Tensor& lastValues, double gamma, double lam, at::Tensor* adv,
         at::Tensor* ret) {
  const int64_t T = rewards.size(0), N = rewards.size(1);
  at::Tensor r = rewards.to(at::kDouble).contiguous(), v = values.to(at::kDouble).contiguous();
  at::Tensor d = dones.to(at::kDouble).contiguous(), lv = lastValues.to(at::kDouble).contiguous();
  at::Tensor a = at::zeros({T, N}, at::kDouble);
  const double *pr = r.data_ptr<double>(), *pv = v.data_ptr<double>(), *pd = d.data_ptr<double>(), *pl = lv.data_ptr<double>();
  double* pa = a.data_ptr<double>();
  std::vector<double> last(N, 0.0);
  for (int64_t t = T - 1; t >= 0; t--)
    for (int64_t n = 0; n < N; n++) {
      const int64_t i = t * N + n;
      const double next = t == T - 1 ? pl[n] : pv[i + N];
      const double nonterminal = 1.0 - pd[i];
      const double delta = pr[i] + gamma * next * nonterminal - pv[i];
      last[n] = delta + gamma * lam * nonterminal * last[n];
      pa[i] = last[n];
    }
  *adv = a;
  *ret = a + v;
}

void NormalizeRewards(at::Tensor& rewards, const at::Tensor& dones, double gamma, double clip, RunningStat& rms, at::Tensor& acc) {
  const int64_t T = rewards.size(0), N = rewards.size(1);
  at::Tensor d = dones.to(at::kDouble);
  for (int64_t t = 0; t < T; t++) {
    at::Tensor r = rewards.select(0, t);
    acc.mul_(gamma).add_(r);
    rms.Update(acc.view({N, 1}));
    r.copy_((r / std::sqrt(rms.var.item<double>() + 1e-8)).clamp(-clip, clip));
    acc.mul_(1.0 - d.select(0, t));
  }
}

LossOut PPOLossOn(const Policy& p, const at::Tensor& obs, const at::Tensor& act, const at::Tensor& oldLogp, const at::Tensor& adv, const at::Tensor& ret,
                  const at::Tensor& oldVal, const PPOHyper& h) {
  LossOut o;
  const int64_t B = obs.size(0);
  at::Tensor mean = p.ActorMean(obs);
  at::Tensor logstd = p.LogStd();
  at::Tensor newLogp = GaussianLogProb(act, mean, logstd);
  at::Tensor ent = GaussianEntropy(logstd, B);
  at::Tensor newV = p.Value(obs);
  at::Tensor logratio = newLogp - oldLogp;
  at::Tensor ratio = at::exp(logratio);
  {
    c10::NoGradGuard ng;
    o.approxKl = ((ratio - 1) - logratio).mean();
    o.clipfrac = ((ratio - 1.0).abs() > h.clip).to(ratio.scalar_type()).mean();
  }
  at::Tensor a = adv;
  if (h.normAdv) a = (adv - adv.mean()) / (adv.std() + 1e-8);  // torch std: unbiased
  at::Tensor pg1 = -a * ratio, pg2 = -a * at::clamp(ratio, 1.0 - h.clip, 1.0 + h.clip);
  o.pgLoss = at::max(pg1, pg2).mean();
  if (h.clipVloss) {
    at::Tensor vu = (newV - ret).pow(2);
    at::Tensor vc = oldVal + at::clamp(newV - oldVal, -h.clip, h.clip);
    o.vLoss = 0.5 * at::max(vu, (vc - ret).pow(2)).mean();
  } else {
    o.vLoss = 0.5 * (newV - ret).pow(2).mean();
  }
  o.entropy = ent.mean();
  o.loss = o.pgLoss - h.entCoef * o.entropy + h.vfCoef * o.vLoss;
  return o;
}

double ClipGrad(Policy& p, double maxNorm) {
  c10::NoGradGuard ng;
  at::Tensor g = p.flat.mutable_grad();
  const double norm = g.to(at::kDouble).norm().item<double>();
  if (!std::isfinite(norm)) Fail("TRAIN", "PPO gradient norm is not finite: the weights, rewards or learning rate have diverged");
  const double coef = maxNorm / (norm + 1e-6);
  if (maxNorm > 0 && coef < 1.0) g.mul_(coef);
  return norm;
}

void AdamStep(Policy& p, double lr, double b1, double b2, double eps) {
  c10::NoGradGuard ng;
  at::Tensor g = p.flat.grad();
  p.adamStep++;
  p.m.mul_(b1).add_(g, 1.0 - b1);
  p.v.mul_(b2).addcmul_(g, g, 1.0 - b2);
  const double bc1 = 1.0 - std::pow(b1, double(p.adamStep)), bc2 = 1.0 - std::pow(b2, double(p.adamStep));
  at::Tensor denom = (p.v.sqrt() / std::sqrt(bc2)).add_(eps);
  p.flat.addcdiv_(p.m, denom, -lr / bc1);
}

std::map<std::string, double> PPOUpdate(Policy& p, const UpdateIn& in, const PPOHyper& h) {
  using clock = std::chrono::steady_clock;
  const auto t0 = clock::now();
  const int64_t T = p.T, N = p.N, O = p.O, A = p.A, B = T * N;
  if (T == 0) Fail("INVALID_ARG", "update: the policy has no rollout storage");
  const int64_t R = in.weights.numel();
  if (in.rewards.numel() != B * R)
    Fail("SHAPE_MISMATCH", "update: rewards has " + std::to_string(in.rewards.numel()) + " values, expected T·N·R = " + std::to_string(B * R));
  if (in.terminated.numel() != B || in.truncated.numel() != B)
    Fail("SHAPE_MISMATCH", "update: terminated/truncated need T·N = " + std::to_string(B) + " flags");
  if (in.finalObs.numel() != B * O) Fail("SHAPE_MISMATCH", "update: finalObs needs T·N·obsDim = " + std::to_string(B * O) + " values");
  if (in.lastObs.numel() != N * O) Fail("SHAPE_MISMATCH", "update: lastObs needs N·obsDim = " + std::to_string(N * O) + " values");
  const int64_t mbs = B / std::max<int64_t>(1, h.minibatches);
  if (mbs < 1 || (h.normAdv && mbs < 2))
    Fail("CONFIG", "minibatch size T·N / num_minibatches = " + std::to_string(B) + " / " + std::to_string(h.minibatches) +
                       " must be at least 2 (advantages are normalised per minibatch)");

  std::map<std::string, double> st;
  at::Tensor rewards = (in.rewards.to(at::kDouble).view({T, N, R}) * in.weights.to(at::kDouble).view({1, 1, R})).sum(2);
  at::Tensor term = in.terminated.view({T, N}).to(at::kBool), trunc = in.truncated.view({T, N}).to(at::kBool);
  at::Tensor dones = (term | trunc).to(at::kDouble);
  st["reward_mean"] = rewards.mean().item<double>();
  if (h.normReward) NormalizeRewards(rewards, dones, h.gamma, h.rewardClip, p.retRms, p.retAcc);
  st["reward_norm_std"] = std::sqrt(p.retRms.var.item<double>() + 1e-8);
  at::Tensor adv, ret;
  {
    c10::NoGradGuard ng;
    at::Tensor lastV = p.Value(p.Normalize(in.lastObs.view({N, O}).to(at::kDouble))).to(at::kDouble);
    // time-limit truncations: the episode goes on in truth, so bootstrap from V(final observation)
    at::Tensor idx = (trunc & ~term).view({B}).nonzero().view({-1});
    if (idx.numel() > 0) {
      at::Tensor fo = in.finalObs.view({B, O}).index_select(0, idx).to(at::kDouble);
      at::Tensor vb = p.Value(p.Normalize(fo)).to(at::kDouble);
      rewards.view({B}).index_add_(0, idx, vb * h.gamma);
    }
    Gae(rewards, p.bVal, dones, lastV, h.gamma, h.lam, &adv, &ret);
  }
  at::Tensor obs = p.bObs.view({B, O}), act = p.bAct.view({B, A}), logp = p.bLogp.view({B}), val = p.bVal.view({B});
  at::Tensor advB = adv.view({B}).to(p.dtype), retB = ret.view({B}).to(p.dtype);
  double sPg = 0, sV = 0, sEnt = 0, sKl = 0, sCf = 0, sGn = 0;
  int64_t n = 0;
  const auto t1 = clock::now();
  for (int64_t e = 0; e < h.epochs; e++) {
    at::Tensor perm = at::randperm(B, p.gen, at::TensorOptions().dtype(at::kLong));
    for (int64_t s = 0; s < B; s += mbs) {
      at::Tensor i = perm.narrow(0, s, std::min(mbs, B - s));
      LossOut o = PPOLossOn(p, obs.index_select(0, i), act.index_select(0, i), logp.index_select(0, i), advB.index_select(0, i), retB.index_select(0, i),
                            val.index_select(0, i), h);
      const double lv = o.loss.item<double>();
      if (!std::isfinite(lv))
        Fail("TRAIN",
             "PPO loss is not finite (" + std::to_string(lv) + ") at epoch " + std::to_string(e) + ": the weights, rewards or learning rate have diverged");
      p.flat.mutable_grad() = at::Tensor();
      o.loss.backward();
      sGn += ClipGrad(p, h.maxGradNorm);
      AdamStep(p, h.lr, h.b1, h.b2, h.adamEps);
      sPg += o.pgLoss.item<double>();
      sV += o.vLoss.item<double>();
      sEnt += o.entropy.item<double>();
      sKl += o.approxKl.item<double>();
      sCf += o.clipfrac.item<double>();
      n++;
    }
  }
  p.flat.mutable_grad() = at::Tensor();
  const auto t2 = clock::now();
  const double k = n ? 1.0 / double(n) : 0.0;
  st["policy_loss"] = sPg * k;
  st["value_loss"] = sV * k;
  st["entropy"] = sEnt * k;
  st["approx_kl"] = sKl * k;
  st["clipfrac"] = sCf * k;
  st["grad_norm"] = sGn * k;
  st["minibatches"] = double(n);
  {
    c10::NoGradGuard ng;
    at::Tensor y = ret.view({B}), yp = val.to(at::kDouble);
    const double vy = y.var(false).item<double>();
    st["explained_variance"] = vy == 0 ? std::nan("") : 1.0 - (y - yp).var(false).item<double>() / vy;
    st["value_mean"] = yp.mean().item<double>();
  }
  st["prepare_s"] = std::chrono::duration<double>(t1 - t0).count();
  st["learn_s"] = std::chrono::duration<double>(t2 - t1).count();
  return st;
}

}  // namespace control
}  // namespace soup
