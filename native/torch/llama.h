// SPDX-License-Identifier: MIT
// LLaMA-architecture causal LM on plain ATen tensors (no torch::nn): RMSNorm, RoPE, GQA, SwiGLU, tied
// embeddings; LoRA with peft semantics; value head; KV-cache generation; PPO (trl 0.4.x); own Adam(W).
// Tensors are kept by Hugging Face / peft names so checkpoints map 1:1 onto files.
#pragma once
#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace soup {

// Throws std::runtime_error with a "[ERR_SOUP_<code>] " prefix (mapped to SoupError codes in TS).
[[noreturn]] void Fail(const char* code, const std::string& msg);

struct LlamaConfig {
  int64_t vocab = 0, hidden = 0, intermediate = 0, layers = 0, heads = 0, kvHeads = 0;
  double eps = 1e-6, ropeTheta = 10000.0;
  bool tied = false;
  int64_t headDim() const { return hidden / heads; }
};

struct LoraConfig {
  int64_t r = 8;
  double alpha = 8, dropout = 0;
  std::vector<std::string> targets;  // LLaMA module names: q_proj ... down_proj
  bool rslora = false;
  double scaling() const;
};

struct LoraPair {
  at::Tensor A, B;  // A [r, in], B [out, r] (peft layout)
};

enum class AdapterMode { Active, Disabled, Reference };

// A preallocated KV cache: k/v per layer [B, Hkv, capacity, D].
struct KVCache {
  std::vector<at::Tensor> k, v;
  int64_t len = 0;
};

struct GenOptions {
  int64_t maxNew = 16, minNew = 0;
  bool sample = true;
  double temperature = 1.0, topP = 1.0;
  int64_t topK = 0;
  int64_t eos = -1, pad = 0;  // eos < 0: never stop (fixed length)
  bool collect = false;       // also return the log-probs (raw logits) and values of the sampled tokens
};

struct GenResult {
  at::Tensor tokens;   // [B, maxNew] int64, pad after the end
  at::Tensor lengths;  // [B] int64, tokens up to and including EOS
  at::Tensor logp, values, entropy;  // [B, maxNew] when GenOptions::collect (values need a value head)
};

class AdamState {
 public:
  std::vector<std::string> names;
  std::vector<at::Tensor> params, m, v;
  int64_t step = 0;
  void Reset(const std::vector<std::string>& n, const std::vector<at::Tensor>& p);
  // Adam (decoupled = false, weight decay added to the gradient, torch.optim.Adam) or AdamW.
  void Step(double lr, double b1, double b2, double eps, double wd, bool decoupled);
};

class LlamaModel {
 public:
  LlamaConfig cfg;
  at::ScalarType dtype = at::kFloat;       // compute/storage dtype of the base weights
  at::ScalarType paramDtype = at::kFloat;  // LoRA, value head: fp32 (fp64 when dtype is fp64)
  std::map<std::string, at::Tensor> base;  // HF names
  std::optional<LoraConfig> lora;
  std::map<std::string, LoraPair> adapter;     // key: "model.layers.{i}.self_attn.q_proj"
  std::map<std::string, LoraPair> refAdapter;  // frozen copy (reference = starting adapter)
  at::Tensor vHeadW, vHeadB;                   // [1, hidden], [1]
  AdapterMode mode = AdapterMode::Active;
  bool merged = false, training = false;
  double vHeadDropout = 0.1;
  at::Generator gen;
  AdamState adam;
  // NOTE: [fused eval weights] without dropout or gradients, W·x + s·B(A·x) = (W + s·BA)·x: generation
  // computes the merged weights once per call and runs one matmul per module (see Generate).
  std::map<std::string, at::Tensor> fused;

  // Base weights: a map of HF names (missing/shape checks), or random init (HF: N(0, 0.02), norms 1).
  void Init(const LlamaConfig& c, at::ScalarType dt, const std::map<std::string, at::Tensor>* weights, uint64_t seed);
  static std::vector<std::pair<std::string, std::vector<int64_t>>> ExpectedBase(const LlamaConfig& c);
  void AddLora(const LoraConfig& lc, uint64_t seed);
  void InitValueHead(uint64_t seed);
  void Seed(uint64_t seed);

