// SPDX-License-Identifier: MIT
// JS face of the CUDA kernels (native/cuda), registered into soup_torch.node through RegisterCuda.
//   interpolateCuda(baton) -> Promise<{ seconds, kernel }>
//   mergeFilesCuda(baton)  -> Promise<{ seconds, bytesRead, bytesWritten, kernel }>
//   cudaInfo()             -> { compiled, devices, reason, device }
//   cudaResidentCreate / cudaResidentRun / cudaResidentFree: sources kept on the GPU for a lambda sweep
// Batons are checked by TS (src/native/cuda.ts, src/soup); this file re-checks only what could corrupt
// memory: list lengths, byte lengths against numel x dtype size, dtype codes, index ranges. Built only
// when native/cuda is (SOUP_HAVE_CUDA); otherwise the weak hooks in register.h stay null.
#ifdef SOUP_HAVE_CUDA
#include <napi.h>

#include <chrono>
#include <cmath>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "addon/torch/register.h"
#include "cuda/soup_cuda.h"

namespace {

namespace sc = soup::cuda;

[[noreturn]] void argError(Napi::Env env, const std::string& msg) {
  throw Napi::TypeError::New(env, "[ERR_SOUP_INVALID_ARG] " + msg);
}

struct View {
  uint8_t* data;
  size_t bytes;
};

View viewOf(Napi::Env env, const Napi::Value& v, const std::string& what) {
  if (!v.IsTypedArray() && !v.IsDataView()) argError(env, what + " must be an ArrayBufferView");
  if (v.IsDataView()) {
    auto dv = v.As<Napi::DataView>();
    return {static_cast<uint8_t*>(dv.ArrayBuffer().Data()) + dv.ByteOffset(), dv.ByteLength()};
  }
  auto ta = v.As<Napi::TypedArray>();
  return {static_cast<uint8_t*>(ta.ArrayBuffer().Data()) + ta.ByteOffset(), ta.ByteLength()};
}

template <napi_typedarray_type T, class E>
const E* typedOf(Napi::Env env, const Napi::Object& o, const char* field, const char* type, size_t* len) {
  Napi::Value v = o.Get(field);
  if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != T) argError(env, std::string(field) + " must be a " + type);
  auto ta = v.As<Napi::TypedArray>();
  *len = ta.ElementLength();
  return reinterpret_cast<const E*>(static_cast<uint8_t*>(ta.ArrayBuffer().Data()) + ta.ByteOffset());
}

Napi::Array arrayOf(Napi::Env env, const Napi::Object& o, const char* field) {
  Napi::Value v = o.Get(field);
  if (!v.IsArray()) argError(env, std::string(field) + " must be an array");
  return v.As<Napi::Array>();
}

void checkDtype(Napi::Env env, int dt, const std::string& what) {
  if (dt < 0 || dt > 3) argError(env, what + " = " + std::to_string(dt) + " is not a dtype code (0=float32, 1=float16, 2=bfloat16, 3=float64)");
}

// A promise-returning worker: Run() on a libuv pool thread, Result() back on the JS thread.
class PromiseWorker : public Napi::AsyncWorker {
 public:
  explicit PromiseWorker(Napi::Env env) : Napi::AsyncWorker(env), deferred_(Napi::Promise::Deferred::New(env)) {}
  Napi::Promise Promise() { return deferred_.Promise(); }
  Napi::ObjectReference baton;  // keeps every buffer the work touches alive
  sc::RunStats stats;
  double* control = nullptr;

 protected:
  virtual void Run() = 0;
  virtual void Fill(Napi::Object& o) {}
  void Execute() override {
    try {
      Run();
    } catch (const std::exception& e) {
      SetError(e.what());
    } catch (...) {
      SetError("[ERR_SOUP_INTERNAL] unknown native error in a CUDA call");
    }
  }
  void OnOK() override {
    Napi::Object o = Napi::Object::New(Env());
    o.Set("seconds", stats.seconds);
    o.Set("kernel", stats.kernel);
    Fill(o);
    deferred_.Resolve(o);
  }
  void OnError(const Napi::Error& e) override { deferred_.Reject(e.Value()); }
  sc::Progress progress() const {
    sc::Progress p;
    if (control) {
      p.cancel = control;
      p.bytesDone = control + 1;
    }
    return p;
  }

