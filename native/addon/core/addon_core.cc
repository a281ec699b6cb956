// SPDX-License-Identifier: MIT
// soup_core.node: N-API bindings of the libtorch-free core. JS validates everything once (src/soup,
// src/io); this layer re-checks only what could corrupt memory (list lengths, byte lengths, dtype codes)
// and runs the work on a worker thread. Errors carry a "[ERR_SOUP_*]" prefix that src/errors.ts maps to
// SoupError codes; no C++ exception ever crosses into the JS engine unhandled.
#include <napi.h>
#include <sys/mman.h>

#include <algorithm>
#include <atomic>
#include <iterator>
#include <chrono>
#include <cstdlib>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "core/cpu_features.h"
#include "core/dtype.h"
#include "core/interp.h"
#include "core/large_buffer.h"
#include "core/mapped_file.h"
#include "core/merge_files.h"
#include "addon/common/args.h"
#include "addon/common/merge_baton.h"
#include "addon/common/promise_worker.h"

namespace {

using soup::Simd;
using soup::addon::PromiseWorker;
using soup::addon::View;

[[noreturn]] void argError(Napi::Env env, const std::string& msg) { soup::addon::ThrowType(env, msg); }

Simd parseSimd(Napi::Env env, const Napi::Object& o) {
  Simd best = soup::detectSimd();
  if (!o.Has("simd") || o.Get("simd").IsUndefined()) return best;
  std::string s = o.Get("simd").As<Napi::String>().Utf8Value();
  const Simd levels[] = {Simd::Scalar, Simd::Avx2, Simd::Avx512, Simd::Avx512Bf16};
  const Simd* found = std::find_if(std::begin(levels), std::end(levels), [&](Simd l) { return s == soup::simdName(l); });
  if (found == std::end(levels)) argError(env, "simd must be 'avx512bf16', 'avx512', 'avx2' or 'scalar', got '" + s + "'");
  const Simd want = *found;
  if (static_cast<int>(want) > static_cast<int>(best)) argError(env, "simd '" + s + "' is not supported by this CPU (best: " + soup::simdName(best) + ")");
  return want;
}

int parseThreads(const Napi::Object& o) {
  if (!o.Has("threads") || !o.Get("threads").IsNumber()) return 0;
  return o.Get("threads").As<Napi::Number>().Int32Value();
}

View viewOf(Napi::Env env, const Napi::Value& v, const std::string& what) { return soup::addon::ViewOf(env, v, what); }

// One napi_get_typedarray_info call (data already offset by byteOffset), no allocation: the per-tensor
// path of interpolate, where viewOf's five calls and a name string per array cost ~1.5 µs each.
bool tryView(napi_env env, napi_value v, View* out) {
  napi_typedarray_type type;
  size_t length = 0;
  void* data = nullptr;
  if (napi_get_typedarray_info(env, v, &type, &length, &data, nullptr, nullptr) != napi_ok) return false;
  size_t elem = 1;
  switch (type) {
    case napi_int16_array:
    case napi_uint16_array:
      elem = 2;
      break;
    case napi_int32_array:
    case napi_uint32_array:
    case napi_float32_array:
      elem = 4;
      break;
    case napi_float64_array:
    case napi_bigint64_array:
    case napi_biguint64_array:
      elem = 8;
      break;
    default:
      elem = 1;
      break;
  }
  *out = {static_cast<uint8_t*>(data), length * elem};
  return true;
}

// The control slots (addon/common/args.h), kept alive with the work.
double* controlSlots(Napi::Env env, const Napi::Object& o, std::vector<Napi::ObjectReference>& keep) {
  double* slots = soup::addon::ControlOf(env, o);
  if (slots) keep.push_back(Napi::Persistent(o.Get("control").As<Napi::Object>()));
  return slots;
}

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

// mmapWindows(path, windows: Float64Array [start0, len0, start1, len1, ...], maxBytes) -> ArrayBuffer[]
// over one copy-on-write mapping of the whole file (zero-copy reads; a stray write never reaches the file).
// One ArrayBuffer per window, not per file: V8 caps an ArrayBuffer (4 GiB on Node 20) and a failed
// external creation frees the memory it was given, so every window is checked against maxBytes (the JS
// side passes buffer.constants.MAX_LENGTH) before V8 sees it. The mapping lives until its last window is
// collected.
Napi::Value JS_mmapWindows(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 3 || !info[0].IsString() || !info[1].IsTypedArray() || !info[2].IsNumber())
    argError(env, "mmapWindows(path, windows, maxBytes): path must be a string, windows a Float64Array, maxBytes a number");
  auto wa = info[1].As<Napi::TypedArray>();
  if (wa.TypedArrayType() != napi_float64_array || wa.ElementLength() % 2 != 0)
    argError(env, "mmapWindows: windows must be a Float64Array of [start, length] pairs");
  const double maxBytes = info[2].As<Napi::Number>().DoubleValue();
  const std::string path = info[0].As<Napi::String>().Utf8Value();
  auto fw = wa.As<Napi::Float64Array>();
  std::shared_ptr<soup::MappedFile> file;
  try {
    file = std::make_shared<soup::MappedFile>(path, /*writable=*/true);
  } catch (const std::exception& e) {
    throw Napi::Error::New(env, e.what());
  }
  const size_t count = fw.ElementLength() / 2;
  Napi::Array out = Napi::Array::New(env, count);
  for (size_t k = 0; k < count; k++) {
    const double start = fw[2 * k], len = fw[2 * k + 1];
    if (!(start >= 0) || !(len >= 0) || start + len > static_cast<double>(file->size()) || start != static_cast<double>(static_cast<size_t>(start)) ||
        len != static_cast<double>(static_cast<size_t>(len)))
      argError(env, "mmapWindows: window " + std::to_string(k) + " is outside '" + path + "' (" + std::to_string(file->size()) + " bytes)");
    if (len > maxBytes)
      throw Napi::RangeError::New(env, "[ERR_SOUP_TOO_LARGE] mmapWindows: window " + std::to_string(k) + " of '" + path + "' spans " +
                                           std::to_string(static_cast<size_t>(len)) + " bytes, over the runtime's ArrayBuffer limit");
    if (len == 0) {
      out.Set(k, Napi::ArrayBuffer::New(env, 0));
      continue;
    }
    auto* keep = new std::shared_ptr<soup::MappedFile>(file);
    uint8_t* p = const_cast<uint8_t*>(file->data()) + static_cast<size_t>(start);
    out.Set(k, Napi::ArrayBuffer::New(
                   env, p, static_cast<size_t>(len), [](Napi::Env, void*, std::shared_ptr<soup::MappedFile>* hint) { delete hint; }, keep));
  }
  return out;
}

