// SPDX-License-Identifier: MIT
// N-API bindings of the continuous-control core (native/torch/control.h). Acting is synchronous and
// batched: one call per env step for every env, reading the observations from and writing the actions
// into the caller's Float32Arrays (no copy across the boundary). A PPO update (~10 epochs of minibatch
// steps, bounded work) runs on an AsyncWorker; while it runs the policy is marked busy and every other
// call on it fails instead of racing the optimiser.
#include <napi.h>

#include <c10/util/Exception.h>

#include <cstring>
#include <memory>

#include "addon/torch/args.h"
#include "addon/torch/register.h"
#include "torch/control.h"

namespace {
using namespace soup::addon;
using soup::control::Policy;
using PolicyPtr = std::shared_ptr<Policy>;

[[noreturn]] void Throw(Napi::Env env, const std::string& msg) { throw Napi::Error::New(env, msg); }

PolicyPtr& Get(const Napi::Value& v, bool needIdle = true) {
  if (!v.IsExternal()) throw Napi::TypeError::New(v.Env(), "[ERR_SOUP_INVALID_ARG] expected a control policy handle");
  PolicyPtr& p = *v.As<Napi::External<PolicyPtr>>().Data();
  if (!p) Throw(v.Env(), "[ERR_SOUP_INVALID_ARG] the policy was disposed");
  if (needIdle && p->busy.load()) Throw(v.Env(), "[ERR_SOUP_INVALID_ARG] the policy is busy with a PPO update (await it first)");
  return p;
}

// A typed array's bytes as a tensor (copied: the inputs of an async update must outlive the call).
at::Tensor ArrayIn(Napi::Env env, const Napi::Value& v, napi_typedarray_type want, at::ScalarType dt, int64_t numel, const std::string& what) {
  if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != want) Throw(env, "[ERR_SOUP_INVALID_ARG] " + what + " has the wrong array type");
  Napi::TypedArray a = v.As<Napi::TypedArray>();
  if (numel >= 0 && int64_t(a.ElementLength()) != numel)
    Throw(env, "[ERR_SOUP_SHAPE_MISMATCH] " + what + " has " + std::to_string(a.ElementLength()) + " elements, expected " + std::to_string(numel));
  auto* p = static_cast<uint8_t*>(a.ArrayBuffer().Data()) + a.ByteOffset();
  return at::from_blob(p, {int64_t(a.ElementLength())}, at::TensorOptions().dtype(dt)).clone();
}

at::Tensor F64(Napi::Env env, const Napi::Value& v, int64_t numel, const std::string& what) {
  return ArrayIn(env, v, napi_float64_array, at::kDouble, numel, what);
}

Napi::Value F64Out(Napi::Env env, const at::Tensor& t) {
  at::Tensor c = t.detach().to(at::kDouble).contiguous();
  Napi::Float64Array a = Napi::Float64Array::New(env, c.numel());
  std::memcpy(a.Data(), c.data_ptr<double>(), sizeof(double) * c.numel());
  return a;
}

soup::control::PPOHyper HyperIn(const Napi::Object& o) {
  // Every field as ControlPPOConfigSchema fills it (src/train/control.ts, nativeHyper): no C++ defaults.
  soup::control::PPOHyper h;
  ReadFields(o, {{"gamma", &h.gamma},
                 {"gaeLambda", &h.lam},
                 {"clipCoef", &h.clip},
                 {"vfCoef", &h.vfCoef},
                 {"entCoef", &h.entCoef},
                 {"maxGradNorm", &h.maxGradNorm},
                 {"learningRate", &h.lr},
                 {"adamEps", &h.adamEps},
                 {"rewardClip", &h.rewardClip},
                 {"updateEpochs", &h.epochs},
                 {"numMinibatches", &h.minibatches},
                 {"clipVloss", &h.clipVloss},
                 {"normAdv", &h.normAdv},
                 {"normReward", &h.normReward}});
  return h;
}

// ctlCreate({ obsDim, actDim, hidden, dtype, seed }) -> handle
Napi::Value JS_ctlCreate(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsObject()) throw Napi::TypeError::New(env, "[ERR_SOUP_INVALID_ARG] ctlCreate(baton)");
  Napi::Object b = info[0].As<Napi::Object>();
  std::vector<int64_t> hidden;
  Napi::Value hv = b.Get("hidden");
  if (!hv.IsArray()) throw Napi::TypeError::New(env, "[ERR_SOUP_INVALID_ARG] hidden must be an array of layer sizes");
  Napi::Array ha = hv.As<Napi::Array>();
  for (uint32_t i = 0; i < ha.Length(); i++) hidden.push_back(int64_t(ha.Get(i).As<Napi::Number>().Int64Value()));
  std::string dt = Str(b, "dtype");
  if (dt != "float32" && dt != "float64") Throw(env, "[ERR_SOUP_INVALID_ARG] dtype must be float32 or float64");
  auto p = std::make_shared<Policy>();
  try {
    p->Init(int64_t(Num(b, "obsDim")), int64_t(Num(b, "actDim")), hidden, dt == "float64" ? at::kDouble : at::kFloat, uint64_t(Num(b, "seed")));
  } catch (const std::exception& e) {
    Throw(env, MessageOf(e));
  }
  return Napi::External<PolicyPtr>::New(env, new PolicyPtr(p), [](Napi::Env, PolicyPtr* pp) { delete pp; });
}

