// SPDX-License-Identifier: MIT
// N-API bindings of the training core (native/torch). Each model lives on its own native thread (not the
// libuv pool): every call on it is a job queued to that thread, and completes through one
// ThreadSafeFunction that resolves the job's promise on the JS thread. Jobs on one model run in order,
// so the model needs no locks. Incoming TypedArrays are wrapped in place (from_blob) and kept alive by a
// reference until the job completes; outgoing tensors are external ArrayBuffers that own their tensor.
#include <napi.h>

#include <c10/util/Exception.h>

#include <ATen/Parallel.h>
#include <c10/core/GradMode.h>

#include <cmath>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <functional>
#include <cstdlib>
#ifdef __GLIBC__
#include <malloc.h>
#endif
#include <memory>
#include <mutex>
#include <thread>

#include "addon/torch/args.h"
#include "addon/torch/register.h"
#include "torch/llama.h"

namespace {
using namespace soup;
using namespace soup::addon;

struct Session;

struct Job {
  Session* s = nullptr;
  std::function<void()> work;                           // worker thread
  std::function<Napi::Value(Napi::Env)> done;           // JS thread
  Napi::Promise::Deferred deferred;
  std::vector<Napi::Reference<Napi::Value>> keep;       // inputs wrapped by from_blob
  std::string error;
  explicit Job(Napi::Env env) : deferred(Napi::Promise::Deferred::New(env)) {}
};

struct Session {
  LlamaModel model;
  std::unique_ptr<Rollout> rollout;
  std::thread th;
  std::mutex mu;
  std::condition_variable cv;
  std::deque<Job*> q;
  bool stopping = false;
  Napi::ThreadSafeFunction tsfn;
  int pending = 0;
  int threads = 1;
};

using SessionPtr = std::shared_ptr<Session>;

void Complete(Napi::Env env, Job* j) {
  Session* s = j->s;
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
  } else {
    for (auto& r : j->keep) r.SuppressDestruct();  // environment teardown
  }
  j->keep.clear();
  delete j;
}

void Loop(Session* s) {
  at::set_num_threads(s->threads);  // OpenMP's thread count is a per-thread setting
  for (;;) {
    Job* j = nullptr;
    {
      std::unique_lock<std::mutex> lk(s->mu);
      s->cv.wait(lk, [s] { return s->stopping || !s->q.empty(); });
      if (s->q.empty()) break;
      j = s->q.front();
      s->q.pop_front();
    }
    if (j->work) j->error = RunCaught(j->work);
    s->tsfn.BlockingCall(j, [](Napi::Env env, Napi::Function, Job* jj) { Complete(env, jj); });
  }
  s->model = LlamaModel();  // free tensors on the thread that made them
  s->rollout.reset();
  s->tsfn.Release();
}

SessionPtr& GetSession(const Napi::Value& v) {
  if (!v.IsExternal()) throw Napi::TypeError::New(v.Env(), "[ERR_SOUP_INVALID_ARG] expected a model handle");
  return *v.As<Napi::External<SessionPtr>>().Data();
}

Napi::Value Post(Napi::Env env, Session* s, Job* j) {
  j->s = s;
  {
    std::lock_guard<std::mutex> lk(s->mu);
    if (s->stopping) {
      delete j;
      throw Napi::Error::New(env, "[ERR_SOUP_INVALID_ARG] the model was disposed");
    }
    s->q.push_back(j);
  }
  if (s->pending++ == 0) s->tsfn.Ref(env);
  s->cv.notify_one();
  return j->deferred.Promise();
}

// ---- argument helpers ----

// {dtype, shape, data} -> a tensor over the JS memory (kept alive by the job).

std::map<std::string, at::Tensor> TensorMapIn(Napi::Env env, const Napi::Value& v, Job* j) {
  std::map<std::string, at::Tensor> m;
  if (!v.IsObject()) throw Napi::TypeError::New(env, "[ERR_SOUP_INVALID_ARG] expected a TensorMap");
  Napi::Object o = v.As<Napi::Object>();
  Napi::Array keys = o.GetPropertyNames();
  for (uint32_t i = 0; i < keys.Length(); i++) {
    std::string k = keys.Get(i).ToString().Utf8Value();
    m[k] = TensorIn(env, o.Get(k), k, j->keep);
  }
  return m;
}