// allocBuffer(bytes, hugePages = true, maxBytes) -> 64-byte aligned external ArrayBuffer, not zero-filled (outputs
// are overwritten); large ones on transparent huge pages (large_buffer.h). hugePages=false is for the bench.
Napi::Value JS_allocBuffer(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsNumber()) argError(env, "allocBuffer(bytes): bytes must be a number");
  double d = info[0].As<Napi::Number>().DoubleValue();
  if (!(d >= 0) || d > 9.0e15) argError(env, "allocBuffer(bytes): bytes out of range");
  bool hugePages = true;
  if (info.Length() > 1 && !info[1].IsUndefined()) {
    if (!info[1].IsBoolean()) argError(env, "allocBuffer(bytes, hugePages): hugePages must be a boolean");
    hugePages = info[1].As<Napi::Boolean>().Value();
  }
  // the runtime's ArrayBuffer limit (JS passes buffer.constants.MAX_LENGTH; Node 20's 4 GiB otherwise):
  // V8 would fail past it after taking the memory, so refuse before allocating
  double maxBytes = 4294967296.0;
  if (info.Length() > 2 && info[2].IsNumber()) maxBytes = info[2].As<Napi::Number>().DoubleValue();
  if (d > maxBytes)
    throw Napi::RangeError::New(
        env, "[ERR_SOUP_TOO_LARGE] allocBuffer: " + std::to_string(static_cast<size_t>(d)) + " bytes is over the runtime's ArrayBuffer limit");
  size_t n = static_cast<size_t>(d);
  if (n == 0) return Napi::ArrayBuffer::New(env, 0);
  void* p = nullptr;
  try {
    p = soup::allocLarge(n, hugePages, "an output buffer");
  } catch (const std::exception& e) {
    throw Napi::Error::New(env, e.what());
  }
  Napi::MemoryManagement::AdjustExternalMemory(env, static_cast<int64_t>(n));
  return Napi::ArrayBuffer::New(
      env, p, n,
      [](Napi::Env env, void* data, size_t* len) {
        Napi::MemoryManagement::AdjustExternalMemory(env, -static_cast<int64_t>(*len));
        free(data);
        delete len;
      },
      new size_t(n));
}

