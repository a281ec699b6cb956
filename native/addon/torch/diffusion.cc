// SPDX-License-Identifier: MIT
// N-API bindings of the diffusion core (native/torch/diffusion.h). As for the language models, each UNet
// lives on its own native thread: every call is a job queued to it and resolved through one
// ThreadSafeFunction, so jobs on one model run in order without locks. Inputs are small (a batch of
// 16×16 images), so they are copied into tensors on the JS thread; outputs are external ArrayBuffers
// that own their tensor.
#include <napi.h>

#include <c10/util/Exception.h>
#include <ATen/Parallel.h>
#include <c10/core/GradMode.h>

#include <condition_variable>
#include <cstring>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>

#include "addon/torch/args.h"
#include "addon/torch/register.h"
#include "torch/diffusion.h"

namespace {
using namespace soup;
using namespace soup::addon;

struct DSession;

struct DJob {
  DSession* s = nullptr;
  std::function<void()> work;
  std::function<Napi::Value(Napi::Env)> done;
  Napi::Promise::Deferred deferred;
  std::string error;
  explicit DJob(Napi::Env env) : deferred(Napi::Promise::Deferred::New(env)) {}
};

struct DSession {
  UNet model;
  UNetConfig cfg;  // a copy the JS thread may read (shapes of inputs)
  std::thread th;
  std::mutex mu;
  std::condition_variable cv;
  std::deque<DJob*> q;
  bool stopping = false;
  Napi::ThreadSafeFunction tsfn;
  int pending = 0;
  int threads = 1;
};
using DSessionPtr = std::shared_ptr<DSession>;


void Complete(Napi::Env env, DJob* j) {
  DSession* s = j->s;
  if (env != nullptr) {
    Napi::HandleScope scope(env);
    if (j->error.empty()) {
      try {
        j->deferred.Resolve(j->done ? j->done(env) : env.Undefined());
      } catch (const Napi::Error& e) {
        j->deferred.Reject(e.Value());
      } catch (const std::exception& e) {
        j->deferred.Reject(Napi::Error::New(env, e.what()).Value());
      }
    } else {
      j->deferred.Reject(Napi::Error::New(env, j->error).Value());
    }
    if (--s->pending == 0) s->tsfn.Unref(env);
  }
  delete j;
}

void Loop(DSession* s) {
  at::set_num_threads(s->threads);  // a per-thread setting in OpenMP
  for (;;) {
    DJob* j = nullptr;
    {
      std::unique_lock<std::mutex> lk(s->mu);
      s->cv.wait(lk, [s] { return s->stopping || !s->q.empty(); });
      if (s->q.empty()) break;
      j = s->q.front();
      s->q.pop_front();
    }
    if (j->work) j->error = RunCaught(j->work);
    s->tsfn.BlockingCall(j, [](Napi::Env env, Napi::Function, DJob* jj) { Complete(env, jj); });
  }
  s->model = UNet();  // free tensors on the thread that made them
  s->tsfn.Release();
}

DSession* GetS(const Napi::Value& v) {
  if (!v.IsExternal()) ThrowType(v.Env(), "expected a diffusion model handle");
  return v.As<Napi::External<DSessionPtr>>().Data()->get();
}

Napi::Value Post(Napi::Env env, DSession* s, DJob* j) {
  j->s = s;
  {
    std::lock_guard<std::mutex> lk(s->mu);
    if (s->stopping) {
      delete j;
      throw Napi::Error::New(env, "[ERR_SOUP_INVALID_ARG] the diffusion model was disposed");
    }
    s->q.push_back(j);
  }
  if (s->pending++ == 0) s->tsfn.Ref(env);
  s->cv.notify_one();
  return j->deferred.Promise();
}

// A typed array of the given kind and length, copied into a tensor of `shape`.
at::Tensor ArrayIn(const Napi::Value& v, napi_typedarray_type type, const char* what, std::vector<int64_t> shape) {
  Napi::Env env = v.Env();
  static const std::map<napi_typedarray_type, std::pair<const char*, at::ScalarType>> kinds = {
      {napi_float32_array, {"Float32Array", at::kFloat}}, {napi_float64_array, {"Float64Array", at::kDouble}}, {napi_int32_array, {"Int32Array", at::kInt}}};
  auto k = kinds.at(type);
  if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != type) ThrowType(env, std::string(what) + " must be a " + k.first);
  Napi::TypedArray a = v.As<Napi::TypedArray>();
  int64_t n = 1;
  for (auto d : shape) n *= d;
  if (int64_t(a.ElementLength()) != n)
    throw Napi::RangeError::New(env, "[ERR_SOUP_SHAPE_MISMATCH] " + std::string(what) + " has " + std::to_string(a.ElementLength()) + " elements, expected " + std::to_string(n));
  void* p = static_cast<uint8_t*>(a.ArrayBuffer().Data()) + a.ByteOffset();
  return at::from_blob(p, shape, at::TensorOptions().dtype(k.second)).clone();
}

