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

#include <cstring>
#include <memory>
#include <thread>

#include "addon/common/model_thread.h"
#include "addon/torch/args.h"
#include "addon/torch/register.h"
#include "torch/diffusion.h"

namespace {
using namespace soup;
using namespace soup::addon;

// A UNet on its own thread, with a copy of its config that the JS thread reads (shapes of inputs).
struct DSession : ModelThread<UNet> {
  UNetConfig cfg;
  DSession() : ModelThread("diffusion model") {}
};
using DJob = DSession::Job;

using Call = ModelCall<DSession>;

// A call on a batch of B images or captions, B in info[batchArg], shaped by the model's config.
struct BatchCall : Call {
  int64_t B;
  const UNetConfig& c;
  BatchCall(const Napi::CallbackInfo& info, size_t batchArg) : Call(info, "diffusion model"), B(Int(info[batchArg], "batch")), c(s->cfg) {}
};

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
    throw Napi::RangeError::New(
        env, "[ERR_SOUP_SHAPE_MISMATCH] " + std::string(what) + " has " + std::to_string(a.ElementLength()) + " elements, expected " + std::to_string(n));
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

// Images [B, C, S, S] (Float32Array) and captions [B, L] (Int32Array, as int64) of this model's shapes.
at::Tensor ImagesIn(const Napi::Value& v, const UNetConfig& c, int64_t B, const char* what) {
  return ArrayIn(v, napi_float32_array, what, {B, c.channels, c.imageSize, c.imageSize});
}
at::Tensor CaptionsIn(const Napi::Value& v, const UNetConfig& c, int64_t B) { return ArrayIn(v, napi_int32_array, "tokens", {B, c.captionLen}).to(at::kLong); }

// The diffusion model works in float32: its results go to JS as Float32Arrays.
Napi::Value TensorOutF32(Napi::Env env, at::Tensor t) { return TensorOut(env, t.detach().to(at::kFloat)); }

// UNetConfig (src/native/torch.ts), every field given by DiffusionModel.create.
UNetConfig ConfigIn(const Napi::Object& c) {
  UNetConfig u;
  ReadFields(c, {{"imageSize", &u.imageSize},
                 {"channels", &u.channels},
                 {"ch0", &u.ch0},
                 {"ch1", &u.ch1},
                 {"tembDim", &u.tembDim},
                 {"textDim", &u.textDim},
                 {"vocab", &u.vocab},
                 {"captionLen", &u.captionLen},
                 {"heads", &u.heads},
                 {"groups", &u.groups},
                 {"T", &u.T}});
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
  uint64_t seed = uint64_t(Num(b, "seed"));
  bool haveWeights = b.Get("weights").IsObject();
  auto weights = std::make_shared<std::map<std::string, at::Tensor>>();
  if (haveWeights) *weights = TensorMapIn(env, b.Get("weights"));
  auto sp = NewSession<DSession>(b);
  DSession* s = sp.get();
  s->cfg = cfg;
  DJob* j = new DJob(env);
  j->work = [s, cfg, seed, weights, haveWeights]() { s->model.Init(cfg, seed, haveWeights ? weights.get() : nullptr); };
  return DSession::Start(env, sp, j, "soup-diffusion");
}

// dmInfo(h) -> Promise<{ names, shapes, finetune, numel, finetuneNumel }>
Napi::Value JS_dmInfo(const Napi::CallbackInfo& info) {
  Call call(info, "diffusion model");
  DSession* s = call.s;
  auto names = std::make_shared<std::vector<std::string>>();
  auto shapes = std::make_shared<std::vector<std::vector<int64_t>>>();
  call->work = [s, names, shapes]() {
    *names = s->model.order;
    for (auto& n : *names) shapes->push_back(s->model.p.at(n).sizes().vec());
  };
  call->done = [names, shapes](Napi::Env e) {
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
  return call.Post();
}

// dmGetTensors(h, { set: 'params' | 'ema', group: 'all' | 'finetune' }) -> Promise<TensorMap>
Napi::Value JS_dmGetTensors(const Napi::CallbackInfo& info) {
  Call call(info, "diffusion model");
  DSession* s = call.s;
  Napi::Env env = call.env;
  Napi::Object o = info[1].IsObject() ? info[1].As<Napi::Object>() : Napi::Object::New(env);
  std::string set = o.Get("set").IsString() ? o.Get("set").ToString().Utf8Value() : "ema";
  std::string group = o.Get("group").IsString() ? o.Get("group").ToString().Utf8Value() : "all";
  if (set != "params" && set != "ema") ThrowType(env, "set must be 'params' or 'ema', got '" + set + "'");
  if (group != "all" && group != "finetune") ThrowType(env, "group must be 'all' or 'finetune', got '" + group + "'");
  return PostResult(
      call,
      [s, set, group] {
        c10::NoGradGuard ng;
        NamedTensors out;
        auto& src = set == "ema" ? s->model.ema : s->model.p;
        for (auto& n : s->model.Names(group == "finetune")) out.push_back({n, src.at(n).detach().clone()});
        return out;
      },
      [](Napi::Env e, const NamedTensors& out) { return TensorMapOut(e, out, TensorOutF32); });
}

// dmSetTensors(h, tensors, { target: 'params' | 'ema' | 'both', partial }) -> Promise<void>
Napi::Value JS_dmSetTensors(const Napi::CallbackInfo& info) {
  Call call(info, "diffusion model");
  DSession* s = call.s;
  Napi::Env env = call.env;
  auto t = std::make_shared<std::map<std::string, at::Tensor>>(TensorMapIn(env, info[1]));
  Napi::Object o = info[2].IsObject() ? info[2].As<Napi::Object>() : Napi::Object::New(env);
  std::string target = o.Get("target").IsString() ? o.Get("target").ToString().Utf8Value() : "both";
  if (target != "params" && target != "ema" && target != "both") ThrowType(env, "target must be 'params', 'ema' or 'both'");
  bool partial = Bool(o, "partial");
  call->work = [s, t, target, partial]() {
    c10::NoGradGuard ng;
    UNet& m = s->model;
    for (auto& [n, x] : *t) {
      auto it = m.p.find(n);
      if (it == m.p.end()) Fail("SHAPE_MISMATCH", "tensor '" + n + "' is not a parameter of this UNet: a checkpoint of another architecture?");
      if (x.sizes() != it->second.sizes())
        Fail("SHAPE_MISMATCH", "tensor '" + n + "' has another shape than this UNet's parameter: a checkpoint of another architecture?");
    }
    if (!partial)
      for (auto& n : m.order)
        if (!t->count(n)) Fail("MISSING_TENSOR", "tensors lack '" + n + "'");
    for (auto& [n, x] : *t) {
      if (target != "ema") m.p[n].copy_(x);
      if (target != "params") m.ema[n].copy_(x);
    }
  };
  return call.Post();
}

// dmTrainStep(h, x0: Float32Array [B,C,S,S], tokens: Int32Array [B,L], B, weights: Float64Array | null, opts) -> Promise<{ loss }>
Napi::Value JS_dmTrainStep(const Napi::CallbackInfo& info) {
  BatchCall call(info, 3);
  DSession* s = call.s;
  const int64_t B = call.B;
  Napi::Env env = call.env;
  at::Tensor x0 = ImagesIn(info[1], call.c, B, "images");
  at::Tensor tok = CaptionsIn(info[2], call.c, B);
  at::Tensor w;
  if (!info[4].IsNull() && !info[4].IsUndefined()) w = ArrayIn(info[4], napi_float64_array, "weights", {B});
  Napi::Object o = info[5].IsObject() ? info[5].As<Napi::Object>() : Napi::Object::New(env);
  TrainOptions t;  // DiffusionModel.trainStep fills every field
  ReadFields(o, {{"lr", &t.lr},
                 {"beta1", &t.b1},
                 {"beta2", &t.b2},
                 {"eps", &t.eps},
                 {"weightDecay", &t.wd},
                 {"emaDecay", &t.emaDecay},
                 {"captionDropout", &t.captionDropout},
                 {"maxGradNorm", &t.maxGradNorm},
                 {"finetune", &t.finetune}});
  return PostResult(
      call, [s, x0, tok, w, t] { return s->model.TrainStep(x0, tok, w, t); },
      [](Napi::Env e, double loss) {
        return NumbersOut(e, {{"loss", loss}});
      });
}

// dmEps(h, x: Float32Array, t: Int32Array [B], tokens: Int32Array, B, useEma) -> Promise<Tensor>
Napi::Value JS_dmEps(const Napi::CallbackInfo& info) {
  BatchCall call(info, 4);
  DSession* s = call.s;
  const int64_t B = call.B;
  at::Tensor x = ImagesIn(info[1], call.c, B, "images");
  at::Tensor t = ArrayIn(info[2], napi_int32_array, "t", {B}).to(at::kLong);
  at::Tensor tok = CaptionsIn(info[3], call.c, B);
  bool useEma = info[5].ToBoolean().Value();
  return PostResult(
      call,
      [s, x, t, tok, useEma] {
        c10::NoGradGuard ng;
        return s->model.Eps(x, t, tok, useEma);
      },
      TensorOutF32);
}

// dmLoss(h, x0, tokens, t: Int32Array, noise: Float32Array, B, useEma) -> Promise<Tensor [B]> (per-example)
Napi::Value JS_dmLoss(const Napi::CallbackInfo& info) {
  BatchCall call(info, 5);
  DSession* s = call.s;
  const int64_t B = call.B;
  at::Tensor x0 = ImagesIn(info[1], call.c, B, "images");
  at::Tensor tok = CaptionsIn(info[2], call.c, B);
  at::Tensor t = ArrayIn(info[3], napi_int32_array, "t", {B});
  at::Tensor noise = ImagesIn(info[4], call.c, B, "noise");
  bool useEma = info[6].ToBoolean().Value();
  return PostResult(
      call,
      [s, x0, tok, t, noise, useEma] {
        c10::NoGradGuard ng;
        return s->model.PerExampleLoss(x0, tok, t, noise, useEma);
      },
      TensorOutF32);
}

// dmSample(h, tokens: Int32Array [B,L], B, noise: Float32Array [B,C,S,S], { steps, guidance, clip, useEma }) -> Promise<Tensor>
Napi::Value JS_dmSample(const Napi::CallbackInfo& info) {
  BatchCall call(info, 2);
  DSession* s = call.s;
  const int64_t B = call.B;
  Napi::Env env = call.env;
  at::Tensor tok = CaptionsIn(info[1], call.c, B);
  at::Tensor noise = ImagesIn(info[3], call.c, B, "noise");
  Napi::Object o = info[4].IsObject() ? info[4].As<Napi::Object>() : Napi::Object::New(env);
  SampleOptions so;  // DiffusionModel.sampleFromNoise fills every field
  ReadFields(o, {{"steps", &so.steps}, {"guidance", &so.guidance}, {"clip", &so.clip}, {"useEma", &so.useEma}});
  return PostResult(
      call, [s, tok, noise, so] { return s->model.Sample(tok, noise, so); }, TensorOutF32);
}

// dmOp(h, op, arg?) -> Promise<void>: dispose, copyToEma, resetOptimizer, seed
Napi::Value JS_dmOp(const Napi::CallbackInfo& info) {
  Call call(info, "diffusion model");
  DSession* s = call.s;
  std::string op = info[1].ToString().Utf8Value();
  double arg = info.Length() > 2 && info[2].IsNumber() ? info[2].As<Napi::Number>().DoubleValue() : 0;
  call->work = [s, op, arg]() {
    if (op == "dispose")
      s->model = UNet();
    else if (op == "copyToEma")
      s->model.CopyToEma();
    else if (op == "resetOptimizer") {
      s->model.adam = AdamState();
      s->model.emaSteps = 0;  // a new run: the EMA warms up again
    } else if (op == "seed")
      s->model.Seed(uint64_t(arg));
    else
      Fail("INVALID_ARG", "unknown op '" + op + "' (dispose, copyToEma, resetOptimizer, seed)");
  };
  Napi::Value p = call.Post();
  if (op == "dispose") s->Stop();
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
  ExportAll(env, exports,
            {{"dmCreate", JS_dmCreate},
             {"dmInfo", JS_dmInfo},
             {"dmGetTensors", JS_dmGetTensors},
             {"dmSetTensors", JS_dmSetTensors},
             {"dmTrainStep", JS_dmTrainStep},
             {"dmEps", JS_dmEps},
             {"dmLoss", JS_dmLoss},
             {"dmSample", JS_dmSample},
             {"dmOp", JS_dmOp},
             {"dmSchedule", JS_dmSchedule},
             {"dmTimesteps", JS_dmTimesteps},
             {"dmNoise", JS_dmNoise}});
}
