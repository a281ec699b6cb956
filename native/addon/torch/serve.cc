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

#include <cstring>
#include <memory>
#include <thread>

#include "addon/common/model_thread.h"
#include "addon/torch/args.h"
#include "addon/torch/llama_args.h"
#include "addon/torch/register.h"
#include "torch/serve.h"

namespace {
using namespace soup;
using namespace soup::addon;

// A serving engine on its own thread.
struct Engine : ModelThread<ServeEngine> {
  Engine() : ModelThread("serving engine") {}
};
using SJob = Engine::Job;

using Call = ModelCall<Engine>;

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

Napi::Value JS_serveCreate(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsObject()) throw Napi::TypeError::New(env, "[ERR_SOUP_INVALID_ARG] serveCreate(baton)");
  TuneMalloc();  // NOTE: [malloc on model threads]
  Napi::Object b = info[0].As<Napi::Object>();
  LlamaConfig cfg = LlamaConfigIn(Obj(b.Get("config"), "config"));
  Placement at = PlacementIn(env, b);
  auto sp = NewSession<Engine>(b);
  Engine* e = sp.get();
  SJob* j = new SJob(env);
  std::map<std::string, at::Tensor> weights;
  Napi::Value wv = b.Get("weights");
  if (!wv.IsObject()) {
    delete j;
    throw Napi::TypeError::New(env, "[ERR_SOUP_INVALID_ARG] serveCreate: weights must be a TensorMap");
  }
  weights = TensorMapIn(env, wv, j->keep);
  std::vector<ServeExpert> experts;
  std::vector<std::string> names;
  Napi::Value ev = b.Get("experts");
  if (ev.IsArray()) {
    Napi::Array ea = ev.As<Napi::Array>();
    for (uint32_t i = 0; i < ea.Length(); i++) {
      Napi::Object eo = ea.Get(i).As<Napi::Object>();
      names.push_back(Str(eo, "name"));
      ServeExpert ex;
      Napi::Object mods = eo.Get("modules").As<Napi::Object>();
      Napi::Array mk = mods.GetPropertyNames();
      for (uint32_t k = 0; k < mk.Length(); k++) {
        std::string mod = mk.Get(k).ToString().Utf8Value();
        Napi::Object mo = mods.Get(mod).As<Napi::Object>();
        ServeExpertModule sm;
        sm.A = TensorIn(env, mo.Get("A"), mod + ".lora_A", j->keep);
        sm.B = TensorIn(env, mo.Get("B"), mod + ".lora_B", j->keep);
        sm.scaling = Num(mo, "scaling");
        ex[mod] = sm;
      }
      experts.push_back(std::move(ex));
    }
  }
  j->work = [e, cfg, at, weights = std::move(weights), experts = std::move(experts), names]() {
    e->model.m.SetDevice(at.device, at.autocast);
    e->model.Init(cfg, at.dtype, weights, experts, names);
  };
  return Engine::Start(env, sp, j, "soup-serve");
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

// Queues a step that samples one token per sequence (and the logits when `want`).
template <class F>
Napi::Value PostSamples(Call& c, bool want, F step) {
  return PostResult(
      c,
      [step, want] {
        std::pair<std::vector<ServeSample>, at::Tensor> out;
        out.first = step(want ? &out.second : nullptr);
        return out;
      },
      [want](Napi::Env env, const std::pair<std::vector<ServeSample>, at::Tensor>& out) { return SamplesOut(env, out.first, out.second, want); });
}

Napi::Value JS_serveAdd(const Napi::CallbackInfo& info) {
  Call c(info, "serving engine");
  Engine* e = c.s;
  Napi::Env env = c.env;
  if (!info[1].IsArray()) throw Napi::TypeError::New(env, "[ERR_SOUP_INVALID_ARG] serveAdd(h, sequences[])");
  bool want = info.Length() > 2 && info[2].ToBoolean().Value();
  Napi::Array arr = info[1].As<Napi::Array>();
  std::vector<ServeAdd> adds;
  for (uint32_t i = 0; i < arr.Length(); i++) {
    Napi::Object o = arr.Get(i).As<Napi::Object>();
    ServeAdd a;
    a.id = int64_t(Num(o, "id"));
    Napi::Value tv = o.Get("tokens"), lv = o.Get("lambda");
    if (!tv.IsTypedArray() || tv.As<Napi::TypedArray>().TypedArrayType() != napi_int32_array)
      throw Napi::TypeError::New(env, "[ERR_SOUP_INVALID_ARG] tokens must be an Int32Array");
    if (!lv.IsTypedArray() || lv.As<Napi::TypedArray>().TypedArrayType() != napi_float64_array)
      throw Napi::TypeError::New(env, "[ERR_SOUP_INVALID_ARG] lambda must be a Float64Array");
    Napi::Int32Array ta = tv.As<Napi::Int32Array>();
    for (size_t k = 0; k < ta.ElementLength(); k++) a.tokens.push_back(ta[k]);
    Napi::Float64Array la = lv.As<Napi::Float64Array>();
    for (size_t k = 0; k < la.ElementLength(); k++) a.lambda.push_back(la[k]);
    a.mode = ModeOf(env, Str(o, "mode"));
    ReadFields(o, {{"temperature", &a.temperature}, {"topP", &a.topP}, {"topK", &a.topK}, {"maxTokens", &a.maxTokens}});
    a.seed = uint64_t(Num(o, "seed"));
    adds.push_back(std::move(a));
  }
  return PostSamples(c, want, [e, adds](at::Tensor* logits) { return e->model.Add(adds, logits); });
}

Napi::Value JS_serveStep(const Napi::CallbackInfo& info) {
  Call c(info, "serving engine");
  Engine* e = c.s;
  bool want = info.Length() > 1 && info[1].ToBoolean().Value();
  return PostSamples(c, want, [e](at::Tensor* logits) { return e->model.Step(logits); });
}

Napi::Value JS_serveRemove(const Napi::CallbackInfo& info) {
  Call c(info, "serving engine");
  Engine* e = c.s;
  Napi::Env env = c.env;
  if (!info[1].IsTypedArray() || info[1].As<Napi::TypedArray>().TypedArrayType() != napi_int32_array)
    throw Napi::TypeError::New(env, "[ERR_SOUP_INVALID_ARG] ids must be an Int32Array");
  Napi::Int32Array a = info[1].As<Napi::Int32Array>();
  std::vector<int64_t> ids;
  for (size_t k = 0; k < a.ElementLength(); k++) ids.push_back(a[k]);
  c->work = [e, ids]() { e->model.Remove(ids); };
  return c.Post();
}

Napi::Value JS_serveInfo(const Napi::CallbackInfo& info) {
  Call c(info, "serving engine");
  Engine* e = c.s;
  return PostResult(
      c,
      [e] {
        int64_t R = 0;
        for (auto& [_, c] : e->model.lora) R = std::max(R, c.A.size(0));
        return std::make_tuple(int64_t(e->model.seqs.size()), e->model.Rows(), e->model.abUnavailable, R);
      },
      [](Napi::Env env2, const std::tuple<int64_t, int64_t, std::string, int64_t>& st) {
        Napi::Object r = NumbersOut(env2, {{"sequences", double(std::get<0>(st))}, {"rows", double(std::get<1>(st))}}).As<Napi::Object>();
        r.Set("abUnavailable", std::get<2>(st));
        r.Set("maxRank", Napi::Number::New(env2, double(std::get<3>(st))));
        return r;
      });
}

Napi::Value JS_serveDispose(const Napi::CallbackInfo& info) {
  Call c(info, "serving engine");
  Engine* e = c.s;
  c->work = [e]() { e->model = ServeEngine(); };
  Napi::Value p = c.Post();
  e->Stop();
  return p;
}

}  // namespace

void RegisterServe(Napi::Env env, Napi::Object exports) {
  ExportAll(env, exports,
            {{"serveCreate", JS_serveCreate},
             {"serveAdd", JS_serveAdd},
             {"serveStep", JS_serveStep},
             {"serveRemove", JS_serveRemove},
             {"serveInfo", JS_serveInfo},
             {"serveDispose", JS_serveDispose}});
}
