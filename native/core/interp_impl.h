// SPDX-License-Identifier: MIT
// The interpolation and low-rank kernels, written once over a SIMD traits struct V and instantiated by
// the per-ISA translation units (each compiled under its own `#pragma GCC target`). Not a public header.
//
// V provides: F (vector of W floats), W, set1, mul, fma(a, b, c) = a·b + c (one rounding),
// loadF32/loadF16/loadBF16 (unaligned), storeF32/storeF16/storeBF16/storeF64 (nt = streaming, aligned),
// h2f/f2h (scalar fp16 conversions matching the vector ones), fence(), and kPairedBF16: when true, also
// loadRaw/storeRaw (2W uint16), prefetch (a hint, never faults), evenBF16/oddBF16 (the even/odd elements of a raw load as fp32) and
// packBF16(even, odd) (both rounded to nearest even, NaN quieted, back in the original order).
// See NOTE: [Summation order] in interp.h.
//
// NOTE: [bf16 sums] packBF16 rounds with u + 0x7fff + ((u >> 16) & 1) and no NaN case: every NaN a
// bf16 -> bf16 sum can hold is an fp32 result of bf16 inputs and finite weights, so it is quiet (x86
// arithmetic quiets what it propagates) and its low 16 bits are zero (a propagated bf16 payload, or the
// default NaN); adding 0x7fff or 0x8000 leaves its top half as is: exactly the scalar rule. The bf16
// special-value test (signalling and quiet NaN inputs) checks it against the scalar kernel at every
// level. 4 integer operations per vector: in cache, one core, bf16 N=2 (bench/kernel-incache.sh,
// levels interleaved) 103-104 GB/s against 78 with AVX512_BF16's vcvtne2ps2bf16 + vpermw + the
// subnormal checks that instruction needs, and ~75 with the NaN blend.
#pragma once
#include <cmath>
#include <cstdint>
#include <cstring>

#include "core/dtype.h"
#include "core/interp.h"

