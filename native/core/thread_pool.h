// SPDX-License-Identifier: MIT
// A small persistent thread pool: parallelFor over task indices with an atomic counter. The calling
// thread takes part. Jobs run one at a time (a mutex), so concurrent merges queue instead of
// oversubscribing the cores.
#pragma once
#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace soup {

class ThreadPool {
 public:
  static ThreadPool& instance();
  // Runs fn(task) for task in [0, nTasks) on up to `threads` threads (0 = all hardware threads).
  // The first exception thrown by fn is rethrown here after all threads stopped.
  void parallelFor(size_t nTasks, int threads, const std::function<void(size_t)>& fn);
  static int hardwareThreads();

 private:
  ThreadPool() = default;
  ~ThreadPool();
  void ensureWorkers(int n);
  void workerLoop(int id);

  std::mutex jobMutex_;  // one job at a time
  std::mutex m_;
  std::condition_variable cv_, doneCv_;
  std::vector<std::thread> workers_;
  bool stop_ = false;
  uint64_t generation_ = 0;
  int active_ = 0;   // workers asked to join the current job
  int running_ = 0;  // workers still inside the current job
  const std::function<void(size_t)>* fn_ = nullptr;
  std::atomic<size_t> next_{0};
  size_t nTasks_ = 0;
  std::exception_ptr error_;
  std::mutex errorMutex_;
  void drain();
};

}  // namespace soup
