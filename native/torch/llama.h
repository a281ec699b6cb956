// SPDX-License-Identifier: MIT
// LLaMA-architecture causal LM on plain ATen tensors (no torch::nn): RMSNorm, RoPE, GQA, SwiGLU, tied
// embeddings; LoRA with peft semantics; value head; KV-cache generation; own Adam(W). PPO: torch/ppo.h.
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
  at::Tensor tokens;                 // [B, maxNew] int64, pad after the end
  at::Tensor lengths;                // [B] int64, tokens up to and including EOS
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

// AdamW settings of one supervised step (TS fills every field).
struct AdamWOptions {
  double lr = 0, beta1 = 0, beta2 = 0, eps = 0, weightDecay = 0;
  double maxGradNorm = 0;  // 0: no clipping
};
struct TrainStepResult {
  double loss = 0, gradNorm = 0;  // the norm before clipping
};

class LlamaModel {
 public:
  LlamaConfig cfg;
  at::ScalarType dtype = at::kFloat;       // compute/storage dtype of the base weights
  at::ScalarType paramDtype = at::kFloat;  // LoRA, value head: fp32 (fp64 when dtype is fp64)
  // Where every tensor of the model lives. Random draws stay on the CPU generator `gen` (then move), so a
  // seeded model draws the same numbers on CPU and CUDA.
  at::Device device = at::kCPU;
  // CUDA only: matmuls (projections, attention, LM head) in bf16 with fp32 inputs/outputs, the rest in the
  // compute dtype (torch.autocast(bfloat16) semantics for fp32 models).
  bool amp = false;
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
  // NOTE: [fused projections] q/k/v and gate/up run as one GEMM each over the row-concatenated frozen base
  // weights (cached, rebuilt when a base tensor is replaced or changed in place); LoRA terms are added per
  // module, so peft semantics and files are unchanged. Not used while base weights take gradients.
  struct CatEntry {
    at::Tensor w;
    std::vector<const void*> ptrs;
    std::vector<int64_t> versions;
  };
  std::map<std::string, CatEntry> catCache;
  // The fused groups of one layer (prefix "model.layers.L."): cat key -> member modules, in row order.
  static std::vector<std::pair<std::string, std::vector<std::string>>> FusedGroups(const std::string& layerPrefix);
  struct LowEntry {
    at::Tensor src, low;
    int64_t version = -1;
  };
  std::map<const void*, LowEntry> lowCache;  // bf16 copies of frozen weights for amp matmuls

  at::TensorOptions Opts(at::ScalarType t) const { return at::TensorOptions().dtype(t).device(device); }
  // Moves a tensor made on the CPU (inputs, random draws) to the model's device; no-op on CPU.
  at::Tensor Dev(const at::Tensor& t) const { return t.device() == device ? t : t.to(device); }
  // Selects the device ("cpu" | "cuda"); throws ERR_SOUP_NO_CUDA when libtorch has no usable CUDA device.
  void SetDevice(const std::string& dev, bool bf16Matmuls);

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
  // The same as parallel name and tensor lists (what AdamState keeps).
  std::pair<std::vector<std::string>, std::vector<at::Tensor>> TrainableLists(bool all);

  // Mean next-token NLL over positions with mask (tokens [B, T], mask [B, T] or undefined).
  at::Tensor NextTokenLoss(const at::Tensor& tokens, const at::Tensor& mask);
  // One AdamW step on NextTokenLoss over TrainableParams(all) (int64 tokens and mask).
  TrainStepResult TrainStep(const at::Tensor& tokens, const at::Tensor& mask, const AdamWOptions& o, bool all);

  // Copies of a group of tensors by checkpoint name: base (HF), lora (peft), valueHead (trl's
  // v_head.summary.*), optimizer (adam.m.*, adam.v.*, adam.step); LoadStateDict also takes refAdapter.
  std::vector<std::pair<std::string, at::Tensor>> StateDict(const std::string& which);
  void LoadStateDict(const std::string& which, const std::map<std::string, at::Tensor>& t);

 private:
  at::Tensor Linear(const at::Tensor& x, const std::string& module);
  at::Tensor LoraDelta(const at::Tensor& x, const std::string& module, const at::Tensor& y);
  at::Tensor Mm(const at::Tensor& x, const at::Tensor& w);
  at::Tensor LowW(const at::Tensor& w);                      // at::linear, bf16 under amp
  at::Tensor Bmm(const at::Tensor& a, const at::Tensor& b);  // at::matmul, bf16 under amp
  const at::Tensor& CatWeight(const std::string& key, const std::vector<std::string>& modules);
  at::Tensor RmsNorm(const at::Tensor& x, const at::Tensor& w);
  at::Tensor Dropout(const at::Tensor& x, double p);
};

}  // namespace soup
