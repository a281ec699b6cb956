// SPDX-License-Identifier: MIT
// Storage dtypes of the merge engine and their exact scalar conversions.
// NOTE: [Rounding] Every conversion to fp16/bf16 rounds to nearest even, as torch does; NaN stays a
// (quiet) NaN. The SIMD kernels produce the same bits as these scalar versions (tests compare them).
#pragma once
#include <cstdint>
#include <cstring>

namespace soup {

enum DType : int32_t { kF32 = 0, kF16 = 1, kBF16 = 2, kF64 = 3 };
constexpr int kNumDTypes = 4;

inline size_t dtypeSize(int32_t d) { return d == kF64 ? 8 : d == kF32 ? 4 : 2; }
inline bool validDType(int32_t d) { return d >= 0 && d < kNumDTypes; }
inline const char* dtypeName(int32_t d) {
  switch (d) {
    case kF32:
      return "float32";
    case kF16:
      return "float16";
    case kBF16:
      return "bfloat16";
    case kF64:
      return "float64";
    default:
      return "unknown";
  }
}

inline uint32_t f32Bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}
inline float bitsF32(uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

inline float bf16ToF32(uint16_t h) { return bitsF32(static_cast<uint32_t>(h) << 16); }

inline uint16_t f32ToBf16(float f) {
  uint32_t u = f32Bits(f);
  if ((u & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((u >> 16) | 0x0040u);  // quiet NaN
  u += 0x7fffu + ((u >> 16) & 1u);
  return static_cast<uint16_t>(u >> 16);
}

inline float f16ToF32(uint16_t h) {
  uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  uint32_t exp = (h >> 10) & 0x1fu;
  uint32_t man = h & 0x3ffu;
  uint32_t u;
  if (exp == 0) {
    if (man == 0) {
      u = sign;
    } else {  // subnormal: renormalise
      int e = -1;
      do {
        man <<= 1;
        e++;
      } while ((man & 0x400u) == 0);
      u = sign | static_cast<uint32_t>(127 - 15 - e) << 23 | (man & 0x3ffu) << 13;
    }
  } else if (exp == 31) {
    u = sign | 0x7f800000u | man << 13 | (man ? 0x400000u : 0u);
  } else {
    u = sign | (exp + 127 - 15) << 23 | man << 13;
  }
  return bitsF32(u);
}

inline uint16_t f32ToF16(float f) {
  uint32_t u = f32Bits(f);
  uint16_t sign = static_cast<uint16_t>((u >> 16) & 0x8000u);
  uint32_t a = u & 0x7fffffffu;
  if (a > 0x7f800000u) return static_cast<uint16_t>(sign | 0x7e00u | ((a >> 13) & 0x3ffu));  // NaN, quiet
  if (a >= 0x477ff000u) return static_cast<uint16_t>(sign | 0x7c00u);                        // rounds to inf (>= 65520)
  if (a < 0x38800000u) {                                                                     // result is subnormal or zero: 2^-14 > |f|
    // value = a as float; subnormal unit is 2^-24: q = round_half_even(|f| * 2^24)
    int exp = static_cast<int>(a >> 23);
    if (exp < 102) return sign;  // < 2^-25: rounds to zero (exactly 2^-25 ties to even 0)
    uint32_t man = (a & 0x7fffffu) | 0x800000u;
    int shift = 126 - exp;  // man * 2^(exp-150) * 2^24 = man >> (126 - exp)
    uint32_t q = man >> shift;
    uint32_t rem = man & ((1u << shift) - 1u);
    uint32_t half = 1u << (shift - 1);
    if (rem > half || (rem == half && (q & 1u))) q++;
    return static_cast<uint16_t>(sign | q);
  }
  // normal: rebias exponent, round mantissa 23 -> 10 bits, half to even (carry may bump the exponent)
  uint32_t r = a - 0x38000000u;  // exponent - 112
  uint32_t lsb = (r >> 13) & 1u;
  r += 0xfffu + lsb;
  return static_cast<uint16_t>(sign | (r >> 13));
}

}  // namespace soup
