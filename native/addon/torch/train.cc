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
#include <cstring>
#include <memory>
#include <thread>

#include "addon/common/model_thread.h"
#include "addon/torch/args.h"
#include "addon/torch/llama_args.h"
#include "addon/torch/register.h"
#include "torch/llama.h"
#include "torch/ppo.h"

namespace {
using namespace soup;
using namespace soup::addon;

// A LLaMA model on its own thread, with the rollout that a PPO update reads.
struct Session : ModelThread<LlamaModel> {
  std::unique_ptr<Rollout> rollout;
  Session() : ModelThread("model") {}

 protected:
  void Free() override {
    model = LlamaModel();
    rollout.reset();
  }
};
using Job = Session::Job;

using Call = ModelCall<Session>;

// A call on a token batch: (h, tokens: Int32Array [B, T], B, T, mask: Int32Array [B, T] | null, ...).
struct TokenCall : Call {
  at::Tensor tok, mask;
  TokenCall(const Napi::CallbackInfo& info, const char* len);
};

// A generation on a prompt batch: (h, tokens, B, P, mask | null, options: NativeGenOptions & …).
struct GenCall : TokenCall {
  Napi::Object o;
  GenOptions g;
  explicit GenCall(const Napi::CallbackInfo& info);
};

// ---- argument helpers ----

std::map<std::string, at::Tensor> TensorMapIn(Napi::Env env, const Napi::Value& v, Job* j) { return addon::TensorMapIn(env, v, j->keep); }

// Int32Array tokens [B, T] -> int64 tensor (converted on the worker).
at::Tensor TokensIn(Napi::Env env, const Napi::Value& v, int64_t B, int64_t T, const char* what, Job* j) {
  if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != napi_int32_array)
    throw Napi::TypeError::New(env, std::string("[ERR_SOUP_INVALID_ARG] ") + what + " must be an Int32Array");
  Napi::Int32Array a = v.As<Napi::Int32Array>();
  if (int64_t(a.ElementLength()) != B * T)
    throw Napi::RangeError::New(env, std::string("[ERR_SOUP_SHAPE_MISMATCH] ") + what + " has " + std::to_string(a.ElementLength()) + " elements, expected " +
                                         std::to_string(B) + "x" + std::to_string(T));
  j->keep.push_back(Napi::Persistent(v));
  return at::from_blob(a.Data(), {B, T}, at::TensorOptions().dtype(at::kInt));
}

Napi::Value IntsOut(Napi::Env env, const at::Tensor& t) {
  at::Tensor c = t.to(at::kCPU).to(at::kInt).contiguous();
  Napi::Int32Array a = Napi::Int32Array::New(env, size_t(c.numel()));
  if (c.numel()) std::memcpy(a.Data(), c.data_ptr<int32_t>(), size_t(c.numel()) * 4);
  return a;
}

// { tokens: Int32Array [B, width], lengths: Int32Array [B], width }
Napi::Value GenOut(Napi::Env env, const at::Tensor& tokens, const at::Tensor& lengths) {
  Napi::Object r = Napi::Object::New(env);
  r.Set("tokens", IntsOut(env, tokens));
  r.Set("lengths", IntsOut(env, lengths));
  r.Set("width", Napi::Number::New(env, double(tokens.size(1))));
  return r;
}

at::Tensor MaskIn(Napi::Env env, const Napi::Value& v, int64_t B, int64_t T, Job* j) {
  if (v.IsUndefined() || v.IsNull()) return at::Tensor();
  return TokensIn(env, v, B, T, "mask", j);
}

TokenCall::TokenCall(const Napi::CallbackInfo& info, const char* len) : Call(info, "model") {
  int64_t B = Int(info[2], "batch"), T = Int(info[3], len);
  tok = TokensIn(env, info[1], B, T, "tokens", job.get());
  mask = MaskIn(env, info[4], B, T, job.get());
}

