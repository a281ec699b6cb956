// SPDX-License-Identifier: MIT
// Fused multi-tensor interpolation: out = Σᵢ λᵢ xᵢ over every tensor of N sources in one parallel pass.
//
// NOTE: [Summation order] Each output element is acc = λ₁·x₁ (one rounded product), then
// acc = fma(λᵢ, xᵢ, acc) for i = 2..N, in fp32 (fp64 when the inputs are fp64), λ rounded once from
// double. Every element is computed independently with this exact formula by every code path (scalar,
// AVX2, AVX-512, and the CUDA kernel), so results are bit-identical for any thread count and SIMD level.
//
// NOTE: [Chunks] The work is split in fixed-size chunks of elements over the concatenation of all
// tensors, so hundreds of small LoRA tensors cost no per-tensor scheduling overhead. A chunk spans
// 1 MiB of its widest stream (fewer for small jobs, to keep 8 chunks per thread): every chunk start
// restarts the hardware prefetcher on N+1 new streams and ends with a store fence, and with the earlier
// 64 Ki-element chunks (128 KiB of a bf16 stream) that cost 10–20 % of full-model bandwidth here
// (interleaved runs, 1 GiB per source: fp32 N=2 93 -> 100 %, bf16 77 -> 86 % of the probe).
#pragma once
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "core/cpu_features.h"

namespace soup {

// One tensor of the job: N source pointers (same dtype), one output.
struct Segment {
  const void* const* src = nullptr;  // N pointers (owned by the job)
  int32_t inDtype = 0;
  void* out = nullptr;
  int32_t outDtype = 0;
  size_t count = 0;  // elements
};

struct Weights {
  std::vector<float> f32;   // λ rounded to fp32 (fp32/fp16/bf16 inputs)
  std::vector<double> f64;  // λ as given (fp64 inputs)
  explicit Weights(const std::vector<double>& w) : f64(w) {
    f32.reserve(w.size());
    for (double x : w) f32.push_back(static_cast<float>(x));
  }
  int n() const { return static_cast<int>(f64.size()); }
};

// Cancellation and progress shared with JS: control[0] != 0 asks to stop; control[1] counts bytes done.
struct Control {
  double* slots = nullptr;
  bool cancelled() const;
  void addProgress(double bytes);
};

struct InterpOptions {
  int threads = 0;           // 0 = all hardware threads
  Simd simd = Simd::Scalar;  // chosen by the caller (detectSimd() or a forced level for tests)
  bool nonTemporal = false;  // streaming stores for outputs that do not fit in cache
  size_t chunkElems = 0;     // 0 = chunkElemsFor()'s choice (NOTE: [Chunks]); tests force small ones
};

// Per-ISA element-range kernels (interp_scalar.cc, interp_avx2.cc, interp_avx512.cc, interp_avx512bf16.cc).
using RangeFn = void (*)(const Segment& s, size_t begin, size_t end, const Weights& w, bool nt);
RangeFn rangeKernel(Simd simd);
void interpRangeScalar(const Segment& s, size_t begin, size_t end, const Weights& w, bool nt);
void interpRangeAvx2(const Segment& s, size_t begin, size_t end, const Weights& w, bool nt);
void interpRangeAvx512(const Segment& s, size_t begin, size_t end, const Weights& w, bool nt);
void interpRangeAvx512Bf16(const Segment& s, size_t begin, size_t end, const Weights& w, bool nt);

// Low-rank update of one row block: out[r,:] = base[r,:] + Σ_k L[r,k]·R[k,:] (fp32, k ascending).
struct LowRank {
  const void* base = nullptr;  // rows×cols, baseDtype (may be null: zero base)
  int32_t baseDtype = 0;
  void* out = nullptr;  // rows×cols, outDtype
  int32_t outDtype = 0;
  size_t rows = 0, cols = 0, rank = 0;
  const float* L = nullptr;  // rows×rank
  const float* R = nullptr;  // rank×cols
};
using LowRankRowsFn = void (*)(const LowRank& j, size_t r0, size_t r1, float* scratch);
void lowRankRowsScalar(const LowRank& j, size_t r0, size_t r1, float* scratch);
void lowRankRowsAvx2(const LowRank& j, size_t r0, size_t r1, float* scratch);

// Triad a[i] = b[i] + s·c[i] over one range (the bandwidth probe), same store policy as the kernels.
void triadRangeScalar(float* a, const float* b, const float* c, float s, size_t begin, size_t end, bool nt);
void triadRangeAvx2(float* a, const float* b, const float* c, float s, size_t begin, size_t end, bool nt);
void triadRangeAvx512(float* a, const float* b, const float* c, float s, size_t begin, size_t end, bool nt);
// Sum of k (1..8) streams over one range, read interleaved (the read-only probe).
float readRangeScalar(const float* const* s, size_t k, size_t begin, size_t end);
float readRangeAvx2(const float* const* s, size_t k, size_t begin, size_t end);
float readRangeAvx512(const float* const* s, size_t k, size_t begin, size_t end);

// Elements per chunk for a job of `total` elements whose widest stream has `widestBytes` per element.
size_t chunkElemsFor(size_t total, size_t widestBytes, const InterpOptions& opt);

// Runs the whole job over the thread pool. Throws std::runtime_error("[ERR_SOUP_ABORTED] ...") when
// cancelled between chunks.
void interpolateSegments(const std::vector<Segment>& segs, const Weights& w, const InterpOptions& opt, Control* ctl);
void lowRankUpdate(const LowRank& job, const InterpOptions& opt, Control* ctl);
// Returns seconds for `reps` triads over n floats.
double bandwidthTriad(float* a, const float* b, const float* c, size_t n, int reps, const InterpOptions& opt);
// Returns seconds for one read of k (1..8) streams of n floats each, with the soups' chunking; `sum`
// (if given) receives the sum of every element read (fp32 within a chunk, fp64 across chunks).
double bandwidthRead(const std::vector<const float*>& s, size_t n, const InterpOptions& opt, double* sum);

}  // namespace soup