// ctlSetRollout(h, numSteps, numEnvs)
Napi::Value JS_ctlSetRollout(const Napi::CallbackInfo& info) {
  PolicyPtr& p = Get(info[0]);
  try {
    p->SetRollout(info[1].As<Napi::Number>().Int64Value(), info[2].As<Napi::Number>().Int64Value());
  } catch (const std::exception& e) {
    Throw(info.Env(), MessageOf(e));
  }
  return info.Env().Undefined();
}

// ctlAct(h, obs: Float32Array [n·O], actions: Float32Array [n·A], t, deterministic, train)
Napi::Value JS_ctlAct(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  PolicyPtr& p = Get(info[0]);
  if (!info[1].IsTypedArray() || info[1].As<Napi::TypedArray>().TypedArrayType() != napi_float32_array || !info[2].IsTypedArray() ||
      info[2].As<Napi::TypedArray>().TypedArrayType() != napi_float32_array)
    Throw(env, "[ERR_SOUP_INVALID_ARG] act(obs, actions): both must be Float32Arrays");
  Napi::Float32Array obs = info[1].As<Napi::Float32Array>(), act = info[2].As<Napi::Float32Array>();
  if (obs.ElementLength() % p->O != 0)
    Throw(env, "[ERR_SOUP_SHAPE_MISMATCH] act: obs has " + std::to_string(obs.ElementLength()) + " values, not a multiple of the policy's obsDim " +
                   std::to_string(p->O));
  const int64_t n = int64_t(obs.ElementLength()) / p->O;
  if (int64_t(act.ElementLength()) != n * p->A)
    Throw(env, "[ERR_SOUP_SHAPE_MISMATCH] act: actions has " + std::to_string(act.ElementLength()) + " values, expected " + std::to_string(n) +
                   " envs × actDim " + std::to_string(p->A));
  try {
    p->Act(obs.Data(), act.Data(), n, info[3].As<Napi::Number>().Int64Value(), info[4].ToBoolean().Value(), info[5].ToBoolean().Value());
  } catch (const std::exception& e) {
    Throw(env, MessageOf(e));
  }
  return env.Undefined();
}

Napi::Value JS_ctlFreeze(const Napi::CallbackInfo& info) {
  Get(info[0])->frozen = info[1].ToBoolean().Value();
  return info.Env().Undefined();
}

// ctlGetTensors(h) -> { name: { dtype, shape, data } } (copies; a policy is a few thousand numbers)
Napi::Value JS_ctlGetTensors(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  PolicyPtr& p = Get(info[0]);
  Napi::Object out = Napi::Object::New(env);
  for (auto& [name, t] : p->Tensors()) {
    Napi::Object o = Napi::Object::New(env);
    Napi::Array shape = Napi::Array::New(env, t.dim());
    for (int64_t i = 0; i < t.dim(); i++) shape.Set(uint32_t(i), Napi::Number::New(env, double(t.size(i))));
    at::Tensor c = t.contiguous();
    if (c.scalar_type() == at::kFloat) {
      Napi::Float32Array a = Napi::Float32Array::New(env, c.numel());
      std::memcpy(a.Data(), c.data_ptr<float>(), sizeof(float) * c.numel());
      o.Set("dtype", "float32");
      o.Set("data", a);
    } else {
      o.Set("dtype", "float64");
      o.Set("data", F64Out(env, c));
    }
    o.Set("shape", shape);
    out.Set(name, o);
  }
  return out;
}

