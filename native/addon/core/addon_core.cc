// SPDX-License-Identifier: MIT
// soup_core.node: N-API bindings of the libtorch-free core. JS validates everything once (src/soup,
// src/io); this layer re-checks only what could corrupt memory (list lengths, byte lengths, dtype codes)
// and runs the work on a worker thread. Errors carry a "[ERR_SOUP_*]" prefix that src/errors.ts maps to
// SoupError codes; no C++ exception ever crosses into the JS engine unhandled.
#include <napi.h>
#include <sys/mman.h>

#include <cstdlib>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "core/cpu_features.h"
#include "core/dtype.h"
#include "core/interp.h"
#include "core/mapped_file.h"
#include "core/merge_files.h"

namespace {

using soup::Simd;

[[noreturn]] void argError(Napi::Env env, const std::string& msg) {
  throw Napi::TypeError::New(env, "[ERR_SOUP_INVALID_ARG] " + msg);
}

Simd parseSimd(Napi::Env env, const Napi::Object& o) {
  Simd best = soup::detectSimd();
  if (!o.Has("simd") || o.Get("simd").IsUndefined()) return best;
  std::string s = o.Get("simd").As<Napi::String>().Utf8Value();
  Simd want = s == "avx512" ? Simd::Avx512 : s == "avx2" ? Simd::Avx2 : s == "scalar" ? Simd::Scalar : best;
  if (s != "avx512" && s != "avx2" && s != "scalar") argError(env, "simd must be 'avx512', 'avx2' or 'scalar', got '" + s + "'");
  if (static_cast<int>(want) > static_cast<int>(best)) argError(env, "simd '" + s + "' is not supported by this CPU (best: " + soup::simdName(best) + ")");
  return want;
}

int parseThreads(const Napi::Object& o) {
  if (!o.Has("threads") || !o.Get("threads").IsNumber()) return 0;
  return o.Get("threads").As<Napi::Number>().Int32Value();
}

struct View {
  void* data;
  size_t bytes;
};

View viewOf(Napi::Env env, const Napi::Value& v, const std::string& what) {
  if (!v.IsTypedArray()) argError(env, what + " must be a TypedArray");
  auto ta = v.As<Napi::TypedArray>();
  auto ab = ta.ArrayBuffer();
  return {static_cast<uint8_t*>(ab.Data()) + ta.ByteOffset(), ta.ByteLength()};
}

double* controlSlots(Napi::Env env, const Napi::Object& o, std::vector<Napi::ObjectReference>& keep) {
  if (!o.Has("control") || o.Get("control").IsUndefined()) return nullptr;
  Napi::Value c = o.Get("control");
  if (!c.IsTypedArray() || c.As<Napi::TypedArray>().TypedArrayType() != napi_float64_array || c.As<Napi::TypedArray>().ElementLength() < 2)
    argError(env, "control must be a Float64Array of length >= 2");
  keep.push_back(Napi::Persistent(c.As<Napi::Object>()));
  return reinterpret_cast<double*>(viewOf(env, c, "control").data);
}

// A promise-returning worker: Run() on a worker thread, Result() back on the JS thread.
class PromiseWorker : public Napi::AsyncWorker {
 public:
  explicit PromiseWorker(Napi::Env env) : Napi::AsyncWorker(env), deferred_(Napi::Promise::Deferred::New(env)) {}
  Napi::Promise Promise() { return deferred_.Promise(); }
  std::vector<Napi::ObjectReference> keep;  // JS buffers that must outlive the work

 protected:
  virtual void Run() = 0;
  virtual Napi::Value Result(Napi::Env env) = 0;
  void Execute() override {
    try {
      Run();
    } catch (const std::exception& e) {
      SetError(e.what());
    } catch (...) {
      SetError("[ERR_SOUP_INTERNAL] unknown native error");
    }
  }
  void OnOK() override { deferred_.Resolve(Result(Env())); }
  void OnError(const Napi::Error& e) override { deferred_.Reject(e.Value()); }

