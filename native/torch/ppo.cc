// SPDX-License-Identifier: MIT
// PPO with trl 0.4.x semantics (docs/training.md, "Semantics"): per-token KL penalty with the score on the last response
// token, GAE inside the loss with advantages whitened per minibatch, clipped policy and value losses,
// ppo_epochs passes over shuffled minibatches, one Adam step per minibatch.
#include <c10/core/GradMode.h>

#include <algorithm>
#include <cmath>

#include "torch/ppo.h"

namespace soup {

at::Tensor MaskedMean(const at::Tensor& x, const at::Tensor& mask) { return (x * mask).sum() / mask.sum(); }

at::Tensor MaskedWhiten(const at::Tensor& x, const at::Tensor& mask) {
  at::Tensor mean = MaskedMean(x, mask);
  at::Tensor var = MaskedMean((x - mean).pow(2), mask);
  at::Tensor n = mask.sum();
  var = var * n / (n - 1);  // trl masked_var(unbiased=True)
  return (x - mean) * at::rsqrt(var + 1e-8);
}

at::Tensor PPORewards(const at::Tensor& score, const at::Tensor& logp, const at::Tensor& ref, const at::Tensor& mask, double beta, const std::string& penalty,
                      at::Tensor* klOut) {
  at::Tensor d = logp - ref, kl;
  if (penalty == "kl" || penalty == "k1")
    kl = d;
  else if (penalty == "abs")
    kl = d.abs();
  else if (penalty == "mse")
    kl = 0.5 * d * d;
  else if (penalty == "k3")
    kl = at::exp(-d) - 1 + d;  // (r - 1) - log r, r = p_ref / p
  else
    Fail("CONFIG", "kl_penalty must be one of kl, abs, mse, k3; got '" + penalty + "'");
  at::Tensor m = mask.to(d.scalar_type());
  at::Tensor rewards = -beta * kl * m;
  const int64_t T = mask.size(1);
  at::Tensor last = (mask.to(at::kLong) * at::arange(1, T + 1, mask.options().dtype(at::kLong))).argmax(1, true);
  rewards.scatter_add_(1, last, score.to(rewards.scalar_type()).view({-1, 1}));
  if (klOut) *klOut = kl;
  return rewards;
}

at::Tensor RawAdvantages(const at::Tensor& oldValues, const at::Tensor& rewardsIn, const at::Tensor& maskIn, const PPOParams& p) {
  c10::NoGradGuard ng;
  at::Tensor mask = maskIn.to(oldValues.scalar_type());
  at::Tensor values = oldValues * mask, rewards = rewardsIn * mask;
  const int64_t T = values.size(1);
  std::vector<at::Tensor> adv(T);
  at::Tensor last = at::zeros_like(values.select(1, 0));
  for (int64_t t = T - 1; t >= 0; t--) {
    at::Tensor next = t + 1 < T ? values.select(1, t + 1) : at::zeros_like(last);
    at::Tensor delta = rewards.select(1, t) + p.gamma * next - values.select(1, t);
    last = delta + p.gamma * p.lam * last;
    adv[t] = last;
  }
  return at::stack(adv, 1);
}

PPOLossOut PPOLoss(const at::Tensor& oldLogp, const at::Tensor& oldValues, const at::Tensor& rewards, const at::Tensor& vpred, const at::Tensor& logp,
                   const at::Tensor& mask, const PPOParams& p) {
  return PPOLoss(oldLogp, oldValues, RawAdvantages(oldValues, rewards, mask, p), vpred, logp, mask, p, true);
}

PPOLossOut PPOLoss(const at::Tensor& oldLogp, const at::Tensor& oldValues, const at::Tensor& rawAdv, const at::Tensor& vpred, const at::Tensor& logp,
                   const at::Tensor& maskIn, const PPOParams& p, bool) {
  PPOLossOut o;
  at::Tensor mask = maskIn.to(oldValues.scalar_type());
  at::Tensor values = oldValues * mask;
  {
    c10::NoGradGuard ng;
    o.returns = rawAdv + values;
    o.advantages = MaskedWhiten(rawAdv, mask);
  }
  at::Tensor vclip = at::max(at::min(vpred, values + p.cliprangeValue), values - p.cliprangeValue);
  at::Tensor vf1 = (vpred - o.returns).pow(2), vf2 = (vclip - o.returns).pow(2);
  o.vfLoss = 0.5 * MaskedMean(at::max(vf1, vf2), mask);
  o.vfClipfrac = MaskedMean(vf2.gt(vf1).to(mask.scalar_type()), mask);
  o.ratio = at::exp(logp - oldLogp);
  at::Tensor pg1 = -o.advantages * o.ratio;
  at::Tensor pg2 = -o.advantages * at::clamp(o.ratio, 1.0 - p.cliprange, 1.0 + p.cliprange);
  o.pgLoss = MaskedMean(at::max(pg1, pg2), mask);
  o.pgClipfrac = MaskedMean(pg2.gt(pg1).to(mask.scalar_type()), mask);
  o.loss = o.pgLoss + p.vfCoef * o.vfLoss;
  o.approxKl = 0.5 * MaskedMean((logp - oldLogp).pow(2), mask);
  o.policyKl = MaskedMean(oldLogp - logp, mask);
  return o;
}

void ResponseForward(LlamaModel& m, const at::Tensor& input, const at::Tensor& mask, int64_t P, int64_t R, at::Tensor* logp, at::Tensor* values,
                     at::Tensor* entropy) {
  // Hidden state at position t predicts token t + 1: the response's log-probs and values come from
  // positions P-1 .. P+R-2 (trl batched_forward_pass: logits[:, :-1], values[:, :-1]).
  at::Tensor h = m.Hidden(input, mask, nullptr).narrow(1, P - 1, R);
  at::Tensor lg = m.Logits(h);
  at::Tensor tok = m.Dev(input).narrow(1, P, R).unsqueeze(-1);
  if (entropy) {
    at::Tensor lsm = at::log_softmax(lg, -1);
    if (logp) *logp = lsm.gather(-1, tok).squeeze(-1);
    c10::NoGradGuard ng;
    *entropy = -(lsm.exp() * lsm).sum(-1);
  } else if (logp) {
    // log p(token) = logit - logsumexp: no [.., V] log-softmax output, and a backward without the dense
    // scatter of gather's gradient (the update's minibatches, the reference pass).
    *logp = lg.gather(-1, tok).squeeze(-1) - at::logsumexp(lg, {-1});
  }
  if (values) *values = m.Values(h).to(lg.scalar_type());
}

Rollout PPORollout(LlamaModel& m, const at::Tensor& qIn, const at::Tensor& qmaskIn, const GenOptions& o, bool refIsAdapter) {
  const at::Tensor q = m.Dev(qIn), qmask = qmaskIn.defined() ? m.Dev(qmaskIn) : qmaskIn;
  if (m.merged) Fail("INVALID_ARG", "PPO needs an unmerged adapter");
  if (!m.vHeadW.defined()) Fail("INVALID_ARG", "PPO needs a model with a value head");
  // The policy's log-probs and values of the sampled tokens come out of generation itself (same
  // weights, no dropout, same positions): trl recomputes them with a second forward pass.
  GenOptions go = o;
  go.collect = true;
  GenResult g = m.Generate(q, qmask, go);
  Rollout r;
  r.P = q.size(1);
  r.R = std::max<int64_t>(1, g.lengths.max().item<int64_t>());
  at::Tensor resp = g.tokens.narrow(1, 0, r.R);
  r.respMask = (at::arange(r.R, m.Opts(at::kLong)).unsqueeze(0) < g.lengths.unsqueeze(1)).to(at::kLong);
  at::Tensor qm = qmask.defined() ? qmask.to(at::kLong) : at::ones_like(q);
  r.input = at::cat({q, resp}, 1);
  r.mask = at::cat({qm, r.respMask}, 1);
  c10::NoGradGuard ng;
  bool was = m.training;
  m.training = false;
  r.oldLogp = g.logp.narrow(1, 0, r.R).contiguous();
  r.oldValues = g.values.narrow(1, 0, r.R).contiguous();
  r.entropy = g.entropy.narrow(1, 0, r.R).contiguous();
  if (!at::isfinite(r.oldLogp).all().item<bool>() || !at::isfinite(r.oldValues).all().item<bool>())
    Fail("TRAIN", "non-finite log-probs or values in the rollout (the weights contain NaN or Inf)");
  if (m.lora) {
    // trl 0.4.x: reference = the policy with its adapter disabled; option: a frozen copy of the start adapter.
    m.mode = refIsAdapter ? AdapterMode::Reference : AdapterMode::Disabled;
    try {
      ResponseForward(m, r.input, r.mask, r.P, r.R, &r.refLogp, nullptr, nullptr);
    } catch (...) {
      m.mode = AdapterMode::Active;
      throw;
    }
    m.mode = AdapterMode::Active;
  } else {
    r.refLogp = r.oldLogp.clone();
  }
  m.training = was;
  return r;
}

std::map<std::string, double> PPOUpdate(LlamaModel& m, Rollout& r, const at::Tensor& scoresIn, double beta, const PPOUpdateConfig& c) {
  const int64_t B = r.input.size(0);
  if (!m.vHeadW.defined()) Fail("INVALID_ARG", "PPO needs a model with a value head");
  if (scoresIn.numel() != B) Fail("INVALID_ARG", "PPO update: " + std::to_string(scoresIn.numel()) + " scores for " + std::to_string(B) + " samples");
  at::Tensor rmask = r.respMask.to(r.oldLogp.scalar_type());
  at::Tensor scores = m.Dev(scoresIn).to(r.oldLogp.scalar_type());
  at::Tensor rewards = PPORewards(scores, r.oldLogp, r.refLogp, rmask, beta, c.klPenalty, nullptr);
  // GAE runs along each row on rollout data only: computed once for the batch, rows picked per minibatch
  // (the same numbers trl gets by running it inside every minibatch's loss); whitening stays per minibatch.
  at::Tensor rawAdv = RawAdvantages(r.oldValues, rewards, rmask, c.params);
  std::map<std::string, double> st;
  at::Tensor klSeq = ((r.oldLogp - r.refLogp) * rmask).sum(1);
  st["objective/kl"] = klSeq.mean().item<double>();
  st["objective/kl_coef"] = beta;
  st["objective/logprobs"] = ((r.oldLogp * rmask).sum(1)).mean().item<double>();
  st["env/reward_mean"] = scores.mean().item<double>();
  st["env/reward_std"] = B > 1 ? scores.std().item<double>() : 0.0;
  st["tokens/response_len_mean"] = rmask.sum(1).mean().item<double>();
  st["ppo/mean_non_score_reward"] = ((rewards * rmask).sum(1) - scores).mean().item<double>();

  auto [names, params] = m.TrainableLists(false);
  if (m.adam.params.size() != params.size()) m.adam.Reset(names, params);
  for (size_t i = 0; i < params.size(); i++)
    if (!m.adam.params[i].is_same(params[i])) {
      m.adam.Reset(names, params);
      break;
    }

  const int64_t mbs = std::max<int64_t>(1, std::min(c.miniBatchSize, B));
  std::map<std::string, double> sum;  // per-minibatch statistics, averaged over the minibatches at the end
  int64_t n = 0;
  bool was = m.training;
  m.training = true;
  try {
    for (int64_t e = 0; e < c.ppoEpochs; e++) {
      at::Tensor perm = m.Dev(at::randperm(B, m.gen, at::TensorOptions().dtype(at::kLong)));
      for (int64_t s = 0; s < B; s += mbs) {
        at::Tensor idx = perm.narrow(0, s, std::min(mbs, B - s));
        at::Tensor logp, vpred;
        ResponseForward(m, r.input.index_select(0, idx), r.mask.index_select(0, idx), r.P, r.R, &logp, &vpred, nullptr);
        at::Tensor mk = rmask.index_select(0, idx);
        PPOLossOut o = PPOLoss(r.oldLogp.index_select(0, idx), r.oldValues.index_select(0, idx), rawAdv.index_select(0, idx), vpred, logp, mk, c.params, true);
        double lv = o.loss.item<double>();
        if (!std::isfinite(lv))
          Fail("TRAIN", "PPO loss is not finite (" + std::to_string(lv) + ") at epoch " + std::to_string(e) + ", minibatch " + std::to_string(s / mbs) +
                            ": the weights, scores or learning rate have diverged");
        for (auto& p : params) p.mutable_grad() = at::Tensor();
        o.loss.backward();
        double gn = 0;
        {
          c10::NoGradGuard ng;
          std::vector<at::Tensor> flat;  // one reduction (and one sync) for all gradients
          for (auto& p : params)
            if (p.grad().defined()) flat.push_back(p.grad().reshape({-1}));
          if (!flat.empty()) gn = at::cat(flat).to(at::kDouble).pow(2).sum().item<double>();
          gn = std::sqrt(gn);
          if (!std::isfinite(gn)) Fail("TRAIN", "PPO gradient norm is not finite at epoch " + std::to_string(e));
          if (c.maxGradNorm > 0 && gn > c.maxGradNorm)
            for (auto& p : params)
              if (p.grad().defined()) p.mutable_grad().mul_(c.maxGradNorm / (gn + 1e-6));
        }
        m.adam.Step(c.learningRate, c.beta1, c.beta2, c.adamEpsilon, 0, false);
        for (auto& p : params) p.mutable_grad() = at::Tensor();
        c10::NoGradGuard ng;
        sum["ppo/loss/total"] += lv;
        sum["ppo/loss/policy"] += o.pgLoss.item<double>();
        sum["ppo/loss/value"] += o.vfLoss.item<double>();
        sum["ppo/policy/clipfrac"] += o.pgClipfrac.item<double>();
        sum["ppo/val/clipfrac"] += o.vfClipfrac.item<double>();
        sum["ppo/policy/approxkl"] += o.approxKl.item<double>();
        sum["ppo/policy/policykl"] += o.policyKl.item<double>();
        sum["ppo/val/error"] += MaskedMean((vpred - o.returns).pow(2), mk).item<double>();
        sum["ppo/returns/mean"] += MaskedMean(o.returns, mk).item<double>();
        sum["ppo/grad_norm"] += gn;
        n++;
      }
    }
  } catch (...) {
    m.training = was;
    for (auto& p : params) p.mutable_grad() = at::Tensor();
    throw;
  }
  m.training = was;
  const double k = n ? 1.0 / double(n) : 0;
  for (const char* key : {"ppo/loss/total", "ppo/loss/policy", "ppo/loss/value", "ppo/policy/clipfrac", "ppo/val/clipfrac", "ppo/policy/approxkl",
                          "ppo/policy/policykl", "ppo/val/error", "ppo/returns/mean", "ppo/grad_norm"})
    st[key] = sum[key] * k;
  // Entropy of the sampling policy per response token, taken in the rollout (trl averages it over the
  // minibatch forwards; here it costs no extra pass over the vocabulary).
  st["ppo/policy/entropy"] = MaskedMean(r.entropy, rmask).item<double>();
  return st;
}

}  // namespace soup
