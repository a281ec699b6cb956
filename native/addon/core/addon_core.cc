// SPDX-License-Identifier: MIT
// soup_core.node: N-API bindings of the libtorch-free core (argument checks, async workers, buffers).
#include <napi.h>

#include <thread>

#include "core/cpu_features.h"

namespace {

Napi::Value JS_info(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object o = Napi::Object::New(env);
  o.Set("version", "0.1.0");
  o.Set("simd", soup::simdName(soup::detectSimd()));
  auto feats = soup::cpuFeatures();
  Napi::Array a = Napi::Array::New(env, feats.size());
  for (size_t i = 0; i < feats.size(); i++) a.Set(i, feats[i]);
  o.Set("cpuFeatures", a);
  o.Set("hardwareThreads", std::thread::hardware_concurrency());
  return o;
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("info", Napi::Function::New(env, JS_info));
  return exports;
}

}  // namespace

NODE_API_MODULE(soup_core, Init)
