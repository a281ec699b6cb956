// SPDX-License-Identifier: MIT
// AVX-512 (F, BW, VL) kernels, chosen at run time. Same formula as every other path (interp.h).
// interp_avx512bf16.cc compiles this file again with SOUP_AVX512_BF16 defined: the same kernels, with
// the rounding of fp32/fp16 sums to bf16 outputs (storeBF16) done by AVX512_BF16's vcvtneps2bf16
// (Simd::Avx512Bf16). bf16 -> bf16 soups round with integer operations at every level (packBF16).
#include <immintrin.h>

#include <cmath>

#ifdef SOUP_AVX512_BF16
#pragma GCC target("avx512f,avx512bw,avx512vl,avx512dq,avx512bf16,avx2,fma,f16c")
#else
#pragma GCC target("avx512f,avx512bw,avx512vl,avx2,fma,f16c")
#endif

#include "core/interp_impl.h"

namespace soup {
namespace {

struct Avx512 {
  using F = __m512;
  static constexpr size_t W = 16;
  static F set1(float x) { return _mm512_set1_ps(x); }
  static F mul(F a, F b) { return _mm512_mul_ps(a, b); }
  static F fma(F a, F b, F c) { return _mm512_fmadd_ps(a, b, c); }
  static F loadF32(const float* p) { return _mm512_loadu_ps(p); }
  static F loadF16(const uint16_t* p) { return _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p))); }
  static F loadBF16(const uint16_t* p) {
    __m512i x = _mm512_cvtepu16_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
    return _mm512_castsi512_ps(_mm512_slli_epi32(x, 16));
  }
  static void storeF32(float* p, F v, bool nt) {
    if (nt)
      _mm512_stream_ps(p, v);
    else
      _mm512_storeu_ps(p, v);
  }
  static void store256(uint16_t* p, __m256i h, bool nt) {
    if (nt)
      _mm256_stream_si256(reinterpret_cast<__m256i*>(p), h);
    else
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(p), h);
  }
  static void storeF16(uint16_t* p, F v, bool nt) { store256(p, _mm512_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC), nt); }
  static void storeBF16(uint16_t* p, F v, bool nt) {
#ifdef SOUP_AVX512_BF16
    if (__builtin_expect(!anySubnormal(v), 1)) return store256(p, reinterpret_cast<__m256i>(_mm512_cvtneps_pbh(v)), nt);
#endif
    store256(p, _mm512_cvtepi32_epi16(_mm512_srli_epi32(roundHi(v), 16)), nt);
  }
  static void storeF64(double* p, F v, bool nt) {
    __m512d lo = _mm512_cvtps_pd(_mm512_castps512_ps256(v));
    __m512d hi = _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1)));
    if (nt) {
      _mm512_stream_pd(p, lo);
      _mm512_stream_pd(p + 8, hi);
    } else {
      _mm512_storeu_pd(p, lo);
      _mm512_storeu_pd(p + 8, hi);
    }
  }
  // bf16 -> bf16 without shuffles (interp_impl.h): a raw 64-byte load is 32 bf16, 16 even + 16 odd.
  static constexpr bool kPairedBF16 = true;
  static __m512i loadRaw(const uint16_t* p) { return _mm512_loadu_si512(p); }
  static void prefetch(uintptr_t a) { _mm_prefetch(reinterpret_cast<const char*>(a), _MM_HINT_T0); }
  static void storeRaw(uint16_t* p, __m512i v, bool nt) {
    if (nt)
      _mm512_stream_si512(reinterpret_cast<__m512i*>(p), v);
    else
      _mm512_storeu_si512(p, v);
  }
  static F evenBF16(__m512i x) { return _mm512_castsi512_ps(_mm512_slli_epi32(x, 16)); }
  static F oddBF16(__m512i x) { return _mm512_castsi512_ps(_mm512_and_si512(x, _mm512_set1_epi32(static_cast<int>(0xffff0000u)))); }
  // v rounded to bf16 (nearest even; NaN -> its top half with the quiet bit set), in the upper 16 bits
  static __m512i roundHi(F v) {
    const __m512i u = _mm512_castps_si512(v);
    const __m512i lsb = _mm512_and_si512(_mm512_srli_epi32(u, 16), _mm512_set1_epi32(1));
    const __m512i r = _mm512_add_epi32(u, _mm512_add_epi32(lsb, _mm512_set1_epi32(0x7fff)));
    const __mmask16 isNan = _mm512_cmpgt_epi32_mask(_mm512_and_si512(u, _mm512_set1_epi32(0x7fffffff)), _mm512_set1_epi32(0x7f800000));
    return _mm512_mask_blend_epi32(isNan, r, _mm512_or_si512(u, _mm512_set1_epi32(0x400000)));
  }
#ifdef SOUP_AVX512_BF16
  // vcvtneps2bf16 rounds exactly like roundHi (nearest even; NaN -> its top half with the quiet bit
  // set) except that it flushes subnormal inputs to zero: a vector with a subnormal lane (fpclass bit 5)
  // takes the integer path instead. The special-value test in tests/interpolate.test.ts covers both.
  static bool anySubnormal(F v) { return _mm512_fpclass_ps_mask(v, 0x20) != 0; }
#endif
  // bf16 sum rounded to nearest even, in the upper 16 bits, without a NaN case (NOTE: [bf16 sums] in
  // interp_impl.h)
  static __m512i roundHiOfSum(F v) {
    const __m512i u = _mm512_castps_si512(v);
    const __m512i lsb = _mm512_and_si512(_mm512_srli_epi32(u, 16), _mm512_set1_epi32(1));
    return _mm512_add_epi32(u, _mm512_add_epi32(lsb, _mm512_set1_epi32(0x7fff)));
  }
  static __m512i packBF16(F even, F odd) {
    return _mm512_or_si512(_mm512_srli_epi32(roundHiOfSum(even), 16), _mm512_and_si512(roundHiOfSum(odd), _mm512_set1_epi32(static_cast<int>(0xffff0000u))));
  }
  static float h2f(uint16_t h) { return _cvtsh_ss(h); }
  static uint16_t f2h(float f) { return _cvtss_sh(f, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC); }
  static void fence() { _mm_sfence(); }
};

}  // namespace

#ifdef SOUP_AVX512_BF16
void interpRangeAvx512Bf16(const Segment& s, size_t b, size_t e, const Weights& w, bool nt) { impl::range<Avx512>(s, b, e, w, nt); }
#else
void interpRangeAvx512(const Segment& s, size_t b, size_t e, const Weights& w, bool nt) { impl::range<Avx512>(s, b, e, w, nt); }
void triadRangeAvx512(float* a, const float* b, const float* c, float s, size_t i, size_t e, bool nt) { impl::triadRange<Avx512>(a, b, c, s, i, e, nt); }
float readRangeAvx512(const float* const* s, size_t k, size_t i, size_t e) { return impl::readRange<Avx512>(s, k, i, e); }
#endif

}  // namespace soup