// ctlSetTensors(h, { name: { shape, data: Float32Array | Float64Array } })
Napi::Value JS_ctlSetTensors(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  PolicyPtr& p = Get(info[0]);
  if (!info[1].IsObject()) Throw(env, "[ERR_SOUP_INVALID_ARG] setTensors: expected a TensorMap");
  Napi::Object m = info[1].As<Napi::Object>();
  std::map<std::string, at::Tensor> t;
  Napi::Array keys = m.GetPropertyNames();
  for (uint32_t i = 0; i < keys.Length(); i++) {
    std::string k = keys.Get(i).As<Napi::String>().Utf8Value();
    Napi::Value tv = m.Get(k);
    if (!tv.IsObject()) Throw(env, "[ERR_SOUP_INVALID_ARG] tensor '" + k + "' is not a tensor");
    Napi::Object to = tv.As<Napi::Object>();
    Napi::Value data = to.Get("data"), shape = to.Get("shape");
    if (!data.IsTypedArray() || !shape.IsArray()) Throw(env, "[ERR_SOUP_INVALID_ARG] tensor '" + k + "' needs shape and data");
    napi_typedarray_type ty = data.As<Napi::TypedArray>().TypedArrayType();
    if (ty != napi_float32_array && ty != napi_float64_array) Throw(env, "[ERR_SOUP_DTYPE_MISMATCH] tensor '" + k + "' must be float32 or float64");
    std::vector<int64_t> sh;
    Napi::Array sa = shape.As<Napi::Array>();
    int64_t numel = 1;
    for (uint32_t d = 0; d < sa.Length(); d++) {
      sh.push_back(sa.Get(d).As<Napi::Number>().Int64Value());
      numel *= sh.back();
    }
    at::Tensor x = ArrayIn(env, data, ty, ty == napi_float32_array ? at::kFloat : at::kDouble, numel, "tensor '" + k + "'");
    t[k] = x.view(sh);
  }
  try {
    p->SetTensors(t);
  } catch (const std::exception& e) {
    Throw(env, MessageOf(e));
  }
  return env.Undefined();
}

// ctlRollout(h) -> { obs, actions, logprobs, values } as Float64Arrays (tests, debugging)
Napi::Value JS_ctlRollout(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  PolicyPtr& p = Get(info[0]);
  Napi::Object o = Napi::Object::New(env);
  if (p->T == 0) return o;
  o.Set("obs", F64Out(env, p->bObs));
  o.Set("actions", F64Out(env, p->bAct));
  o.Set("logprobs", F64Out(env, p->bLogp));
  o.Set("values", F64Out(env, p->bVal));
  return o;
}

// ctlLoss(h, { obs, actions, logprobs, advantages, returns, values, B }, hyper) -> losses + gradient
Napi::Value JS_ctlLoss(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  PolicyPtr& p = Get(info[0]);
  Napi::Object b = info[1].As<Napi::Object>();
  soup::control::PPOHyper h = HyperIn(info[2].As<Napi::Object>());
  const int64_t B = int64_t(Num(b, "B"));
  auto in = [&](const char* k, int64_t per) {
    return F64(env, b.Get(k), B * per, k).to(p->dtype).view(per == 1 ? std::vector<int64_t>{B} : std::vector<int64_t>{B, per});
  };
  try {
    at::Tensor obs = in("obs", p->O), act = in("actions", p->A), lp = in("logprobs", 1), adv = in("advantages", 1), ret = in("returns", 1),
               val = in("values", 1);
    p->flat.mutable_grad() = at::Tensor();
    soup::control::LossOut o = soup::control::PPOLossOn(*p, obs, act, lp, adv, ret, val, h);
    o.loss.backward();
    Napi::Object out = Napi::Object::New(env);
    out.Set("loss", o.loss.item<double>());
    out.Set("pgLoss", o.pgLoss.item<double>());
    out.Set("vLoss", o.vLoss.item<double>());
    out.Set("entropy", o.entropy.item<double>());
    out.Set("approxKl", o.approxKl.item<double>());
    out.Set("clipfrac", o.clipfrac.item<double>());
    out.Set("grad", F64Out(env, p->flat.grad()));
    p->flat.mutable_grad() = at::Tensor();
    return out;
  } catch (const std::exception& e) {
    Throw(env, MessageOf(e));
  }
}

// ctlGae({ rewards, values, dones, lastValues, T, N, gamma, gaeLambda }) -> { advantages, returns }
Napi::Value JS_ctlGae(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object b = info[0].As<Napi::Object>();
  const int64_t T = int64_t(Num(b, "T")), N = int64_t(Num(b, "N"));
  at::Tensor adv, ret;
  soup::control::Gae(F64(env, b.Get("rewards"), T * N, "rewards").view({T, N}), F64(env, b.Get("values"), T * N, "values").view({T, N}),
                     F64(env, b.Get("dones"), T * N, "dones").view({T, N}), F64(env, b.Get("lastValues"), N, "lastValues"), Num(b, "gamma"),
                     Num(b, "gaeLambda"), &adv, &ret);
  Napi::Object o = Napi::Object::New(env);
  o.Set("advantages", F64Out(env, adv));
  o.Set("returns", F64Out(env, ret));
  return o;
}

