// SPDX-License-Identifier: MIT
// ppo_check: PPO steps of the training core on a small seeded LLaMA, without Node (docs/cuda.md contract).
//   ppo_check --device cpu|cuda [--steps K] [--autocast 0|1] [--threads N]
// Prints one JSON line last: {"device": "cuda", "steps": 3, "seconds": 1.2, "losses": [...], ...}.
// bench/gpu.sh runs it on both devices and compares the losses. Every random draw (init, prompts,
// sampling, minibatch order, dropout) comes from CPU generators, so the two runs see the same numbers
// up to where bf16/fp32 rounding flips a sampled token.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <c10/core/GradMode.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <string>
#include <vector>

#include "torch/ppo.h"

namespace {
void Usage() {
  std::fprintf(stderr, "usage: ppo_check --device cpu|cuda [--steps K] [--autocast 0|1] [--threads N]\n");
  std::exit(2);
}
}  // namespace

int main(int argc, char** argv) {
  std::string device = "cpu";
  int64_t steps = 3;
  bool autocast = true;
  int threads = 0;
  for (int i = 1; i < argc; i++) {
    std::string a = argv[i];
    if (i + 1 >= argc) Usage();
    if (a == "--device")
      device = argv[++i];
    else if (a == "--steps")
      steps = std::atoll(argv[++i]);
    else if (a == "--autocast")
      autocast = std::atoi(argv[++i]) != 0;
    else if (a == "--threads")
      threads = std::atoi(argv[++i]);
    else
      Usage();
  }
  if (steps < 1 || (device != "cpu" && device != "cuda")) Usage();
  if (threads > 0) at::set_num_threads(threads);
  try {
    // MINIATURES-sized text model with GQA and untied head (exercises every path), LoRA on q, v.
    soup::LlamaConfig cfg;
    cfg.vocab = 512;
    cfg.hidden = 64;
    cfg.intermediate = 176;
    cfg.layers = 2;
    cfg.heads = 4;
    cfg.kvHeads = 2;
    cfg.eps = 1e-6;
    cfg.tied = false;
    soup::LlamaModel m;
    m.SetDevice(device, autocast);
    m.Init(cfg, at::kFloat, nullptr, 0);
    soup::LoraConfig lc;
    lc.r = 8;
    lc.alpha = 16;
    lc.dropout = 0.05;
    lc.targets = {"q_proj", "v_proj"};
    m.AddLora(lc, 1);
    m.InitValueHead(2);
    {
      // B = 0 makes the first step trivial: start from a non-zero adapter, as after some training.
      c10::NoGradGuard ng;
      at::Generator g = at::make_generator<at::CPUGeneratorImpl>(3);
      for (auto& [mod, p] : m.adapter) p.B.copy_(at::empty(p.B.sizes(), at::kFloat).normal_(0, 0.02, g));
    }
    soup::PPOUpdateConfig pc;  // trl's defaults, but a larger step to see learning in a few steps
    pc.params = soup::PPOParams{1.0, 0.95, 0.2, 0.2, 0.1};
    pc.ppoEpochs = 2;
    pc.miniBatchSize = 4;
    pc.learningRate = 1e-3;
    pc.beta1 = 0.9;
    pc.beta2 = 0.999;
    pc.adamEpsilon = 1e-8;
    pc.maxGradNorm = 0;
    pc.klPenalty = "kl";
    soup::GenOptions go;
    go.maxNew = 16;
    go.sample = true;
    go.eos = -1;  // fixed length, as in the paper's runs
    const int64_t B = 16, P = 8;
    at::Generator pg = at::make_generator<at::CPUGeneratorImpl>(4);
    std::vector<double> losses, scoresMean, kls;
    double beta = 0.2;
    auto t0 = std::chrono::steady_clock::now();
    for (int64_t s = 0; s < steps; s++) {
      m.Seed(1000 + uint64_t(s));
      at::Tensor q = at::randint(1, cfg.vocab, {B, P}, pg, at::TensorOptions().dtype(at::kLong));
      soup::Rollout r = soup::PPORollout(m, q, at::Tensor(), go, false);
      // A reward computed from the tokens alone: the share of response tokens in the lower half of the vocabulary.
      at::Tensor resp = r.input.narrow(1, r.P, r.R).to(at::kCPU);
      at::Tensor score = (resp < cfg.vocab / 2).to(at::kDouble).mean(1) * 2.0 - 1.0;
      auto st = soup::PPOUpdate(m, r, score, beta, pc);
      losses.push_back(st.at("ppo/loss/total"));
      scoresMean.push_back(st.at("env/reward_mean"));
      kls.push_back(st.at("objective/kl"));
    }
    const double sec = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    auto list = [](const std::vector<double>& v) {
      std::string o = "[";
      char buf[64];
      for (size_t i = 0; i < v.size(); i++) {
        std::snprintf(buf, sizeof buf, "%s%.9g", i ? ", " : "", v[i]);
        o += buf;
      }
      return o + "]";
    };
    std::printf("{\"device\": \"%s\", \"steps\": %lld, \"seconds\": %.4f, \"autocast\": %s, \"losses\": %s, \"scores\": %s, \"kl\": %s}\n", device.c_str(),
                (long long)steps, sec, m.amp ? "true" : "false", list(losses).c_str(), list(scoresMean).c_str(), list(kls).c_str());
    return 0;
  } catch (const c10::Error& e) {
    std::fprintf(stderr, "ppo_check: libtorch: %s\n", e.what_without_backtrace());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "ppo_check: %s\n", e.what());
  }
  return 1;
}
