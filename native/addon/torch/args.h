// SPDX-License-Identifier: MIT
// Tensor helpers shared by the torch addon's bindings (train, control, diffusion, serve): tensors read
// from {dtype, shape, data} batons in place, and handed to JS over external ArrayBuffers that own them.
// The plain baton readers are in addon/common/args.h. Header-only: each binding is its own translation unit.
#pragma once
#include <napi.h>

#include <ATen/ATen.h>

#include "addon/common/args.h"

#include <map>
#include <string>
#include <vector>

namespace soup::addon {

inline at::ScalarType DtypeOf(Napi::Env env, const std::string& d) {
  if (d == "float32") return at::kFloat;
  if (d == "float64") return at::kDouble;
  if (d == "bfloat16") return at::kBFloat16;
  if (d == "float16") return at::kHalf;
  throw Napi::TypeError::New(env, "[ERR_SOUP_INVALID_ARG] unsupported dtype '" + d + "' (float32, float64, bfloat16, float16)");
}

// {dtype, shape, data} -> a tensor over the JS memory, which `keep` holds until the job completes.
inline at::Tensor TensorIn(Napi::Env env, const Napi::Value& v, const std::string& name, std::vector<Napi::Reference<Napi::Value>>& keep) {
  if (!v.IsObject()) throw Napi::TypeError::New(env, "[ERR_SOUP_INVALID_ARG] tensor '" + name + "' must be {dtype, shape, data}");
  Napi::Object o = v.As<Napi::Object>();
  at::ScalarType dt = DtypeOf(env, Str(o, "dtype"));
  Napi::Value sv = o.Get("shape"), dv = o.Get("data");
  if (!sv.IsArray() || !dv.IsTypedArray())
    throw Napi::TypeError::New(env, "[ERR_SOUP_INVALID_ARG] tensor '" + name + "' needs shape: number[] and data: TypedArray");
  Napi::Array sa = sv.As<Napi::Array>();
  std::vector<int64_t> shape;
  int64_t numel = 1;
  for (uint32_t i = 0; i < sa.Length(); i++) {
    int64_t d = sa.Get(i).As<Napi::Number>().Int64Value();
    if (d < 0) throw Napi::RangeError::New(env, "[ERR_SOUP_SHAPE_MISMATCH] tensor '" + name + "' has a negative dimension");
    shape.push_back(d);
    numel *= d;
  }
  Napi::TypedArray ta = dv.As<Napi::TypedArray>();
  size_t es = c10::elementSize(dt);
  if (ta.ByteLength() != size_t(numel) * es)
    throw Napi::RangeError::New(env, "[ERR_SOUP_SHAPE_MISMATCH] tensor '" + name + "': data has " + std::to_string(ta.ByteLength()) +
                                         " bytes but shape and dtype need " + std::to_string(numel * es));
  void* p = static_cast<uint8_t*>(ta.ArrayBuffer().Data()) + ta.ByteOffset();
  keep.push_back(Napi::Persistent(dv));
  return at::from_blob(p, shape, at::TensorOptions().dtype(dt));
}

// { name: {dtype, shape, data} } -> tensors over the JS memory, which `keep` holds until the job completes.
inline std::map<std::string, at::Tensor> TensorMapIn(Napi::Env env, const Napi::Value& v, std::vector<Napi::Reference<Napi::Value>>& keep) {
  std::map<std::string, at::Tensor> m;
  if (!v.IsObject()) ThrowType(env, "expected a TensorMap");
  Napi::Object o = v.As<Napi::Object>();
  Napi::Array keys = o.GetPropertyNames();
  for (uint32_t i = 0; i < keys.Length(); i++) {
    std::string k = keys.Get(i).ToString().Utf8Value();
    m[k] = TensorIn(env, o.Get(k), k, keep);
  }
  return m;
}

inline const char* DtypeName(at::ScalarType t) {
  switch (t) {
    case at::kDouble:
      return "float64";
    case at::kBFloat16:
      return "bfloat16";
    case at::kHalf:
      return "float16";
    default:
      return "float32";
  }
}

// A tensor -> {dtype, shape, data} over an external ArrayBuffer that owns a contiguous CPU copy (or the
// tensor itself when it already is one). float64/bfloat16/float16 keep their dtype; others become float32.
inline Napi::Value TensorOut(Napi::Env env, at::Tensor t) {
  if (t.scalar_type() != at::kDouble && t.scalar_type() != at::kBFloat16 && t.scalar_type() != at::kHalf && t.scalar_type() != at::kFloat) t = t.to(at::kFloat);
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
    ab = Napi::ArrayBuffer::New(
        env, t.data_ptr(), t.nbytes(),
        [](Napi::Env e, void*, at::Tensor* k) {
          Napi::MemoryManagement::AdjustExternalMemory(e, -int64_t(k->nbytes()));
          delete k;
        },
        keep);
    Napi::MemoryManagement::AdjustExternalMemory(env, bytes);  // let the GC see native bytes
  }
  if (t.scalar_type() == at::kDouble)
    o.Set("data", Napi::Float64Array::New(env, n, ab, 0));
  else if (t.scalar_type() == at::kFloat)
    o.Set("data", Napi::Float32Array::New(env, n, ab, 0));
  else
    o.Set("data", Napi::Uint16Array::New(env, n, ab, 0));
  return o;
}

using NamedTensors = std::vector<std::pair<std::string, at::Tensor>>;

// { name: Tensor }, each through `out` (TensorOut, or a binding's own conversion).
inline Napi::Value TensorMapOut(Napi::Env env, const NamedTensors& v, Napi::Value (*out)(Napi::Env, at::Tensor) = TensorOut) {
  Napi::Object o = Napi::Object::New(env);
  for (auto& [k, t] : v) o.Set(k, out(env, t));
  return o;
}

// { key: number } for a job's small results.
inline Napi::Value NumbersOut(Napi::Env env, std::initializer_list<std::pair<const char*, double>> kv) {
  Napi::Object r = Napi::Object::New(env);
  for (auto& [k, v] : kv) r.Set(k, Napi::Number::New(env, v));
  return r;
}

}  // namespace soup::addon
