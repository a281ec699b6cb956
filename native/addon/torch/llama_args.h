// SPDX-License-Identifier: MIT
// The LLaMA config baton, read by the training (train.cc) and serving (serve.cc) bindings alike.
#pragma once
#include <napi.h>

#include "addon/torch/args.h"
#include "torch/llama.h"

namespace soup::addon {

// NativeLlamaConfig (src/native/torch.ts): HF names, every field filled by nativeLlamaConfig() from the
// model's config.json.
inline LlamaConfig LlamaConfigIn(const Napi::Object& c) {
  LlamaConfig cfg;
  ReadFields(c, {{"vocabSize", &cfg.vocab},
                 {"hiddenSize", &cfg.hidden},
                 {"intermediateSize", &cfg.intermediate},
                 {"numHiddenLayers", &cfg.layers},
                 {"numAttentionHeads", &cfg.heads},
                 {"numKeyValueHeads", &cfg.kvHeads},
                 {"rmsNormEps", &cfg.eps},
                 {"ropeTheta", &cfg.ropeTheta},
                 {"tieWordEmbeddings", &cfg.tied}});
  return cfg;
}

// {dtype, device, autocast, threads} of a model's baton (training and serving).
struct Placement {
  at::ScalarType dtype;
  std::string device;  // cpu | cuda
  bool autocast;       // CUDA: bf16 matmuls for fp32 models
};
inline Placement PlacementIn(Napi::Env env, const Napi::Object& b) { return {DtypeOf(env, Str(b, "dtype")), Str(b, "device"), Bool(b, "autocast")}; }

}  // namespace soup::addon
