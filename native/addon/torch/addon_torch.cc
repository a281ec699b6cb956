// SPDX-License-Identifier: MIT
// soup_torch.node entry point: the libtorch-backed addon. Each area registers its own JS_ functions
// through a weak hook, so the training core and the CUDA kernels live in their own files and the addon
// still builds when one of them is absent.
#include <napi.h>

#include <ATen/Parallel.h>
#include <c10/util/Exception.h>
#include <torch/cuda.h>
#include <torch/version.h>

#include <thread>

#include "addon/common/errors.h"
#include "addon/common/model_thread.h"
#include "addon/torch/register.h"

// The torch addon's half of addon/common: libtorch's errors without their C++ backtrace, and OpenMP's
// per-thread count for the model threads.
std::string soup::addon::MessageOf(const std::exception& e) {
  if (auto* c = dynamic_cast<const c10::Error*>(&e)) {
    std::string m = c->what_without_backtrace();
    return m.rfind("[ERR_SOUP_", 0) == 0 ? m : "[ERR_SOUP_INTERNAL] libtorch: " + m;
  }
  return SoupMessage(e.what());
}

void soup::addon::SetModelThreadCount(int n) { at::set_num_threads(n); }

namespace {

Napi::Value JS_info(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object o = Napi::Object::New(env);
  o.Set("libtorch", TORCH_VERSION);
  o.Set("threads", at::get_num_threads());
  o.Set("interopThreads", at::get_num_interop_threads());
  o.Set("parallel", at::get_parallel_info());
  Napi::Object cuda = Napi::Object::New(env);
  cuda.Set("compiled", SoupCudaCompiled ? SoupCudaCompiled() : false);
  cuda.Set("available", SoupCudaDeviceCount ? SoupCudaDeviceCount() > 0 : false);
  cuda.Set("devices", SoupCudaDeviceCount ? SoupCudaDeviceCount() : 0);
  cuda.Set("torchCuda", torch::cuda::is_available());
  o.Set("cuda", cuda);
  return o;
}

Napi::Value JS_setNumThreads(const Napi::CallbackInfo& info) {
  if (info.Length() < 1 || !info[0].IsNumber()) throw Napi::TypeError::New(info.Env(), "[ERR_SOUP_INVALID_ARG] setNumThreads(n): n must be a number");
  int n = info[0].As<Napi::Number>().Int32Value();
  if (n < 1) throw Napi::RangeError::New(info.Env(), "[ERR_SOUP_INVALID_ARG] setNumThreads(n): n must be >= 1");
  at::set_num_threads(n);
  return info.Env().Undefined();
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  // libtorch defaults to one thread on this platform; use every core unless told otherwise.
  unsigned hw = std::thread::hardware_concurrency();
  if (hw > 0) at::set_num_threads(static_cast<int>(hw));
  exports.Set("info", Napi::Function::New(env, JS_info));
  exports.Set("setNumThreads", Napi::Function::New(env, JS_setNumThreads));
  if (RegisterTrain) RegisterTrain(env, exports);
  if (RegisterControl) RegisterControl(env, exports);
  if (RegisterDiffusion) RegisterDiffusion(env, exports);
  if (RegisterServe) RegisterServe(env, exports);
  if (RegisterCuda) RegisterCuda(env, exports);
  return exports;
}

}  // namespace

NODE_API_MODULE(soup_torch, Init)
