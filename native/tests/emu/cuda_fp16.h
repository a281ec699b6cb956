// SPDX-License-Identifier: MIT
// CPU emulation of the fp16 intrinsics native/cuda uses, through the compiler's _Float16 (IEEE binary16,
// round to nearest even): an implementation independent of native/tests/reference.h's bit manipulation.
#pragma once
#include <cstdint>
#include <cstring>

#include "cuda_runtime_api.h"

struct __half {
  uint16_t bits;
};
inline __half __ushort_as_half(uint16_t u) { return __half{u}; }
inline uint16_t __half_as_ushort(__half h) { return h.bits; }
inline float __half2float(__half h) {
  _Float16 f;
  std::memcpy(&f, &h.bits, 2);
  return float(f);
}
inline __half __float2half_rn(float x) {
  const _Float16 f = static_cast<_Float16>(x);
  __half h;
  std::memcpy(&h.bits, &f, 2);
  return h;
}
