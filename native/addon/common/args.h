// SPDX-License-Identifier: MIT
// Baton readers shared by every binding of both addons (better-sqlite3's src/util idea). TS validates and
// fills every option from its zod schema, so the readers of options take no defaults: a missing field
// is an "[ERR_SOUP_INVALID_ARG] … must be a number" naming it. Only what could corrupt memory is
// re-checked here (lengths, byte sizes, array kinds).
#pragma once
#include <napi.h>

#include <cstdint>
#include <initializer_list>
#include <string>
#include <variant>
#include <vector>

#include "addon/common/errors.h"

namespace soup::addon {

inline double Num(const Napi::Object& o, const char* k) {
  Napi::Value v = o.Get(k);
  if (!v.IsNumber()) ThrowType(o.Env(), std::string(k) + " must be a number");
  return v.As<Napi::Number>().DoubleValue();
}

inline bool Bool(const Napi::Object& o, const char* k) {
  Napi::Value v = o.Get(k);
  if (!v.IsBoolean()) ThrowType(o.Env(), std::string(k) + " must be a boolean");
  return v.As<Napi::Boolean>().Value();
}

inline std::string Str(const Napi::Object& o, const char* k) {
  Napi::Value v = o.Get(k);
  if (!v.IsString()) ThrowType(o.Env(), std::string(k) + " must be a string");
  return v.As<Napi::String>().Utf8Value();
}

// A baton field and the member it fills, read as the member's type; every field is required.
struct Field {
  const char* name;
  std::variant<double*, int64_t*, bool*, std::string*> to;
};

inline void ReadFields(const Napi::Object& o, std::initializer_list<Field> fields) {
  for (const Field& f : fields) {
    if (auto* d = std::get_if<double*>(&f.to))
      **d = Num(o, f.name);
    else if (auto* i = std::get_if<int64_t*>(&f.to))
      **i = int64_t(Num(o, f.name));
    else if (auto* b = std::get_if<bool*>(&f.to))
      **b = Bool(o, f.name);
    else
      **std::get_if<std::string*>(&f.to) = Str(o, f.name);
  }
}

// Optional fields whose absence means something (not a default of a setting): a seed to re-seed with,
// a weights map to start from.
inline bool Has(const Napi::Object& o, const char* k) {
  Napi::Value v = o.Get(k);
  return !v.IsUndefined() && !v.IsNull();
}

inline int64_t Int(const Napi::Value& v, const char* what) {
  if (!v.IsNumber()) ThrowType(v.Env(), std::string(what) + " must be a number");
  return v.As<Napi::Number>().Int64Value();
}

inline Napi::Object Obj(const Napi::Value& v, const std::string& what) {
  if (!v.IsObject()) ThrowType(v.Env(), what + " must be an object");
  return v.As<Napi::Object>();
}

// The bytes of a TypedArray or DataView, in place.
struct View {
  uint8_t* data;
  size_t bytes;
};

inline View ViewOf(Napi::Env env, const Napi::Value& v, const std::string& what) {
  if (v.IsDataView()) {
    auto dv = v.As<Napi::DataView>();
    return {static_cast<uint8_t*>(dv.ArrayBuffer().Data()) + dv.ByteOffset(), dv.ByteLength()};
  }
  if (!v.IsTypedArray()) ThrowType(env, what + " must be an ArrayBufferView");
  auto ta = v.As<Napi::TypedArray>();
  return {static_cast<uint8_t*>(ta.ArrayBuffer().Data()) + ta.ByteOffset(), ta.ByteLength()};
}

// o[field] as a TypedArray of kind T: its elements in place and their count.
template <napi_typedarray_type T, class E>
const E* TypedOf(Napi::Env env, const Napi::Object& o, const char* field, const char* type, size_t* len) {
  Napi::Value v = o.Get(field);
  if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != T) ThrowType(env, std::string(field) + " must be a " + type);
  auto ta = v.As<Napi::TypedArray>();
  *len = ta.ElementLength();
  return reinterpret_cast<const E*>(static_cast<uint8_t*>(ta.ArrayBuffer().Data()) + ta.ByteOffset());
}

inline Napi::Array ArrayOf(Napi::Env env, const Napi::Object& o, const char* field) {
  Napi::Value v = o.Get(field);
  if (!v.IsArray()) ThrowType(env, std::string(field) + " must be an array");
  return v.As<Napi::Array>();
}

// The shared cancel/progress slots of a long call: [0] cancel flag JS sets, [1] bytes done native adds to.
inline double* ControlOf(Napi::Env env, const Napi::Object& b) {
  if (!b.Has("control") || b.Get("control").IsUndefined()) return nullptr;
  size_t len = 0;
  const double* c = TypedOf<napi_float64_array, double>(env, b, "control", "Float64Array", &len);
  if (len < 2) ThrowType(env, "control must be a Float64Array of length >= 2 ([0] cancel flag, [1] bytes done)");
  return const_cast<double*>(c);
}

// Registers a binding's JS_ functions under their names.
struct Export {
  const char* name;
  Napi::Value (*fn)(const Napi::CallbackInfo&);
};
template <size_t N>
void ExportAll(Napi::Env env, Napi::Object exports, const Export (&fns)[N]) {
  for (const Export& f : fns) exports.Set(f.name, Napi::Function::New(env, f.fn, f.name));
}

}  // namespace soup::addon