 private:
  Napi::Promise::Deferred deferred_;
};

double* controlOf(Napi::Env env, const Napi::Object& b) {
  if (!b.Has("control") || b.Get("control").IsUndefined()) return nullptr;
  size_t len = 0;
  const double* c = typedOf<napi_float64_array, double>(env, b, "control", "Float64Array", &len);
  if (len < 2) argError(env, "control must be a Float64Array of length >= 2 ([0] cancel flag, [1] bytes done)");
  return const_cast<double*>(c);
}

std::vector<double> weightsOf(Napi::Env env, const Napi::Object& b) {
  size_t n = 0;
  const double* w = typedOf<napi_float64_array, double>(env, b, "weights", "Float64Array", &n);
  if (n < 1 || n > size_t(sc::kMaxSources))
    argError(env, "weights has " + std::to_string(n) + " entries; the CUDA kernel takes 1.." + std::to_string(sc::kMaxSources) + " sources");
  for (size_t i = 0; i < n; ++i)
    if (!std::isfinite(w[i])) throw Napi::RangeError::New(env, "[ERR_SOUP_WEIGHTS] weights[" + std::to_string(i) + "] is not finite");
  return std::vector<double>(w, w + n);
}

// ---- interpolateCuda ----------------------------------------------------------------------------

class InterpolateWorker : public PromiseWorker {
 public:
  using PromiseWorker::PromiseWorker;
  std::vector<std::vector<const void*>> srcPtrs;  // [T][N]
  std::vector<sc::HostTensor> tensors;
  std::vector<double> weights;

 protected:
  void Run() override {
    for (size_t t = 0; t < tensors.size(); ++t) tensors[t].srcs = srcPtrs[t].data();
    stats = sc::interpolateHost(tensors, weights.data(), int(weights.size()), progress());
  }
};

Napi::Value JS_interpolateCuda(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsObject()) argError(env, "interpolateCuda(baton): baton must be an object");
  Napi::Object b = info[0].As<Napi::Object>();
  auto* w = new InterpolateWorker(env);
  Napi::Promise promise = w->Promise();
  try {
    w->weights = weightsOf(env, b);
    const size_t n = w->weights.size();
    Napi::Array sources = arrayOf(env, b, "sources");
    Napi::Array outs = arrayOf(env, b, "outs");
    size_t nIn = 0, nOut = 0;
    const int32_t* inDt = typedOf<napi_int32_array, int32_t>(env, b, "inDtypes", "Int32Array", &nIn);
    const int32_t* outDt = typedOf<napi_int32_array, int32_t>(env, b, "outDtypes", "Int32Array", &nOut);
    const size_t T = outs.Length();
    if (sources.Length() != n)
      argError(env, "sources has " + std::to_string(sources.Length()) + " lists but weights has " + std::to_string(n) + " entries");
    if (nIn != T || nOut != T)
      argError(env, "inDtypes (" + std::to_string(nIn) + ") and outDtypes (" + std::to_string(nOut) + ") must have one entry per output (" +
                        std::to_string(T) + ")");
    w->srcPtrs.assign(T, std::vector<const void*>(n));
    w->tensors.resize(T);
    for (size_t t = 0; t < T; ++t) {
      checkDtype(env, inDt[t], "inDtypes[" + std::to_string(t) + "]");
      checkDtype(env, outDt[t], "outDtypes[" + std::to_string(t) + "]");
      View o = viewOf(env, outs.Get(uint32_t(t)), "outs[" + std::to_string(t) + "]");
      const size_t os = sc::dtypeSize(outDt[t]);
      if (o.bytes % os) argError(env, "outs[" + std::to_string(t) + "] has " + std::to_string(o.bytes) + " bytes, not a multiple of " + std::to_string(os));
      const int64_t numel = int64_t(o.bytes / os);
      w->tensors[t] = sc::HostTensor{nullptr, o.data, numel, inDt[t], outDt[t]};
    }
    for (size_t i = 0; i < n; ++i) {
      Napi::Value li = sources.Get(uint32_t(i));
      if (!li.IsArray() || li.As<Napi::Array>().Length() != T)
        argError(env, "sources[" + std::to_string(i) + "] must be an array of " + std::to_string(T) + " tensors (one per output)");
      Napi::Array l = li.As<Napi::Array>();
      for (size_t t = 0; t < T; ++t) {
        const std::string what = "sources[" + std::to_string(i) + "][" + std::to_string(t) + "]";
        View s = viewOf(env, l.Get(uint32_t(t)), what);
        const size_t want = size_t(w->tensors[t].numel) * sc::dtypeSize(inDt[t]);
        if (s.bytes != want)
          throw Napi::RangeError::New(env, "[ERR_SOUP_SHAPE_MISMATCH] " + what + " has " + std::to_string(s.bytes) + " bytes; outs[" + std::to_string(t) +
                                               "] holds " + std::to_string(w->tensors[t].numel) + " elements, so " + std::to_string(want) +
                                               " bytes of " + sc::dtypeName(inDt[t]) + " were expected");
        w->srcPtrs[t][i] = s.data;
      }
    }
    w->control = controlOf(env, b);
    w->baton = Napi::Persistent(b);
  } catch (const Napi::Error& e) {
    delete w;
    auto d = Napi::Promise::Deferred::New(env);
    d.Reject(e.Value());
    return d.Promise();
  }
  w->Queue();
  return promise;
}

