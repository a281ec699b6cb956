// SPDX-License-Identifier: MIT
// N-API bindings of the serving engine (native/torch/serve.h): one engine per native thread, every call
// a job queued to that thread (as train.cc does for models), so adds, steps and removals run in the
// order they were called and the engine needs no locks.
//   serveCreate({ config, weights, dtype, device, autocast, threads, experts: [{ name, modules }] })
//   serveAdd(h, [{ id, tokens: Int32Array, lambda: Float64Array, mode, temperature, topP, topK, seed, maxTokens }], wantLogits)
//   serveStep(h, wantLogits) -> { ids: Int32Array, tokens: Int32Array, logits? }
//   serveRemove(h, ids: Int32Array), serveInfo(h), serveDispose(h)
#include <napi.h>

#include <c10/util/Exception.h>

#include <ATen/Parallel.h>

#include <condition_variable>
#include <cstdlib>
#ifdef __GLIBC__
#include <malloc.h>
#endif
#include <cstring>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>

#include "addon/torch/args.h"
#include "addon/torch/register.h"
#include "torch/serve.h"

namespace {
using namespace soup;
using namespace soup::addon;

struct Engine;

struct SJob {
  Engine* e = nullptr;
  std::function<void()> work;
  std::function<Napi::Value(Napi::Env)> done;
  Napi::Promise::Deferred deferred;
  std::vector<Napi::Reference<Napi::Value>> keep;
  std::string error;
  explicit SJob(Napi::Env env) : deferred(Napi::Promise::Deferred::New(env)) {}
};

struct Engine {
  ServeEngine eng;
  std::thread th;
  std::mutex mu;
  std::condition_variable cv;
  std::deque<SJob*> q;
  bool stopping = false;
  Napi::ThreadSafeFunction tsfn;
  int pending = 0;
  int threads = 1;
};
using EnginePtr = std::shared_ptr<Engine>;

void Complete(Napi::Env env, SJob* j) {
  Engine* e = j->e;
  if (env != nullptr) {
    Napi::HandleScope scope(env);
    if (j->error.empty()) {
      try {
        j->deferred.Resolve(j->done ? j->done(env) : env.Undefined());
      } catch (const Napi::Error& err) {
        j->deferred.Reject(err.Value());
      } catch (const std::exception& err) {
        j->deferred.Reject(Napi::Error::New(env, err.what()).Value());
      }
    } else {
      j->deferred.Reject(Napi::Error::New(env, j->error).Value());
    }
    if (--e->pending == 0) e->tsfn.Unref(env);
  } else {
    for (auto& r : j->keep) r.SuppressDestruct();
  }
  j->keep.clear();
  delete j;
}

void Loop(Engine* e) {
  at::set_num_threads(e->threads);
  for (;;) {
    SJob* j = nullptr;
    {
      std::unique_lock<std::mutex> lk(e->mu);
      e->cv.wait(lk, [e] { return e->stopping || !e->q.empty(); });
      if (e->q.empty()) break;
      j = e->q.front();
      e->q.pop_front();
    }
    if (j->work) j->error = RunCaught(j->work);
    e->tsfn.BlockingCall(j, [](Napi::Env env, Napi::Function, SJob* jj) { Complete(env, jj); });
  }
  e->eng = ServeEngine();  // free tensors on the thread that made them
  e->tsfn.Release();
}

EnginePtr& GetEngine(const Napi::Value& v) {
  if (!v.IsExternal()) throw Napi::TypeError::New(v.Env(), "[ERR_SOUP_INVALID_ARG] expected a serving engine handle");
  return *v.As<Napi::External<EnginePtr>>().Data();
}

Napi::Value Post(Napi::Env env, Engine* e, SJob* j) {
  j->e = e;
  {
    std::lock_guard<std::mutex> lk(e->mu);
    if (e->stopping) {
      delete j;
      throw Napi::Error::New(env, "[ERR_SOUP_INVALID_ARG] the serving engine was disposed");
    }
    e->q.push_back(j);
  }
  if (e->pending++ == 0) e->tsfn.Ref(env);
  e->cv.notify_one();
  return j->deferred.Promise();
}



Napi::Value IntsOut(Napi::Env env, const std::vector<int64_t>& v) {
  Napi::Int32Array a = Napi::Int32Array::New(env, v.size());
  for (size_t i = 0; i < v.size(); i++) a[i] = int32_t(v[i]);
  return a;
}

ServeMode ModeOf(Napi::Env env, const std::string& s) {
  if (s == "soup") return ServeMode::Soup;
  if (s == "soup-ab") return ServeMode::SoupAB;
  if (s == "ensemble") return ServeMode::Ensemble;
  throw Napi::TypeError::New(env, "[ERR_SOUP_INVALID_ARG] mode must be 'soup', 'soup-ab' or 'ensemble', got '" + s + "'");
}

// The same glibc tuning as the training models (train.cc, NOTE [malloc on model threads]): every step
// allocates multi-MB temporaries (logits over the vocabulary, KV caches of joining sequences) that a
// trimming arena would hand back and fault in again. Opt out: RSOUP_MALLOC_TUNE=0.
void TuneMallocServe() {
#ifdef __GLIBC__
  static std::once_flag once;
  std::call_once(once, [] {
    const char* e = std::getenv("RSOUP_MALLOC_TUNE");
    if (e && std::string(e) == "0") return;
    mallopt(M_MMAP_THRESHOLD, 32 << 20);
    mallopt(M_TRIM_THRESHOLD, 512 << 20);
    mallopt(M_TOP_PAD, 64 << 20);
  });
#endif
}

Napi::Value JS_serveCreate(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsObject()) throw Napi::TypeError::New(env, "[ERR_SOUP_INVALID_ARG] serveCreate(baton)");
  TuneMallocServe();
  Napi::Object b = info[0].As<Napi::Object>();
  Napi::Object c = b.Get("config").As<Napi::Object>();
  LlamaConfig cfg;
  cfg.vocab = int64_t(Num(c, "vocabSize", 0));
  cfg.hidden = int64_t(Num(c, "hiddenSize", 0));
  cfg.intermediate = int64_t(Num(c, "intermediateSize", 0));
  cfg.layers = int64_t(Num(c, "numHiddenLayers", 0));
  cfg.heads = int64_t(Num(c, "numAttentionHeads", 0));
  cfg.kvHeads = int64_t(Num(c, "numKeyValueHeads", double(cfg.heads)));
  cfg.eps = Num(c, "rmsNormEps", 1e-6);
  cfg.ropeTheta = Num(c, "ropeTheta", 10000);
  cfg.tied = Bool(c, "tieWordEmbeddings", false);
  at::ScalarType dt = DtypeOf(env, Str(b, "dtype", "float32"));
  std::string device = Str(b, "device", "cpu");
  bool autocast = Bool(b, "autocast", true);
  auto sp = std::make_shared<Engine>();
  Engine* e = sp.get();
  e->threads = std::max(1, int(Num(b, "threads", double(std::max(1u, std::thread::hardware_concurrency())))));
  SJob* j = new SJob(env);
  std::map<std::string, at::Tensor> weights;
  Napi::Value wv = b.Get("weights");
  if (!wv.IsObject()) {
    delete j;
    throw Napi::TypeError::New(env, "[ERR_SOUP_INVALID_ARG] serveCreate: weights must be a TensorMap");
  }
  {
    Napi::Object o = wv.As<Napi::Object>();
    Napi::Array keys = o.GetPropertyNames();
    for (uint32_t i = 0; i < keys.Length(); i++) {
      std::string k = keys.Get(i).ToString().Utf8Value();
      weights[k] = TensorIn(env, o.Get(k), k, j->keep);
    }
  }
  std::vector<ServeExpert> experts;
  std::vector<std::string> names;
  Napi::Value ev = b.Get("experts");
  if (ev.IsArray()) {
    Napi::Array ea = ev.As<Napi::Array>();
    for (uint32_t i = 0; i < ea.Length(); i++) {
      Napi::Object eo = ea.Get(i).As<Napi::Object>();
      names.push_back(Str(eo, "name", "expert-" + std::to_string(i)));
      ServeExpert ex;
      Napi::Object mods = eo.Get("modules").As<Napi::Object>();
      Napi::Array mk = mods.GetPropertyNames();
      for (uint32_t k = 0; k < mk.Length(); k++) {
        std::string mod = mk.Get(k).ToString().Utf8Value();
        Napi::Object mo = mods.Get(mod).As<Napi::Object>();
        ServeExpertModule sm;
        sm.A = TensorIn(env, mo.Get("A"), mod + ".lora_A", j->keep);
        sm.B = TensorIn(env, mo.Get("B"), mod + ".lora_B", j->keep);
        sm.scaling = Num(mo, "scaling", 1.0);
        ex[mod] = sm;
      }
      experts.push_back(std::move(ex));
    }
  }
  e->tsfn = Napi::ThreadSafeFunction::New(env, Napi::Function::New(env, [](const Napi::CallbackInfo&) {}), "soup-serve", 0, 1,
                                          [sp](Napi::Env) mutable {
                                            {
                                              std::lock_guard<std::mutex> lk(sp->mu);
                                              sp->stopping = true;
                                            }
                                            sp->cv.notify_one();
                                            if (sp->th.joinable()) sp->th.join();
                                            sp.reset();
                                          });
  e->tsfn.Unref(env);
  e->th = std::thread(Loop, e);
  auto* handle = new EnginePtr(sp);
  Napi::External<EnginePtr> ext = Napi::External<EnginePtr>::New(env, handle, [](Napi::Env, EnginePtr* h) {
    Engine* ee = h->get();
    {
      std::lock_guard<std::mutex> lk(ee->mu);
      ee->stopping = true;
    }
    ee->cv.notify_one();
    delete h;
  });
  auto extRef = std::make_shared<Napi::Reference<Napi::Value>>(Napi::Persistent(ext.As<Napi::Value>()));
  j->work = [e, cfg, dt, device, autocast, weights = std::move(weights), experts = std::move(experts), names]() {
    e->eng.m.SetDevice(device, autocast);
    e->eng.Init(cfg, dt, weights, experts, names);
  };
  j->done = [extRef](Napi::Env) { return extRef->Value(); };
  return Post(env, e, j);
}