at::Tensor TensorIn(Napi::Env env, const Napi::Value& v, const std::string& name) {
  if (!v.IsObject()) ThrowType(env, "tensor '" + name + "' must be {dtype, shape, data}");
  Napi::Object o = v.As<Napi::Object>();
  Napi::Value sv = o.Get("shape"), dv = o.Get("data");
  std::string dt = o.Get("dtype").IsString() ? o.Get("dtype").ToString().Utf8Value() : "float32";
  if (!sv.IsArray() || !dv.IsTypedArray()) ThrowType(env, "tensor '" + name + "' needs shape: number[] and data: TypedArray");
  std::vector<int64_t> shape;
  Napi::Array sa = sv.As<Napi::Array>();
  for (uint32_t i = 0; i < sa.Length(); i++) shape.push_back(sa.Get(i).As<Napi::Number>().Int64Value());
  napi_typedarray_type ty = dt == "float64" ? napi_float64_array : napi_float32_array;
  if (dt != "float32" && dt != "float64") ThrowType(env, "tensor '" + name + "': dtype " + dt + " is not supported here (float32, float64)");
  return ArrayIn(dv, ty, ("tensor '" + name + "'").c_str(), shape).to(at::kFloat);
}

std::map<std::string, at::Tensor> TensorMapIn(Napi::Env env, const Napi::Value& v) {
  if (!v.IsObject()) ThrowType(env, "expected a TensorMap");
  std::map<std::string, at::Tensor> m;
  Napi::Object o = v.As<Napi::Object>();
  Napi::Array keys = o.GetPropertyNames();
  for (uint32_t i = 0; i < keys.Length(); i++) {
    std::string k = keys.Get(i).ToString().Utf8Value();
    m[k] = TensorIn(env, o.Get(k), k);
  }
  return m;
}

// The diffusion model works in float32: its results go to JS as Float32Arrays.
Napi::Value TensorOutF32(Napi::Env env, const at::Tensor& t) { return TensorOut(env, t.detach().to(at::kFloat)); }

UNetConfig ConfigIn(const Napi::Object& c) {
  UNetConfig u;
  u.imageSize = int64_t(Num(c, "imageSize", 16));
  u.channels = int64_t(Num(c, "channels", 3));
  u.ch0 = int64_t(Num(c, "ch0", 32));
  u.ch1 = int64_t(Num(c, "ch1", 64));
  u.tembDim = int64_t(Num(c, "tembDim", 128));
  u.textDim = int64_t(Num(c, "textDim", 64));
  u.vocab = int64_t(Num(c, "vocab", 20));
  u.captionLen = int64_t(Num(c, "captionLen", 4));
  u.heads = int64_t(Num(c, "heads", 4));
  u.groups = int64_t(Num(c, "groups", 8));
  u.T = int64_t(Num(c, "T", 1000));
  return u;
}

// ---------------------------------------------------------------------------------------------------
// JS_ functions

