// SPDX-License-Identifier: MIT
// AVX2 + FMA + F16C kernels (chosen at run time; this file alone is compiled for those extensions).
#include <immintrin.h>

#include <cmath>

#pragma GCC target("avx2,fma,f16c")

#include "core/interp_impl.h"

namespace soup {
namespace {

struct Avx2 {
  using F = __m256;
  static constexpr size_t W = 8;
  static F set1(float x) { return _mm256_set1_ps(x); }
  static F mul(F a, F b) { return _mm256_mul_ps(a, b); }
  static F fma(F a, F b, F c) { return _mm256_fmadd_ps(a, b, c); }
  static F loadF32(const float* p) { return _mm256_loadu_ps(p); }
  static F loadF16(const uint16_t* p) { return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p))); }
  static F loadBF16(const uint16_t* p) {
    __m256i x = _mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
    return _mm256_castsi256_ps(_mm256_slli_epi32(x, 16));
  }
  static void storeF32(float* p, F v, bool nt) {
    if (nt)
      _mm256_stream_ps(p, v);
    else
      _mm256_storeu_ps(p, v);
  }
  static void store128(uint16_t* p, __m128i h, bool nt) {
    if (nt)
      _mm_stream_si128(reinterpret_cast<__m128i*>(p), h);
    else
      _mm_storeu_si128(reinterpret_cast<__m128i*>(p), h);
  }
  static void storeF16(uint16_t* p, F v, bool nt) { store128(p, _mm256_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC), nt); }
  static void storeBF16(uint16_t* p, F v, bool nt) {
    const __m256i u = _mm256_castps_si256(v);
    const __m256i lsb = _mm256_and_si256(_mm256_srli_epi32(u, 16), _mm256_set1_epi32(1));
    __m256i r = _mm256_srli_epi32(_mm256_add_epi32(u, _mm256_add_epi32(lsb, _mm256_set1_epi32(0x7fff))), 16);
    const __m256i isNan = _mm256_cmpgt_epi32(_mm256_and_si256(u, _mm256_set1_epi32(0x7fffffff)), _mm256_set1_epi32(0x7f800000));
    const __m256i quiet = _mm256_or_si256(_mm256_srli_epi32(u, 16), _mm256_set1_epi32(0x40));
    r = _mm256_blendv_epi8(r, quiet, isNan);
    __m256i packed = _mm256_permute4x64_epi64(_mm256_packus_epi32(r, r), 0x08);
    store128(p, _mm256_castsi256_si128(packed), nt);
  }
  static void storeF64(double* p, F v, bool nt) {
    __m256d lo = _mm256_cvtps_pd(_mm256_castps256_ps128(v));
    __m256d hi = _mm256_cvtps_pd(_mm256_extractf128_ps(v, 1));
    if (nt) {
      _mm256_stream_pd(p, lo);
      _mm256_stream_pd(p + 4, hi);
    } else {
      _mm256_storeu_pd(p, lo);
      _mm256_storeu_pd(p + 4, hi);
    }
  }
  // bf16 -> bf16 without shuffles (interp_impl.h): a raw 32-byte load is 16 bf16, 8 even + 8 odd; the
  // rounded halves recombine with a shift, a mask and an or, where storeBF16 needs a pack and a permute
  // per 8 elements (in cache, one core: bf16 N=2 34 -> 50-64 GB/s, N=8 45 -> 59-77; docs/notes/merge-measuring.md).
  static constexpr bool kPairedBF16 = true;
  static __m256i loadRaw(const uint16_t* p) { return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)); }
  static void prefetch(uintptr_t a) { _mm_prefetch(reinterpret_cast<const char*>(a), _MM_HINT_T0); }
  static void storeRaw(uint16_t* p, __m256i v, bool nt) {
    if (nt)
      _mm256_stream_si256(reinterpret_cast<__m256i*>(p), v);
    else
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(p), v);
  }
  static F evenBF16(__m256i x) { return _mm256_castsi256_ps(_mm256_slli_epi32(x, 16)); }
  static F oddBF16(__m256i x) { return _mm256_castsi256_ps(_mm256_and_si256(x, _mm256_set1_epi32(static_cast<int>(0xffff0000u)))); }
  // bf16 sum rounded to nearest even, in the upper 16 bits, without a NaN case (NOTE: [bf16 sums] in
  // interp_impl.h)
  static __m256i roundHiOfSum(F v) {
    const __m256i u = _mm256_castps_si256(v);
    const __m256i lsb = _mm256_and_si256(_mm256_srli_epi32(u, 16), _mm256_set1_epi32(1));
    return _mm256_add_epi32(u, _mm256_add_epi32(lsb, _mm256_set1_epi32(0x7fff)));
  }
  static __m256i packBF16(F even, F odd) {
    return _mm256_or_si256(_mm256_srli_epi32(roundHiOfSum(even), 16), _mm256_and_si256(roundHiOfSum(odd), _mm256_set1_epi32(static_cast<int>(0xffff0000u))));
  }
  static float h2f(uint16_t h) { return _cvtsh_ss(h); }
  static uint16_t f2h(float f) { return _cvtss_sh(f, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC); }
  static void fence() { _mm_sfence(); }
};

}  // namespace

void interpRangeAvx2(const Segment& s, size_t b, size_t e, const Weights& w, bool nt) { impl::range<Avx2>(s, b, e, w, nt); }
void lowRankRowsAvx2(const LowRank& j, size_t r0, size_t r1, float* scratch) { impl::lowRankRows<Avx2>(j, r0, r1, scratch); }
void triadRangeAvx2(float* a, const float* b, const float* c, float s, size_t i, size_t e, bool nt) { impl::triadRange<Avx2>(a, b, c, s, i, e, nt); }
float readRangeAvx2(const float* const* s, size_t k, size_t i, size_t e) { return impl::readRange<Avx2>(s, k, i, e); }

}  // namespace soup