// Token ids as int64, checked against the vocabulary (on the model thread).
at::Tensor VocabTokens(const LlamaModel& m, const at::Tensor& tok) {
  at::Tensor t = tok.to(at::kLong);
  if (t.numel() && (t.min().item<int64_t>() < 0 || t.max().item<int64_t>() >= m.cfg.vocab))
    Fail("INVALID_ARG", "token ids must be in [0, " + std::to_string(m.cfg.vocab) + ")");
  return t;
}

GenOptions GenIn(const Napi::Object& o);

GenCall::GenCall(const Napi::CallbackInfo& info) : TokenCall(info, "prompt length"), o(Obj(info[5], "options")), g(GenIn(o)) {}

// NativeGenOptions as genOptions() (src/train/llama.ts) and the PPO config fill them: every field, no C++ defaults.
GenOptions GenIn(const Napi::Object& o) {
  GenOptions g;
  ReadFields(o, {{"maxNewTokens", &g.maxNew},
                 {"minNewTokens", &g.minNew},
                 {"doSample", &g.sample},
                 {"temperature", &g.temperature},
                 {"topK", &g.topK},
                 {"topP", &g.topP},
                 {"eosTokenId", &g.eos},
                 {"padTokenId", &g.pad}});
  return g;
}

// ---------------------------------------------------------------------------------------------------
// JS_ functions

// lmCreate({ config, weights?, dtype, seed, threads, lora?, valueHead }) -> Promise<handle>
Napi::Value JS_lmCreate(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsObject()) throw Napi::TypeError::New(env, "[ERR_SOUP_INVALID_ARG] lmCreate(baton)");
  TuneMalloc();
  Napi::Object b = info[0].As<Napi::Object>();
  LlamaConfig cfg = LlamaConfigIn(Obj(b.Get("config"), "config"));
  Placement at = PlacementIn(env, b);
  uint64_t seed = uint64_t(Num(b, "seed"));
  std::optional<LoraConfig> lc;
  Napi::Value lv = b.Get("lora");
  if (lv.IsObject()) {
    Napi::Object l = lv.As<Napi::Object>();
    LoraConfig x;  // peft's LoraConfig, as parsed from adapter_config.json
    ReadFields(l, {{"r", &x.r}, {"loraAlpha", &x.alpha}, {"loraDropout", &x.dropout}, {"useRslora", &x.rslora}});
    Napi::Array ta = ArrayOf(env, l, "targetModules");
    for (uint32_t i = 0; i < ta.Length(); i++) x.targets.push_back(ta.Get(i).ToString().Utf8Value());
    lc = x;
  }
  bool vhead = Bool(b, "valueHead");
  auto sp = NewSession<Session>(b);
  Session* s = sp.get();
  Job* j = new Job(env);
  std::map<std::string, at::Tensor> weights;
  bool haveWeights = b.Get("weights").IsObject();
  if (haveWeights) weights = TensorMapIn(env, b.Get("weights"), j);
  j->work = [s, cfg, at, seed, lc, vhead, weights = std::move(weights), haveWeights]() {
    s->model.SetDevice(at.device, at.autocast);  // ERR_SOUP_NO_CUDA when libtorch sees no CUDA device
    s->model.Init(cfg, at.dtype, haveWeights ? &weights : nullptr, seed);
    if (lc) s->model.AddLora(*lc, seed + 1);
    if (vhead) s->model.InitValueHead(seed + 2);
  };
  return Session::Start(env, sp, j, "soup-train");
}

// lmLogits(h, tokens, B, T, mask?) -> Promise<Tensor [B, T, V]>
Napi::Value JS_lmLogits(const Napi::CallbackInfo& info) {
  TokenCall c(info, "time");
  Session* s = c.s;
  at::Tensor tok = c.tok, mask = c.mask;
  return PostResult(
      c,
      [s, tok, mask] {
        c10::NoGradGuard ng;
        at::Tensor t = VocabTokens(s->model, tok);
        bool was = s->model.training;
        s->model.training = false;
        at::Tensor out = s->model.Logits(s->model.Hidden(t, mask.defined() ? mask.to(at::kLong) : mask, nullptr));
        s->model.training = was;
        return out;
      },
      TensorOut);
}