// dmCreate({ config, seed, threads, weights? }) -> Promise<handle>
Napi::Value JS_dmCreate(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsObject()) ThrowType(env, "dmCreate(baton)");
  Napi::Object b = info[0].As<Napi::Object>();
  if (!b.Get("config").IsObject()) ThrowType(env, "dmCreate: config must be an object");
  UNetConfig cfg = ConfigIn(b.Get("config").As<Napi::Object>());
  uint64_t seed = uint64_t(Num(b, "seed", 0));
  bool haveWeights = b.Get("weights").IsObject();
  auto weights = std::make_shared<std::map<std::string, at::Tensor>>();
  if (haveWeights) *weights = TensorMapIn(env, b.Get("weights"));
  auto sp = std::make_shared<DSession>();
  DSession* s = sp.get();
  s->cfg = cfg;
  s->threads = std::max(1, int(Num(b, "threads", double(std::max(1u, std::thread::hardware_concurrency())))));
  s->tsfn = Napi::ThreadSafeFunction::New(env, Napi::Function::New(env, [](const Napi::CallbackInfo&) {}), "soup-diffusion", 0, 1,
                                          [sp](Napi::Env) mutable {
                                            {
                                              std::lock_guard<std::mutex> lk(sp->mu);
                                              sp->stopping = true;
                                            }
                                            sp->cv.notify_one();
                                            if (sp->th.joinable()) sp->th.join();
                                            sp.reset();
                                          });
  s->tsfn.Unref(env);
  s->th = std::thread(Loop, s);
  auto* handle = new DSessionPtr(sp);
  Napi::External<DSessionPtr> ext = Napi::External<DSessionPtr>::New(env, handle, [](Napi::Env, DSessionPtr* h) {
    DSession* ss = h->get();
    {
      std::lock_guard<std::mutex> lk(ss->mu);
      ss->stopping = true;
    }
    ss->cv.notify_one();
    delete h;
  });
  auto extRef = std::make_shared<Napi::Reference<Napi::Value>>(Napi::Persistent(ext.As<Napi::Value>()));
  DJob* j = new DJob(env);
  j->work = [s, cfg, seed, weights, haveWeights]() { s->model.Init(cfg, seed, haveWeights ? weights.get() : nullptr); };
  j->done = [extRef](Napi::Env) { return extRef->Value(); };
  return Post(env, s, j);
}

// dmInfo(h) -> Promise<{ names, shapes, finetune, numel, finetuneNumel }>
Napi::Value JS_dmInfo(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  DSession* s = GetS(info[0]);
  DJob* j = new DJob(env);
  auto names = std::make_shared<std::vector<std::string>>();
  auto shapes = std::make_shared<std::vector<std::vector<int64_t>>>();
  j->work = [s, names, shapes]() {
    *names = s->model.order;
    for (auto& n : *names) shapes->push_back(s->model.p.at(n).sizes().vec());
  };
  j->done = [names, shapes](Napi::Env e) {
    Napi::Object r = Napi::Object::New(e);
    Napi::Array n = Napi::Array::New(e, names->size()), sh = Napi::Array::New(e, names->size()), ft = Napi::Array::New(e);
    double total = 0, ftTotal = 0;
    uint32_t k = 0;
    for (size_t i = 0; i < names->size(); i++) {
      n.Set(uint32_t(i), (*names)[i]);
      Napi::Array a = Napi::Array::New(e, (*shapes)[i].size());
      double numel = 1;
      for (size_t d = 0; d < (*shapes)[i].size(); d++) {
        a.Set(uint32_t(d), Napi::Number::New(e, double((*shapes)[i][d])));
        numel *= double((*shapes)[i][d]);
      }
      sh.Set(uint32_t(i), a);
      total += numel;
      if (UNet::InFinetuneSet((*names)[i])) {
        ft.Set(k++, (*names)[i]);
        ftTotal += numel;
      }
    }
    r.Set("names", n);
    r.Set("shapes", sh);
    r.Set("finetune", ft);
    r.Set("numel", total);
    r.Set("finetuneNumel", ftTotal);
    return r;
  };
  return Post(env, s, j);
}

