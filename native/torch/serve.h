// SPDX-License-Identifier: MIT
// Batched decoding for `rsoup serve`: one frozen LLaMA base and N LoRA experts, and a set of sequences
// each carrying its own λ (continuous batching: sequences join with a prefill and leave between steps).
//
// NOTE: [exact soup] the N experts' factors are rank-concatenated once per module,
//   A = [A₁; …; A_N] (rows), B = [s₁B₁, …, s_N B_N] (columns), R = Σ rᵢ (mixed ranks allowed),
// and each batch row scales the rank dimension by its own λ:
//   y = W₀x + B · diag(λ_row ⊗ 1_r) · (A x)  =  (W₀ + Σ λᵢ sᵢ BᵢAᵢ) x      (every row, no merged copy).
// 'soup-ab' (the paper's A/B interpolation, θ(λ) of A and B separately, one shared scaling s) is the same
// two GEMMs: with zᵢ = Aᵢx, u = Σⱼ λⱼ zⱼ = A(λ)x, and vᵢ = λᵢ u, B·v = s Σᵢ λᵢ Bᵢ u = s B(λ) A(λ) x.
// 'ensemble' runs one row per expert with λ > 0 (one-hot λ, its own KV cache) and samples from
// Σ λᵢ softmax(logitsᵢ / T).
#pragma once
#include "torch/llama.h"

#include <map>
#include <string>
#include <vector>

namespace soup {

struct ServeExpertModule {
  at::Tensor A, B;  // peft layout: A [r, in], B [out, r]
  double scaling = 1;
};
using ServeExpert = std::map<std::string, ServeExpertModule>;  // key: "model.layers.{i}.self_attn.q_proj"

enum class ServeMode { Soup, SoupAB, Ensemble };

struct ServeAdd {
  int64_t id = 0;
  std::vector<int64_t> tokens;  // the prompt
  std::vector<double> lambda;   // length N
  ServeMode mode = ServeMode::Soup;
  double temperature = 1, topP = 1;
  int64_t topK = 0;
  uint64_t seed = 0;
  int64_t maxTokens = 16;  // KV capacity: prompt + maxTokens
};

struct ServeSample {
  int64_t id, token;
};

class ServeEngine {
 public:
  LlamaModel m;  // base weights only (no adapter)
  int64_t N = 0;
  std::vector<std::string> expertNames;
  std::string abUnavailable;  // why 'soup-ab' cannot run (empty: it can)

  struct CatLora {
    at::Tensor A, B;  // [R, in], [out, R] (scaled)
    at::Tensor seg;   // [R] int64: the expert of each rank column
    int64_t r = 0;    // the common rank when every expert has the module with one rank and scaling
    bool uniform = false;
  };
  std::map<std::string, CatLora> lora;

  struct Row {
    std::vector<double> lam;  // effective λ of this row (one-hot for an ensemble row)
    bool ab = false;
    std::vector<at::Tensor> k, v;  // per layer [Hkv, cap, D]
    int64_t len = 0, cap = 0;
  };
  struct Seq {
    int64_t id = 0;
    ServeMode mode = ServeMode::Soup;
    std::vector<Row> rows;
    std::vector<double> weights;  // ensemble: λ of each row's expert
    double temperature = 1, topP = 1;
    int64_t topK = 0;
    at::Generator gen;
    int64_t last = -1;
  };
  std::map<int64_t, Seq> seqs;

  void Init(const LlamaConfig& c, at::ScalarType dt, const std::map<std::string, at::Tensor>& weights, const std::vector<ServeExpert>& experts,
            const std::vector<std::string>& names);
  // Prefills each new sequence and samples its first token. logits (optional): [n, V] per new sequence
  // (raw logits; for 'ensemble' the log of the λ-mixture of the experts' distributions at T = 1).
  std::vector<ServeSample> Add(const std::vector<ServeAdd>& adds, at::Tensor* logits);
  // One decoding step over every active sequence (feeds each its last token); same logits convention.
  std::vector<ServeSample> Step(at::Tensor* logits);
  void Remove(const std::vector<int64_t>& ids);
  int64_t Rows() const;

 private:
  std::map<std::string, at::Tensor> ownCat;  // fused q|k|v and gate|up weights when Init made none
  const at::Tensor& Fused(const std::string& key, const std::vector<std::string>& mods);
  at::Tensor Norm(const at::Tensor& x, const at::Tensor& w);
  // The hidden state at the last position of each row: tokens [B, T], rows' caches grow by T. With
  // `real` (prefill of prompts of different lengths, right-padded to T): row b's last real position is
  // real[b] − 1 and its cache grows by real[b] (the padding's keys are overwritten by later steps, and
  // causal attention never lets a real position see them).
  at::Tensor Forward(const std::vector<Row*>& rows, const at::Tensor& tokens, const std::vector<int64_t>* real = nullptr);
  struct Lam {
    at::Tensor lam, abMask;  // [B, N] (param dtype), [B, 1, 1] bool
    bool anyAb = false, allAb = false;
  };
  at::Tensor Delta(const at::Tensor& h, const std::string& mod, const at::Tensor& y, const Lam& L);
  int64_t Sample(Seq& s, const at::Tensor& lg, at::Tensor* mixed);
};

}  // namespace soup
