// SPDX-License-Identifier: MIT
// Bounded work off the JS thread (sharp's AsyncWorker + baton): Run() on a libuv pool thread, Result()
// back on the JS thread resolves the promise; an exception in Run() rejects it with its message, which
// native code prefixes with its "[ERR_SOUP_*]" code. `keep` holds the JS buffers the work reads or writes.
#pragma once
#include <napi.h>

#include <exception>
#include <string>
#include <vector>

#include "addon/common/errors.h"

namespace soup::addon {

class PromiseWorker : public Napi::AsyncWorker {
 public:
  explicit PromiseWorker(Napi::Env env, const char* unknownError = "[ERR_SOUP_INTERNAL] unknown native error")
      : Napi::AsyncWorker(env), deferred_(Napi::Promise::Deferred::New(env)), unknown_(unknownError) {}
  Napi::Promise Promise() { return deferred_.Promise(); }
  std::vector<Napi::ObjectReference> keep;  // JS buffers that must outlive the work

 protected:
  virtual void Run() = 0;
  virtual Napi::Value Result(Napi::Env env) = 0;
  void Execute() override {
    try {
      Run();
    } catch (const std::exception& e) {
      SetError(e.what());
    } catch (...) {
      SetError(unknown_);
    }
  }
  void OnOK() override { deferred_.Resolve(Result(Env())); }
  void OnError(const Napi::Error& e) override { deferred_.Reject(e.Value()); }

 private:
  Napi::Promise::Deferred deferred_;
  const char* unknown_;
};

// How a binding answers a bad baton: a synchronous throw (the core addon's functions) or a rejected
// promise (the CUDA ones, whose callers handle every failure in one place).
enum class BadBaton { Throw, Reject };

// Reads info[0] (an object, else "<what> must be an object") into a new worker W with `parse`, then queues
// it; the baton stays referenced until the work is done. A parse error frees the worker.
template <class W, class Parse>
Napi::Value QueueParsed(const Napi::CallbackInfo& info, const std::string& what, BadBaton bad, Parse parse) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsObject()) ThrowType(env, what + " must be an object");
  Napi::Object b = info[0].As<Napi::Object>();
  auto* w = new W(env);
  Napi::Promise promise = w->Promise();
  try {
    parse(env, b, w);
    w->keep.push_back(Napi::Persistent(b));
  } catch (const Napi::Error& e) {
    delete w;
    if (bad == BadBaton::Throw) throw;
    auto d = Napi::Promise::Deferred::New(env);
    d.Reject(e.Value());
    return d.Promise();
  } catch (const std::exception& e) {
    delete w;
    throw Napi::Error::New(env, e.what());
  }
  w->Queue();
  return promise;
}

}  // namespace soup::addon
