// SPDX-License-Identifier: MIT
// Registration hooks of the torch addon. Weak: an area that is not built leaves its hook null.
#pragma once
#include <napi.h>

// native/addon/torch/train_*.cc: LLaMA/LoRA/PPO and the other training cores.
__attribute__((weak)) void RegisterTrain(Napi::Env env, Napi::Object exports);
// native/addon/torch/control*.cc: continuous-control policies and PPO (locomotion).
__attribute__((weak)) void RegisterControl(Napi::Env env, Napi::Object exports);
// native/addon/torch/diffusion*.cc: the conditional UNet, DDPM/DDIM and reward-weighted fine-tuning.
__attribute__((weak)) void RegisterDiffusion(Napi::Env env, Napi::Object exports);
// native/addon/torch/serve.cc: the batched decoding engine of `rsoup serve` (a λ per sequence).
__attribute__((weak)) void RegisterServe(Napi::Env env, Napi::Object exports);
// native/cuda (when compiled): GPU merges and kernels.
__attribute__((weak)) void RegisterCuda(Napi::Env env, Napi::Object exports);
// Defined by native/cuda when compiled: true, and the number of visible devices (0 without a GPU).
__attribute__((weak)) bool SoupCudaCompiled();
__attribute__((weak)) int SoupCudaDeviceCount();