// lmGenerate(h, tokens, B, P, mask?, opts) -> Promise<{ tokens: Int32Array [B, maxNew], lengths }>
Napi::Value JS_lmGenerate(const Napi::CallbackInfo& info) {
  GenCall c(info);
  bool reseed = Has(c.o, "seed");  // absent: the model's generator goes on
  uint64_t seed = reseed ? uint64_t(Num(c.o, "seed")) : 0;
  return PostResult(
      c,
      [s = c.s, tok = c.tok, mask = c.mask, g = c.g, reseed, seed] {
        if (reseed) s->model.Seed(seed);
        return s->model.Generate(VocabTokens(s->model, tok), mask.defined() ? mask.to(at::kLong) : mask, g);
      },
      [](Napi::Env e, const GenResult& out) { return GenOut(e, out.tokens, out.lengths); });
}

// lmGetTensors(h, group) -> Promise<TensorMap>
Napi::Value JS_lmGetTensors(const Napi::CallbackInfo& info) {
  Call c(info, "model");
  Session* s = c.s;
  std::string which = info[1].ToString().Utf8Value();
  return PostResult(
      c, [s, which] { return s->model.StateDict(which); }, [](Napi::Env e, const NamedTensors& out) { return TensorMapOut(e, out); });
}

// lmSetTensors(h, group, tensors) -> Promise<void>
Napi::Value JS_lmSetTensors(const Napi::CallbackInfo& info) {
  Call c(info, "model");
  Session* s = c.s;
  std::string which = info[1].ToString().Utf8Value();
  auto t = TensorMapIn(c.env, info[2], c.job.get());
  c->work = [s, which, t]() { s->model.LoadStateDict(which, t); };
  return c.Post();
}

// lmOp(h, op) -> Promise<void>: merge, unmerge, enableAdapter, disableAdapter, snapshotRef, dispose
Napi::Value JS_lmOp(const Napi::CallbackInfo& info) {
  Call c(info, "model");
  Session* s = c.s;
  std::string op = info[1].ToString().Utf8Value();
  c->work = [s, op]() {
    LlamaModel& m = s->model;
    if (op == "merge")
      m.Merge();
    else if (op == "unmerge")
      m.Unmerge();
    else if (op == "enableAdapter")
      m.mode = AdapterMode::Active;
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
    } else
      Fail("INVALID_ARG", "unknown op '" + op + "'");
  };
  Napi::Value p = c.Post();
  if (op == "dispose") s->Stop();
  return p;
}

