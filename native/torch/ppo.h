// SPDX-License-Identifier: MIT
// PPO with trl 0.4.x semantics (docs/training.md, "Semantics") over a LlamaModel with a LoRA adapter and
// a value head: the pure math of one minibatch, the rollout kept between generation and update, the update.
#pragma once
#include <ATen/ATen.h>

#include <cstdint>
#include <map>
#include <string>

#include "torch/llama.h"

namespace soup {

// ---- PPO math (trl 0.4.x, docs/training.md): pure functions on [B, T] tensors ----
struct PPOParams {
  double gamma = 1.0, lam = 0.95, cliprange = 0.2, cliprangeValue = 0.2, vfCoef = 0.1;
};
// Per-token reward: -beta * penalty(logp - ref) on the response, score added on the last masked token.
at::Tensor PPORewards(const at::Tensor& score, const at::Tensor& logp, const at::Tensor& ref, const at::Tensor& mask, double beta, const std::string& penalty,
                      at::Tensor* klOut);
at::Tensor MaskedMean(const at::Tensor& x, const at::Tensor& mask);
at::Tensor MaskedWhiten(const at::Tensor& x, const at::Tensor& mask);  // unbiased var, shift_mean true
struct PPOLossOut {
  at::Tensor loss, pgLoss, vfLoss, advantages, returns, pgClipfrac, vfClipfrac, approxKl, policyKl, ratio;
};
PPOLossOut PPOLoss(const at::Tensor& oldLogp, const at::Tensor& oldValues, const at::Tensor& rewards, const at::Tensor& vpred, const at::Tensor& logp,
                   const at::Tensor& mask, const PPOParams& p);
// GAE (γ, λ) before whitening, [B, T]; rows are independent, so a batch's rows serve any minibatch.
at::Tensor RawAdvantages(const at::Tensor& oldValues, const at::Tensor& rewards, const at::Tensor& mask, const PPOParams& p);
// The same loss from RawAdvantages rows (the trailing flag only tells this overload apart).
PPOLossOut PPOLoss(const at::Tensor& oldLogp, const at::Tensor& oldValues, const at::Tensor& rawAdv, const at::Tensor& vpred, const at::Tensor& logp,
                   const at::Tensor& mask, const PPOParams& p, bool fromRaw);

// ---- PPO step state kept between rollout and update ----
// One update's settings, as PPOConfigSchema (src/train/ppo.ts) fills them: no defaults here, so the
// schema is the one source of every default.
struct PPOUpdateConfig {
  PPOParams params;
  int64_t ppoEpochs = 0, miniBatchSize = 0;
  double learningRate = 0, beta1 = 0, beta2 = 0, adamEpsilon = 0;
  double maxGradNorm = 0;  // 0: no clipping
  std::string klPenalty;   // kl | abs | mse | k3
};
struct Rollout {
  at::Tensor input, mask;                  // [B, P + R] query (left padded) + response
  at::Tensor respMask;                     // [B, R]
  at::Tensor oldLogp, refLogp, oldValues;  // [B, R]
  at::Tensor entropy;                      // [B, R] policy entropy per response token at rollout
  int64_t P = 0, R = 0;
};
Rollout PPORollout(LlamaModel& m, const at::Tensor& q, const at::Tensor& qmask, const GenOptions& o, bool refIsAdapter);
std::map<std::string, double> PPOUpdate(LlamaModel& m, Rollout& r, const at::Tensor& scores, double beta, const PPOUpdateConfig& c);
// Token log-probs, values and (optionally) entropies of the response region of `input`.
void ResponseForward(LlamaModel& m, const at::Tensor& input, const at::Tensor& mask, int64_t P, int64_t R, at::Tensor* logp, at::Tensor* values,
                     at::Tensor* entropy);

}  // namespace soup
