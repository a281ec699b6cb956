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

#include "addon/common/args.h"
#include "addon/common/merge_baton.h"
#include "addon/common/promise_worker.h"
#include "addon/torch/register.h"
#include "cuda/soup_cuda.h"

namespace {

namespace sc = soup::cuda;

using soup::addon::ArrayOf;
using soup::addon::QueueParsed;
using soup::addon::View;
using soup::addon::ViewOf;

[[noreturn]] void argError(Napi::Env env, const std::string& msg) { soup::addon::ThrowType(env, msg); }

template <napi_typedarray_type T, class E>
const E* typedOf(Napi::Env env, const Napi::Object& o, const char* field, const char* type, size_t* len) {
  return soup::addon::TypedOf<T, E>(env, o, field, type, len);
}

void checkDtype(Napi::Env env, int dt, const std::string& what) { soup::addon::CheckDtypeCode(env, dt, what); }

// A CUDA call's worker: resolves to { seconds, kernel } and what Fill() adds; `control` is the baton's.
class PromiseWorker : public soup::addon::PromiseWorker {
 public:
  explicit PromiseWorker(Napi::Env env) : soup::addon::PromiseWorker(env, "[ERR_SOUP_INTERNAL] unknown native error in a CUDA call") {}
  sc::RunStats stats;
  double* control = nullptr;

 protected:
  virtual void Fill(Napi::Object& o) {}
  Napi::Value Result(Napi::Env env) override {
    Napi::Object o = Napi::Object::New(env);
    o.Set("seconds", stats.seconds);
    o.Set("kernel", stats.kernel);
    Fill(o);
    return o;
  }
  sc::Progress progress() const {
    sc::Progress p;
    if (control) {
      p.cancel = control;
      p.bytesDone = control + 1;
    }
    return p;
  }
};

double* controlOf(Napi::Env env, const Napi::Object& b) { return soup::addon::ControlOf(env, b); }

std::vector<double> weightsOf(Napi::Env env, const Napi::Object& b) {
  size_t n = 0;
  const double* w = typedOf<napi_float64_array, double>(env, b, "weights", "Float64Array", &n);
  if (n < 1 || n > size_t(sc::kMaxSources))
    argError(env, "weights has " + std::to_string(n) + " entries; the CUDA kernel takes 1.." + std::to_string(sc::kMaxSources) + " sources");
  for (size_t i = 0; i < n; ++i)
    if (!std::isfinite(w[i])) throw Napi::RangeError::New(env, "[ERR_SOUP_WEIGHTS] weights[" + std::to_string(i) + "] is not finite");
  return std::vector<double>(w, w + n);
}

// sources[i][t] for every source list i (each of T views, one per `per`), in order.
template <class F>
void ForEachSource(Napi::Env env, const Napi::Array& sources, size_t T, const char* per, F each) {
  for (size_t i = 0; i < sources.Length(); ++i) {
    Napi::Value li = sources.Get(uint32_t(i));
    if (!li.IsArray() || li.As<Napi::Array>().Length() != T)
      argError(env, "sources[" + std::to_string(i) + "] must be an array of " + std::to_string(T) + " tensors (one per " + per + ")");
    Napi::Array l = li.As<Napi::Array>();
    for (size_t t = 0; t < T; ++t) {
      const std::string what = "sources[" + std::to_string(i) + "][" + std::to_string(t) + "]";
      each(i, t, what, ViewOf(env, l.Get(uint32_t(t)), what));
    }
  }
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
  return QueueParsed<InterpolateWorker>(
      info, "interpolateCuda(baton): baton", soup::addon::BadBaton::Reject, [](Napi::Env env, const Napi::Object& b, InterpolateWorker* w) {
        w->weights = weightsOf(env, b);
        const size_t n = w->weights.size();
        Napi::Array sources = ArrayOf(env, b, "sources");
        Napi::Array outs = ArrayOf(env, b, "outs");
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
          View o = ViewOf(env, outs.Get(uint32_t(t)), "outs[" + std::to_string(t) + "]");
          const size_t os = sc::dtypeSize(outDt[t]);
          if (o.bytes % os) argError(env, "outs[" + std::to_string(t) + "] has " + std::to_string(o.bytes) + " bytes, not a multiple of " + std::to_string(os));
          const int64_t numel = int64_t(o.bytes / os);
          w->tensors[t] = sc::HostTensor{nullptr, o.data, numel, inDt[t], outDt[t]};
        }
        ForEachSource(env, sources, T, "output", [&](size_t i, size_t t, const std::string& what, View s) {
          const size_t want = size_t(w->tensors[t].numel) * sc::dtypeSize(inDt[t]);
          if (s.bytes != want)
            throw Napi::RangeError::New(env, "[ERR_SOUP_SHAPE_MISMATCH] " + what + " has " + std::to_string(s.bytes) + " bytes; outs[" + std::to_string(t) +
                                                 "] holds " + std::to_string(w->tensors[t].numel) + " elements, so " + std::to_string(want) + " bytes of " +
                                                 sc::dtypeName(inDt[t]) + " were expected");
          w->srcPtrs[t][i] = s.data;
        });
        w->control = controlOf(env, b);
      });
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
  void Run() override { stats = sc::mergeFiles(files, out, header.data(), header.size(), tensors, weights.data(), int(weights.size()), progress(), opt); }
  void Fill(Napi::Object& o) override {
    o.Set("bytesRead", stats.bytesRead);
    o.Set("bytesWritten", stats.bytesWritten);
  }
};

