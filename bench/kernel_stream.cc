// SPDX-License-Identifier: MIT
// The interpolation kernel out of cache, without Node: the core addon's scheduler and kernels on its
// thread pool (all cores, streaming stores) over sources of S MiB each on 4 KiB pages, interleaved rep
// by rep with the triad probe and the read probe on the same buffers. Prints JSON lines: GB/s =
// (N+1)·bytes/time and the median over reps of GB/s ÷ the triad's GB/s of the same rep.
// Built and run by bench/kernel-stream.sh.
#include <sys/mman.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "core/cpu_features.h"
#include "core/dtype.h"
#include "core/interp.h"

using namespace soup;

static void* buffer(size_t bytes) {
  void* p = std::aligned_alloc(2 << 20, bytes);
  if (!p) {
    std::fprintf(stderr, "out of memory\n");
    std::exit(1);
  }
  madvise(p, bytes, MADV_NOHUGEPAGE);  // like sources mapped from files (docs/notes/merge-measuring.md, huge pages)
  for (size_t i = 0; i < bytes / 4; i++) static_cast<uint32_t*>(p)[i] = 0x3f803f80u + static_cast<uint32_t>(i % 61);  // ordinary values
  return p;
}

static double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

int main(int argc, char** argv) {
  const size_t mib = argc > 1 ? std::strtoul(argv[1], nullptr, 10) : 512;  // per source
  const int reps = argc > 2 ? std::atoi(argv[2]) : 11;
  const size_t bytes = mib << 20;
  std::vector<void*> src(8);
  for (auto& p : src) p = buffer(bytes);
  void* out = buffer(bytes);
  float* probe[3] = {static_cast<float*>(buffer(bytes)), static_cast<float*>(buffer(bytes)), static_cast<float*>(buffer(bytes))};
  InterpOptions opt;
  opt.simd = detectSimd();
  opt.nonTemporal = true;
  std::printf("{\"event\":\"meta\",\"mibPerSource\":%zu,\"reps\":%d,\"simd\":\"%s\"}\n", mib, reps, simdName(opt.simd));
  const double triadBytes = 3.0 * bytes;
  for (int n : {2, 4, 8}) {
    std::vector<double> w(n, 1.0 / n);
    const Weights wt(w);
    std::vector<const void*> ptrs(src.begin(), src.begin() + n);
    std::vector<const float*> readPtrs(n);
    for (int j = 0; j < n; j++) readPtrs[j] = static_cast<const float*>(src[j]);
    auto soup = [&](int dt) {
      Segment s;
      s.src = ptrs.data(), s.inDtype = dt, s.out = out, s.outDtype = dt, s.count = bytes / dtypeSize(dt);
      const std::vector<Segment> segs{s};
      auto t0 = std::chrono::steady_clock::now();
      interpolateSegments(segs, wt, opt, nullptr);
      return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    };
    struct Row {
      const char* name;
      double moved;
      std::vector<double> t, ofTriad;
    };
    std::vector<Row> rows = {
        {"triad", triadBytes, {}, {}}, {"read", n * 1.0 * bytes, {}, {}}, {"float32", (n + 1.0) * bytes, {}, {}}, {"bfloat16", (n + 1.0) * bytes, {}, {}}};
    soup(kF32), soup(kBF16);  // warm-up
    for (int r = 0; r < reps; r++) {
      const double tr = bandwidthTriad(probe[0], probe[1], probe[2], bytes / 4, 1, opt);
      const double rd = bandwidthRead(readPtrs, bytes / 4, opt, nullptr);
      const double f = soup(kF32), b = soup(kBF16);
      const double ts[] = {tr, rd, f, b};
      for (size_t k = 0; k < rows.size(); k++) {
        rows[k].t.push_back(ts[k]);
        rows[k].ofTriad.push_back((rows[k].moved / ts[k]) / (triadBytes / tr));
      }
    }
    for (const Row& row : rows)
      std::printf("{\"event\":\"result\",\"n\":%d,\"kernel\":\"%s\",\"gbps\":%.1f,\"ofTriad\":%.3f}\n", n, row.name, row.moved / median(row.t) / 1e9,
                  median(row.ofTriad));
  }
}