// ---- mergeFilesCuda -----------------------------------------------------------------------------

class MergeWorker : public PromiseWorker {
 public:
  using PromiseWorker::PromiseWorker;
  std::vector<std::string> files;
  std::string out;
  std::vector<uint8_t> header;
  std::vector<sc::FileTensor> tensors;
  std::vector<double> weights;
  sc::PipelineOptions opt;

 protected:
  void Run() override {
    stats = sc::mergeFiles(files, out, header.data(), header.size(), tensors, weights.data(), int(weights.size()), progress(), opt);
  }
  void Fill(Napi::Object& o) override {
    o.Set("bytesRead", stats.bytesRead);
    o.Set("bytesWritten", stats.bytesWritten);
  }
};

Napi::Value JS_mergeFilesCuda(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsObject()) argError(env, "mergeFilesCuda(baton): baton must be an object");
  Napi::Object b = info[0].As<Napi::Object>();
  auto* w = new MergeWorker(env);
  Napi::Promise promise = w->Promise();
  try {
    w->weights = weightsOf(env, b);
    const size_t n = w->weights.size();
    Napi::Array files = arrayOf(env, b, "files");
    for (uint32_t f = 0; f < files.Length(); ++f) {
      if (!files.Get(f).IsString()) argError(env, "files[" + std::to_string(f) + "] must be a string");
      w->files.push_back(files.Get(f).As<Napi::String>().Utf8Value());
    }
    if (!b.Get("out").IsString()) argError(env, "out must be a string (the temporary output path)");
    w->out = b.Get("out").As<Napi::String>().Utf8Value();
    if (b.Has("header") && !b.Get("header").IsUndefined()) {
      View h = viewOf(env, b.Get("header"), "header");
      w->header.assign(h.data, h.data + h.bytes);
    }
    if (b.Has("windowBytes") && !b.Get("windowBytes").IsUndefined()) {
      if (!b.Get("windowBytes").IsNumber()) argError(env, "windowBytes must be a number");
      const double wb = b.Get("windowBytes").As<Napi::Number>().DoubleValue();
      if (!(wb >= 1)) argError(env, "windowBytes must be >= 1");
      w->opt.windowBytes = int64_t(wb);
    }
    Napi::Array ts = arrayOf(env, b, "tensors");
    w->tensors.resize(ts.Length());
    for (uint32_t t = 0; t < ts.Length(); ++t) {
      const std::string what = "tensors[" + std::to_string(t) + "]";
      if (!ts.Get(t).IsObject()) argError(env, what + " must be an object");
      Napi::Object o = ts.Get(t).As<Napi::Object>();
      sc::FileTensor& ft = w->tensors[t];
      if (!o.Get("numel").IsNumber()) argError(env, what + ".numel must be a number");
      const double numel = o.Get("numel").As<Napi::Number>().DoubleValue();
      if (!(numel >= 0) || numel != std::floor(numel) || numel > 9007199254740991.0) argError(env, what + ".numel must be a non-negative integer");
      ft.numel = int64_t(numel);
      if (!o.Get("inDtype").IsNumber() || !o.Get("outDtype").IsNumber()) argError(env, what + ".inDtype and .outDtype must be numbers");
      ft.inDtype = o.Get("inDtype").As<Napi::Number>().Int32Value();
      ft.outDtype = o.Get("outDtype").As<Napi::Number>().Int32Value();
      checkDtype(env, ft.inDtype, what + ".inDtype");
      checkDtype(env, ft.outDtype, what + ".outDtype");
      size_t nf = 0, no = 0;
      const int32_t* sf = typedOf<napi_int32_array, int32_t>(env, o, "srcFile", "Int32Array", &nf);
      const double* so = typedOf<napi_float64_array, double>(env, o, "srcOffset", "Float64Array", &no);
      if (nf != n || no != n)
        argError(env, what + ".srcFile and .srcOffset must have one entry per source (" + std::to_string(n) + ")");
      for (size_t i = 0; i < n; ++i) {
        if (sf[i] < 0 || size_t(sf[i]) >= w->files.size())
          argError(env, what + ".srcFile[" + std::to_string(i) + "] = " + std::to_string(sf[i]) + " is not an index into files");
        if (!(so[i] >= 0) || so[i] != std::floor(so[i])) argError(env, what + ".srcOffset[" + std::to_string(i) + "] must be a non-negative integer");
        ft.srcFile[i] = sf[i];
        ft.srcOffset[i] = int64_t(so[i]);
      }
    }
    w->control = controlOf(env, b);
    w->baton = Napi::Persistent(b);
  } catch (const Napi::Error& e) {
    delete w;
    auto d = Napi::Promise::Deferred::New(env);
    d.Reject(e.Value());
    return d.Promise();
  }
  w->Queue();
  return promise;
}

