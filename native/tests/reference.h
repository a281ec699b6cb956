// SPDX-License-Identifier: MIT
// CPU references for the CUDA interpolation kernel, written independently of it (llm.c: a CPU reference
// beside every kernel). Two of them:
//   exact:   the CPU path's formula, bit for bit: acc = (float)l_1 * x_1, acc = fmaf((float)l_i, x_i, acc)
//            for i = 2..N, then round to the output dtype (fp64 inputs: the same in double);
//   float64: sum_i l_i * x_i in double, against which tolerances are checked.
// Conversions are bit manipulations, checked against the compiler's _Float16 in the self-test.
#pragma once
#include <cmath>
#include <cstdint>
#include <cstring>
#include <random>
#include <vector>

namespace ref {

inline uint32_t bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}
inline float fromBits(uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

// IEEE binary16 -> binary32, exact (normals, subnormals, inf, NaN payload kept).
inline float halfToFloat(uint16_t h) {
  const uint32_t sign = uint32_t(h & 0x8000) << 16;
  uint32_t exp = (h >> 10) & 0x1f, man = h & 0x3ff;
  if (exp == 0x1f) return fromBits(sign | 0x7f800000u | (man << 13));
  if (exp == 0) {
    if (man == 0) return fromBits(sign);
    // subnormal: value = man * 2^-24, exact in float
    float v = float(man) * std::ldexp(1.0f, -24);
    return sign ? -v : v;
  }
  return fromBits(sign | ((exp + 112) << 23) | (man << 13));
}

// binary32 -> binary16, round to nearest even, overflow to inf, NaN -> quiet NaN.
inline uint16_t floatToHalf(float f) {
  const uint32_t u = bits(f);
  const uint16_t sign = uint16_t((u >> 16) & 0x8000);
  const uint32_t a = u & 0x7fffffffu;
  if (a > 0x7f800000u) return uint16_t(sign | 0x7e00 | ((a >> 13) & 0x3ff));
  if (a >= 0x477ff000u) return uint16_t(sign | 0x7c00);  // >= 65520 rounds to inf
  if (a < 0x38800000u) {                                 // below 2^-14: subnormal or zero
    // value / 2^-24 rounded to nearest even integer; exact arithmetic in double.
    const double q = double(fromBits(a)) * 16777216.0;
    double r = std::nearbyint(q);  // default rounding mode: to nearest even
    return uint16_t(sign | uint16_t(r));
  }
  uint32_t m = a + 0xfffu + ((a >> 13) & 1u);  // round mantissa to 10 bits
  return uint16_t(sign | uint16_t(((m >> 13) - (112u << 10))));
}

inline float bf16ToFloat(uint16_t b) { return fromBits(uint32_t(b) << 16); }
inline uint16_t floatToBf16(float f) {
  uint32_t u = bits(f);
  if ((u & 0x7fffffffu) > 0x7f800000u) return 0x7fc0;
  return uint16_t((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
}

enum Dt { F32 = 0, F16 = 1, BF16 = 2, F64 = 3 };
inline size_t size(int dt) { return dt == F32 ? 4 : dt == F64 ? 8 : 2; }

inline double load(const void* p, int dt, int64_t k) {
  switch (dt) {
    case F32:
      return static_cast<const float*>(p)[k];
    case F16:
      return halfToFloat(static_cast<const uint16_t*>(p)[k]);
    case BF16:
      return bf16ToFloat(static_cast<const uint16_t*>(p)[k]);
    default:
      return static_cast<const double*>(p)[k];
  }
}

inline void storeF(void* p, int dt, int64_t k, float v) {
  switch (dt) {
    case F32:
      static_cast<float*>(p)[k] = v;
      break;
    case F16:
      static_cast<uint16_t*>(p)[k] = floatToHalf(v);
      break;
    case BF16:
      static_cast<uint16_t*>(p)[k] = floatToBf16(v);
      break;
    default:
      static_cast<double*>(p)[k] = double(v);
  }
}

// The exact CPU-path formula for element k of the sources, stored (in dtype outDt) at out[0].
inline void exact(const std::vector<const void*>& srcs, int inDt, int64_t k, const std::vector<double>& w, int outDt, void* out) {
  const size_t n = srcs.size();
  if (inDt == F64) {
    double acc = w[0] * load(srcs[0], inDt, k);
    for (size_t i = 1; i < n; ++i) acc = std::fma(w[i], load(srcs[i], inDt, k), acc);
    if (outDt == F64)
      static_cast<double*>(out)[0] = acc;
    else
      storeF(out, outDt, 0, float(acc));  // to fp16/bf16 through fp32, as torch does
    return;
  }
  float acc = float(w[0]) * float(load(srcs[0], inDt, k));
  for (size_t i = 1; i < n; ++i) acc = std::fmaf(float(w[i]), float(load(srcs[i], inDt, k)), acc);
  storeF(out, outDt, 0, acc);
}

// float64 reference value and the scale sum_i |l_i x_i| for the tolerance.
inline double exact64(const std::vector<const void*>& srcs, int inDt, int64_t k, const std::vector<double>& w, double* scale) {
  double s = 0, a = 0;
  for (size_t i = 0; i < srcs.size(); ++i) {
    const double t = w[i] * load(srcs[i], inDt, k);
    s += t;
    a += std::fabs(t);
  }
  *scale = a;
  return s;
}

// Random storage values in [-4, 4) with varied exponents (never zeros: they hide unwritten outputs).
inline void fillRandom(void* p, int dt, int64_t n, std::mt19937_64& rng) {
  std::uniform_real_distribution<double> u(0.5, 1.0);
  std::uniform_int_distribution<int> e(-12, 2), sgn(0, 1);
  for (int64_t k = 0; k < n; ++k) {
    double v = std::ldexp(u(rng), e(rng)) * (sgn(rng) ? -1 : 1);
    if (dt == F64)
      static_cast<double*>(p)[k] = v;
    else
      storeF(p, dt, k, float(v));
  }
}

}  // namespace ref