 private:
  Napi::Promise::Deferred deferred_;
};

// ---- info / buffers ----------------------------------------------------------------------------

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

// mmapFile(path) -> ArrayBuffer over a copy-on-write mapping of the whole file (zero-copy reads).
Napi::Value JS_mmapFile(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsString()) argError(env, "mmapFile(path): path must be a string");
  try {
    soup::MappedFile f(info[0].As<Napi::String>().Utf8Value(), /*writable=*/true);
    size_t size = f.size();
    if (size == 0) return Napi::ArrayBuffer::New(env, 0);
    void* p = f.detach();
    return Napi::ArrayBuffer::New(env, p, size, [](Napi::Env, void* data, size_t* len) {
      munmap(data, *len);
      delete len;
    }, new size_t(size));
  } catch (const std::exception& e) {
    throw Napi::Error::New(env, e.what());
  }
}

// allocBuffer(bytes) -> 64-byte aligned external ArrayBuffer, not zero-filled (outputs are overwritten).
Napi::Value JS_allocBuffer(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsNumber()) argError(env, "allocBuffer(bytes): bytes must be a number");
  double d = info[0].As<Napi::Number>().DoubleValue();
  if (!(d >= 0) || d > 9.0e15) argError(env, "allocBuffer(bytes): bytes out of range");
  size_t n = static_cast<size_t>(d);
  if (n == 0) return Napi::ArrayBuffer::New(env, 0);
  void* p = nullptr;
  if (posix_memalign(&p, 64, n) != 0) throw Napi::Error::New(env, "[ERR_SOUP_OOM] cannot allocate " + std::to_string(n) + " bytes");
  Napi::MemoryManagement::AdjustExternalMemory(env, static_cast<int64_t>(n));
  return Napi::ArrayBuffer::New(env, p, n, [](Napi::Env env, void* data, size_t* len) {
    Napi::MemoryManagement::AdjustExternalMemory(env, -static_cast<int64_t>(*len));
    free(data);
    delete len;
  }, new size_t(n));
}

// ---- interpolate (in memory) -------------------------------------------------------------------

class InterpolateWorker : public PromiseWorker {
 public:
  using PromiseWorker::PromiseWorker;
  std::vector<std::vector<const void*>> ptrs;  // per tensor: N source pointers
  std::vector<soup::Segment> segs;
  std::unique_ptr<soup::Weights> weights;
  soup::InterpOptions opt;
  soup::Control ctl;
  double seconds = 0;
  double bytes = 0;

 protected:
  void Run() override {
    for (size_t k = 0; k < segs.size(); k++) segs[k].src = ptrs[k].data();
    auto t0 = std::chrono::steady_clock::now();
    soup::interpolateSegments(segs, *weights, opt, &ctl);
    seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  }
  Napi::Value Result(Napi::Env env) override {
    Napi::Object o = Napi::Object::New(env);
    o.Set("seconds", seconds);
    o.Set("bytes", bytes);
    o.Set("kernel", soup::simdName(opt.simd));
    o.Set("nonTemporal", opt.nonTemporal);
    return o;
  }
};