namespace soup {
namespace impl {

template <class V>
inline float loadOne(const void* p, int32_t dt, size_t i) {
  switch (dt) {
    case kF32:
      return static_cast<const float*>(p)[i];
    case kF16:
      return V::h2f(static_cast<const uint16_t*>(p)[i]);
    default:
      return bf16ToF32(static_cast<const uint16_t*>(p)[i]);
  }
}

template <class V>
inline void storeOne(void* p, int32_t dt, size_t i, float v) {
  switch (dt) {
    case kF32:
      static_cast<float*>(p)[i] = v;
      break;
    case kF16:
      static_cast<uint16_t*>(p)[i] = V::f2h(v);
      break;
    case kBF16:
      static_cast<uint16_t*>(p)[i] = f32ToBf16(v);
      break;
    default:
      static_cast<double*>(p)[i] = static_cast<double>(v);
      break;
  }
}

template <class V, int IN>
inline typename V::F loadVec(const void* p, size_t i) {
  if constexpr (IN == kF32)
    return V::loadF32(static_cast<const float*>(p) + i);
  else if constexpr (IN == kF16)
    return V::loadF16(static_cast<const uint16_t*>(p) + i);
  else
    return V::loadBF16(static_cast<const uint16_t*>(p) + i);
}

template <class V, int OUT>
inline void storeVec(void* p, size_t i, typename V::F v, bool nt) {
  if constexpr (OUT == kF32)
    V::storeF32(static_cast<float*>(p) + i, v, nt);
  else if constexpr (OUT == kF16)
    V::storeF16(static_cast<uint16_t*>(p) + i, v, nt);
  else if constexpr (OUT == kBF16)
    V::storeBF16(static_cast<uint16_t*>(p) + i, v, nt);
  else
    V::storeF64(static_cast<double*>(p) + i, v, nt);
}

template <class V>
inline float elementF32(const Segment& s, size_t i, const float* w, int n) {
  float acc = w[0] * loadOne<V>(s.src[0], s.inDtype, i);
  for (int j = 1; j < n; j++) acc = std::fma(w[j], loadOne<V>(s.src[j], s.inDtype, i), acc);
  return acc;
}

// NN > 0: N known at compile time, with the source pointers and broadcast weights hoisted into
// registers; NN = 0: any N, read from the job on every step. Measured in a standalone harness (2 threads,
// 256 MiB streams, same buffers, kernels interleaved): fp32 N=2 49 -> 64 GB/s against a 65-69 GB/s triad;
// the runtime-N loop reloads pointers and weights after every store (they may alias the output) and
// leaves memory requests waiting behind them.
template <class V, int IN, int OUT, int NN>
void rangeF32(const Segment& s, size_t i, size_t e, const Weights& wt, bool nt) {
  using F = typename V::F;
  constexpr size_t W = V::W;
  const float* w = wt.f32.data();
  const int n = NN > 0 ? NN : wt.n();
  constexpr int H = NN > 0 ? NN : 1;  // hoisted copies (unused when NN = 0)
  const void* p[H];
  F wv[H];
  if constexpr (NN > 0)
    for (int j = 0; j < NN; j++) {
      p[j] = s.src[j];
      wv[j] = V::set1(w[j]);
    }
  auto src = [&](int j) -> const void* {
    if constexpr (NN > 0)
      return p[j];
    else
      return s.src[j];
  };
  auto weight = [&](int j) -> F {
    if constexpr (NN > 0)
      return wv[j];
    else
      return V::set1(w[j]);
  };
  constexpr size_t outSize = OUT == kF64 ? 8 : OUT == kF32 ? 4 : 2;
  if (nt) {  // peel until the output is 64-byte aligned so streaming stores are legal
    while (i < e && (reinterpret_cast<uintptr_t>(static_cast<char*>(s.out) + i * outSize) & 63u) != 0) {
      storeOne<V>(s.out, OUT, i, elementF32<V>(s, i, w, n));
      i++;
    }
  }
  if constexpr (IN == kBF16 && OUT == kBF16 && V::kPairedBF16) {
    // bf16 -> bf16 without shuffles: one 2W-element load holds the even elements in the low halves of
    // its 32-bit lanes and the odd ones in the high halves; a shift and a mask give both as fp32, and
    // the two rounded results recombine in the original order. Same per-element formula as below.
    auto raw = [&](int j) { return static_cast<const uint16_t*>(src(j)); };
    uint16_t* out = static_cast<uint16_t*>(s.out);
    // Software prefetch 1 KiB ahead in every source, for the runtime-N loop only: there it took the
    // harness from 0.51–0.55 to 0.76–0.79 of the triad (N = 4, 8); with N known at compile time the
    // loop keeps enough loads in flight by itself and the prefetches cost 5–15 %.
    constexpr size_t kAhead = NN > 0 ? 0 : 1024;  // bytes
    // an address, not a pointer: it may lie past the end of the array (prefetches never fault)
    auto ahead = [&](int j) { return reinterpret_cast<uintptr_t>(src(j)) + 2 * i + kAhead; };
    for (; i + 4 * W <= e; i += 4 * W) {
      F w0 = weight(0);
      if constexpr (kAhead > 0) {
        V::prefetch(ahead(0));
        V::prefetch(ahead(0) + 4 * W);
      }
      auto x0 = V::loadRaw(raw(0) + i), x1 = V::loadRaw(raw(0) + i + 2 * W);
      F e0 = V::mul(w0, V::evenBF16(x0)), o0 = V::mul(w0, V::oddBF16(x0));
      F e1 = V::mul(w0, V::evenBF16(x1)), o1 = V::mul(w0, V::oddBF16(x1));
      for (int j = 1; j < n; j++) {
        F wj = weight(j);
        if constexpr (kAhead > 0) {
          V::prefetch(ahead(j));
          V::prefetch(ahead(j) + 4 * W);
        }
        x0 = V::loadRaw(raw(j) + i);
        x1 = V::loadRaw(raw(j) + i + 2 * W);
        e0 = V::fma(wj, V::evenBF16(x0), e0);
        o0 = V::fma(wj, V::oddBF16(x0), o0);
        e1 = V::fma(wj, V::evenBF16(x1), e1);
        o1 = V::fma(wj, V::oddBF16(x1), o1);
      }
      V::storeRaw(out + i, V::packBF16(e0, o0), nt);
      V::storeRaw(out + i + 2 * W, V::packBF16(e1, o1), nt);
    }
  }
  for (; i + 4 * W <= e; i += 4 * W) {  // ILP 4: four independent accumulators
    F w0 = weight(0);
    F a0 = V::mul(w0, loadVec<V, IN>(src(0), i));
    F a1 = V::mul(w0, loadVec<V, IN>(src(0), i + W));
    F a2 = V::mul(w0, loadVec<V, IN>(src(0), i + 2 * W));
    F a3 = V::mul(w0, loadVec<V, IN>(src(0), i + 3 * W));
    for (int j = 1; j < n; j++) {
      F wj = weight(j);
      const void* pj = src(j);
      a0 = V::fma(wj, loadVec<V, IN>(pj, i), a0);
      a1 = V::fma(wj, loadVec<V, IN>(pj, i + W), a1);
      a2 = V::fma(wj, loadVec<V, IN>(pj, i + 2 * W), a2);
      a3 = V::fma(wj, loadVec<V, IN>(pj, i + 3 * W), a3);
    }
    storeVec<V, OUT>(s.out, i, a0, nt);
    storeVec<V, OUT>(s.out, i + W, a1, nt);
    storeVec<V, OUT>(s.out, i + 2 * W, a2, nt);
    storeVec<V, OUT>(s.out, i + 3 * W, a3, nt);
  }
  for (; i + W <= e; i += W) {
    F a = V::mul(weight(0), loadVec<V, IN>(src(0), i));
    for (int j = 1; j < n; j++) a = V::fma(weight(j), loadVec<V, IN>(src(j), i), a);
    storeVec<V, OUT>(s.out, i, a, nt);
  }
  for (; i < e; i++) storeOne<V>(s.out, OUT, i, elementF32<V>(s, i, w, n));
  if (nt) V::fence();
}

// fp64 inputs accumulate in fp64 (scalar: rare in practice, kept exact and simple).
template <class V>
void rangeF64(const Segment& s, size_t i, size_t e, const Weights& wt) {
  const double* w = wt.f64.data();
  const int n = wt.n();
  for (; i < e; i++) {
    double acc = w[0] * static_cast<const double*>(s.src[0])[i];
    for (int j = 1; j < n; j++) acc = std::fma(w[j], static_cast<const double*>(s.src[j])[i], acc);
    if (s.outDtype == kF64)
      static_cast<double*>(s.out)[i] = acc;
    else
      storeOne<V>(s.out, s.outDtype, i, static_cast<float>(acc));
  }
}

template <class V, int IN, int NN>
void dispatchOut(const Segment& s, size_t b, size_t e, const Weights& w, bool nt) {
  switch (s.outDtype) {
    case kF32:
      return rangeF32<V, IN, kF32, NN>(s, b, e, w, nt);
    case kF16:
      return rangeF32<V, IN, kF16, NN>(s, b, e, w, nt);
    case kBF16:
      return rangeF32<V, IN, kBF16, NN>(s, b, e, w, nt);
    default:
      return rangeF32<V, IN, kF64, NN>(s, b, e, w, nt);
  }
}

template <class V, int IN>
void dispatchN(const Segment& s, size_t b, size_t e, const Weights& w, bool nt) {
  if constexpr (V::W > 1) {  // SIMD kernels: N = 1..8 known at compile time (see rangeF32)
    switch (w.n()) {
      case 1:
        return dispatchOut<V, IN, 1>(s, b, e, w, nt);
      case 2:
        return dispatchOut<V, IN, 2>(s, b, e, w, nt);
      case 3:
        return dispatchOut<V, IN, 3>(s, b, e, w, nt);
      case 4:
        return dispatchOut<V, IN, 4>(s, b, e, w, nt);
      case 5:
        return dispatchOut<V, IN, 5>(s, b, e, w, nt);
      case 6:
        return dispatchOut<V, IN, 6>(s, b, e, w, nt);
      case 7:
        return dispatchOut<V, IN, 7>(s, b, e, w, nt);
      case 8:
        return dispatchOut<V, IN, 8>(s, b, e, w, nt);
      default:
        break;
    }
  }
  dispatchOut<V, IN, 0>(s, b, e, w, nt);
}

template <class V>
void range(const Segment& s, size_t b, size_t e, const Weights& w, bool nt) {
  switch (s.inDtype) {
    case kF32:
      return dispatchN<V, kF32>(s, b, e, w, nt);
    case kF16:
      return dispatchN<V, kF16>(s, b, e, w, nt);
    case kBF16:
      return dispatchN<V, kBF16>(s, b, e, w, nt);
    default:
      return rangeF64<V>(s, b, e, w);
  }
}

// out[r,:] = base[r,:] + Σ_k L[r,k]·R[k,:], accumulated in fp32 in a scratch row (k ascending).
template <class V>
void lowRankRows(const LowRank& j, size_t r0, size_t r1, float* acc) {
  using F = typename V::F;
  constexpr size_t W = V::W;
  const size_t C = j.cols;
  for (size_t r = r0; r < r1; r++) {
    if (j.base) {
      if (j.baseDtype == kF64) {
        for (size_t c = 0; c < C; c++) acc[c] = static_cast<float>(static_cast<const double*>(j.base)[r * C + c]);
      } else {
        for (size_t c = 0; c < C; c++) acc[c] = loadOne<V>(j.base, j.baseDtype, r * C + c);
      }
    } else {
      std::memset(acc, 0, C * sizeof(float));
    }
    for (size_t k = 0; k < j.rank; k++) {
      const float l = j.L[r * j.rank + k];
      const float* row = j.R + k * C;
      F lv = V::set1(l);
      size_t c = 0;
      for (; c + W <= C; c += W) V::storeF32(acc + c, V::fma(lv, V::loadF32(row + c), V::loadF32(acc + c)), false);
      for (; c < C; c++) acc[c] = std::fma(l, row[c], acc[c]);
    }
    for (size_t c = 0; c < C; c++) storeOne<V>(j.out, j.outDtype, r * C + c, acc[c]);
  }
}

template <class V>
void triadRange(float* a, const float* b, const float* c, float s, size_t i, size_t e, bool nt) {
  constexpr size_t W = V::W;
  if (nt)
    while (i < e && (reinterpret_cast<uintptr_t>(a + i) & 63u) != 0) {
      a[i] = std::fma(s, c[i], b[i]);
      i++;
    }
  typename V::F sv = V::set1(s);
  for (; i + W <= e; i += W) V::storeF32(a + i, V::fma(sv, V::loadF32(c + i), V::loadF32(b + i)), nt);
  for (; i < e; i++) a[i] = std::fma(s, c[i], b[i]);
  if (nt) V::fence();
}

// The read-only probe: sums NN streams over one range, reading them interleaved as the soup does (one
// accumulator per stream, so no add chain limits it). The sum is returned so the loads are not dead.
template <class V, int NN>
float readRangeN(const float* const* s, size_t i, size_t e) {
  constexpr size_t W = V::W;
  const float* p[NN];
  typename V::F acc[NN];
  const typename V::F one = V::set1(1.0f);
  for (int j = 0; j < NN; j++) p[j] = s[j], acc[j] = V::set1(0.0f);
  float tail = 0.0f;
  for (; i + W <= e; i += W)
    for (int j = 0; j < NN; j++) acc[j] = V::fma(one, V::loadF32(p[j] + i), acc[j]);
  for (; i < e; i++)
    for (int j = 0; j < NN; j++) tail += p[j][i];
  alignas(64) float lanes[W];
  for (int j = 0; j < NN; j++) {
    V::storeF32(lanes, acc[j], false);
    for (size_t l = 0; l < W; l++) tail += lanes[l];
  }
  return tail;
}

template <class V>
float readRange(const float* const* s, size_t k, size_t i, size_t e) {
  switch (k) {
    case 1:
      return readRangeN<V, 1>(s, i, e);
    case 2:
      return readRangeN<V, 2>(s, i, e);
    case 3:
      return readRangeN<V, 3>(s, i, e);
    case 4:
      return readRangeN<V, 4>(s, i, e);
    case 5:
      return readRangeN<V, 5>(s, i, e);
    case 6:
      return readRangeN<V, 6>(s, i, e);
    case 7:
      return readRangeN<V, 7>(s, i, e);
    case 8:
      return readRangeN<V, 8>(s, i, e);
    default:
      return 0.0f;  // bandwidthRead() rejects k outside 1..8
  }
}

}  // namespace impl
}  // namespace soup