// dmGetTensors(h, { set: 'params' | 'ema', group: 'all' | 'finetune' }) -> Promise<TensorMap>
Napi::Value JS_dmGetTensors(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  DSession* s = GetS(info[0]);
  Napi::Object o = info[1].IsObject() ? info[1].As<Napi::Object>() : Napi::Object::New(env);
  std::string set = o.Get("set").IsString() ? o.Get("set").ToString().Utf8Value() : "ema";
  std::string group = o.Get("group").IsString() ? o.Get("group").ToString().Utf8Value() : "all";
  if (set != "params" && set != "ema") ThrowType(env, "set must be 'params' or 'ema', got '" + set + "'");
  if (group != "all" && group != "finetune") ThrowType(env, "group must be 'all' or 'finetune', got '" + group + "'");
  DJob* j = new DJob(env);
  auto out = std::make_shared<std::vector<std::pair<std::string, at::Tensor>>>();
  j->work = [s, set, group, out]() {
    c10::NoGradGuard ng;
    auto& src = set == "ema" ? s->model.ema : s->model.p;
    for (auto& n : s->model.Names(group == "finetune")) out->push_back({n, src.at(n).detach().clone()});
  };
  j->done = [out](Napi::Env e) {
    Napi::Object r = Napi::Object::New(e);
    for (auto& [k, t] : *out) r.Set(k, TensorOutF32(e, t));
    return r;
  };
  return Post(env, s, j);
}

// dmSetTensors(h, tensors, { target: 'params' | 'ema' | 'both', partial }) -> Promise<void>
Napi::Value JS_dmSetTensors(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  DSession* s = GetS(info[0]);
  auto t = std::make_shared<std::map<std::string, at::Tensor>>(TensorMapIn(env, info[1]));
  Napi::Object o = info[2].IsObject() ? info[2].As<Napi::Object>() : Napi::Object::New(env);
  std::string target = o.Get("target").IsString() ? o.Get("target").ToString().Utf8Value() : "both";
  if (target != "params" && target != "ema" && target != "both") ThrowType(env, "target must be 'params', 'ema' or 'both'");
  bool partial = Bool(o, "partial", false);
  DJob* j = new DJob(env);
  j->work = [s, t, target, partial]() {
    c10::NoGradGuard ng;
    UNet& m = s->model;
    for (auto& [n, x] : *t) {
      auto it = m.p.find(n);
      if (it == m.p.end()) Fail("SHAPE_MISMATCH", "tensor '" + n + "' is not a parameter of this UNet: a checkpoint of another architecture?");
      if (x.sizes() != it->second.sizes()) Fail("SHAPE_MISMATCH", "tensor '" + n + "' has another shape than this UNet's parameter: a checkpoint of another architecture?");
    }
    if (!partial)
      for (auto& n : m.order)
        if (!t->count(n)) Fail("MISSING_TENSOR", "tensors lack '" + n + "'");
    for (auto& [n, x] : *t) {
      if (target != "ema") m.p[n].copy_(x);
      if (target != "params") m.ema[n].copy_(x);
    }
  };
  return Post(env, s, j);
}

// dmTrainStep(h, x0: Float32Array [B,C,S,S], tokens: Int32Array [B,L], B, weights: Float64Array | null, opts) -> Promise<{ loss }>
Napi::Value JS_dmTrainStep(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  DSession* s = GetS(info[0]);
  int64_t B = Int(info[3], "batch");
  const UNetConfig& c = s->cfg;
  at::Tensor x0 = ArrayIn(info[1], napi_float32_array, "images", {B, c.channels, c.imageSize, c.imageSize});
  at::Tensor tok = ArrayIn(info[2], napi_int32_array, "tokens", {B, c.captionLen}).to(at::kLong);
  at::Tensor w;
  if (!info[4].IsNull() && !info[4].IsUndefined()) w = ArrayIn(info[4], napi_float64_array, "weights", {B});
  Napi::Object o = info[5].IsObject() ? info[5].As<Napi::Object>() : Napi::Object::New(env);
  TrainOptions t;
  t.lr = Num(o, "lr", 1e-3);
  t.b1 = Num(o, "beta1", 0.9);
  t.b2 = Num(o, "beta2", 0.999);
  t.eps = Num(o, "eps", 1e-8);
  t.wd = Num(o, "weightDecay", 0);
  t.emaDecay = Num(o, "emaDecay", 0.995);
  t.captionDropout = Num(o, "captionDropout", 0.1);
  t.maxGradNorm = Num(o, "maxGradNorm", 1.0);
  t.finetune = Bool(o, "finetune", false);
  DJob* j = new DJob(env);
  auto loss = std::make_shared<double>(0);
  j->work = [s, x0, tok, w, t, loss]() { *loss = s->model.TrainStep(x0, tok, w, t); };
  j->done = [loss](Napi::Env e) {
    Napi::Object r = Napi::Object::New(e);
    r.Set("loss", Napi::Number::New(e, *loss));
    return r;
  };
  return Post(env, s, j);
}

