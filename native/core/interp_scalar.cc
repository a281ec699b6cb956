// SPDX-License-Identifier: MIT
// Portable kernels: the reference semantics (and the fallback for CPUs without AVX2/FMA/F16C).
#include <cmath>

#include "core/interp_impl.h"

namespace soup {
namespace {

struct Scalar {
  using F = float;
  static constexpr bool kPairedBF16 = false;
  static constexpr size_t W = 1;
  static F set1(float x) { return x; }
  static F mul(F a, F b) { return a * b; }
  static F fma(F a, F b, F c) { return std::fma(a, b, c); }
  static F loadF32(const float* p) { return *p; }
  static F loadF16(const uint16_t* p) { return f16ToF32(*p); }
  static F loadBF16(const uint16_t* p) { return bf16ToF32(*p); }
  static void storeF32(float* p, F v, bool) { *p = v; }
  static void storeF16(uint16_t* p, F v, bool) { *p = f32ToF16(v); }
  static void storeBF16(uint16_t* p, F v, bool) { *p = f32ToBf16(v); }
  static void storeF64(double* p, F v, bool) { *p = v; }
  static float h2f(uint16_t h) { return f16ToF32(h); }
  static uint16_t f2h(float f) { return f32ToF16(f); }
  static void fence() {}
};

}  // namespace

void interpRangeScalar(const Segment& s, size_t b, size_t e, const Weights& w, bool) { impl::range<Scalar>(s, b, e, w, false); }
void lowRankRowsScalar(const LowRank& j, size_t r0, size_t r1, float* scratch) { impl::lowRankRows<Scalar>(j, r0, r1, scratch); }
void triadRangeScalar(float* a, const float* b, const float* c, float s, size_t i, size_t e, bool) { impl::triadRange<Scalar>(a, b, c, s, i, e, false); }
float readRangeScalar(const float* const* s, size_t k, size_t i, size_t e) { return impl::readRange<Scalar>(s, k, i, e); }

}  // namespace soup
