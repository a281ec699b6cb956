// SPDX-License-Identifier: MIT
// The file-merge baton, read alike by the CPU merge (core addon, mergeFiles) and the GPU one (torch
// addon, mergeFilesCuda); each then copies it into its own job type. Built by src/soup/merge.ts:
//   { files: string[], out, header?: Uint8Array, weights: Float64Array(N), windowBytes?, control?,
//     tensors: [{ name?, numel, inDtype, outDtype,
//                 srcFile: Int32Array(n), srcOffset: Float64Array(n), weights?: Float64Array(n) }
//              | { name?, numel, inDtype, outDtype, lowRank: { baseFile, baseOffset, rows, cols, rank, L, R } }] }
// n is the tensor's own weight count when it has `weights`, else N. Offsets and sizes are checked to be
// integers, file indices to be in range and dtype codes to be known, with the field path in the message.
#pragma once
#include <napi.h>

#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "addon/common/args.h"

namespace soup::addon {

struct MergeBatonLowRank {
  int32_t baseFile = -1;  // -1: no base (out = L·R)
  uint64_t baseOffset = 0, rows = 0, cols = 0, rank = 0;
  const float* L = nullptr;  // [rows, rank], in the baton's arrays (kept alive by the caller)
  const float* R = nullptr;  // [rank, cols]
};

struct MergeBatonTensor {
  std::string name;
  uint64_t numel = 0;
  int32_t inDtype = 0, outDtype = 0;
  std::vector<double> weights;  // this tensor's own λ; empty: the baton's
  std::vector<int32_t> srcFile;
  std::vector<uint64_t> srcOffset;
  bool lowRank = false;
  MergeBatonLowRank lr;
};

struct MergeBaton {
  std::vector<std::string> files;
  std::string out;
  std::vector<uint8_t> header;
  double windowBytes = 0;  // 0: the engine's default
  std::vector<MergeBatonTensor> tensors;
};

// A non-negative integer that a double holds exactly.
inline uint64_t U64Of(Napi::Env env, const Napi::Value& v, const std::string& what) {
  if (!v.IsNumber()) ThrowType(env, what + " must be a number");
  const double d = v.As<Napi::Number>().DoubleValue();
  if (!(d >= 0) || d != std::floor(d) || d > 9007199254740991.0) ThrowType(env, what + " must be a non-negative integer");
  return uint64_t(d);
}

inline void CheckDtypeCode(Napi::Env env, int32_t dt, const std::string& what) {
  if (dt < 0 || dt > 3) ThrowType(env, what + " = " + std::to_string(dt) + " is not a dtype code (0=float32, 1=float16, 2=bfloat16, 3=float64)");
}

// Reads the baton; nWeights is the length of its `weights`, which each caller reads with its own limits.
inline MergeBaton MergeBatonIn(Napi::Env env, const Napi::Object& b, size_t nWeights) {
  MergeBaton m;
  Napi::Array files = ArrayOf(env, b, "files");
  for (uint32_t f = 0; f < files.Length(); ++f) {
    if (!files.Get(f).IsString()) ThrowType(env, "files[" + std::to_string(f) + "] must be a string");
    m.files.push_back(files.Get(f).As<Napi::String>().Utf8Value());
  }
  if (!b.Get("out").IsString()) ThrowType(env, "out must be a string (the temporary output path)");
  m.out = b.Get("out").As<Napi::String>().Utf8Value();
  if (b.Has("header") && !b.Get("header").IsUndefined()) {
    View h = ViewOf(env, b.Get("header"), "header");
    m.header.assign(h.data, h.data + h.bytes);
  }
  if (b.Has("windowBytes") && !b.Get("windowBytes").IsUndefined()) {
    if (!b.Get("windowBytes").IsNumber()) ThrowType(env, "windowBytes must be a number");
    m.windowBytes = b.Get("windowBytes").As<Napi::Number>().DoubleValue();
    if (!(m.windowBytes >= 1)) ThrowType(env, "windowBytes must be >= 1");
  }
  Napi::Array ts = ArrayOf(env, b, "tensors");
  m.tensors.resize(ts.Length());
  for (uint32_t k = 0; k < ts.Length(); ++k) {
    const std::string what = "tensors[" + std::to_string(k) + "]";
    if (!ts.Get(k).IsObject()) ThrowType(env, what + " must be an object");
    Napi::Object o = ts.Get(k).As<Napi::Object>();
    MergeBatonTensor& t = m.tensors[k];
    t.name = o.Has("name") && o.Get("name").IsString() ? o.Get("name").As<Napi::String>().Utf8Value() : std::to_string(k);
    t.numel = U64Of(env, o.Get("numel"), what + ".numel");
    if (!o.Get("inDtype").IsNumber() || !o.Get("outDtype").IsNumber()) ThrowType(env, what + ".inDtype and .outDtype must be numbers");
    t.inDtype = o.Get("inDtype").As<Napi::Number>().Int32Value();
    t.outDtype = o.Get("outDtype").As<Napi::Number>().Int32Value();
    CheckDtypeCode(env, t.inDtype, what + ".inDtype");
    CheckDtypeCode(env, t.outDtype, what + ".outDtype");
    if (o.Has("lowRank") && o.Get("lowRank").IsObject()) {
      Napi::Object l = o.Get("lowRank").As<Napi::Object>();
      t.lowRank = true;
      if (!l.Get("baseFile").IsNumber()) ThrowType(env, what + ".lowRank.baseFile must be a number");
      t.lr.baseFile = l.Get("baseFile").As<Napi::Number>().Int32Value();
      if (t.lr.baseFile >= 0 && size_t(t.lr.baseFile) >= m.files.size())
        ThrowType(env, what + ".lowRank.baseFile = " + std::to_string(t.lr.baseFile) + " is not an index into files");
      t.lr.baseOffset = t.lr.baseFile >= 0 ? U64Of(env, l.Get("baseOffset"), what + ".lowRank.baseOffset") : 0;
      t.lr.rows = U64Of(env, l.Get("rows"), what + ".lowRank.rows");
      t.lr.cols = U64Of(env, l.Get("cols"), what + ".lowRank.cols");
      t.lr.rank = U64Of(env, l.Get("rank"), what + ".lowRank.rank");
      size_t nl = 0, nr = 0;
      t.lr.L = TypedOf<napi_float32_array, float>(env, l, "L", "Float32Array", &nl);
      t.lr.R = TypedOf<napi_float32_array, float>(env, l, "R", "Float32Array", &nr);
      if (nl != t.lr.rows * t.lr.rank || nr != t.lr.rank * t.lr.cols) ThrowType(env, "tensor '" + t.name + "': L/R sizes do not match rows/cols/rank");
      continue;
    }
    size_t n = nWeights;
    if (o.Has("weights") && !o.Get("weights").IsUndefined()) {
      const double* w = TypedOf<napi_float64_array, double>(env, o, "weights", "Float64Array", &n);
      t.weights.assign(w, w + n);
    }
    size_t nf = 0, no = 0;
    const int32_t* sf = TypedOf<napi_int32_array, int32_t>(env, o, "srcFile", "Int32Array", &nf);
    const double* so = TypedOf<napi_float64_array, double>(env, o, "srcOffset", "Float64Array", &no);
    if (nf != n || no != n) ThrowType(env, what + ".srcFile and .srcOffset must have one entry per source (" + std::to_string(n) + ")");
    for (size_t i = 0; i < n; ++i) {
      if (sf[i] < 0 || size_t(sf[i]) >= m.files.size())
        ThrowType(env, what + ".srcFile[" + std::to_string(i) + "] = " + std::to_string(sf[i]) + " is not an index into files");
      if (!(so[i] >= 0) || so[i] != std::floor(so[i])) ThrowType(env, what + ".srcOffset[" + std::to_string(i) + "] must be a non-negative integer");
      t.srcFile.push_back(sf[i]);
      t.srcOffset.push_back(uint64_t(so[i]));
    }
  }
  return m;
}

}  // namespace soup::addon