// ---- interpolate (in memory) -------------------------------------------------------------------

// An interpolation resolved to raw pointers: N sources and one output per tensor, with the options.
// Built once per call by interpolate(), or once for many calls by prepareInterpolation() (a λ sweep
// re-runs the same sources into the same outputs with new weights: only the weights cross N-API then).
struct SoupPlan {
  std::vector<const void*> ptrs;  // flat [tensor][source]
  std::vector<soup::Segment> segs;
  size_t nSources = 0;
  double bytes = 0;
  soup::InterpOptions opt;
  Napi::ObjectReference baton;  // keeps every source and output array alive
  std::atomic<bool> busy{false};
};

// Parses { sources: TypedArray[N][T], inDtypes: Int32Array(T), outs: TypedArray[T], outDtypes: Int32Array(T),
// threads?, simd?, nonTemporal?, chunkElems? }; N comes from sources.length.
std::unique_ptr<SoupPlan> parsePlan(Napi::Env env, const Napi::Object& b) {
  auto plan = std::make_unique<SoupPlan>();
  Napi::Array sources = b.Get("sources").As<Napi::Array>();
  Napi::Array outs = b.Get("outs").As<Napi::Array>();
  auto inD = viewOf(env, b.Get("inDtypes"), "inDtypes");
  auto outD = viewOf(env, b.Get("outDtypes"), "outDtypes");
  const size_t n = sources.Length(), t = outs.Length();
  if (n == 0) argError(env, "sources must not be empty");
  if (inD.bytes / 4 != t || outD.bytes / 4 != t) argError(env, "inDtypes/outDtypes must have one entry per output tensor");
  const int32_t* ind = reinterpret_cast<const int32_t*>(inD.data);
  const int32_t* outd = reinterpret_cast<const int32_t*>(outD.data);
  std::vector<napi_value> srcLists(n);
  for (size_t i = 0; i < n; i++) {
    Napi::Array l = sources.Get(i).As<Napi::Array>();
    if (l.Length() != t) argError(env, "sources[" + std::to_string(i) + "] has " + std::to_string(l.Length()) + " tensors, expected " + std::to_string(t));
    srcLists[i] = l;
  }
  napi_value outsV = outs;
  plan->nSources = n;
  plan->segs.resize(t);
  plan->ptrs.resize(t * n);
  size_t totalOut = 0;
  for (size_t k = 0; k < t; k++) {
    if (!soup::validDType(ind[k]) || !soup::validDType(outd[k])) argError(env, "tensor " + std::to_string(k) + ": bad dtype code");
    napi_value ev;
    View ov;
    if (napi_get_element(env, outsV, static_cast<uint32_t>(k), &ev) != napi_ok || !tryView(env, ev, &ov))
      argError(env, "outs[" + std::to_string(k) + "] must be a TypedArray");
    size_t count = ov.bytes / soup::dtypeSize(outd[k]);
    if (count * soup::dtypeSize(outd[k]) != ov.bytes) argError(env, "outs[" + std::to_string(k) + "]: byte length is not a multiple of the dtype size");
    const size_t inBytes = count * soup::dtypeSize(ind[k]);
    for (size_t i = 0; i < n; i++) {
      View v;
      if (napi_get_element(env, srcLists[i], static_cast<uint32_t>(k), &ev) != napi_ok || !tryView(env, ev, &v))
        argError(env, "sources[" + std::to_string(i) + "][" + std::to_string(k) + "] must be a TypedArray");
      if (v.bytes != inBytes)
        argError(env,
                 "sources[" + std::to_string(i) + "][" + std::to_string(k) + "]: " + std::to_string(v.bytes) + " bytes, expected " + std::to_string(inBytes));
      plan->ptrs[k * n + i] = v.data;
      plan->bytes += static_cast<double>(v.bytes);
    }
    soup::Segment& sg = plan->segs[k];
    sg.inDtype = ind[k];
    sg.outDtype = outd[k];
    sg.out = ov.data;
    sg.count = count;
    sg.src = plan->ptrs.data() + k * n;
    plan->bytes += static_cast<double>(ov.bytes);
    totalOut += ov.bytes;
  }
  plan->opt.simd = parseSimd(env, b);
  plan->opt.threads = parseThreads(b);
  if (b.Has("chunkElems") && b.Get("chunkElems").IsNumber()) plan->opt.chunkElems = static_cast<size_t>(b.Get("chunkElems").As<Napi::Number>().Int64Value());
  // Streaming stores pay off once the output no longer fits in the last-level cache.
  Napi::Value nt = b.Get("nonTemporal");
  plan->opt.nonTemporal = nt.IsBoolean() ? nt.As<Napi::Boolean>().Value() : totalOut >= (size_t{32} << 20);
  // One reference to the baton keeps every source and output array alive (the baton is private to
  // src/soup/interpolate.ts and never mutated); a reference per array cost ~10 µs per tensor, which
  // dominated calls with hundreds of small LoRA tensors.
  plan->baton = Napi::Persistent(b);
  return plan;
}