// ---- resident sources (the lambda sweep) -----------------------------------------------------------
//   cudaResidentCreate({ sources, inDtypes, outDtypes }) -> Promise<{ id, deviceBytes, seconds }>
//   cudaResidentRun({ id, weights, outs, control? })     -> Promise<{ seconds, kernel }>
//   cudaResidentFree(id)                                  -> boolean (false when unknown)
// A run holds a reference to its Resident, so freeing during a run frees after it.

std::mutex residentsMu;
// Never destroyed: at process exit the CUDA runtime may already be gone; the OS reclaims everything.
std::map<uint32_t, std::shared_ptr<sc::Resident>>& residents = *new std::map<uint32_t, std::shared_ptr<sc::Resident>>;
uint32_t nextResident = 1;

class ResidentCreateWorker : public PromiseWorker {
 public:
  using PromiseWorker::PromiseWorker;
  std::vector<std::vector<const void*>> srcPtrs;
  std::vector<sc::HostTensor> tensors;
  int n = 0;
  uint32_t id = 0;
  double deviceBytes = 0;

 protected:
  void Run() override {
    const auto t0 = std::chrono::steady_clock::now();
    for (size_t t = 0; t < tensors.size(); ++t) tensors[t].srcs = srcPtrs[t].data();
    auto r = std::make_shared<sc::Resident>(tensors, n);
    deviceBytes = r->deviceBytes();
    std::lock_guard<std::mutex> lk(residentsMu);
    id = nextResident++;
    residents[id] = std::move(r);
    stats.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    stats.kernel = "upload";
  }
  void Fill(Napi::Object& o) override {
    o.Set("id", id);
    o.Set("deviceBytes", deviceBytes);
  }
};