Napi::Value SamplesOut(Napi::Env env, const std::vector<ServeSample>& s, const at::Tensor& logits, bool want) {
  std::vector<int64_t> ids, toks;
  for (auto& x : s) {
    ids.push_back(x.id);
    toks.push_back(x.token);
  }
  Napi::Object r = Napi::Object::New(env);
  r.Set("ids", IntsOut(env, ids));
  r.Set("tokens", IntsOut(env, toks));
  if (want) r.Set("logits", TensorOut(env, logits));
  return r;
}

Napi::Value JS_serveAdd(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Engine* e = GetEngine(info[0]).get();
  if (!info[1].IsArray()) throw Napi::TypeError::New(env, "[ERR_SOUP_INVALID_ARG] serveAdd(h, sequences[])");
  bool want = info.Length() > 2 && info[2].ToBoolean().Value();
  Napi::Array arr = info[1].As<Napi::Array>();
  std::vector<ServeAdd> adds;
  for (uint32_t i = 0; i < arr.Length(); i++) {
    Napi::Object o = arr.Get(i).As<Napi::Object>();
    ServeAdd a;
    a.id = int64_t(Num(o, "id", -1));
    Napi::Value tv = o.Get("tokens"), lv = o.Get("lambda");
    if (!tv.IsTypedArray() || tv.As<Napi::TypedArray>().TypedArrayType() != napi_int32_array) throw Napi::TypeError::New(env, "[ERR_SOUP_INVALID_ARG] tokens must be an Int32Array");
    if (!lv.IsTypedArray() || lv.As<Napi::TypedArray>().TypedArrayType() != napi_float64_array) throw Napi::TypeError::New(env, "[ERR_SOUP_INVALID_ARG] lambda must be a Float64Array");
    Napi::Int32Array ta = tv.As<Napi::Int32Array>();
    for (size_t k = 0; k < ta.ElementLength(); k++) a.tokens.push_back(ta[k]);
    Napi::Float64Array la = lv.As<Napi::Float64Array>();
    for (size_t k = 0; k < la.ElementLength(); k++) a.lambda.push_back(la[k]);
    a.mode = ModeOf(env, Str(o, "mode", "soup"));
    a.temperature = Num(o, "temperature", 1.0);
    a.topP = Num(o, "topP", 1.0);
    a.topK = int64_t(Num(o, "topK", 0));
    a.seed = uint64_t(Num(o, "seed", 0));
    a.maxTokens = int64_t(Num(o, "maxTokens", 16));
    adds.push_back(std::move(a));
  }
  SJob* j = new SJob(env);
  auto out = std::make_shared<std::vector<ServeSample>>();
  auto lg = std::make_shared<at::Tensor>();
  j->work = [e, adds, out, lg, want]() { *out = e->eng.Add(adds, want ? lg.get() : nullptr); };
  j->done = [out, lg, want](Napi::Env env2) { return SamplesOut(env2, *out, *lg, want); };
  return Post(env, e, j);
}