std::vector<double> parseWeights(Napi::Env env, const Napi::Value& v, size_t n) {
  auto wv = viewOf(env, v, "weights");
  if (wv.bytes / 8 != n) argError(env, "weights has " + std::to_string(wv.bytes / 8) + " entries, sources " + std::to_string(n));
  const double* wd = reinterpret_cast<const double*>(wv.data);
  return std::vector<double>(wd, wd + n);
}

class InterpolateWorker : public PromiseWorker {
 public:
  InterpolateWorker(Napi::Env env, SoupPlan* plan, std::vector<double> w) : PromiseWorker(env), plan_(plan), weights_(std::move(w)) {}
  std::unique_ptr<SoupPlan> owned;  // set for one-shot interpolate(); a prepared plan is owned by JS
  soup::Control ctl;

 protected:
  void Run() override {
    auto t0 = std::chrono::steady_clock::now();
    soup::interpolateSegments(plan_->segs, weights_, plan_->opt, &ctl);
    seconds_ = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  }
  Napi::Value Result(Napi::Env env) override {
    plan_->busy = false;
    Napi::Object o = Napi::Object::New(env);
    o.Set("seconds", seconds_);
    o.Set("bytes", plan_->bytes);
    o.Set("kernel", soup::simdName(plan_->opt.simd));
    o.Set("nonTemporal", plan_->opt.nonTemporal);
    return o;
  }
  void OnError(const Napi::Error& e) override {
    plan_->busy = false;
    PromiseWorker::OnError(e);
  }

 private:
  SoupPlan* plan_;
  soup::Weights weights_;
  double seconds_ = 0;
};

// interpolate({ ...plan fields, weights: Float64Array(N), control? }) -> Promise<{ seconds, bytes, kernel, nonTemporal }>
Napi::Value JS_interpolate(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsObject()) argError(env, "interpolate(baton): baton must be an object");
  Napi::Object b = info[0].As<Napi::Object>();
  std::unique_ptr<SoupPlan> plan = parsePlan(env, b);
  SoupPlan* p = plan.get();
  auto* w = new InterpolateWorker(env, p, parseWeights(env, b.Get("weights"), p->nSources));
  w->owned = std::move(plan);
  try {
    w->ctl.slots = controlSlots(env, b, w->keep);
  } catch (...) {
    delete w;
    throw;
  }
  p->busy = true;
  w->Queue();
  return w->Promise();
}

