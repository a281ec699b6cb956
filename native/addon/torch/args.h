// SPDX-License-Identifier: MIT
// Argument and result helpers shared by the torch addon's bindings (train, control, diffusion): options
// read with defaults and "[ERR_SOUP_INVALID_ARG]" errors that name the field, and tensors handed to JS
// over external ArrayBuffers that own them. Header-only: each binding is its own translation unit.
#pragma once
#include <napi.h>

#include <ATen/ATen.h>

#include <string>

namespace soup::addon {

[[noreturn]] inline void ThrowType(Napi::Env env, const std::string& m) { throw Napi::TypeError::New(env, "[ERR_SOUP_INVALID_ARG] " + m); }

inline double Num(const Napi::Object& o, const char* k, double def) {
  Napi::Value v = o.Get(k);
  if (v.IsUndefined() || v.IsNull()) return def;
  if (!v.IsNumber()) ThrowType(o.Env(), std::string(k) + " must be a number");
  return v.As<Napi::Number>().DoubleValue();
}

inline bool Bool(const Napi::Object& o, const char* k, bool def) {
  Napi::Value v = o.Get(k);
  if (v.IsUndefined() || v.IsNull()) return def;
  return v.ToBoolean().Value();
}

inline std::string Str(const Napi::Object& o, const char* k, const std::string& def) {
  Napi::Value v = o.Get(k);
  if (v.IsUndefined() || v.IsNull()) return def;
  return v.ToString().Utf8Value();
}

inline int64_t Int(const Napi::Value& v, const char* what) {
  if (!v.IsNumber()) ThrowType(v.Env(), std::string(what) + " must be a number");
  return v.As<Napi::Number>().Int64Value();
}

inline const char* DtypeName(at::ScalarType t) {
  switch (t) {
    case at::kDouble: return "float64";
    case at::kBFloat16: return "bfloat16";
    case at::kHalf: return "float16";
    default: return "float32";
  }
}

// A tensor -> {dtype, shape, data} over an external ArrayBuffer that owns a contiguous CPU copy (or the
// tensor itself when it already is one). float64/bfloat16/float16 keep their dtype; others become float32.
inline Napi::Value TensorOut(Napi::Env env, at::Tensor t) {
  if (t.scalar_type() != at::kDouble && t.scalar_type() != at::kBFloat16 && t.scalar_type() != at::kHalf && t.scalar_type() != at::kFloat)
    t = t.to(at::kFloat);
  t = t.detach().to(at::kCPU).contiguous();  // CUDA models hand results back through host memory
  Napi::Object o = Napi::Object::New(env);
  o.Set("dtype", DtypeName(t.scalar_type()));
  Napi::Array shape = Napi::Array::New(env, t.dim());
  for (int64_t i = 0; i < t.dim(); i++) shape.Set(uint32_t(i), Napi::Number::New(env, double(t.size(i))));
  o.Set("shape", shape);
  const size_t n = size_t(t.numel());
  Napi::ArrayBuffer ab;
  if (t.nbytes() == 0) {
    ab = Napi::ArrayBuffer::New(env, 0);
  } else {
    auto* keep = new at::Tensor(t);
    const int64_t bytes = int64_t(t.nbytes());
    ab = Napi::ArrayBuffer::New(env, t.data_ptr(), t.nbytes(), [](Napi::Env e, void*, at::Tensor* k) {
      Napi::MemoryManagement::AdjustExternalMemory(e, -int64_t(k->nbytes()));
      delete k;
    }, keep);
    Napi::MemoryManagement::AdjustExternalMemory(env, bytes);  // let the GC see native bytes
  }
  if (t.scalar_type() == at::kDouble) o.Set("data", Napi::Float64Array::New(env, n, ab, 0));
  else if (t.scalar_type() == at::kFloat) o.Set("data", Napi::Float32Array::New(env, n, ab, 0));
  else o.Set("data", Napi::Uint16Array::New(env, n, ab, 0));
  return o;
}

}  // namespace soup::addon
