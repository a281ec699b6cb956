// SPDX-License-Identifier: MIT
// The AVX-512 kernels compiled again for CPUs with AVX512_BF16 (Zen 4+, Cooper Lake, Sapphire Rapids+):
// fp32 -> bf16 rounding in one instruction instead of seven, the rest unchanged (interp_avx512.cc).
#define SOUP_AVX512_BF16 1
#include "core/interp_avx512.cc"