// Int32Array tokens [B, T] -> int64 tensor (converted on the worker).
at::Tensor TokensIn(Napi::Env env, const Napi::Value& v, int64_t B, int64_t T, const char* what, Job* j) {
  if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != napi_int32_array)
    throw Napi::TypeError::New(env, std::string("[ERR_SOUP_INVALID_ARG] ") + what + " must be an Int32Array");
  Napi::Int32Array a = v.As<Napi::Int32Array>();
  if (int64_t(a.ElementLength()) != B * T)
    throw Napi::RangeError::New(env, std::string("[ERR_SOUP_SHAPE_MISMATCH] ") + what + " has " + std::to_string(a.ElementLength()) + " elements, expected " + std::to_string(B) + "x" + std::to_string(T));
  j->keep.push_back(Napi::Persistent(v));
  return at::from_blob(a.Data(), {B, T}, at::TensorOptions().dtype(at::kInt));
}

Napi::Value IntsOut(Napi::Env env, const at::Tensor& t) {
  at::Tensor c = t.to(at::kCPU).to(at::kInt).contiguous();
  Napi::Int32Array a = Napi::Int32Array::New(env, size_t(c.numel()));
  if (c.numel()) std::memcpy(a.Data(), c.data_ptr<int32_t>(), size_t(c.numel()) * 4);
  return a;
}

Napi::Value TensorMapOut(Napi::Env env, const std::vector<std::pair<std::string, at::Tensor>>& v) {
  Napi::Object o = Napi::Object::New(env);
  for (auto& [k, t] : v) o.Set(k, TensorOut(env, t));
  return o;
}

at::Tensor MaskIn(Napi::Env env, const Napi::Value& v, int64_t B, int64_t T, Job* j) {
  if (v.IsUndefined() || v.IsNull()) return at::Tensor();
  return TokensIn(env, v, B, T, "mask", j);
}

GenOptions GenIn(const Napi::Object& o) {
  GenOptions g;
  g.maxNew = int64_t(Num(o, "maxNewTokens", 16));
  g.minNew = int64_t(Num(o, "minNewTokens", 0));
  g.sample = Bool(o, "doSample", true);
  g.temperature = Num(o, "temperature", 1.0);
  g.topK = int64_t(Num(o, "topK", 0));
  g.topP = Num(o, "topP", 1.0);
  g.eos = int64_t(Num(o, "eosTokenId", -1));
  g.pad = int64_t(Num(o, "padTokenId", 0));
  return g;
}

// ---------------------------------------------------------------------------------------------------
// JS_ functions