// prepareInterpolation(plan fields) -> an opaque object owning the plan: validated once, run many times
// by runInterpolation, freed when the object is collected.
Napi::Value JS_prepareInterpolation(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsObject()) argError(env, "prepareInterpolation(baton): baton must be an object");
  std::unique_ptr<SoupPlan> plan = parsePlan(env, info[0].As<Napi::Object>());
  Napi::Object handle = Napi::Object::New(env);
  napi_status st = napi_wrap(
      env, handle, plan.get(), [](napi_env, void* data, void*) { delete static_cast<SoupPlan*>(data); }, nullptr, nullptr);
  if (st != napi_ok) throw Napi::Error::New(env, "[ERR_SOUP_INTERNAL] prepareInterpolation: cannot wrap the plan");
  plan.release();
  return handle;
}

// runInterpolation(plan, weights: Float64Array(N), control?) -> Promise<{ seconds, bytes, kernel, nonTemporal }>
Napi::Value JS_runInterpolation(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  void* data = nullptr;
  if (info.Length() < 2 || !info[0].IsObject() || napi_unwrap(env, info[0], &data) != napi_ok || !data)
    argError(env, "runInterpolation(plan, weights, control?): plan must come from prepareInterpolation");
  SoupPlan* p = static_cast<SoupPlan*>(data);
  auto* w = new InterpolateWorker(env, p, parseWeights(env, info[1], p->nSources));
  bool claimed = false;
  try {
    if (p->busy.exchange(true)) throw Napi::Error::New(env, "[ERR_SOUP_BUSY] this prepared soup is still running: await the previous run() first");
    claimed = true;
    // the handle keeps the plan alive while the work runs, even if JS drops it meanwhile
    w->keep.push_back(Napi::Persistent(info[0].As<Napi::Object>()));
    if (info.Length() > 2 && !info[2].IsUndefined()) {
      Napi::Object holder = Napi::Object::New(env);
      holder.Set("control", info[2]);
      w->ctl.slots = controlSlots(env, holder, w->keep);
    }
  } catch (...) {
    if (claimed) p->busy = false;
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

uint64_t toU64(Napi::Env env, const Napi::Value& v, const std::string& what) { return soup::addon::U64Of(env, v, what); }

// mergeFiles({ files, out, header: Uint8Array, weights: Float64Array, tensors: [...], windowBytes?,
//              threads?, simd?, control? }) -> Promise<{ seconds, kernelSeconds, writeSeconds, bytesRead, bytesWritten, kernel }>
// tensors[k]: { name, numel, inDtype, outDtype, srcFile: Int32Array(N), srcOffset: Float64Array(N) }
//          or { name, numel, inDtype, outDtype, lowRank: { baseFile, baseOffset, rows, cols, rank, L: Float32Array, R: Float32Array } }
Napi::Value JS_mergeFiles(const Napi::CallbackInfo& info) {
  // the baton stays referenced while the work runs: L and R are read in place
  return soup::addon::QueueParsed<MergeFilesWorker>(info, "mergeFiles(baton): baton", soup::addon::BadBaton::Throw,
                                                    [](Napi::Env env, const Napi::Object& b, MergeFilesWorker* w) {
                                                      auto& job = w->job;
                                                      auto wv = viewOf(env, b.Get("weights"), "weights");
                                                      const double* wd = reinterpret_cast<const double*>(wv.data);
                                                      job.weights.assign(wd, wd + wv.bytes / 8);
                                                      soup::addon::MergeBaton m = soup::addon::MergeBatonIn(env, b, job.weights.size());
                                                      job.files = std::move(m.files);
                                                      job.out = std::move(m.out);
                                                      job.header = std::move(m.header);
                                                      if (m.windowBytes > 0) job.windowBytes = static_cast<size_t>(m.windowBytes);
                                                      job.tensors.resize(m.tensors.size());
                                                      for (size_t k = 0; k < m.tensors.size(); k++) {
                                                        soup::addon::MergeBatonTensor& s = m.tensors[k];
                                                        soup::FileTensor& t = job.tensors[k];
                                                        t.name = std::move(s.name);
                                                        t.numel = s.numel;
                                                        t.inDtype = s.inDtype;
                                                        t.outDtype = s.outDtype;
                                                        if (s.lowRank) {
                                                          t.kind = soup::FileTensor::LowRankUpdate;
                                                          t.baseFile = s.lr.baseFile;
                                                          t.baseOffset = s.lr.baseOffset;
                                                          t.rows = s.lr.rows;
                                                          t.cols = s.lr.cols;
                                                          t.rank = s.lr.rank;
                                                          t.L = s.lr.L;
                                                          t.R = s.lr.R;
                                                        } else {
                                                          t.weights = std::move(s.weights);
                                                          t.srcFile = std::move(s.srcFile);
                                                          t.srcOffset = std::move(s.srcOffset);
                                                        }
                                                      }
                                                      job.opt.simd = parseSimd(env, b);
                                                      job.opt.threads = parseThreads(b);
                                                      job.opt.nonTemporal = false;  // the window is re-read at once by write(): keep it in cache
                                                      w->ctl.slots = controlSlots(env, b, w->keep);
                                                    });
}

// ---- bandwidth probe ---------------------------------------------------------------------------

class ProbeWorker : public PromiseWorker {
 public:
  using PromiseWorker::PromiseWorker;
  size_t n = 0;
  int reps = 1;
  soup::InterpOptions opt;
  std::vector<double> times;
  float* given[3] = {nullptr, nullptr, nullptr};  // caller's arrays (kept alive by `keep`), or null
  std::vector<const float*> readStreams;          // kind 'read': the caller's arrays
  double sum = 0;                                 // kind 'read': what was read, summed
  bool warmup = true;                             // one untimed pass before the timed ones

 protected:
  void Run() override {
    if (!readStreams.empty()) {
      if (warmup) soup::bandwidthRead(readStreams, n, opt, nullptr);
      for (int r = 0; r < reps; r++) times.push_back(soup::bandwidthRead(readStreams, n, opt, &sum));
      return;
    }
    float *a = given[0], *b = given[1], *c = given[2];
    std::unique_ptr<float, decltype(&free)> ga(nullptr, free), gb(nullptr, free), gc(nullptr, free);
    if (!a) {
      auto alloc = [&](std::unique_ptr<float, decltype(&free)>& g) {
        void* p = soup::allocLarge(n * 4, true, "the bandwidth probe");
        g.reset(static_cast<float*>(p));
        return static_cast<float*>(p);
      };
      a = alloc(ga), b = alloc(gb), c = alloc(gc);
      for (size_t i = 0; i < n; i++) {
        a[i] = 0.f;
        b[i] = 1.0f + static_cast<float>(i & 7);
        c[i] = 0.5f;
      }  // first touch outside timing
    }
    if (warmup) soup::bandwidthTriad(a, b, c, n, 1, opt);
    for (int r = 0; r < reps; r++) times.push_back(soup::bandwidthTriad(a, b, c, n, 1, opt));
  }
  Napi::Value Result(Napi::Env env) override {
    Napi::Object o = Napi::Object::New(env);
    Napi::Array t = Napi::Array::New(env, times.size());
    for (size_t i = 0; i < times.size(); i++) t.Set(i, times[i]);
    o.Set("seconds", t);
    // triad: read b, c; write a. read: every stream once
    o.Set("bytesPerRep", static_cast<double>(n) * 4.0 * (readStreams.empty() ? 3.0 : static_cast<double>(readStreams.size())));
    o.Set("kernel", soup::simdName(opt.simd));
    if (!readStreams.empty()) o.Set("sum", sum);
    return o;
  }
};

// bandwidthProbe({ bytes, reps, threads?, simd?, nonTemporal?, arrays?, kind? }): kind 'triad' (default):
// a = b + s·c over three arrays of `bytes` each, with the merge kernels' thread pool and store policy.
// `arrays` = three Float32Arrays of at least bytes/4 elements, filled by the caller: benchmarks pass
// buffers allocated once, because allocating and freeing gigabytes per call slows the next kernel on this
// VM (the first soup after a self-allocating probe ran at 15–36 GB/s against 63–66 in steady state).
// kind 'read': sums 1..8 caller arrays read interleaved, as a soup reads its sources (what reading
// alone costs, beside the triad's mix of reads and streaming writes).
Napi::Value JS_bandwidthProbe(const Napi::CallbackInfo& info) {
  return soup::addon::QueueParsed<ProbeWorker>(
      info, "bandwidthProbe(opts): opts", soup::addon::BadBaton::Throw, [](Napi::Env env, const Napi::Object& b, ProbeWorker* w) {
        w->n = static_cast<size_t>(toU64(env, b.Get("bytes"), "bytes") / 4);
        w->reps = b.Has("reps") ? b.Get("reps").As<Napi::Number>().Int32Value() : 5;
        w->opt.simd = parseSimd(env, b);
        w->opt.threads = parseThreads(b);
        Napi::Value nt = b.Get("nonTemporal");
        w->opt.nonTemporal = nt.IsBoolean() ? nt.As<Napi::Boolean>().Value() : true;
        // warmup: false times the first pass, as a soup call is timed (merge bench, docs/notes/merge-measuring.md "Measuring")
        Napi::Value wu = b.Get("warmup");
        if (!wu.IsUndefined() && !wu.IsBoolean()) argError(env, "bandwidthProbe: warmup must be a boolean");
        w->warmup = wu.IsBoolean() ? wu.As<Napi::Boolean>().Value() : true;
        bool read = false;
        if (b.Has("kind") && !b.Get("kind").IsUndefined()) {
          std::string kind = b.Get("kind").IsString() ? b.Get("kind").As<Napi::String>().Utf8Value() : "";
          if (kind != "triad" && kind != "read") argError(env, "bandwidthProbe: kind must be 'triad' or 'read'");
          read = kind == "read";
        }
        if (read && (!b.Has("arrays") || b.Get("arrays").IsUndefined())) argError(env, "bandwidthProbe: kind 'read' needs arrays");
        if (b.Has("arrays") && !b.Get("arrays").IsUndefined()) {
          Napi::Value av = b.Get("arrays");
          uint32_t count = av.IsArray() ? av.As<Napi::Array>().Length() : 0;
          if (read ? count < 1 || count > 8 : count != 3)
            argError(env, read ? "bandwidthProbe: arrays must be 1 to 8 Float32Arrays for kind 'read'" : "bandwidthProbe: arrays must be three Float32Arrays");
          for (uint32_t k = 0; k < count; k++) {
            Napi::Value e = av.As<Napi::Array>().Get(k);
            if (!e.IsTypedArray() || e.As<Napi::TypedArray>().TypedArrayType() != napi_float32_array)
              argError(env, "bandwidthProbe: arrays[" + std::to_string(k) + "] must be a Float32Array");
            View v = viewOf(env, e, "arrays");
            if (v.bytes < w->n * 4)
              argError(env, "bandwidthProbe: arrays[" + std::to_string(k) + "] holds " + std::to_string(v.bytes) + " bytes, fewer than bytes");
            if (read)
              w->readStreams.push_back(reinterpret_cast<const float*>(v.data));
            else
              w->given[k] = reinterpret_cast<float*>(v.data);
          }
          w->keep.push_back(Napi::Persistent(av.As<Napi::Object>()));
        }
      });
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  soup::addon::ExportAll(env, exports,
                         {{"info", JS_info},
                          {"mmapWindows", JS_mmapWindows},
                          {"allocBuffer", JS_allocBuffer},
                          {"interpolate", JS_interpolate},
                          {"prepareInterpolation", JS_prepareInterpolation},
                          {"runInterpolation", JS_runInterpolation},
                          {"mergeFiles", JS_mergeFiles},
                          {"bandwidthProbe", JS_bandwidthProbe}});
  return exports;
}

}  // namespace

NODE_API_MODULE(soup_core, Init)