Napi::Value JS_mergeFilesCuda(const Napi::CallbackInfo& info) {
  return QueueParsed<MergeWorker>(
      info, "mergeFilesCuda(baton): baton", soup::addon::BadBaton::Reject, [](Napi::Env env, const Napi::Object& b, MergeWorker* w) {
        w->weights = weightsOf(env, b);
        soup::addon::MergeBaton m = soup::addon::MergeBatonIn(env, b, w->weights.size());
        w->files = std::move(m.files);
        w->out = std::move(m.out);
        w->header = std::move(m.header);
        if (m.windowBytes > 0) w->opt.windowBytes = int64_t(m.windowBytes);
        w->tensors.resize(m.tensors.size());
        for (size_t t = 0; t < m.tensors.size(); ++t) {
          const soup::addon::MergeBatonTensor& mt = m.tensors[t];
          // LoRA 'dense' plans (a tensor's own weights, low-rank updates) run on the CPU merge only
          if (mt.lowRank || !mt.weights.empty())
            argError(env, "tensors[" + std::to_string(t) + "]: per-tensor weights and low-rank updates are not supported by the CUDA merge");
          sc::FileTensor& ft = w->tensors[t];
          ft.numel = int64_t(mt.numel);
          ft.inDtype = mt.inDtype;
          ft.outDtype = mt.outDtype;
          for (size_t i = 0; i < mt.srcFile.size(); ++i) {
            ft.srcFile[i] = mt.srcFile[i];
            ft.srcOffset[i] = int64_t(mt.srcOffset[i]);
          }
        }
        w->control = controlOf(env, b);
      });
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
  return QueueParsed<ResidentCreateWorker>(
      info, "cudaResidentCreate(baton): baton", soup::addon::BadBaton::Reject, [](Napi::Env env, const Napi::Object& b, ResidentCreateWorker* w) {
        Napi::Array sources = ArrayOf(env, b, "sources");
        size_t nIn = 0, nOut = 0;
        const int32_t* inDt = typedOf<napi_int32_array, int32_t>(env, b, "inDtypes", "Int32Array", &nIn);
        const int32_t* outDt = typedOf<napi_int32_array, int32_t>(env, b, "outDtypes", "Int32Array", &nOut);
        const size_t n = sources.Length();
        if (n < 1 || n > size_t(sc::kMaxSources))
          argError(env, "sources has " + std::to_string(n) + " lists; the CUDA kernel takes 1.." + std::to_string(sc::kMaxSources));
        if (nIn != nOut) argError(env, "inDtypes (" + std::to_string(nIn) + ") and outDtypes (" + std::to_string(nOut) + ") differ in length");
        const size_t T = nIn;
        w->n = int(n);
        w->srcPtrs.assign(T, std::vector<const void*>(n));
        w->tensors.resize(T);
        for (size_t t = 0; t < T; ++t) {
          checkDtype(env, inDt[t], "inDtypes[" + std::to_string(t) + "]");
          checkDtype(env, outDt[t], "outDtypes[" + std::to_string(t) + "]");
        }
        ForEachSource(env, sources, T, "dtype entry", [&](size_t i, size_t t, const std::string& what, View v) {
          const size_t is = sc::dtypeSize(inDt[t]);
          if (v.bytes % is) argError(env, what + " has " + std::to_string(v.bytes) + " bytes, not a multiple of " + std::to_string(is));
          const int64_t numel = int64_t(v.bytes / is);
          if (i == 0)
            w->tensors[t] = sc::HostTensor{nullptr, nullptr, numel, inDt[t], outDt[t]};
          else if (numel != w->tensors[t].numel)
            throw Napi::RangeError::New(env, "[ERR_SOUP_SHAPE_MISMATCH] " + what + " has " + std::to_string(numel) + " elements; sources[0][" +
                                                 std::to_string(t) + "] has " + std::to_string(w->tensors[t].numel));
          w->srcPtrs[t][i] = v.data;
        });
      });
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
  return QueueParsed<ResidentRunWorker>(
      info, "cudaResidentRun(baton): baton", soup::addon::BadBaton::Reject, [](Napi::Env env, const Napi::Object& b, ResidentRunWorker* w) {
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
          throw Napi::RangeError::New(
              env, "[ERR_SOUP_WEIGHTS] " + std::to_string(w->weights.size()) + " weights for " + std::to_string(w->res->sources()) + " resident sources");
        Napi::Array outs = ArrayOf(env, b, "outs");
        if (outs.Length() != w->res->tensors())
          argError(env, "outs has " + std::to_string(outs.Length()) + " tensors; the resident soup has " + std::to_string(w->res->tensors()));
        for (uint32_t t = 0; t < outs.Length(); ++t) {
          const std::string what = "outs[" + std::to_string(t) + "]";
          View o = ViewOf(env, outs.Get(t), what);
          const size_t want = size_t(w->res->numel(t)) * sc::dtypeSize(w->res->outDtype(t));
          if (o.bytes != want)
            throw Napi::RangeError::New(env, "[ERR_SOUP_SHAPE_MISMATCH] " + what + " has " + std::to_string(o.bytes) + " bytes; " + std::to_string(want) +
                                                 " bytes of " + sc::dtypeName(w->res->outDtype(t)) + " expected");
          w->outs.push_back(o.data);
        }
        w->control = controlOf(env, b);
      });
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
  soup::addon::ExportAll(env, exports,
                         {{"interpolateCuda", JS_interpolateCuda},
                          {"mergeFilesCuda", JS_mergeFilesCuda},
                          {"cudaInfo", JS_cudaInfo},
                          {"cudaResidentCreate", JS_cudaResidentCreate},
                          {"cudaResidentRun", JS_cudaResidentRun},
                          {"cudaResidentFree", JS_cudaResidentFree}});
}

#endif  // SOUP_HAVE_CUDA
