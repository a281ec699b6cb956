// SPDX-License-Identifier: MIT
// A small conditional UNet for text-to-image diffusion (paper App. E in miniature) on plain ATen tensors:
// residual blocks with a time embedding, self- and cross-attention (to a caption embedding) at the lower
// resolution, DDPM training with a cosine schedule and ε-prediction, caption dropout (classifier-free
// guidance), EMA weights, the reward-weighted loss of eq. 19 and DDIM sampling (η = 0, optional guidance).
// Parameters are kept by name so checkpoints and soups map 1:1 onto TensorMaps.
#pragma once
#include <ATen/ATen.h>

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "torch/llama.h"  // Fail, AdamState

namespace soup {

struct UNetConfig {
  int64_t imageSize = 16, channels = 3, ch0 = 32, ch1 = 64, tembDim = 128, textDim = 64;
  int64_t vocab = 20, captionLen = 4, heads = 4, groups = 8, T = 1000;
};

// ---- schedule (float64) ----
// Cosine schedule (Nichol & Dhariwal 2021): f(t) = cos²((t/T + s)/(1 + s)·π/2), β_t = min(1 − f(t+1)/f(t), 0.999)
// for t = 0..T−1, ᾱ_t = Π_{s≤t} (1 − β_s).
at::Tensor CosineAlphaBar(int64_t T, double s = 0.008);
// DDIM timesteps, "trailing" spacing: t_k = floor((k+1)·T/S) − 1 for k = S−1 … 0 (starts at T−1).
std::vector<int64_t> DdimTimesteps(int64_t T, int64_t S);
// Initial noise [B, C, H, W], sample i drawn from its own generator seeded with seeds[i]: the noise of a
// caption depends only on its seed, never on the batch it is in.
at::Tensor NoiseFromSeeds(const std::vector<uint64_t>& seeds, int64_t C, int64_t H, int64_t W);

struct SampleOptions {
  int64_t steps = 20;
  double guidance = 1.0;  // ε = ε_u + g·(ε_c − ε_u); 1 = conditional only (no unconditional pass)
  bool clip = true;       // clamp the predicted x₀ to [−1, 1] (and recompute ε from it)
  bool useEma = true;
};

struct TrainOptions {
  double lr = 1e-3, b1 = 0.9, b2 = 0.999, eps = 1e-8, wd = 0.0, emaDecay = 0.995, captionDropout = 0.1, maxGradNorm = 1.0;
  bool finetune = false;  // train only cross-attention + biases + norm scales
};

class UNet {
 public:
  UNetConfig cfg;
  std::vector<std::string> order;         // creation order (names)
  std::map<std::string, at::Tensor> p;    // parameters
  std::map<std::string, at::Tensor> ema;  // EMA copy of every parameter
  at::Tensor alphaBar;                    // [T] float64
  at::Generator gen;
  AdamState adam;
  int64_t emaSteps = 0;  // EMA updates since the last CopyToEma (for the warm-up)

  static std::vector<std::pair<std::string, std::vector<int64_t>>> Expected(const UNetConfig& c);
  // Random init (PyTorch defaults: U(±1/√fan_in); norms 1/0; output projections zero) or given weights.
  void Init(const UNetConfig& c, uint64_t seed, const std::map<std::string, at::Tensor>* weights);
  void Seed(uint64_t seed);
  // The fine-tuning set of App. E: every cross-attention tensor, every bias, every normalisation scale.
  static bool InFinetuneSet(const std::string& name);
  std::vector<std::string> Names(bool finetuneOnly) const;

  // ε_θ(x_t, t, c): x [B, C, H, W] fp32, t [B] (float or int), tokens [B, L] int64.
  at::Tensor Eps(const at::Tensor& x, const at::Tensor& t, const at::Tensor& tokens, bool useEma);
  // Per-example denoising loss mean_pix (ε_θ(√ᾱ_t x₀ + √(1−ᾱ_t) ε, t, c) − ε)², shape [B].
  at::Tensor PerExampleLoss(const at::Tensor& x0, const at::Tensor& tokens, const at::Tensor& t, const at::Tensor& noise, bool useEma);
  // One AdamW step on mean_b w_b·loss_b (w = 1 when undefined) with random t, ε and caption dropout.
  double TrainStep(const at::Tensor& x0, const at::Tensor& tokens, const at::Tensor& w, const TrainOptions& o);
  at::Tensor Sample(const at::Tensor& tokens, const at::Tensor& noise, const SampleOptions& o);
  void CopyToEma();

 private:
  const std::map<std::string, at::Tensor>* w_ = nullptr;  // the set a forward reads (p or ema)
  const at::Tensor& W(const std::string& n) const;
  at::Tensor Lin(const at::Tensor& x, const std::string& n) const;
  at::Tensor Conv(const at::Tensor& x, const std::string& n, int64_t stride = 1) const;
  at::Tensor GN(const at::Tensor& x, const std::string& n) const;
  at::Tensor Res(const at::Tensor& x, const at::Tensor& temb, const std::string& n) const;
  at::Tensor Attn(const at::Tensor& x, const at::Tensor& ctx, const std::string& n) const;
  at::Tensor MHA(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v) const;
};

}  // namespace soup
