// SPDX-License-Identifier: MIT
// In-cache throughput of the interpolation range kernels on one core, no thread pool: what each SIMD
// level costs in instructions once memory is out of the way (sources and output sized to stay in L2).
// Effective GB/s = (N+1)·bytes/time, median of 2000 runs (scalar: 50), the levels interleaved. Built and run by bench/kernel-incache.sh.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <iterator>
#include <vector>

#include "core/cpu_features.h"
#include "core/dtype.h"
#include "core/interp.h"

using namespace soup;

int main(int argc, char** argv) {
  const size_t kib = argc > 1 ? std::strtoul(argv[1], nullptr, 10) : 96;  // per source
  const Simd best = detectSimd();
  struct Level {
    const char* name;
    Simd simd;
    RangeFn fn;
  };
  const Level levels[] = {{"scalar", Simd::Scalar, interpRangeScalar},
                          {"avx2", Simd::Avx2, interpRangeAvx2},
                          {"avx512", Simd::Avx512, interpRangeAvx512},
                          {"avx512bf16", Simd::Avx512Bf16, interpRangeAvx512Bf16}};
  std::printf("{\"event\":\"meta\",\"kibPerSource\":%zu,\"best\":\"%s\"}\n", kib, simdName(best));
  for (int n : {2, 8}) {
    std::vector<double> w(n, 1.0 / n);
    const Weights wt(w);
    for (int dt : {kF32, kBF16, kF16}) {
      const size_t es = dtypeSize(dt), count = kib * 1024 / es;
      // 64-byte aligned, as the addon's buffers and safetensors data (unaligned 64-byte loads split lines)
      auto buffer = [&] { return static_cast<uint16_t*>(std::aligned_alloc(64, count * es)); };
      std::vector<const void*> ptrs(n);
      for (int j = 0; j < n; j++) {
        uint16_t* p = buffer();
        for (size_t i = 0; i < count * es / 2; i++) p[i] = static_cast<uint16_t>(0x3f80 + ((i * 7 + j) & 0x3f));  // ordinary values
        ptrs[j] = p;
      }
      uint16_t* out = buffer();
      Segment s;
      s.src = ptrs.data(), s.inDtype = dt, s.out = out, s.outDtype = dt, s.count = count;
      // levels interleaved run by run: this VM's speed drifts by tens of percent even in cache, so only
      // figures taken side by side compare
      std::vector<std::vector<double>> t(std::size(levels));
      for (int r = 0; r < 2000; r++)
        for (size_t k = 0; k < std::size(levels); k++) {
          if (levels[k].simd > best || (levels[k].simd == Simd::Scalar && r >= 50)) continue;  // scalar: slow, 50 runs
          auto t0 = std::chrono::steady_clock::now();
          levels[k].fn(s, 0, count, wt, false);
          t[k].push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
        }
      for (size_t k = 0; k < std::size(levels); k++) {
        if (t[k].empty()) continue;
        std::sort(t[k].begin(), t[k].end());
        std::printf("{\"event\":\"result\",\"dtype\":\"%s\",\"n\":%d,\"simd\":\"%s\",\"gbps\":%.1f}\n", dtypeName(dt), n, levels[k].name,
                    (n + 1.0) * count * es / t[k][t[k].size() / 2] / 1e9);
      }
      for (const void* p : ptrs) std::free(const_cast<void*>(p));
      std::free(out);
    }
  }
}