// NOTE: [malloc on model threads] glibc gives each non-main thread its own arena and trims its heaps as
// soon as the free top exceeds 128 KiB, so every step's multi-MB temporaries (logits over the vocabulary)
// come back as fresh pages; this VM serves first touches at ~2.3 GB/s. Keeping freed memory (trim 512 MiB,
// top pad 64 MiB, mmap only above 32 MiB) made logits/backward 2-3x faster here. Opt out: RSOUP_MALLOC_TUNE=0.
void TuneMalloc() {
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

// lmCreate({ config, weights?, dtype, seed, threads, lora?, valueHead }) -> Promise<handle>
Napi::Value JS_lmCreate(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsObject()) throw Napi::TypeError::New(env, "[ERR_SOUP_INVALID_ARG] lmCreate(baton)");
  TuneMalloc();
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
  uint64_t seed = uint64_t(Num(b, "seed", 0));
  std::optional<LoraConfig> lc;
  Napi::Value lv = b.Get("lora");
  if (lv.IsObject()) {
    Napi::Object l = lv.As<Napi::Object>();
    LoraConfig x;
    x.r = int64_t(Num(l, "r", 8));
    x.alpha = Num(l, "loraAlpha", 8);
    x.dropout = Num(l, "loraDropout", 0);
    x.rslora = Bool(l, "useRslora", false);
    Napi::Value tv = l.Get("targetModules");
    if (tv.IsArray()) {
      Napi::Array ta = tv.As<Napi::Array>();
      for (uint32_t i = 0; i < ta.Length(); i++) x.targets.push_back(ta.Get(i).ToString().Utf8Value());
    }
    lc = x;
  }
  bool vhead = Bool(b, "valueHead", false);
  std::string device = Str(b, "device", "cpu");
  bool autocast = Bool(b, "autocast", true);
  auto sp = std::make_shared<Session>();
  Session* s = sp.get();
  s->threads = std::max(1, int(Num(b, "threads", double(std::max(1u, std::thread::hardware_concurrency())))));
  Job* j = new Job(env);
  std::map<std::string, at::Tensor> weights;
  bool haveWeights = b.Get("weights").IsObject();
  if (haveWeights) weights = TensorMapIn(env, b.Get("weights"), j);
  s->tsfn = Napi::ThreadSafeFunction::New(env, Napi::Function::New(env, [](const Napi::CallbackInfo&) {}), "soup-train", 0, 1,
                                          [sp](Napi::Env) mutable {
                                            // Normally the thread has released us and exits; at environment
                                            // teardown it may still wait for jobs: stop it first.
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
  auto* handle = new SessionPtr(sp);
  Napi::External<SessionPtr> ext = Napi::External<SessionPtr>::New(env, handle, [](Napi::Env, SessionPtr* h) {
    Session* ss = h->get();
    {
      std::lock_guard<std::mutex> lk(ss->mu);
      ss->stopping = true;
    }
    ss->cv.notify_one();
    delete h;
  });
  auto extRef = std::make_shared<Napi::Reference<Napi::Value>>(Napi::Persistent(ext.As<Napi::Value>()));
  j->work = [s, cfg, dt, seed, lc, vhead, device, autocast, weights = std::move(weights), haveWeights]() {
    s->model.SetDevice(device, autocast);  // ERR_SOUP_NO_CUDA when libtorch sees no CUDA device
    s->model.Init(cfg, dt, haveWeights ? &weights : nullptr, seed);
    if (lc) s->model.AddLora(*lc, seed + 1);
    if (vhead) s->model.InitValueHead(seed + 2);
  };
  j->done = [extRef](Napi::Env) { return extRef->Value(); };
  return Post(env, s, j);
}

// lmLogits(h, tokens, B, T, mask?) -> Promise<Tensor [B, T, V]>
Napi::Value JS_lmLogits(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Session* s = GetSession(info[0]).get();
  int64_t B = Int(info[2], "batch"), T = Int(info[3], "time");
  Job* j = new Job(env);
  at::Tensor tok = TokensIn(env, info[1], B, T, "tokens", j), mask = MaskIn(env, info[4], B, T, j);
  auto out = std::make_shared<at::Tensor>();
  j->work = [s, tok, mask, out]() {
    c10::NoGradGuard ng;
    at::Tensor t = tok.to(at::kLong);
    if (t.numel() && (t.min().item<int64_t>() < 0 || t.max().item<int64_t>() >= s->model.cfg.vocab))
      Fail("INVALID_ARG", "token ids must be in [0, " + std::to_string(s->model.cfg.vocab) + ")");
    bool was = s->model.training;
    s->model.training = false;
    *out = s->model.Logits(s->model.Hidden(t, mask.defined() ? mask.to(at::kLong) : mask, nullptr));
    s->model.training = was;
  };
  j->done = [out](Napi::Env e) { return TensorOut(e, *out); };
  return Post(env, s, j);
}

// lmGenerate(h, tokens, B, P, mask?, opts) -> Promise<{ tokens: Int32Array [B, maxNew], lengths }>
Napi::Value JS_lmGenerate(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Session* s = GetSession(info[0]).get();
  int64_t B = Int(info[2], "batch"), P = Int(info[3], "prompt length");
  Job* j = new Job(env);
  at::Tensor tok = TokensIn(env, info[1], B, P, "tokens", j), mask = MaskIn(env, info[4], B, P, j);
  Napi::Object o = info[5].As<Napi::Object>();
  GenOptions g = GenIn(o);
  bool reseed = !o.Get("seed").IsUndefined();
  uint64_t seed = uint64_t(Num(o, "seed", 0));
  auto out = std::make_shared<GenResult>();
  j->work = [s, tok, mask, g, reseed, seed, out]() {
    if (reseed) s->model.Seed(seed);
    at::Tensor t = tok.to(at::kLong);
    if (t.min().item<int64_t>() < 0 || t.max().item<int64_t>() >= s->model.cfg.vocab)
      Fail("INVALID_ARG", "token ids must be in [0, " + std::to_string(s->model.cfg.vocab) + ")");
    *out = s->model.Generate(t, mask.defined() ? mask.to(at::kLong) : mask, g);
  };
  j->done = [out](Napi::Env e) {
    Napi::Object r = Napi::Object::New(e);
    r.Set("tokens", IntsOut(e, out->tokens));
    r.Set("lengths", IntsOut(e, out->lengths));
    r.Set("width", Napi::Number::New(e, double(out->tokens.size(1))));
    return r;
  };
  return Post(env, s, j);
}

std::vector<std::pair<std::string, at::Tensor>> Group(LlamaModel& m, const std::string& which) {
  std::vector<std::pair<std::string, at::Tensor>> v;
  c10::NoGradGuard ng;
  if (which == "base") {
    for (auto& [n, t] : m.base) v.push_back({n, t.detach().clone()});
  } else if (which == "lora") {
    for (auto& [n, t] : m.LoraTensors()) v.push_back({n, t.detach().clone()});
  } else if (which == "valueHead") {
    if (m.vHeadW.defined()) {
      v.push_back({"v_head.summary.weight", m.vHeadW.detach().clone()});
      v.push_back({"v_head.summary.bias", m.vHeadB.detach().clone()});
    }
  } else if (which == "optimizer") {
    for (size_t i = 0; i < m.adam.params.size(); i++) {
      v.push_back({"adam.m." + m.adam.names[i], m.adam.m[i].clone()});
      v.push_back({"adam.v." + m.adam.names[i], m.adam.v[i].clone()});
    }
    v.push_back({"adam.step", at::full({1}, double(m.adam.step), at::kDouble)});
  } else {
    Fail("INVALID_ARG", "unknown tensor group '" + which + "' (base, lora, valueHead, optimizer)");
  }
  return v;
}

void SetGroup(LlamaModel& m, const std::string& which, const std::map<std::string, at::Tensor>& t) {
  c10::NoGradGuard ng;
  if (which == "lora") {
    m.SetLora(t);
  } else if (which == "refAdapter") {
    if (!m.lora) Fail("INVALID_ARG", "this model has no LoRA adapter");
    for (auto& [mod, p] : m.adapter) {
      LoraPair r;
      auto a = t.find("base_model.model." + mod + ".lora_A.weight"), b = t.find("base_model.model." + mod + ".lora_B.weight");
      if (a == t.end() || b == t.end()) Fail("MISSING_TENSOR", "reference adapter lacks module '" + mod + "'");
      if (a->second.sizes() != p.A.sizes() || b->second.sizes() != p.B.sizes()) Fail("SHAPE_MISMATCH", "reference adapter module '" + mod + "' has other shapes than the adapter");
      r.A = m.Dev(a->second.to(m.paramDtype, false, true));
      r.B = m.Dev(b->second.to(m.paramDtype, false, true));
      m.refAdapter[mod] = r;
    }
  } else if (which == "valueHead") {
    if (!m.vHeadW.defined()) Fail("INVALID_ARG", "this model has no value head");
    for (const char* n : {"v_head.summary.weight", "v_head.summary.bias"}) {
      auto it = t.find(n);
      if (it == t.end()) Fail("MISSING_TENSOR", std::string("value head lacks tensor '") + n + "'");
      at::Tensor& dst = n[15] == 'w' ? m.vHeadW : m.vHeadB;
      if (it->second.sizes() != dst.sizes()) Fail("SHAPE_MISMATCH", std::string("value head tensor '") + n + "' has the wrong shape");
      dst.copy_(it->second);
    }
  } else if (which == "base") {
    for (auto& [n, shape] : LlamaModel::ExpectedBase(m.cfg)) {
      auto it = t.find(n);
      if (it == t.end()) Fail("MISSING_TENSOR", "weights lack tensor '" + n + "'");
      if (it->second.sizes() != at::IntArrayRef(shape)) Fail("SHAPE_MISMATCH", "tensor '" + n + "' has the wrong shape");
    }
    if (m.merged) Fail("INVALID_ARG", "unmerge the adapter before replacing the base weights");
    for (auto& [n, shape] : LlamaModel::ExpectedBase(m.cfg)) m.base[n].copy_(t.at(n));
  } else if (which == "optimizer") {
    auto params = m.TrainableParams(false);
    std::vector<std::string> names;
    std::vector<at::Tensor> ps;
    for (auto& [n, p] : params) {
      names.push_back(n);
      ps.push_back(p);
    }
    m.adam.Reset(names, ps);
    for (size_t i = 0; i < names.size(); i++) {
      auto a = t.find("adam.m." + names[i]), b = t.find("adam.v." + names[i]);
      if (a == t.end() || b == t.end()) Fail("MISSING_TENSOR", "optimizer state lacks moments of '" + names[i] + "'");
      m.adam.m[i].copy_(a->second);
      m.adam.v[i].copy_(b->second);
    }
    auto st = t.find("adam.step");
    if (st == t.end()) Fail("MISSING_TENSOR", "optimizer state lacks 'adam.step'");
    m.adam.step = int64_t(st->second.to(at::kDouble).item<double>());
  } else {
    Fail("INVALID_ARG", "unknown tensor group '" + which + "' (base, lora, refAdapter, valueHead, optimizer)");
  }
}

// lmGetTensors(h, group) -> Promise<TensorMap>
Napi::Value JS_lmGetTensors(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Session* s = GetSession(info[0]).get();
  std::string which = info[1].ToString().Utf8Value();
  Job* j = new Job(env);
  auto out = std::make_shared<std::vector<std::pair<std::string, at::Tensor>>>();
  j->work = [s, which, out]() { *out = Group(s->model, which); };
  j->done = [out](Napi::Env e) { return TensorMapOut(e, *out); };
  return Post(env, s, j);
}

// lmSetTensors(h, group, tensors) -> Promise<void>
Napi::Value JS_lmSetTensors(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Session* s = GetSession(info[0]).get();
  std::string which = info[1].ToString().Utf8Value();
  Job* j = new Job(env);
  auto t = TensorMapIn(env, info[2], j);
  j->work = [s, which, t]() { SetGroup(s->model, which, t); };
  return Post(env, s, j);
}

// lmOp(h, op) -> Promise<void>: merge, unmerge, enableAdapter, disableAdapter, snapshotRef, dispose
Napi::Value JS_lmOp(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  SessionPtr& sp = GetSession(info[0]);
  Session* s = sp.get();
  std::string op = info[1].ToString().Utf8Value();
  Job* j = new Job(env);
  j->work = [s, op]() {
    LlamaModel& m = s->model;
    if (op == "merge") m.Merge();
    else if (op == "unmerge") m.Unmerge();
    else if (op == "enableAdapter") m.mode = AdapterMode::Active;
    else if (op == "disableAdapter") {
      if (m.merged) Fail("INVALID_ARG", "the adapter is merged: unmerge it before disabling it");
      m.mode = AdapterMode::Disabled;
    } else if (op == "snapshotRef") {
      c10::NoGradGuard ng;
      m.refAdapter.clear();
      for (auto& [mod, p] : m.adapter) m.refAdapter[mod] = LoraPair{p.A.detach().clone(), p.B.detach().clone()};
    } else if (op == "dispose") {
      s->rollout.reset();
      s->model = LlamaModel();
    } else Fail("INVALID_ARG", "unknown op '" + op + "'");
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

// lmLossGrad(h, tokens, B, T, mask?, params: 'lora'|'all') -> Promise<{ loss, grads }>
Napi::Value JS_lmLossGrad(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Session* s = GetSession(info[0]).get();
  int64_t B = Int(info[2], "batch"), T = Int(info[3], "time");
  Job* j = new Job(env);
  at::Tensor tok = TokensIn(env, info[1], B, T, "tokens", j), mask = MaskIn(env, info[4], B, T, j);
  bool all = info[5].ToString().Utf8Value() == "all";
  auto loss = std::make_shared<double>(0);
  auto grads = std::make_shared<std::vector<std::pair<std::string, at::Tensor>>>();
  j->work = [s, tok, mask, all, loss, grads]() {
    LlamaModel& m = s->model;
    auto params = m.TrainableParams(all);
    for (auto& [n, p] : params) {
      p.requires_grad_(true);
      p.mutable_grad() = at::Tensor();
    }
    bool was = m.training;
    m.training = false;
    at::Tensor l = m.NextTokenLoss(tok.to(at::kLong), mask.defined() ? mask.to(at::kLong) : mask);
    m.training = was;
    l.backward();
    *loss = l.item<double>();
    for (auto& [n, p] : params) {
      grads->push_back({n, p.grad().defined() ? p.grad().clone() : at::zeros_like(p).detach()});
      p.mutable_grad() = at::Tensor();
      if (all) p.requires_grad_(false);
    }
  };
  j->done = [loss, grads](Napi::Env e) {
    Napi::Object r = Napi::Object::New(e);
    r.Set("loss", Napi::Number::New(e, *loss));
    r.Set("grads", TensorMapOut(e, *grads));
    return r;
  };
  return Post(env, s, j);
}

// lmTrainStep(h, tokens, B, T, mask?, { lr, beta1, beta2, eps, weightDecay, maxGradNorm, params }) -> Promise<{ loss, gradNorm }>
// AdamW on the next-token loss (pre-training from scratch, or supervised fine-tuning of the adapter).
Napi::Value JS_lmTrainStep(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Session* s = GetSession(info[0]).get();
  int64_t B = Int(info[2], "batch"), T = Int(info[3], "time");
  Job* j = new Job(env);
  at::Tensor tok = TokensIn(env, info[1], B, T, "tokens", j), mask = MaskIn(env, info[4], B, T, j);
  Napi::Object o = info[5].As<Napi::Object>();
  double lr = Num(o, "lr", 1e-3), b1 = Num(o, "beta1", 0.9), b2 = Num(o, "beta2", 0.999), eps = Num(o, "eps", 1e-8);
  double wd = Num(o, "weightDecay", 0.0), clip = Num(o, "maxGradNorm", 0.0);
  bool all = Str(o, "params", "all") == "all";
  auto res = std::make_shared<std::pair<double, double>>();
  j->work = [s, tok, mask, lr, b1, b2, eps, wd, clip, all, res]() {
    LlamaModel& m = s->model;
    auto named = m.TrainableParams(all);
    std::vector<std::string> names;
    std::vector<at::Tensor> ps;
    for (auto& [n, p] : named) {
      names.push_back(n);
      ps.push_back(p);
      p.requires_grad_(true);
      p.mutable_grad() = at::Tensor();
    }
    if (m.adam.names != names) m.adam.Reset(names, ps);
    bool was = m.training;
    m.training = true;
    at::Tensor l;
    try {
      l = m.NextTokenLoss(tok.to(at::kLong), mask.defined() ? mask.to(at::kLong) : mask);
    } catch (...) {
      m.training = was;
      throw;
    }
    m.training = was;
    double lv = l.item<double>();
    if (!std::isfinite(lv)) Fail("TRAIN", "training loss is not finite (" + std::to_string(lv) + ")");
    l.backward();
    double gn = 0;
    {
      c10::NoGradGuard ng;
      for (auto& p : ps)
        if (p.grad().defined()) gn += p.grad().to(at::kDouble).pow(2).sum().item<double>();
      gn = std::sqrt(gn);
      if (clip > 0 && gn > clip)
        for (auto& p : ps)
          if (p.grad().defined()) p.mutable_grad().mul_(clip / (gn + 1e-6));
    }
    m.adam.Step(lr, b1, b2, eps, wd, true);
    for (auto& p : ps) {
      p.mutable_grad() = at::Tensor();
      if (all) p.requires_grad_(false);  // base weights stay frozen outside pre-training steps
    }
    *res = {lv, gn};
  };
  j->done = [res](Napi::Env e) {
    Napi::Object r = Napi::Object::New(e);
    r.Set("loss", Napi::Number::New(e, res->first));
    r.Set("gradNorm", Napi::Number::New(e, res->second));
    return r;
  };
  return Post(env, s, j);
}

// ppoRollout(h, tokens, B, P, mask?, { gen..., seed, refIsAdapter }) -> Promise<{ tokens [B, R], lengths, width }>
Napi::Value JS_ppoRollout(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Session* s = GetSession(info[0]).get();
  int64_t B = Int(info[2], "batch"), P = Int(info[3], "prompt length");
  Job* j = new Job(env);
  at::Tensor tok = TokensIn(env, info[1], B, P, "tokens", j), mask = MaskIn(env, info[4], B, P, j);
  Napi::Object o = info[5].As<Napi::Object>();
  GenOptions g = GenIn(o);
  uint64_t seed = uint64_t(Num(o, "seed", 0));
  bool refIsAdapter = Bool(o, "refIsAdapter", false);
  auto out = std::make_shared<at::Tensor>();
  auto lens = std::make_shared<at::Tensor>();
  auto lp = std::make_shared<std::vector<at::Tensor>>();
  j->work = [s, tok, mask, g, seed, refIsAdapter, out, lens, lp]() {
    s->model.Seed(seed);
    at::Tensor t = tok.to(at::kLong);
    if (t.min().item<int64_t>() < 0 || t.max().item<int64_t>() >= s->model.cfg.vocab)
      Fail("INVALID_ARG", "token ids must be in [0, " + std::to_string(s->model.cfg.vocab) + ")");
    if (refIsAdapter && s->model.refAdapter.empty()) Fail("INVALID_ARG", "reference 'adapter' requested but no reference adapter was set");
    s->rollout = std::make_unique<Rollout>(PPORollout(s->model, t, mask.defined() ? mask.to(at::kLong) : mask, g, refIsAdapter));
    *out = s->rollout->input.narrow(1, s->rollout->P, s->rollout->R);
    *lens = s->rollout->respMask.sum(1);
    *lp = {s->rollout->oldLogp.clone(), s->rollout->refLogp.clone(), s->rollout->oldValues.clone()};
  };
  j->done = [out, lens, lp](Napi::Env e) {
    Napi::Object r = Napi::Object::New(e);
    r.Set("tokens", IntsOut(e, *out));
    r.Set("lengths", IntsOut(e, *lens));
    r.Set("logprobs", TensorOut(e, (*lp)[0]));
    r.Set("refLogprobs", TensorOut(e, (*lp)[1]));
    r.Set("values", TensorOut(e, (*lp)[2]));
    r.Set("width", Napi::Number::New(e, double(out->size(1))));
    return r;
  };
  return Post(env, s, j);
}

PPOParams ParamsIn(const Napi::Object& o) {
  PPOParams p;
  p.gamma = Num(o, "gamma", 1.0);
  p.lam = Num(o, "lam", 0.95);
  p.cliprange = Num(o, "cliprange", 0.2);
  p.cliprangeValue = Num(o, "cliprangeValue", 0.2);
  p.vfCoef = Num(o, "vfCoef", 0.1);
  return p;
}

// ppoUpdate(h, scores: Float64Array, { beta, lr, ppoEpochs, miniBatchSize, ... }) -> Promise<stats>
Napi::Value JS_ppoUpdate(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Session* s = GetSession(info[0]).get();
  if (!info[1].IsTypedArray() || info[1].As<Napi::TypedArray>().TypedArrayType() != napi_float64_array)
    throw Napi::TypeError::New(env, "[ERR_SOUP_INVALID_ARG] scores must be a Float64Array");
  Napi::Float64Array sc = info[1].As<Napi::Float64Array>();
  at::Tensor scores = at::from_blob(sc.Data(), {int64_t(sc.ElementLength())}, at::kDouble).clone();
  Napi::Object o = info[2].As<Napi::Object>();
  PPOConfigN c;
  c.p = ParamsIn(o);
  c.ppoEpochs = int64_t(Num(o, "ppoEpochs", 4));
  c.miniBatchSize = int64_t(Num(o, "miniBatchSize", 1));
  c.lr = Num(o, "learningRate", 1e-5);
  c.b1 = Num(o, "beta1", 0.9);
  c.b2 = Num(o, "beta2", 0.999);
  c.adamEps = Num(o, "adamEps", 1e-8);
  c.maxGradNorm = Num(o, "maxGradNorm", 0);
  c.klPenalty = Str(o, "klPenalty", "kl");
  double beta = Num(o, "beta", 0.2);
  uint64_t seed = uint64_t(Num(o, "seed", 0));
  Job* j = new Job(env);
  auto st = std::make_shared<std::map<std::string, double>>();
  j->work = [s, scores, c, beta, seed, st]() {
    if (!s->rollout) Fail("INVALID_ARG", "ppoUpdate without a rollout");
    s->model.Seed(seed);
    *st = PPOUpdate(s->model, *s->rollout, scores, beta, c);
    s->rollout.reset();
  };
  j->done = [st](Napi::Env e) {
    Napi::Object r = Napi::Object::New(e);
    for (auto& [k, v] : *st) r.Set(k, Napi::Number::New(e, v));
    return r;
  };
  return Post(env, s, j);
}

// ppoMath({ B, T, logp, ref, oldLogp, oldValues, vpred, mask, score, beta, klPenalty, ...params }) -> sync
// Pure float64 math of one PPO minibatch: for tests against hand computation.
Napi::Value JS_ppoMath(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object o = info[0].As<Napi::Object>();
  int64_t B = int64_t(Num(o, "B", 0)), T = int64_t(Num(o, "T", 0));
  auto F = [&](const char* k, int64_t n1, int64_t n2) {
    Napi::Value v = o.Get(k);
    if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != napi_float64_array)
      throw Napi::TypeError::New(env, std::string("[ERR_SOUP_INVALID_ARG] ") + k + " must be a Float64Array");
    Napi::Float64Array a = v.As<Napi::Float64Array>();
    if (int64_t(a.ElementLength()) != n1 * n2) throw Napi::RangeError::New(env, std::string("[ERR_SOUP_SHAPE_MISMATCH] ") + k + " has the wrong length");
    std::vector<int64_t> shape = n2 == 1 ? std::vector<int64_t>{n1} : std::vector<int64_t>{n1, n2};
    return at::from_blob(a.Data(), shape, at::kDouble).clone();
  };
  at::Tensor logp = F("logp", B, T), ref = F("ref", B, T), oldLogp = F("oldLogp", B, T), oldV = F("oldValues", B, T),
             vpred = F("vpred", B, T), mask = F("mask", B, T), score = F("score", B, 1);
  try {
    at::Tensor kl;
    at::Tensor rewards = PPORewards(score, oldLogp, ref, mask, Num(o, "beta", 0.2), Str(o, "klPenalty", "kl"), &kl);
    PPOLossOut r = PPOLoss(oldLogp, oldV, rewards, vpred, logp, mask, ParamsIn(o));
    Napi::Object out = Napi::Object::New(env);
    out.Set("rewards", TensorOut(env, rewards));
    out.Set("kl", TensorOut(env, kl));
    out.Set("advantages", TensorOut(env, r.advantages));
    out.Set("returns", TensorOut(env, r.returns));
    for (auto& [k, t] : std::vector<std::pair<const char*, at::Tensor>>{{"loss", r.loss}, {"pgLoss", r.pgLoss}, {"vfLoss", r.vfLoss}, {"pgClipfrac", r.pgClipfrac}, {"vfClipfrac", r.vfClipfrac}, {"approxKl", r.approxKl}, {"policyKl", r.policyKl}})
      out.Set(k, Napi::Number::New(env, t.item<double>()));
    return out;
  } catch (const std::exception& e) {
    throw Napi::Error::New(env, e.what());
  }
}

}  // namespace

void RegisterTrain(Napi::Env env, Napi::Object exports) {
  exports.Set("lmCreate", Napi::Function::New(env, JS_lmCreate));
  exports.Set("lmLogits", Napi::Function::New(env, JS_lmLogits));
  exports.Set("lmGenerate", Napi::Function::New(env, JS_lmGenerate));
  exports.Set("lmGetTensors", Napi::Function::New(env, JS_lmGetTensors));
  exports.Set("lmSetTensors", Napi::Function::New(env, JS_lmSetTensors));
  exports.Set("lmOp", Napi::Function::New(env, JS_lmOp));
  exports.Set("lmLossGrad", Napi::Function::New(env, JS_lmLossGrad));
  exports.Set("lmTrainStep", Napi::Function::New(env, JS_lmTrainStep));
  exports.Set("ppoRollout", Napi::Function::New(env, JS_ppoRollout));
  exports.Set("ppoUpdate", Napi::Function::New(env, JS_ppoUpdate));
  exports.Set("ppoMath", Napi::Function::New(env, JS_ppoMath));
}
