// SPDX-License-Identifier: MIT
// A model that lives on its own native thread (not one of libuv's 4 pool threads: training runs for
// hours). Every call on it is a Job queued to that thread; the thread runs the jobs in call order, so the
// model needs no locks, and one ThreadSafeFunction resolves each job's promise on the JS thread. Inputs
// that jobs read in place (from_blob over TypedArrays) are kept alive by references until the job
// completes. The JS handle is an External holding a shared_ptr: the thread stops when the handle is
// collected, when the model is disposed (Stop), or at environment teardown.
//   auto sp = NewSession<Session>(baton);  Job* j = new Job(env);  j->work = …;
//   return Session::Start(env, sp, j, "soup-train");              // resolves to the handle
//   ModelCall<Session> c(info, "model");  c->work = …;  c->done = …;  return c.Post();
#pragma once
#include <napi.h>

#include <algorithm>
#include <condition_variable>
#include <cstdlib>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>
#ifdef __GLIBC__
#include <malloc.h>
#endif

#include "addon/common/errors.h"

namespace soup::addon {

// NOTE: [malloc on model threads] glibc gives each non-main thread its own arena and trims its heaps as
// soon as the free top exceeds 128 KiB, so every step's multi-MB temporaries (logits over the vocabulary,
// KV caches of joining sequences) come back as fresh pages; this VM serves first touches at ~2.3 GB/s.
// Keeping freed memory (trim 512 MiB, top pad 64 MiB, mmap only above 32 MiB) made logits/backward 2-3x
// faster here. Once per process; opt out: RSOUP_MALLOC_TUNE=0.
inline void TuneMalloc() {
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

// Sets the calling thread's OpenMP thread count (a per-thread setting); defined by the addon that links
// the model library (the torch addon: at::set_num_threads).
void SetModelThreadCount(int n);

template <typename Model>
class ModelThread {
 public:
  struct Job {
    ModelThread* s = nullptr;
    std::function<void()> work;                  // model thread
    std::function<Napi::Value(Napi::Env)> done;  // JS thread
    Napi::Promise::Deferred deferred;
    std::vector<Napi::Reference<Napi::Value>> keep;  // inputs read in place by `work`
    std::string error;
    explicit Job(Napi::Env env) : deferred(Napi::Promise::Deferred::New(env)) {}
  };

  Model model;  // touched by jobs only
  int threads = 1;

  ModelThread(const char* what) : what_(what) {}
  virtual ~ModelThread() = default;

  // Starts the thread of `sp` and queues `first` (the model's creation); the promise resolves to the
  // handle once `first` ran.
  template <typename Session>
  static Napi::Value Start(Napi::Env env, const std::shared_ptr<Session>& sp, Job* first, const char* resource) {
    ModelThread* s = sp.get();
    std::shared_ptr<Session> owner = sp;
    s->tsfn_ = Napi::ThreadSafeFunction::New(env, Napi::Function::New(env, [](const Napi::CallbackInfo&) {}), resource, 0, 1, [owner](Napi::Env) mutable {
      // Normally the thread has released us and exits; at environment
      // teardown it may still wait for jobs: stop it first.
      owner->Stop();
      if (owner->th_.joinable()) owner->th_.join();
      owner.reset();
    });
    s->tsfn_.Unref(env);
    s->th_ = std::thread([s] { s->Loop(); });
    auto* handle = new std::shared_ptr<Session>(sp);
    auto ext = Napi::External<std::shared_ptr<Session>>::New(env, handle, [](Napi::Env, std::shared_ptr<Session>* h) {
      (*h)->Stop();
      delete h;
    });
    auto extRef = std::make_shared<Napi::Reference<Napi::Value>>(Napi::Persistent(ext.template As<Napi::Value>()));
    first->done = [extRef](Napi::Env) { return extRef->Value(); };
    return s->Post(env, first);
  }

  // The session behind a handle that Start returned.
  template <typename Session>
  static Session* From(const Napi::Value& v, const char* what) {
    if (!v.IsExternal()) ThrowType(v.Env(), std::string("expected a ") + what + " handle");
    return v.As<Napi::External<std::shared_ptr<Session>>>().Data()->get();
  }

  // Queues j (taking it) and returns its promise; throws when the model was disposed.
  Napi::Value Post(Napi::Env env, Job* j) {
    j->s = this;
    {
      std::lock_guard<std::mutex> lk(mu_);
      if (stopping_) {
        delete j;
        throw Napi::Error::New(env, std::string("[ERR_SOUP_INVALID_ARG] the ") + what_ + " was disposed");
      }
      q_.push_back(j);
    }
    if (pending_++ == 0) tsfn_.Ref(env);
    cv_.notify_one();
    return j->deferred.Promise();
  }

  // No job after the queued ones: the thread frees the model and exits once they ran.
  void Stop() {
    {
      std::lock_guard<std::mutex> lk(mu_);
      stopping_ = true;
    }
    cv_.notify_one();
  }

 protected:
  // On the model thread as it exits: free tensors on the thread that made them.
  virtual void Free() { model = Model(); }

 private:
  void Loop() {
    SetModelThreadCount(threads);
    for (;;) {
      Job* j = nullptr;
      {
        std::unique_lock<std::mutex> lk(mu_);
        cv_.wait(lk, [this] { return stopping_ || !q_.empty(); });
        if (q_.empty()) break;
        j = q_.front();
        q_.pop_front();
      }
      if (j->work) j->error = RunCaught(j->work);
      tsfn_.BlockingCall(j, [](Napi::Env env, Napi::Function, Job* jj) { Complete(env, jj); });
    }
    Free();
    tsfn_.Release();
  }

  static void Complete(Napi::Env env, Job* j) {
    ModelThread* s = j->s;
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
      if (--s->pending_ == 0) s->tsfn_.Unref(env);
    } else {
      for (auto& r : j->keep) r.SuppressDestruct();  // environment teardown
    }
    j->keep.clear();
    delete j;
  }

  const char* what_;
  std::thread th_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Job*> q_;
  bool stopping_ = false;
  Napi::ThreadSafeFunction tsfn_;
  int pending_ = 0;
};

// A session whose thread runs `threads` OpenMP threads (baton.threads; every core when absent).
template <class Session>
std::shared_ptr<Session> NewSession(const Napi::Object& b) {
  auto sp = std::make_shared<Session>();
  Napi::Value t = b.Get("threads");
  sp->threads = std::max(1, t.IsNumber() ? t.As<Napi::Number>().Int32Value() : int(std::max(1u, std::thread::hardware_concurrency())));
  return sp;
}

// One JS_ call on a model: the session of the handle in info[0] and the job the call fills (work on the
// model thread, done on the JS thread); Post() queues it. The job is freed if the call throws first.
template <class Session>
struct ModelCall {
  Napi::Env env;
  Session* s;
  std::unique_ptr<typename Session::Job> job;
  ModelCall(const Napi::CallbackInfo& info, const char* what)
      : env(info.Env()), s(Session::template From<Session>(info[0], what)), job(new typename Session::Job(info.Env())) {}
  typename Session::Job* operator->() { return job.get(); }
  Napi::Value Post() { return s->Post(env, job.release()); }
};

// Queues `work` (model thread), whose result `done` hands to JS (JS thread): the shape of most calls.
template <class Call, class Work, class Done>
Napi::Value PostResult(Call& c, Work work, Done done) {
  auto out = std::make_shared<decltype(work())>();
  c->work = [work, out]() { *out = work(); };
  c->done = [done, out](Napi::Env e) -> Napi::Value { return done(e, *out); };
  return c.Post();
}

}  // namespace soup::addon