// dmEps(h, x: Float32Array, t: Int32Array [B], tokens: Int32Array, B, useEma) -> Promise<Tensor>
Napi::Value JS_dmEps(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  DSession* s = GetS(info[0]);
  int64_t B = Int(info[4], "batch");
  const UNetConfig& c = s->cfg;
  at::Tensor x = ArrayIn(info[1], napi_float32_array, "images", {B, c.channels, c.imageSize, c.imageSize});
  at::Tensor t = ArrayIn(info[2], napi_int32_array, "t", {B}).to(at::kLong);
  at::Tensor tok = ArrayIn(info[3], napi_int32_array, "tokens", {B, c.captionLen}).to(at::kLong);
  bool useEma = info[5].ToBoolean().Value();
  DJob* j = new DJob(env);
  auto out = std::make_shared<at::Tensor>();
  j->work = [s, x, t, tok, useEma, out]() {
    c10::NoGradGuard ng;
    *out = s->model.Eps(x, t, tok, useEma);
  };
  j->done = [out](Napi::Env e) { return TensorOutF32(e, *out); };
  return Post(env, s, j);
}

// dmLoss(h, x0, tokens, t: Int32Array, noise: Float32Array, B, useEma) -> Promise<Tensor [B]> (per-example)
Napi::Value JS_dmLoss(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  DSession* s = GetS(info[0]);
  int64_t B = Int(info[5], "batch");
  const UNetConfig& c = s->cfg;
  std::vector<int64_t> shape = {B, c.channels, c.imageSize, c.imageSize};
  at::Tensor x0 = ArrayIn(info[1], napi_float32_array, "images", shape);
  at::Tensor tok = ArrayIn(info[2], napi_int32_array, "tokens", {B, c.captionLen}).to(at::kLong);
  at::Tensor t = ArrayIn(info[3], napi_int32_array, "t", {B});
  at::Tensor noise = ArrayIn(info[4], napi_float32_array, "noise", shape);
  bool useEma = info[6].ToBoolean().Value();
  DJob* j = new DJob(env);
  auto out = std::make_shared<at::Tensor>();
  j->work = [s, x0, tok, t, noise, useEma, out]() {
    c10::NoGradGuard ng;
    *out = s->model.PerExampleLoss(x0, tok, t, noise, useEma);
  };
  j->done = [out](Napi::Env e) { return TensorOutF32(e, *out); };
  return Post(env, s, j);
}

// dmSample(h, tokens: Int32Array [B,L], B, noise: Float32Array [B,C,S,S], { steps, guidance, clip, useEma }) -> Promise<Tensor>
Napi::Value JS_dmSample(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  DSession* s = GetS(info[0]);
  int64_t B = Int(info[2], "batch");
  const UNetConfig& c = s->cfg;
  at::Tensor tok = ArrayIn(info[1], napi_int32_array, "tokens", {B, c.captionLen}).to(at::kLong);
  at::Tensor noise = ArrayIn(info[3], napi_float32_array, "noise", {B, c.channels, c.imageSize, c.imageSize});
  Napi::Object o = info[4].IsObject() ? info[4].As<Napi::Object>() : Napi::Object::New(env);
  SampleOptions so;
  so.steps = int64_t(Num(o, "steps", 20));
  so.guidance = Num(o, "guidance", 1.0);
  so.clip = Bool(o, "clip", true);
  so.useEma = Bool(o, "useEma", true);
  DJob* j = new DJob(env);
  auto out = std::make_shared<at::Tensor>();
  j->work = [s, tok, noise, so, out]() { *out = s->model.Sample(tok, noise, so); };
  j->done = [out](Napi::Env e) { return TensorOutF32(e, *out); };
  return Post(env, s, j);
}

