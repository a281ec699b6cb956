// SPDX-License-Identifier: MIT
// Scheduling of the fused kernels: fixed-size chunks over the concatenation of all segments
// (NOTE: [Chunks] in interp.h), run on the shared thread pool, checked for cancellation per chunk.
#include "core/interp.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <stdexcept>
#include <string>

#include "core/dtype.h"
#include "core/thread_pool.h"

namespace soup {

bool Control::cancelled() const {
  if (!slots) return false;
  return __atomic_load_n(reinterpret_cast<const uint64_t*>(slots), __ATOMIC_RELAXED) != 0;
}

void Control::addProgress(double bytes) {
  if (!slots) return;
  // One writer at a time per job step (called from the coordinating thread only).
  uint64_t* p = reinterpret_cast<uint64_t*>(slots + 1);
  double cur;
  uint64_t bits = __atomic_load_n(p, __ATOMIC_RELAXED);
  std::memcpy(&cur, &bits, 8);
  cur += bytes;
  std::memcpy(&bits, &cur, 8);
  __atomic_store_n(p, bits, __ATOMIC_RELAXED);
}

RangeFn rangeKernel(Simd simd) {
  switch (simd) {
    case Simd::Avx512Bf16:
      return interpRangeAvx512Bf16;
    case Simd::Avx512:
      return interpRangeAvx512;
    case Simd::Avx2:
      return interpRangeAvx2;
    default:
      return interpRangeScalar;
  }
}

size_t chunkElemsFor(size_t total, size_t widestBytes, const InterpOptions& opt) {
  if (opt.chunkElems > 0) return std::max<size_t>(opt.chunkElems, 64);
  constexpr size_t kChunkBytes = size_t{1} << 20;
  const size_t threads = static_cast<size_t>(opt.threads > 0 ? opt.threads : ThreadPool::hardwareThreads());
  const size_t balanced = std::max<size_t>(total / (8 * threads), 4096);
  const size_t c = std::min(kChunkBytes / std::max<size_t>(widestBytes, 1), balanced);
  return (c + 63) / 64 * 64;
}

// Runs body(i) for i < n on the pool, polling the cancel flag between tasks; once it is set, the tasks not
// yet started are skipped and ERR_SOUP_ABORTED is thrown naming `what`.
template <class Body>
static void cancellableParallelFor(size_t n, int threads, Control* ctl, const char* what, const Body& body) {
  std::atomic<bool> aborted{false};
  ThreadPool::instance().parallelFor(n, threads, [&](size_t i) {
    if (aborted.load(std::memory_order_relaxed)) return;
    if (ctl && ctl->cancelled()) {
      aborted.store(true);
      return;
    }
    body(i);
  });
  if (aborted.load()) throw std::runtime_error(std::string("[ERR_SOUP_ABORTED] ") + what + " cancelled");
}

void interpolateSegments(const std::vector<Segment>& segs, const Weights& w, const InterpOptions& opt, Control* ctl) {
  if (segs.empty()) return;
  // prefix[k] = first global element of segment k
  std::vector<size_t> prefix(segs.size() + 1, 0);
  for (size_t k = 0; k < segs.size(); k++) prefix[k + 1] = prefix[k] + segs[k].count;
  const size_t total = prefix.back();
  if (total == 0) return;
  size_t widest = 1;
  for (const Segment& sg : segs) widest = std::max({widest, dtypeSize(sg.inDtype), dtypeSize(sg.outDtype)});
  const size_t chunk = chunkElemsFor(total, widest, opt);
  const size_t nChunks = (total + chunk - 1) / chunk;
  RangeFn fn = rangeKernel(opt.simd);
  cancellableParallelFor(nChunks, opt.threads, ctl, "interpolation", [&](size_t c) {
    size_t g0 = c * chunk, g1 = std::min(total, g0 + chunk);
    size_t k = static_cast<size_t>(std::upper_bound(prefix.begin(), prefix.end(), g0) - prefix.begin()) - 1;
    while (g0 < g1) {
      while (segs[k].count == 0 || prefix[k + 1] <= g0) k++;
      size_t b = g0 - prefix[k];
      size_t e = std::min(segs[k].count, g1 - prefix[k]);
      fn(segs[k], b, e, w, opt.nonTemporal);
      g0 = prefix[k] + e;
    }
  });
}

void lowRankUpdate(const LowRank& job, const InterpOptions& opt, Control* ctl) {
  if (job.rows == 0 || job.cols == 0) return;
  const size_t rowsPerTask = std::max<size_t>(1, (size_t{1} << 16) / job.cols);
  const size_t nTasks = (job.rows + rowsPerTask - 1) / rowsPerTask;
  LowRankRowsFn fn = opt.simd == Simd::Scalar ? lowRankRowsScalar : lowRankRowsAvx2;
  cancellableParallelFor(nTasks, opt.threads, ctl, "low-rank update", [&](size_t t) {
    thread_local std::vector<float> scratch;
    if (scratch.size() < job.cols) scratch.resize(job.cols);
    size_t r0 = t * rowsPerTask, r1 = std::min(job.rows, r0 + rowsPerTask);
    fn(job, r0, r1, scratch.data());
  });
}

// One timed pass of a probe over n floats in chunks of `chunk` elements: body(chunk index, begin, end).
template <class Body>
static double timedChunkPass(size_t n, size_t chunk, const InterpOptions& opt, const Body& body) {
  const size_t nChunks = (n + chunk - 1) / chunk;
  auto t0 = std::chrono::steady_clock::now();
  ThreadPool::instance().parallelFor(nChunks, opt.threads, [&](size_t k) { body(k, k * chunk, std::min(n, k * chunk + chunk)); });
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

double bandwidthTriad(float* a, const float* b, const float* c, size_t n, int reps, const InterpOptions& opt) {
  auto fn = opt.simd >= Simd::Avx512 ? triadRangeAvx512 : opt.simd == Simd::Avx2 ? triadRangeAvx2 : triadRangeScalar;
  const size_t chunk = chunkElemsFor(n, sizeof(float), opt);  // the soups' chunking (NOTE: [Chunks])
  double seconds = 0;
  for (int r = 0; r < reps; r++)
    seconds +=
        timedChunkPass(n, chunk, opt, [&](size_t, size_t b0, size_t b1) { fn(a, b, c, 0.5f + 0.25f * static_cast<float>(r & 1), b0, b1, opt.nonTemporal); });
  return seconds;
}

double bandwidthRead(const std::vector<const float*>& s, size_t n, const InterpOptions& opt, double* sum) {
  if (s.empty() || s.size() > 8) throw std::runtime_error("[ERR_SOUP_INVALID_ARG] bandwidth read probe: 1 to 8 arrays");
  auto fn = opt.simd >= Simd::Avx512 ? readRangeAvx512 : opt.simd == Simd::Avx2 ? readRangeAvx2 : readRangeScalar;
  const size_t chunk = chunkElemsFor(n, sizeof(float), opt);
  std::vector<float> partial((n + chunk - 1) / chunk);  // per-chunk sums keep the loads alive and make the probe testable
  double seconds = timedChunkPass(n, chunk, opt, [&](size_t k, size_t b0, size_t b1) { partial[k] = fn(s.data(), s.size(), b0, b1); });
  if (sum) {
    *sum = 0;
    for (float v : partial) *sum += v;
  }
  return seconds;
}

}  // namespace soup