// interpolate({ sources: TypedArray[N][T], inDtypes: Int32Array(T), outs: TypedArray[T],
//               outDtypes: Int32Array(T), weights: Float64Array(N), threads?, simd?, nonTemporal?,
//               chunkElems?, control? }) -> Promise<{ seconds, bytes, kernel, nonTemporal }>
Napi::Value JS_interpolate(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsObject()) argError(env, "interpolate(baton): baton must be an object");
  Napi::Object b = info[0].As<Napi::Object>();
  auto* w = new InterpolateWorker(env);
  try {
    Napi::Array sources = b.Get("sources").As<Napi::Array>();
    Napi::Array outs = b.Get("outs").As<Napi::Array>();
    auto wv = viewOf(env, b.Get("weights"), "weights");
    auto inD = viewOf(env, b.Get("inDtypes"), "inDtypes");
    auto outD = viewOf(env, b.Get("outDtypes"), "outDtypes");
    const size_t n = wv.bytes / 8, t = outs.Length();
    if (n == 0) argError(env, "weights must not be empty");
    if (sources.Length() != n) argError(env, "sources has " + std::to_string(sources.Length()) + " entries, weights " + std::to_string(n));
    if (inD.bytes / 4 != t || outD.bytes / 4 != t) argError(env, "inDtypes/outDtypes must have one entry per output tensor");
    const double* wd = static_cast<const double*>(wv.data);
    w->weights = std::make_unique<soup::Weights>(std::vector<double>(wd, wd + n));
    const int32_t* ind = static_cast<const int32_t*>(inD.data);
    const int32_t* outd = static_cast<const int32_t*>(outD.data);
    std::vector<Napi::Array> srcLists;
    for (size_t i = 0; i < n; i++) {
      Napi::Array l = sources.Get(i).As<Napi::Array>();
      if (l.Length() != t) argError(env, "sources[" + std::to_string(i) + "] has " + std::to_string(l.Length()) + " tensors, expected " + std::to_string(t));
      srcLists.push_back(l);
    }
    w->segs.resize(t);
    w->ptrs.resize(t);
    size_t totalOut = 0;
    for (size_t k = 0; k < t; k++) {
      if (!soup::validDType(ind[k]) || !soup::validDType(outd[k])) argError(env, "tensor " + std::to_string(k) + ": bad dtype code");
      auto ov = viewOf(env, outs.Get(k), "outs[" + std::to_string(k) + "]");
      size_t count = ov.bytes / soup::dtypeSize(outd[k]);
      if (count * soup::dtypeSize(outd[k]) != ov.bytes) argError(env, "outs[" + std::to_string(k) + "]: byte length is not a multiple of the dtype size");
      w->ptrs[k].resize(n);
      for (size_t i = 0; i < n; i++) {
        Napi::Value sv = srcLists[i].Get(k);
        auto v = viewOf(env, sv, "sources[" + std::to_string(i) + "][" + std::to_string(k) + "]");
        if (v.bytes != count * soup::dtypeSize(ind[k]))
          argError(env, "sources[" + std::to_string(i) + "][" + std::to_string(k) + "]: " + std::to_string(v.bytes) + " bytes, expected " +
                            std::to_string(count * soup::dtypeSize(ind[k])));
        w->ptrs[k][i] = v.data;
        w->bytes += static_cast<double>(v.bytes);
      }
      w->segs[k].inDtype = ind[k];
      w->segs[k].outDtype = outd[k];
      w->segs[k].out = ov.data;
      w->segs[k].count = count;
      w->bytes += static_cast<double>(ov.bytes);
      totalOut += ov.bytes;
    }
    w->opt.simd = parseSimd(env, b);
    w->opt.threads = parseThreads(b);
    if (b.Has("chunkElems") && b.Get("chunkElems").IsNumber()) w->opt.chunkElems = static_cast<size_t>(b.Get("chunkElems").As<Napi::Number>().Int64Value());
    // Streaming stores pay off once the output no longer fits in the last-level cache.
    Napi::Value nt = b.Get("nonTemporal");
    w->opt.nonTemporal = nt.IsBoolean() ? nt.As<Napi::Boolean>().Value() : totalOut >= (size_t{32} << 20);
    w->ctl.slots = controlSlots(env, b, w->keep);
    // One reference to the baton keeps every source and output array alive until the work is done
    // (the baton is private to src/soup/interpolate.ts and never mutated); a reference per array cost
    // ~10 µs per tensor, which dominated calls with hundreds of small LoRA tensors.
    w->keep.push_back(Napi::Persistent(b));
  } catch (...) {
    delete w;
    throw;
  }
  w->Queue();
  return w->Promise();
}

// ---- mergeFiles (file to file) -----------------------------------------------------------------

class MergeFilesWorker : public PromiseWorker {
 public:
  using PromiseWorker::PromiseWorker;
  soup::MergeFilesJob job;
  soup::Control ctl;
  soup::MergeFilesResult res;

 protected:
  void Run() override { res = soup::mergeFiles(job, &ctl); }
  Napi::Value Result(Napi::Env env) override {
    Napi::Object o = Napi::Object::New(env);
    o.Set("seconds", res.seconds);
    o.Set("readSeconds", res.readSeconds);
    o.Set("kernelSeconds", res.kernelSeconds);
    o.Set("writeSeconds", res.writeSeconds);
    o.Set("bytesRead", res.bytesRead);
    o.Set("bytesWritten", res.bytesWritten);
    o.Set("kernel", soup::simdName(job.opt.simd));
    return o;
  }
};

uint64_t toU64(Napi::Env env, const Napi::Value& v, const std::string& what) {
  if (!v.IsNumber()) argError(env, what + " must be a number");
  double d = v.As<Napi::Number>().DoubleValue();
  if (!(d >= 0) || d > 9.007199254740992e15 || d != static_cast<double>(static_cast<uint64_t>(d))) argError(env, what + " must be a non-negative integer");
  return static_cast<uint64_t>(d);
}