Napi::Value JS_cudaResidentCreate(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsObject()) argError(env, "cudaResidentCreate(baton): baton must be an object");
  Napi::Object b = info[0].As<Napi::Object>();
  auto* w = new ResidentCreateWorker(env);
  Napi::Promise promise = w->Promise();
  try {
    Napi::Array sources = arrayOf(env, b, "sources");
    size_t nIn = 0, nOut = 0;
    const int32_t* inDt = typedOf<napi_int32_array, int32_t>(env, b, "inDtypes", "Int32Array", &nIn);
    const int32_t* outDt = typedOf<napi_int32_array, int32_t>(env, b, "outDtypes", "Int32Array", &nOut);
    const size_t n = sources.Length();
    if (n < 1 || n > size_t(sc::kMaxSources)) argError(env, "sources has " + std::to_string(n) + " lists; the CUDA kernel takes 1.." + std::to_string(sc::kMaxSources));
    if (nIn != nOut) argError(env, "inDtypes (" + std::to_string(nIn) + ") and outDtypes (" + std::to_string(nOut) + ") differ in length");
    const size_t T = nIn;
    w->n = int(n);
    w->srcPtrs.assign(T, std::vector<const void*>(n));
    w->tensors.resize(T);
    for (size_t t = 0; t < T; ++t) {
      checkDtype(env, inDt[t], "inDtypes[" + std::to_string(t) + "]");
      checkDtype(env, outDt[t], "outDtypes[" + std::to_string(t) + "]");
    }
    for (size_t i = 0; i < n; ++i) {
      Napi::Value li = sources.Get(uint32_t(i));
      if (!li.IsArray() || li.As<Napi::Array>().Length() != T)
        argError(env, "sources[" + std::to_string(i) + "] must be an array of " + std::to_string(T) + " tensors (one per dtype entry)");
      Napi::Array l = li.As<Napi::Array>();
      for (size_t t = 0; t < T; ++t) {
        const std::string what = "sources[" + std::to_string(i) + "][" + std::to_string(t) + "]";
        View v = viewOf(env, l.Get(uint32_t(t)), what);
        const size_t is = sc::dtypeSize(inDt[t]);
        if (v.bytes % is) argError(env, what + " has " + std::to_string(v.bytes) + " bytes, not a multiple of " + std::to_string(is));
        const int64_t numel = int64_t(v.bytes / is);
        if (i == 0) w->tensors[t] = sc::HostTensor{nullptr, nullptr, numel, inDt[t], outDt[t]};
        else if (numel != w->tensors[t].numel)
          throw Napi::RangeError::New(env, "[ERR_SOUP_SHAPE_MISMATCH] " + what + " has " + std::to_string(numel) + " elements; sources[0][" +
                                               std::to_string(t) + "] has " + std::to_string(w->tensors[t].numel));
        w->srcPtrs[t][i] = v.data;
      }
    }
    w->baton = Napi::Persistent(b);
  } catch (const Napi::Error& e) {
    delete w;
    auto d = Napi::Promise::Deferred::New(env);
    d.Reject(e.Value());
    return d.Promise();
  }
  w->Queue();
  return promise;
}

class ResidentRunWorker : public PromiseWorker {
 public:
  using PromiseWorker::PromiseWorker;
  std::shared_ptr<sc::Resident> res;
  std::vector<double> weights;
  std::vector<void*> outs;

 protected:
  void Run() override {
    if (control && control[0] != 0) throw std::runtime_error("[ERR_SOUP_ABORTED] CUDA interpolation cancelled");
    stats = res->run(weights.data(), outs);
    if (control) control[1] += stats.bytesWritten;
  }
};