Napi::Value JS_serveStep(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Engine* e = GetEngine(info[0]).get();
  bool want = info.Length() > 1 && info[1].ToBoolean().Value();
  SJob* j = new SJob(env);
  auto out = std::make_shared<std::vector<ServeSample>>();
  auto lg = std::make_shared<at::Tensor>();
  j->work = [e, out, lg, want]() { *out = e->eng.Step(want ? lg.get() : nullptr); };
  j->done = [out, lg, want](Napi::Env env2) { return SamplesOut(env2, *out, *lg, want); };
  return Post(env, e, j);
}

Napi::Value JS_serveRemove(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Engine* e = GetEngine(info[0]).get();
  if (!info[1].IsTypedArray() || info[1].As<Napi::TypedArray>().TypedArrayType() != napi_int32_array) throw Napi::TypeError::New(env, "[ERR_SOUP_INVALID_ARG] ids must be an Int32Array");
  Napi::Int32Array a = info[1].As<Napi::Int32Array>();
  std::vector<int64_t> ids;
  for (size_t k = 0; k < a.ElementLength(); k++) ids.push_back(a[k]);
  SJob* j = new SJob(env);
  j->work = [e, ids]() { e->eng.Remove(ids); };
  return Post(env, e, j);
}

Napi::Value JS_serveInfo(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Engine* e = GetEngine(info[0]).get();
  SJob* j = new SJob(env);
  auto st = std::make_shared<std::tuple<int64_t, int64_t, std::string, int64_t>>();
  j->work = [e, st]() {
    int64_t R = 0;
    for (auto& [_, c] : e->eng.lora) R = std::max(R, c.A.size(0));
    *st = {int64_t(e->eng.seqs.size()), e->eng.Rows(), e->eng.abUnavailable, R};
  };
  j->done = [st](Napi::Env env2) {
    Napi::Object r = Napi::Object::New(env2);
    r.Set("sequences", Napi::Number::New(env2, double(std::get<0>(*st))));
    r.Set("rows", Napi::Number::New(env2, double(std::get<1>(*st))));
    r.Set("abUnavailable", std::get<2>(*st));
    r.Set("maxRank", Napi::Number::New(env2, double(std::get<3>(*st))));
    return r;
  };
  return Post(env, e, j);
}

Napi::Value JS_serveDispose(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Engine* e = GetEngine(info[0]).get();
  SJob* j = new SJob(env);
  j->work = [e]() { e->eng = ServeEngine(); };
  Napi::Value p = Post(env, e, j);
  {
    std::lock_guard<std::mutex> lk(e->mu);
    e->stopping = true;
  }
  e->cv.notify_one();
  return p;
}

}  // namespace

void RegisterServe(Napi::Env env, Napi::Object exports) {
  exports.Set("serveCreate", Napi::Function::New(env, JS_serveCreate));
  exports.Set("serveAdd", Napi::Function::New(env, JS_serveAdd));
  exports.Set("serveStep", Napi::Function::New(env, JS_serveStep));
  exports.Set("serveRemove", Napi::Function::New(env, JS_serveRemove));
  exports.Set("serveInfo", Napi::Function::New(env, JS_serveInfo));
  exports.Set("serveDispose", Napi::Function::New(env, JS_serveDispose));
}