// mergeFiles({ files, out, header: Uint8Array, weights: Float64Array, tensors: [...], windowBytes?,
//              threads?, simd?, control? }) -> Promise<{ seconds, kernelSeconds, writeSeconds, bytesRead, bytesWritten, kernel }>
// tensors[k]: { name, numel, inDtype, outDtype, srcFile: Int32Array(N), srcOffset: Float64Array(N) }
//          or { name, numel, inDtype, outDtype, lowRank: { baseFile, baseOffset, rows, cols, rank, L: Float32Array, R: Float32Array } }
Napi::Value JS_mergeFiles(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsObject()) argError(env, "mergeFiles(baton): baton must be an object");
  Napi::Object b = info[0].As<Napi::Object>();
  auto* w = new MergeFilesWorker(env);
  try {
    auto& job = w->job;
    Napi::Array files = b.Get("files").As<Napi::Array>();
    for (uint32_t i = 0; i < files.Length(); i++) job.files.push_back(files.Get(i).As<Napi::String>().Utf8Value());
    job.out = b.Get("out").As<Napi::String>().Utf8Value();
    auto hv = viewOf(env, b.Get("header"), "header");
    job.header.assign(static_cast<uint8_t*>(hv.data), static_cast<uint8_t*>(hv.data) + hv.bytes);
    auto wv = viewOf(env, b.Get("weights"), "weights");
    const double* wd = static_cast<const double*>(wv.data);
    job.weights.assign(wd, wd + wv.bytes / 8);
    Napi::Array ts = b.Get("tensors").As<Napi::Array>();
    job.tensors.resize(ts.Length());
    for (uint32_t k = 0; k < ts.Length(); k++) {
      Napi::Object o = ts.Get(k).As<Napi::Object>();
      soup::FileTensor& t = job.tensors[k];
      t.name = o.Has("name") ? o.Get("name").As<Napi::String>().Utf8Value() : std::to_string(k);
      t.numel = toU64(env, o.Get("numel"), "tensors[" + t.name + "].numel");
      t.inDtype = o.Get("inDtype").As<Napi::Number>().Int32Value();
      t.outDtype = o.Get("outDtype").As<Napi::Number>().Int32Value();
      if (o.Has("lowRank") && o.Get("lowRank").IsObject()) {
        Napi::Object lr = o.Get("lowRank").As<Napi::Object>();
        t.kind = soup::FileTensor::LowRankUpdate;
        t.baseFile = lr.Get("baseFile").As<Napi::Number>().Int32Value();
        t.baseOffset = t.baseFile >= 0 ? toU64(env, lr.Get("baseOffset"), "baseOffset") : 0;
        t.rows = toU64(env, lr.Get("rows"), "rows");
        t.cols = toU64(env, lr.Get("cols"), "cols");
        t.rank = toU64(env, lr.Get("rank"), "rank");
        auto lv = viewOf(env, lr.Get("L"), "L");
        auto rv = viewOf(env, lr.Get("R"), "R");
        if (lv.bytes != t.rows * t.rank * 4 || rv.bytes != t.rank * t.cols * 4) argError(env, "tensor '" + t.name + "': L/R sizes do not match rows/cols/rank");
        t.L = static_cast<const float*>(lv.data);
        t.R = static_cast<const float*>(rv.data);
        w->keep.push_back(Napi::Persistent(lr.Get("L").As<Napi::Object>()));
        w->keep.push_back(Napi::Persistent(lr.Get("R").As<Napi::Object>()));
      } else {
        size_t n = job.weights.size();
        if (o.Has("weights") && !o.Get("weights").IsUndefined()) {
          auto tw = viewOf(env, o.Get("weights"), "tensors[" + t.name + "].weights");
          const double* p = static_cast<const double*>(tw.data);
          t.weights.assign(p, p + tw.bytes / 8);
          n = t.weights.size();
        }
        auto fv = viewOf(env, o.Get("srcFile"), "srcFile");
        auto ov = viewOf(env, o.Get("srcOffset"), "srcOffset");
        if (fv.bytes / 4 != n || ov.bytes / 8 != n) argError(env, "tensor '" + t.name + "': srcFile/srcOffset need one entry per weight");
        const int32_t* f = static_cast<const int32_t*>(fv.data);
        const double* off = static_cast<const double*>(ov.data);
        t.srcFile.assign(f, f + n);
        for (size_t i = 0; i < n; i++) t.srcOffset.push_back(static_cast<uint64_t>(off[i]));
      }
    }
    if (b.Has("windowBytes") && b.Get("windowBytes").IsNumber()) job.windowBytes = static_cast<size_t>(b.Get("windowBytes").As<Napi::Number>().Int64Value());
    job.opt.simd = parseSimd(env, b);
    job.opt.threads = parseThreads(b);
    job.opt.nonTemporal = false;  // the window is re-read at once by write(): keep it in cache
    w->ctl.slots = controlSlots(env, b, w->keep);
  } catch (const Napi::Error&) {
    delete w;
    throw;
  } catch (const std::exception& e) {
    delete w;
    throw Napi::Error::New(env, e.what());
  }
  w->Queue();
  return w->Promise();
}