Napi::Value JS_cudaResidentRun(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsObject()) argError(env, "cudaResidentRun(baton): baton must be an object");
  Napi::Object b = info[0].As<Napi::Object>();
  auto* w = new ResidentRunWorker(env);
  Napi::Promise promise = w->Promise();
  try {
    if (!b.Get("id").IsNumber()) argError(env, "id must be a number (from cudaResidentCreate)");
    const uint32_t id = b.Get("id").As<Napi::Number>().Uint32Value();
    {
      std::lock_guard<std::mutex> lk(residentsMu);
      auto it = residents.find(id);
      if (it == residents.end()) argError(env, "id " + std::to_string(id) + " is not a live resident soup (freed, or never created)");
      w->res = it->second;
    }
    w->weights = weightsOf(env, b);
    if (int(w->weights.size()) != w->res->sources())
      throw Napi::RangeError::New(env, "[ERR_SOUP_WEIGHTS] " + std::to_string(w->weights.size()) + " weights for " + std::to_string(w->res->sources()) + " resident sources");
    Napi::Array outs = arrayOf(env, b, "outs");
    if (outs.Length() != w->res->tensors())
      argError(env, "outs has " + std::to_string(outs.Length()) + " tensors; the resident soup has " + std::to_string(w->res->tensors()));
    for (uint32_t t = 0; t < outs.Length(); ++t) {
      const std::string what = "outs[" + std::to_string(t) + "]";
      View o = viewOf(env, outs.Get(t), what);
      const size_t want = size_t(w->res->numel(t)) * sc::dtypeSize(w->res->outDtype(t));
      if (o.bytes != want)
        throw Napi::RangeError::New(env, "[ERR_SOUP_SHAPE_MISMATCH] " + what + " has " + std::to_string(o.bytes) + " bytes; " + std::to_string(want) + " bytes of " +
                                             sc::dtypeName(w->res->outDtype(t)) + " expected");
      w->outs.push_back(o.data);
    }
    w->control = controlOf(env, b);
    w->baton = Napi::Persistent(b);
  } catch (const Napi::Error& e) {
    delete w;
    auto d = Napi::Promise::Deferred::New(env);
    d.Reject(e.Value());
    return d.Promise();
  }
  w->Queue();
  return promise;
}

Napi::Value JS_cudaResidentFree(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsNumber()) argError(env, "cudaResidentFree(id): id must be a number");
  std::shared_ptr<sc::Resident> dying;  // destroyed outside the lock (it waits for its stream)
  {
    std::lock_guard<std::mutex> lk(residentsMu);
    auto it = residents.find(info[0].As<Napi::Number>().Uint32Value());
    if (it == residents.end()) return Napi::Boolean::New(env, false);
    dying = std::move(it->second);
    residents.erase(it);
  }
  return Napi::Boolean::New(env, true);
}

Napi::Value JS_cudaInfo(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object o = Napi::Object::New(env);
  o.Set("compiled", sc::compiled());
  o.Set("devices", sc::deviceCount());
  o.Set("reason", sc::noDeviceReason());
  std::string dev;
  try {
    dev = sc::deviceSummary();
  } catch (const std::exception& e) {
    dev = std::string("(query failed: ") + e.what() + ")";
  }
  o.Set("device", dev);
  o.Set("maxSources", sc::kMaxSources);
  o.Set("chunkElements", double(sc::kChunk));
  return o;
}

}  // namespace

bool SoupCudaCompiled() { return sc::compiled(); }
int SoupCudaDeviceCount() { return sc::deviceCount(); }

void RegisterCuda(Napi::Env env, Napi::Object exports) {
  exports.Set("interpolateCuda", Napi::Function::New(env, JS_interpolateCuda, "interpolateCuda"));
  exports.Set("mergeFilesCuda", Napi::Function::New(env, JS_mergeFilesCuda, "mergeFilesCuda"));
  exports.Set("cudaInfo", Napi::Function::New(env, JS_cudaInfo, "cudaInfo"));
  exports.Set("cudaResidentCreate", Napi::Function::New(env, JS_cudaResidentCreate, "cudaResidentCreate"));
  exports.Set("cudaResidentRun", Napi::Function::New(env, JS_cudaResidentRun, "cudaResidentRun"));
  exports.Set("cudaResidentFree", Napi::Function::New(env, JS_cudaResidentFree, "cudaResidentFree"));
}

#endif  // SOUP_HAVE_CUDA