  // Forward. tokens [B, T] int64; mask [B, past + T] (1 = real token) or undefined; cache optional.
  at::Tensor Hidden(const at::Tensor& tokens, const at::Tensor& mask, KVCache* cache);
  at::Tensor Logits(const at::Tensor& hidden);  // [B, T, V] fp32 (fp64 for fp64 models)
  at::Tensor Values(const at::Tensor& hidden);  // [B, T] (dropout in training mode)

  GenResult Generate(const at::Tensor& tokens, const at::Tensor& mask, const GenOptions& o);

  // peft names <-> tensors ("base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight").
  std::vector<std::pair<std::string, at::Tensor>> LoraTensors();
  void SetLora(const std::map<std::string, at::Tensor>& t);
  void Merge();
  void Unmerge();
  std::vector<std::pair<std::string, at::Tensor>> TrainableParams(bool all);

  // Mean next-token NLL over positions with mask (tokens [B, T], mask [B, T] or undefined).
  at::Tensor NextTokenLoss(const at::Tensor& tokens, const at::Tensor& mask);

 private:
  at::Tensor Linear(const at::Tensor& x, const std::string& module);
  at::Tensor RmsNorm(const at::Tensor& x, const at::Tensor& w);
  at::Tensor Dropout(const at::Tensor& x, double p);
};

// ---- PPO math (trl 0.4.x, ALGORITHMS.md §2): pure functions on [B, T] tensors ----
struct PPOParams {
  double gamma = 1.0, lam = 0.95, cliprange = 0.2, cliprangeValue = 0.2, vfCoef = 0.1;
};
// Per-token reward: -beta * penalty(logp - ref) on the response, score added on the last masked token.
at::Tensor PPORewards(const at::Tensor& score, const at::Tensor& logp, const at::Tensor& ref, const at::Tensor& mask,
                      double beta, const std::string& penalty, at::Tensor* klOut);
at::Tensor MaskedMean(const at::Tensor& x, const at::Tensor& mask);
at::Tensor MaskedWhiten(const at::Tensor& x, const at::Tensor& mask);  // unbiased var, shift_mean true
struct PPOLossOut {
  at::Tensor loss, pgLoss, vfLoss, advantages, returns, pgClipfrac, vfClipfrac, approxKl, policyKl, ratio;
};
PPOLossOut PPOLoss(const at::Tensor& oldLogp, const at::Tensor& oldValues, const at::Tensor& rewards,
                   const at::Tensor& vpred, const at::Tensor& logp, const at::Tensor& mask, const PPOParams& p);

// ---- PPO step state kept between rollout and update ----
struct PPOConfigN {
  PPOParams p;
  int64_t ppoEpochs = 4, miniBatchSize = 1;
  double lr = 1e-5, b1 = 0.9, b2 = 0.999, adamEps = 1e-8, maxGradNorm = 0;  // 0: no clipping
  std::string klPenalty = "kl";
};
struct Rollout {
  at::Tensor input, mask;                 // [B, P + R] query (left padded) + response
  at::Tensor respMask;                    // [B, R]
  at::Tensor oldLogp, refLogp, oldValues; // [B, R]
  at::Tensor entropy;                     // [B, R] policy entropy per response token at rollout
  int64_t P = 0, R = 0;
};
Rollout PPORollout(LlamaModel& m, const at::Tensor& q, const at::Tensor& qmask, const GenOptions& o, bool refIsAdapter);
std::map<std::string, double> PPOUpdate(LlamaModel& m, Rollout& r, const at::Tensor& scores, double beta,
                                        const PPOConfigN& c);
// Token log-probs, values and (optionally) entropies of the response region of `input`.
void ResponseForward(LlamaModel& m, const at::Tensor& input, const at::Tensor& mask, int64_t P, int64_t R,
                     at::Tensor* logp, at::Tensor* values, at::Tensor* entropy);

}  // namespace soup
