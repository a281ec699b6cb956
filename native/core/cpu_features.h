// SPDX-License-Identifier: MIT
// Run-time SIMD selection: the shipped build never assumes the build machine's CPU (-march=native).
#pragma once
#include <string>
#include <vector>

namespace soup {

// Ordered: each level needs the CPU features of the ones below it.
enum class Simd { Scalar = 0, Avx2 = 1, Avx512 = 2, Avx512Bf16 = 3 };

inline Simd detectSimd() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("fma") &&
      __builtin_cpu_supports("f16c"))
    return __builtin_cpu_supports("avx512bf16") && __builtin_cpu_supports("avx512dq") ? Simd::Avx512Bf16 : Simd::Avx512;
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c")) return Simd::Avx2;
#endif
  return Simd::Scalar;
}

inline const char* simdName(Simd s) {
  switch (s) {
    case Simd::Avx512Bf16:
      return "avx512bf16";
    case Simd::Avx512:
      return "avx512";
    case Simd::Avx2:
      return "avx2";
    default:
      return "scalar";
  }
}

inline std::vector<std::string> cpuFeatures() {
  std::vector<std::string> f;
#if defined(__x86_64__) || defined(__i386__)
  __builtin_cpu_init();
  if (__builtin_cpu_supports("sse4.2")) f.push_back("sse4.2");
  if (__builtin_cpu_supports("avx")) f.push_back("avx");
  if (__builtin_cpu_supports("avx2")) f.push_back("avx2");
  if (__builtin_cpu_supports("fma")) f.push_back("fma");
  if (__builtin_cpu_supports("f16c")) f.push_back("f16c");
  if (__builtin_cpu_supports("avx512f")) f.push_back("avx512f");
  if (__builtin_cpu_supports("avx512bw")) f.push_back("avx512bw");
  if (__builtin_cpu_supports("avx512vl")) f.push_back("avx512vl");
  if (__builtin_cpu_supports("avx512dq")) f.push_back("avx512dq");
  if (__builtin_cpu_supports("avx512bf16")) f.push_back("avx512bf16");
#endif
  return f;
}

}  // namespace soup
