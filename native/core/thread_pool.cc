// SPDX-License-Identifier: MIT
#include "core/thread_pool.h"

#include <exception>

namespace soup {

ThreadPool& ThreadPool::instance() {
  // Leaked on purpose: joining threads from a static destructor at process exit can deadlock.
  static ThreadPool* pool = new ThreadPool();
  return *pool;
}

int ThreadPool::hardwareThreads() {
  unsigned n = std::thread::hardware_concurrency();
  return n ? static_cast<int>(n) : 1;
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard<std::mutex> g(m_);
    stop_ = true;
  }
  cv_.notify_all();
  for (auto& t : workers_) t.join();
}

void ThreadPool::ensureWorkers(int n) {
  while (static_cast<int>(workers_.size()) < n) {
    int id = static_cast<int>(workers_.size());
    workers_.emplace_back([this, id] { workerLoop(id); });
  }
}

void ThreadPool::drain() {
  for (;;) {
    size_t t = next_.fetch_add(1, std::memory_order_relaxed);
    if (t >= nTasks_) return;
    try {
      (*fn_)(t);
    } catch (...) {
      std::lock_guard<std::mutex> g(errorMutex_);
      if (!error_) error_ = std::current_exception();
      next_.store(nTasks_, std::memory_order_relaxed);  // stop handing out work
    }
  }
}

void ThreadPool::workerLoop(int id) {
  uint64_t seen = 0;
  for (;;) {
    {
      std::unique_lock<std::mutex> lk(m_);
      cv_.wait(lk, [&] { return stop_ || (generation_ != seen && id < active_); });
      if (stop_) return;
      seen = generation_;
    }
    drain();
    {
      std::lock_guard<std::mutex> g(m_);
      if (--running_ == 0) doneCv_.notify_all();
    }
  }
}

void ThreadPool::parallelFor(size_t nTasks, int threads, const std::function<void(size_t)>& fn) {
  if (nTasks == 0) return;
  if (threads <= 0) threads = hardwareThreads();
  if (static_cast<size_t>(threads) > nTasks) threads = static_cast<int>(nTasks);
  std::lock_guard<std::mutex> job(jobMutex_);
  error_ = nullptr;
  fn_ = &fn;
  nTasks_ = nTasks;
  next_.store(0);
  int helpers = threads - 1;
  if (helpers > 0) {
    std::lock_guard<std::mutex> g(m_);
    ensureWorkers(helpers);
    active_ = helpers;
    running_ = helpers;
    generation_++;
  }
  if (helpers > 0) cv_.notify_all();
  drain();
  if (helpers > 0) {
    std::unique_lock<std::mutex> lk(m_);
    doneCv_.wait(lk, [&] { return running_ == 0; });
  }
  fn_ = nullptr;
  if (error_) std::rethrow_exception(error_);
}

}  // namespace soup