// ---- bandwidth probe ---------------------------------------------------------------------------

class ProbeWorker : public PromiseWorker {
 public:
  using PromiseWorker::PromiseWorker;
  size_t n = 0;
  int reps = 1;
  soup::InterpOptions opt;
  std::vector<double> times;

 protected:
  void Run() override {
    float *a = nullptr, *b = nullptr, *c = nullptr;
    if (posix_memalign(reinterpret_cast<void**>(&a), 64, n * 4) || posix_memalign(reinterpret_cast<void**>(&b), 64, n * 4) ||
        posix_memalign(reinterpret_cast<void**>(&c), 64, n * 4))
      throw std::runtime_error("[ERR_SOUP_OOM] bandwidth probe: cannot allocate");
    std::unique_ptr<float, decltype(&free)> ga(a, free), gb(b, free), gc(c, free);
    for (size_t i = 0; i < n; i++) { a[i] = 0.f; b[i] = 1.0f + static_cast<float>(i & 7); c[i] = 0.5f; }  // first touch outside timing
    soup::bandwidthTriad(a, b, c, n, 1, opt);  // warm-up
    for (int r = 0; r < reps; r++) times.push_back(soup::bandwidthTriad(a, b, c, n, 1, opt));
  }
  Napi::Value Result(Napi::Env env) override {
    Napi::Object o = Napi::Object::New(env);
    Napi::Array t = Napi::Array::New(env, times.size());
    for (size_t i = 0; i < times.size(); i++) t.Set(i, times[i]);
    o.Set("seconds", t);
    o.Set("bytesPerRep", static_cast<double>(n) * 12.0);  // read b, c; write a
    o.Set("kernel", soup::simdName(opt.simd));
    return o;
  }
};

// bandwidthProbe({ bytes, reps, threads?, simd?, nonTemporal? }): triad a = b + s·c over three arrays
// of `bytes` each, with the merge kernels' thread pool and store policy.
Napi::Value JS_bandwidthProbe(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsObject()) argError(env, "bandwidthProbe(opts): opts must be an object");
  Napi::Object b = info[0].As<Napi::Object>();
  auto* w = new ProbeWorker(env);
  try {
    w->n = static_cast<size_t>(toU64(env, b.Get("bytes"), "bytes") / 4);
    w->reps = b.Has("reps") ? b.Get("reps").As<Napi::Number>().Int32Value() : 5;
    w->opt.simd = parseSimd(env, b);
    w->opt.threads = parseThreads(b);
    Napi::Value nt = b.Get("nonTemporal");
    w->opt.nonTemporal = nt.IsBoolean() ? nt.As<Napi::Boolean>().Value() : true;
  } catch (...) {
    delete w;
    throw;
  }
  w->Queue();
  return w->Promise();
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("info", Napi::Function::New(env, JS_info));
  exports.Set("mmapFile", Napi::Function::New(env, JS_mmapFile));
  exports.Set("allocBuffer", Napi::Function::New(env, JS_allocBuffer));
  exports.Set("interpolate", Napi::Function::New(env, JS_interpolate));
  exports.Set("mergeFiles", Napi::Function::New(env, JS_mergeFiles));
  exports.Set("bandwidthProbe", Napi::Function::New(env, JS_bandwidthProbe));
  return exports;
}

}  // namespace

NODE_API_MODULE(soup_core, Init)