// dmOp(h, op, arg?) -> Promise<void>: dispose, copyToEma, resetOptimizer, seed
Napi::Value JS_dmOp(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  DSession* s = GetS(info[0]);
  std::string op = info[1].ToString().Utf8Value();
  double arg = info.Length() > 2 && info[2].IsNumber() ? info[2].As<Napi::Number>().DoubleValue() : 0;
  DJob* j = new DJob(env);
  j->work = [s, op, arg]() {
    if (op == "dispose") s->model = UNet();
    else if (op == "copyToEma") s->model.CopyToEma();
    else if (op == "resetOptimizer") {
      s->model.adam = AdamState();
      s->model.emaSteps = 0;  // a new run: the EMA warms up again
    }
    else if (op == "seed") s->model.Seed(uint64_t(arg));
    else Fail("INVALID_ARG", "unknown op '" + op + "' (dispose, copyToEma, resetOptimizer, seed)");
  };
  Napi::Value p = Post(env, s, j);
  if (op == "dispose") {
    {
      std::lock_guard<std::mutex> lk(s->mu);
      s->stopping = true;
    }
    s->cv.notify_one();
  }
  return p;
}

// Synchronous pure functions (for tests and the TS face).
Napi::Value JS_dmSchedule(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  try {
    at::Tensor ab = CosineAlphaBar(Int(info[0], "T"));
    Napi::Float64Array a = Napi::Float64Array::New(env, size_t(ab.numel()));
    std::memcpy(a.Data(), ab.data_ptr<double>(), size_t(ab.numel()) * 8);
    return a;
  } catch (const std::runtime_error& e) {
    throw Napi::Error::New(env, e.what());
  }
}

Napi::Value JS_dmTimesteps(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  try {
    auto ts = DdimTimesteps(Int(info[0], "T"), Int(info[1], "steps"));
    Napi::Int32Array a = Napi::Int32Array::New(env, ts.size());
    for (size_t i = 0; i < ts.size(); i++) a[i] = int32_t(ts[i]);
    return a;
  } catch (const std::runtime_error& e) {
    throw Napi::Error::New(env, e.what());
  }
}

// dmNoise(seeds: Float64Array, C, H, W) -> Tensor
Napi::Value JS_dmNoise(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsTypedArray() || info[0].As<Napi::TypedArray>().TypedArrayType() != napi_float64_array) ThrowType(env, "seeds must be a Float64Array");
  Napi::Float64Array a = info[0].As<Napi::Float64Array>();
  std::vector<uint64_t> seeds;
  for (size_t i = 0; i < a.ElementLength(); i++) seeds.push_back(uint64_t(a[i]));
  return TensorOutF32(env, NoiseFromSeeds(seeds, Int(info[1], "C"), Int(info[2], "H"), Int(info[3], "W")));
}

}  // namespace

void RegisterDiffusion(Napi::Env env, Napi::Object exports) {
  exports.Set("dmCreate", Napi::Function::New(env, JS_dmCreate));
  exports.Set("dmInfo", Napi::Function::New(env, JS_dmInfo));
  exports.Set("dmGetTensors", Napi::Function::New(env, JS_dmGetTensors));
  exports.Set("dmSetTensors", Napi::Function::New(env, JS_dmSetTensors));
  exports.Set("dmTrainStep", Napi::Function::New(env, JS_dmTrainStep));
  exports.Set("dmEps", Napi::Function::New(env, JS_dmEps));
  exports.Set("dmLoss", Napi::Function::New(env, JS_dmLoss));
  exports.Set("dmSample", Napi::Function::New(env, JS_dmSample));
  exports.Set("dmOp", Napi::Function::New(env, JS_dmOp));
  exports.Set("dmSchedule", Napi::Function::New(env, JS_dmSchedule));
  exports.Set("dmTimesteps", Napi::Function::New(env, JS_dmTimesteps));
  exports.Set("dmNoise", Napi::Function::New(env, JS_dmNoise));
}