// ctlNormalizeRewards({ rewards, dones, T, N, gamma, clip }) -> { rewards, mean, var, count, acc }
Napi::Value JS_ctlNormalizeRewards(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object b = info[0].As<Napi::Object>();
  const int64_t T = int64_t(Num(b, "T")), N = int64_t(Num(b, "N"));
  at::Tensor r = F64(env, b.Get("rewards"), T * N, "rewards").view({T, N});
  soup::control::RunningStat rms;
  rms.Init(1);
  at::Tensor acc = at::zeros({N}, at::kDouble);
  soup::control::NormalizeRewards(r, F64(env, b.Get("dones"), T * N, "dones").view({T, N}), Num(b, "gamma"), Num(b, "clip"), rms, acc);
  Napi::Object o = Napi::Object::New(env);
  o.Set("rewards", F64Out(env, r));
  o.Set("mean", rms.mean.item<double>());
  o.Set("var", rms.var.item<double>());
  o.Set("count", rms.count);
  o.Set("acc", F64Out(env, acc));
  return o;
}

class UpdateWorker : public Napi::AsyncWorker {
 public:
  UpdateWorker(Napi::Env env, PolicyPtr p, soup::control::UpdateIn in, soup::control::PPOHyper h)
      : Napi::AsyncWorker(env), p_(std::move(p)), in_(std::move(in)), h_(h), deferred_(Napi::Promise::Deferred::New(env)) {}
  Napi::Promise Promise() { return deferred_.Promise(); }
  void Execute() override {
    try {
      st_ = soup::control::PPOUpdate(*p_, in_, h_);
    } catch (const std::exception& e) {
      SetError(MessageOf(e));
    } catch (...) {
      SetError("[ERR_SOUP_INTERNAL] unknown native error in the PPO update");
    }
  }
  void OnOK() override {
    p_->busy = false;
    Napi::Object o = Napi::Object::New(Env());
    for (auto& [k, v] : st_) o.Set(k, v);
    deferred_.Resolve(o);
  }
  void OnError(const Napi::Error& e) override {
    p_->busy = false;
    deferred_.Reject(e.Value());
  }

 private:
  PolicyPtr p_;
  soup::control::UpdateIn in_;
  soup::control::PPOHyper h_;
  std::map<std::string, double> st_;
  Napi::Promise::Deferred deferred_;
};

// ctlUpdate(h, { rewards, weights, terminated, truncated, finalObs, lastObs, ...hyper }) -> Promise<stats>
Napi::Value JS_ctlUpdate(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  PolicyPtr& p = Get(info[0]);
  Napi::Object b = info[1].As<Napi::Object>();
  soup::control::UpdateIn in;
  in.weights = F64(env, b.Get("weights"), -1, "weights");
  in.rewards = ArrayIn(env, b.Get("rewards"), napi_float32_array, at::kFloat, -1, "rewards");
  in.terminated = ArrayIn(env, b.Get("terminated"), napi_uint8_array, at::kByte, -1, "terminated");
  in.truncated = ArrayIn(env, b.Get("truncated"), napi_uint8_array, at::kByte, -1, "truncated");
  in.finalObs = ArrayIn(env, b.Get("finalObs"), napi_float32_array, at::kFloat, -1, "finalObs");
  in.lastObs = ArrayIn(env, b.Get("lastObs"), napi_float32_array, at::kFloat, -1, "lastObs");
  soup::control::PPOHyper h = HyperIn(b);
  p->busy = true;
  auto* w = new UpdateWorker(env, p, std::move(in), h);
  Napi::Promise pr = w->Promise();
  w->Queue();
  return pr;
}

Napi::Value JS_ctlDispose(const Napi::CallbackInfo& info) {
  if (!info[0].IsExternal()) throw Napi::TypeError::New(info.Env(), "[ERR_SOUP_INVALID_ARG] expected a control policy handle");
  PolicyPtr& p = *info[0].As<Napi::External<PolicyPtr>>().Data();
  if (p && p->busy.load()) Throw(info.Env(), "[ERR_SOUP_INVALID_ARG] the policy is busy with a PPO update (await it first)");
  p.reset();
  return info.Env().Undefined();
}

}  // namespace

void RegisterControl(Napi::Env env, Napi::Object exports) {
  ExportAll(env, exports,
            {{"ctlCreate", JS_ctlCreate},
             {"ctlSetRollout", JS_ctlSetRollout},
             {"ctlAct", JS_ctlAct},
             {"ctlFreeze", JS_ctlFreeze},
             {"ctlGetTensors", JS_ctlGetTensors},
             {"ctlSetTensors", JS_ctlSetTensors},
             {"ctlRollout", JS_ctlRollout},
             {"ctlLoss", JS_ctlLoss},
             {"ctlGae", JS_ctlGae},
             {"ctlNormalizeRewards", JS_ctlNormalizeRewards},
             {"ctlUpdate", JS_ctlUpdate},
             {"ctlDispose", JS_ctlDispose}});
}