// lmLossGrad(h, tokens, B, T, mask?, params: 'lora'|'all') -> Promise<{ loss, grads }>
Napi::Value JS_lmLossGrad(const Napi::CallbackInfo& info) {
  TokenCall c(info, "time");
  Session* s = c.s;
  at::Tensor tok = c.tok, mask = c.mask;
  bool all = info[5].ToString().Utf8Value() == "all";
  auto loss = std::make_shared<double>(0);
  auto grads = std::make_shared<std::vector<std::pair<std::string, at::Tensor>>>();
  c->work = [s, tok, mask, all, loss, grads]() {
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
  c->done = [loss, grads](Napi::Env e) {
    Napi::Object r = Napi::Object::New(e);
    r.Set("loss", Napi::Number::New(e, *loss));
    r.Set("grads", TensorMapOut(e, *grads));
    return r;
  };
  return c.Post();
}

// lmTrainStep(h, tokens, B, T, mask?, { lr, beta1, beta2, eps, weightDecay, maxGradNorm, params }) -> Promise<{ loss, gradNorm }>
// AdamW on the next-token loss (pre-training from scratch, or supervised fine-tuning of the adapter).
Napi::Value JS_lmTrainStep(const Napi::CallbackInfo& info) {
  TokenCall c(info, "time");
  Session* s = c.s;
  at::Tensor tok = c.tok, mask = c.mask;
  Napi::Object o = info[5].As<Napi::Object>();
  AdamWOptions opt;  // CausalLM.trainStep fills every field
  ReadFields(
      o,
      {{"lr", &opt.lr}, {"beta1", &opt.beta1}, {"beta2", &opt.beta2}, {"eps", &opt.eps}, {"weightDecay", &opt.weightDecay}, {"maxGradNorm", &opt.maxGradNorm}});
  bool all = Str(o, "params") == "all";
  return PostResult(
      c, [s, tok, mask, opt, all] { return s->model.TrainStep(tok.to(at::kLong), mask.defined() ? mask.to(at::kLong) : mask, opt, all); },
      [](Napi::Env e, const TrainStepResult& r) {
        return NumbersOut(e, {{"loss", r.loss}, {"gradNorm", r.gradNorm}});
      });
}

// ppoRollout(h, tokens, B, P, mask?, { gen..., seed, refIsAdapter }) -> Promise<{ tokens [B, R], lengths, width }>
Napi::Value JS_ppoRollout(const Napi::CallbackInfo& info) {
  GenCall c(info);
  uint64_t seed = uint64_t(Num(c.o, "seed"));
  bool refIsAdapter = Bool(c.o, "refIsAdapter");
  // tokens [B, R], lengths, then the rollout's log-probs, reference log-probs and values
  return PostResult(
      c,
      [s = c.s, tok = c.tok, mask = c.mask, g = c.g, seed, refIsAdapter] {
        s->model.Seed(seed);
        at::Tensor t = VocabTokens(s->model, tok);
        if (refIsAdapter && s->model.refAdapter.empty()) Fail("INVALID_ARG", "reference 'adapter' requested but no reference adapter was set");
        s->rollout = std::make_unique<Rollout>(PPORollout(s->model, t, mask.defined() ? mask.to(at::kLong) : mask, g, refIsAdapter));
        const Rollout& r = *s->rollout;
        return std::vector<at::Tensor>{r.input.narrow(1, r.P, r.R), r.respMask.sum(1), r.oldLogp.clone(), r.refLogp.clone(), r.oldValues.clone()};
      },
      [](Napi::Env e, const std::vector<at::Tensor>& out) {
        Napi::Value r = GenOut(e, out[0], out[1]);
        r.As<Napi::Object>().Set("logprobs", TensorOut(e, out[2]));
        r.As<Napi::Object>().Set("refLogprobs", TensorOut(e, out[3]));
        r.As<Napi::Object>().Set("values", TensorOut(e, out[4]));
        return r;
      });
}

// PPO settings as PPOConfigSchema fills them (src/train/ppo.ts): read without defaults.
PPOParams ParamsIn(const Napi::Object& o) {
  PPOParams p;
  ReadFields(o, {{"gamma", &p.gamma}, {"lam", &p.lam}, {"cliprange", &p.cliprange}, {"cliprangeValue", &p.cliprangeValue}, {"vfCoef", &p.vfCoef}});
  return p;
}

// ppoUpdate(h, scores: Float64Array, { beta, lr, ppoEpochs, miniBatchSize, ... }) -> Promise<stats>
Napi::Value JS_ppoUpdate(const Napi::CallbackInfo& info) {
  Call c(info, "model");
  Session* s = c.s;
  Napi::Env env = c.env;
  if (!info[1].IsTypedArray() || info[1].As<Napi::TypedArray>().TypedArrayType() != napi_float64_array)
    throw Napi::TypeError::New(env, "[ERR_SOUP_INVALID_ARG] scores must be a Float64Array");
  Napi::Float64Array sc = info[1].As<Napi::Float64Array>();
  at::Tensor scores = at::from_blob(sc.Data(), {int64_t(sc.ElementLength())}, at::kDouble).clone();
  Napi::Object o = info[2].As<Napi::Object>();
  PPOUpdateConfig cfg;
  cfg.params = ParamsIn(o);
  ReadFields(o, {{"ppoEpochs", &cfg.ppoEpochs},
                 {"miniBatchSize", &cfg.miniBatchSize},
                 {"learningRate", &cfg.learningRate},
                 {"beta1", &cfg.beta1},
                 {"beta2", &cfg.beta2},
                 {"adamEps", &cfg.adamEpsilon},
                 {"maxGradNorm", &cfg.maxGradNorm},
                 {"klPenalty", &cfg.klPenalty}});
  double beta = Num(o, "beta");
  uint64_t seed = uint64_t(Num(o, "seed"));
  return PostResult(
      c,
      [s, scores, cfg, beta, seed] {
        if (!s->rollout) Fail("INVALID_ARG", "ppoUpdate without a rollout");
        s->model.Seed(seed);
        auto st = PPOUpdate(s->model, *s->rollout, scores, beta, cfg);
        s->rollout.reset();
        return st;
      },
      [](Napi::Env e, const std::map<std::string, double>& st) {
        Napi::Object r = Napi::Object::New(e);
        for (auto& [k, v] : st) r.Set(k, Napi::Number::New(e, v));
        return r;
      });
}

// ppoMath({ B, T, logp, ref, oldLogp, oldValues, vpred, mask, score, beta, klPenalty, ...params }) -> sync
// Pure float64 math of one PPO minibatch: for tests against hand computation.
Napi::Value JS_ppoMath(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object o = info[0].As<Napi::Object>();
  int64_t B = int64_t(Num(o, "B")), T = int64_t(Num(o, "T"));
  auto F = [&](const char* k, int64_t n1, int64_t n2) {
    Napi::Value v = o.Get(k);
    if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != napi_float64_array)
      throw Napi::TypeError::New(env, std::string("[ERR_SOUP_INVALID_ARG] ") + k + " must be a Float64Array");
    Napi::Float64Array a = v.As<Napi::Float64Array>();
    if (int64_t(a.ElementLength()) != n1 * n2) throw Napi::RangeError::New(env, std::string("[ERR_SOUP_SHAPE_MISMATCH] ") + k + " has the wrong length");
    std::vector<int64_t> shape = n2 == 1 ? std::vector<int64_t>{n1} : std::vector<int64_t>{n1, n2};
    return at::from_blob(a.Data(), shape, at::kDouble).clone();
  };
  at::Tensor logp = F("logp", B, T), ref = F("ref", B, T), oldLogp = F("oldLogp", B, T), oldV = F("oldValues", B, T), vpred = F("vpred", B, T),
             mask = F("mask", B, T), score = F("score", B, 1);
  try {
    at::Tensor kl;
    at::Tensor rewards = PPORewards(score, oldLogp, ref, mask, Num(o, "beta"), Str(o, "klPenalty"), &kl);
    PPOLossOut r = PPOLoss(oldLogp, oldV, rewards, vpred, logp, mask, ParamsIn(o));
    Napi::Object out = Napi::Object::New(env);
    out.Set("rewards", TensorOut(env, rewards));
    out.Set("kl", TensorOut(env, kl));
    out.Set("advantages", TensorOut(env, r.advantages));
    out.Set("returns", TensorOut(env, r.returns));
    for (auto& [k, t] : std::vector<std::pair<const char*, at::Tensor>>{{"loss", r.loss},
                                                                        {"pgLoss", r.pgLoss},
                                                                        {"vfLoss", r.vfLoss},
                                                                        {"pgClipfrac", r.pgClipfrac},
                                                                        {"vfClipfrac", r.vfClipfrac},
                                                                        {"approxKl", r.approxKl},
                                                                        {"policyKl", r.policyKl}})
      out.Set(k, Napi::Number::New(env, t.item<double>()));
    return out;
  } catch (const std::exception& e) {
    throw Napi::Error::New(env, e.what());
  }
}

}  // namespace

void RegisterTrain(Napi::Env env, Napi::Object exports) {
  ExportAll(env, exports,
            {{"lmCreate", JS_lmCreate},
             {"lmLogits", JS_lmLogits},
             {"lmGenerate", JS_lmGenerate},
             {"lmGetTensors", JS_lmGetTensors},
             {"lmSetTensors", JS_lmSetTensors},
             {"lmOp", JS_lmOp},
             {"lmLossGrad", JS_lmLossGrad},
             {"lmTrainStep", JS_lmTrainStep},
             {"ppoRollout", JS_ppoRollout},
             {"ppoUpdate", JS_ppoUpdate},
             {"ppoMath", JS_ppoMath}});
}
