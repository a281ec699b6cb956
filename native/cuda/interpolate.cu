// SPDX-License-Identifier: MIT
// soup_interpolate_multi_cuda: fused multi-tensor interpolation, out = sum_i lambda_i * x_i.
/*
Purpose: the rewarded-soups merge theta(lambda) = sum_i lambda_i theta_i over a whole list of tensors
(N = 1..16 sources) in as few launches as possible, at the GPU's memory bandwidth.

Math (bit-for-bit the CPU path in native/core): with l_i = (float)lambda_i (one rounding of the double
weight; double kept as-is for float64 inputs) and x_i widened exactly from storage,
    acc = l_1 * x_1                  (__fmul_rn: one rounded product)
    acc = fma(l_i, x_i, acc)         (__fmaf_rn, i = 2..N in this fixed order: one rounding each)
    out = narrow(acc)                (fp32 as is; fp16 __float2half_rn; bf16 round-to-nearest-even, NaN
                                      -> 0x7FC0, as c10::BFloat16 does)
The _rn intrinsics pin the rounding: nvcc may not contract or reorder them, whatever -fmad says. The
accumulator is fp32 (torch's "opmath") for fp32/fp16/bf16 inputs and fp64 for fp64 inputs.

References: ATen MultiTensorApply.cuh and apex multi_tensor_apply.cuh (64Ki-element chunks, block ->
(tensor, chunk) tables, aligned vector path + guarded tail); llm.c dev/cuda (docblock, CPU reference
beside each kernel: native/tests/cuda_interpolate_test.cc).

Build: by CMake (native/cuda/CMakeLists.txt), or alone:
    nvcc -O3 -std=c++17 -gencode arch=compute_80,code=sm_80 -gencode arch=compute_90,code=sm_90 -c interpolate.cu

TODO(perf): many tiny tensors get one 512-thread block each; packing several small segments per block
would cut the block-scheduling overhead in that regime. Hopper's bulk copy engine (cp.async.bulk) is
not used: plain 16-byte LDG/STG already sit near the copy bandwidth for this streaming access.
*/
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <stdexcept>
#include <string>

#include "check.h"
#include "soup_cuda.h"

namespace soup {
namespace cuda {

// NOTE: [Chunk tables]
// A launch covers a list of segments (one per output tensor or piece of one). Each segment is cut into
// chunks of kChunk elements; a work table maps blockIdx.x -> (segment, chunk). The tables live in
// device memory (filled from a pinned staging buffer by one async copy per launch), so a launch is not
// bounded by the 4 KB kernel-parameter space as in ATen: up to cap_ chunks and segCap_ segments. When a
// table is full it is launched and refilled. Segments of different (input, output) dtype pairs go to
// different launches (the kernel is specialized on both).

// Threads per block: 512 for variant 0, 256 for variant 1 (NOTE: [Variants]).
__host__ __device__ constexpr int threadsOf(int ux) { return ux == 1 ? 512 : 256; }

struct SegDesc {
  uint64_t out;
  int64_t numel;
  uint32_t srcBase;  // index of source 0's pointer in the srcs table
  uint32_t aligned;  // every pointer 16-byte aligned: vector path
  uint64_t pad;
};
static_assert(sizeof(SegDesc) == 32, "SegDesc layout");

struct Lambdas {
  float f[kMaxSources];
  double d[kMaxSources];
};

// ---------------------------------------------------------------------------------------------------
// dtype traits: storage type, accumulator, exact widening, rounding narrowing

struct F32 {
  using storage = float;
  using acc = float;
  static constexpr const char* name = "f32";
};
struct F16 {
  using storage = uint16_t;
  using acc = float;
  static constexpr const char* name = "f16";
};
struct BF16 {
  using storage = uint16_t;
  using acc = float;
  static constexpr const char* name = "bf16";
};
struct F64 {
  using storage = double;
  using acc = double;
  static constexpr const char* name = "f64";
};

template <class T, class A>
__device__ __forceinline__ A widen(typename T::storage s);
template <>
__device__ __forceinline__ float widen<F32, float>(float s) {
  return s;
}
template <>
__device__ __forceinline__ float widen<F16, float>(uint16_t s) {
  return __half2float(__ushort_as_half(s));
}
template <>
__device__ __forceinline__ float widen<BF16, float>(uint16_t s) {
  return __uint_as_float(uint32_t(s) << 16);
}
template <>
__device__ __forceinline__ double widen<F64, double>(double s) {
  return s;
}

__device__ __forceinline__ uint16_t bf16Rne(float f) {
  uint32_t u = __float_as_uint(f);
  if ((u & 0x7fffffffu) > 0x7f800000u) return 0x7fc0;  // NaN stays (quiet) NaN
  u += 0x7fffu + ((u >> 16) & 1u);
  return uint16_t(u >> 16);
}

template <class T>
__device__ __forceinline__ typename T::storage narrow(float a);
template <>
__device__ __forceinline__ float narrow<F32>(float a) {
  return a;
}
template <>
__device__ __forceinline__ uint16_t narrow<F16>(float a) {
  return __half_as_ushort(__float2half_rn(a));
}
template <>
__device__ __forceinline__ uint16_t narrow<BF16>(float a) {
  return bf16Rne(a);
}
template <>
__device__ __forceinline__ double narrow<F64>(float a) {
  return double(a);
}
// fp64 accumulator: to fp32 in one rounding; to fp16/bf16 through fp32, as c10::Half(double) does.
template <class T>
__device__ __forceinline__ typename T::storage narrowD(double a) {
  return narrow<T>(__double2float_rn(a));
}
template <>
__device__ __forceinline__ double narrowD<F64>(double a) {
  return a;
}

template <class T>
__device__ __forceinline__ typename T::storage narrowAcc(float a) {
  return narrow<T>(a);
}
template <class T>
__device__ __forceinline__ typename T::storage narrowAcc(double a) {
  return narrowD<T>(a);
}

__device__ __forceinline__ float mul(float l, float x) { return __fmul_rn(l, x); }
__device__ __forceinline__ float fma_(float l, float x, float acc) { return __fmaf_rn(l, x, acc); }
__device__ __forceinline__ double mul(double l, double x) { return __dmul_rn(l, x); }
__device__ __forceinline__ double fma_(double l, double x, double acc) { return __fma_rn(l, x, acc); }

// Stores Bytes bytes of a register array with the widest streaming stores the alignment allows. The
// bytes move through memcpy (no type punning through pointers: that would break strict aliasing).
template <int Bytes>
struct StoreVec {
  static_assert(Bytes == 4 || Bytes == 8 || Bytes % 16 == 0, "vector store width");
  static __device__ __forceinline__ void put(void* p, const void* v) {
    if constexpr (Bytes == 4) {
      unsigned int t;
      memcpy(&t, v, 4);
      __stcs(reinterpret_cast<unsigned int*>(p), t);
    } else if constexpr (Bytes == 8) {
      uint2 t;
      memcpy(&t, v, 8);
      __stcs(reinterpret_cast<uint2*>(p), t);
    } else {
#pragma unroll
      for (int j = 0; j < Bytes / 16; ++j) {
        uint4 t;
        memcpy(&t, static_cast<const char*>(v) + 16 * j, 16);
        __stcs(reinterpret_cast<uint4*>(p) + j, t);
      }
    }
  }
};

// ---------------------------------------------------------------------------------------------------
// kernel

// One step of the vector path: U 16-byte vectors per source at base, base + T, ... (T threads per block)
template <class In, class Out, int U, int T, bool Guard>
__device__ __forceinline__ void vectorStep(const typename In::storage* const* sp, const typename In::acc* sl, int n, int64_t start, typename Out::storage* out,
                                           int64_t base, int64_t nv) {
  using in_t = typename In::storage;
  using out_t = typename Out::storage;
  using acc_t = typename In::acc;
  constexpr int E = 16 / sizeof(in_t);
  constexpr int OutBytes = E * int(sizeof(out_t));
  acc_t acc[U][E];
  uint4 v[U];
  auto load = [&](int i) {
    const uint4* p = reinterpret_cast<const uint4*>(sp[i] + start);
#pragma unroll
    for (int u = 0; u < U; ++u) {
      const int64_t idx = base + int64_t(u) * T;
      v[u] = (!Guard || idx < nv) ? __ldcs(p + idx) : make_uint4(0, 0, 0, 0);
    }
  };
  // Source 0 starts the sum with one rounded product; sources 1..n-1 add one fma each, in order.
  load(0);
#pragma unroll
  for (int u = 0; u < U; ++u) {
    in_t x[E];
    memcpy(x, &v[u], 16);
#pragma unroll
    for (int e = 0; e < E; ++e) acc[u][e] = mul(sl[0], widen<In, acc_t>(x[e]));
  }
  // Not unrolled: unrolling pushed some kernels past 64 registers (1 block/SM) or into spills.
#pragma unroll 1
  for (int i = 1; i < n; ++i) {
    load(i);
    const acc_t l = sl[i];
#pragma unroll
    for (int u = 0; u < U; ++u) {
      in_t x[E];
      memcpy(x, &v[u], 16);
#pragma unroll
      for (int e = 0; e < E; ++e) acc[u][e] = fma_(l, widen<In, acc_t>(x[e]), acc[u][e]);
    }
  }
#pragma unroll
  for (int u = 0; u < U; ++u) {
    const int64_t idx = base + int64_t(u) * T;
    if (!Guard || idx < nv) {
      out_t o[E];
#pragma unroll
      for (int e = 0; e < E; ++e) o[e] = narrowAcc<Out>(acc[u][e]);
      StoreVec<OutBytes>::put(out + idx * E, o);
    }
  }
}

// UX multiplies the vectors in flight per thread (variant 1: UX = 2, one block per SM). See NOTE: [Variants].
template <class In, class Out, int UX>
__global__ void __launch_bounds__(threadsOf(UX), 2)
    soup_interpolate_multi_cuda(const SegDesc* __restrict__ segs, const uint64_t* __restrict__ srcs, const uint2* __restrict__ work, int n, Lambdas lam) {
  using in_t = typename In::storage;
  using out_t = typename Out::storage;
  using acc_t = typename In::acc;
  constexpr int E = 16 / sizeof(in_t);  // elements per 16-byte load
  // U independent 16-byte loads per thread per source: ~16 accumulator registers whatever the dtype.
  constexpr int T = threadsOf(UX);
  constexpr int U = UX * ((16 / (E * int(sizeof(acc_t)) / 4)) > 0 ? 16 / (E * int(sizeof(acc_t)) / 4) : 1);

  __shared__ const in_t* sp[kMaxSources];
  __shared__ acc_t sl[kMaxSources];
  const uint2 w = work[blockIdx.x];
  const SegDesc d = segs[w.x];
  if (threadIdx.x < n) {
    sp[threadIdx.x] = reinterpret_cast<const in_t*>(srcs[d.srcBase + threadIdx.x]);
    if constexpr (sizeof(acc_t) == 8)
      sl[threadIdx.x] = lam.d[threadIdx.x];
    else
      sl[threadIdx.x] = lam.f[threadIdx.x];
  }
  __syncthreads();
  const int64_t start = int64_t(w.y) * kChunk;
  const int64_t len = d.numel - start < kChunk ? d.numel - start : kChunk;
  out_t* out = reinterpret_cast<out_t*>(d.out) + start;

  int64_t tail = 0;
  if (d.aligned) {
    // Vector path: start is a multiple of kChunk (a multiple of E) and the bases are 16-byte aligned.
    // Steps whose U vectors are all in range run without bounds checks (a full chunk has only such
    // steps), so the loads of a step form one basic block the scheduler can issue together.
    const int64_t nv = len / E;
    const int64_t full = nv - int64_t(U - 1) * T;
    int64_t base = threadIdx.x;
    for (; base < full; base += int64_t(U) * T) vectorStep<In, Out, U, T, false>(sp, sl, n, start, out, base, nv);
    if (base < nv) vectorStep<In, Out, U, T, true>(sp, sl, n, start, out, base, nv);
    tail = nv * E;
  }
  // Guarded scalar path: the tail of an aligned chunk, or the whole chunk when a pointer is unaligned.
  for (int64_t k = tail + threadIdx.x; k < len; k += T) {
    acc_t acc = mul(sl[0], widen<In, acc_t>(sp[0][start + k]));
    for (int i = 1; i < n; ++i) acc = fma_(sl[i], widen<In, acc_t>(sp[i][start + k]), acc);
    out[k] = narrowAcc<Out>(acc);
  }
}

// ---------------------------------------------------------------------------------------------------
// launcher

size_t dtypeSize(int dt) {
  switch (dt) {
    case kF32:
      return 4;
    case kF16:
      return 2;
    case kBF16:
      return 2;
    case kF64:
      return 8;
    default:
      return 0;
  }
}

const char* dtypeName(int dt) {
  switch (dt) {
    case kF32:
      return "float32";
    case kF16:
      return "float16";
    case kBF16:
      return "bfloat16";
    case kF64:
      return "float64";
    default:
      return "?";
  }
}

namespace {

using KernelFn = void (*)(const SegDesc*, const uint64_t*, const uint2*, int, Lambdas);

// NOTE: [Variants]
// Variant 0 (default): ~16 accumulators per thread, <= 64 registers, two 512-thread blocks per SM.
// Variant 1: twice the 16-byte loads in flight per thread, 256-thread blocks (~90 registers: two
// blocks, 512 threads per SM: ~1.5x the bytes in flight per SM of variant 0). Compiled only with
// SOUP_CUDA_VARIANTS (bench/gpu.sh), so that CI compiles 16 kernels, not 32; the bench times both and
// the default follows the measurement.
std::atomic<int> gVariant{0};

template <class In, int UX>
KernelFn pickOut(int outDt) {
  switch (outDt) {
    case kF32:
      return soup_interpolate_multi_cuda<In, F32, UX>;
    case kF16:
      return soup_interpolate_multi_cuda<In, F16, UX>;
    case kBF16:
      return soup_interpolate_multi_cuda<In, BF16, UX>;
    case kF64:
      return soup_interpolate_multi_cuda<In, F64, UX>;
    default:
      return nullptr;
  }
}

template <int UX>
KernelFn pickUX(int inDt, int outDt) {
  switch (inDt) {
    case kF32:
      return pickOut<F32, UX>(outDt);
    case kF16:
      return pickOut<F16, UX>(outDt);
    case kBF16:
      return pickOut<BF16, UX>(outDt);
    case kF64:
      return pickOut<F64, UX>(outDt);
    default:
      return nullptr;
  }
}

KernelFn pick(int inDt, int outDt) {
#ifdef SOUP_CUDA_VARIANTS
  if (gVariant.load(std::memory_order_relaxed) == 1) return pickUX<2>(inDt, outDt);
#endif
  return pickUX<1>(inDt, outDt);
}

// Threads per block of the kernels pick() returns now.
int pickThreads() {
#ifdef SOUP_CUDA_VARIANTS
  if (gVariant.load(std::memory_order_relaxed) == 1) return threadsOf(2);
#endif
  return threadsOf(1);
}

constexpr size_t kSegBytes = sizeof(SegDesc) + kMaxSources * sizeof(uint64_t);

}  // namespace

bool setKernelVariant(int v) {
#ifdef SOUP_CUDA_VARIANTS
  if (v != 0 && v != 1) return false;
#else
  if (v != 0) return false;
#endif
  gVariant.store(v);
  return true;
}

namespace {
void checkSegments(const std::vector<Segment>& segs, int n) {
  if (n < 1 || n > kMaxSources)
    throw std::runtime_error("[ERR_SOUP_INVALID_ARG] interpolate: " + std::to_string(n) + " sources; the CUDA kernel takes 1.." + std::to_string(kMaxSources));
  for (size_t s = 0; s < segs.size(); ++s) {
    const Segment& g = segs[s];
    if (!pick(g.inDtype, g.outDtype))
      throw std::runtime_error("[ERR_SOUP_INVALID_ARG] interpolate: segment " + std::to_string(s) + " has dtype codes " + std::to_string(g.inDtype) + "->" +
                               std::to_string(g.outDtype) + " (0..3 expected)");
    if (g.numel < 0) throw std::runtime_error("[ERR_SOUP_INVALID_ARG] interpolate: segment " + std::to_string(s) + " numel < 0");
    if (g.numel == 0) continue;
    if (!g.out) throw std::runtime_error("[ERR_SOUP_INVALID_ARG] interpolate: segment " + std::to_string(s) + " out is null");
    for (int i = 0; i < n; ++i)
      if (!g.srcs[i])
        throw std::runtime_error("[ERR_SOUP_INVALID_ARG] interpolate: segment " + std::to_string(s) + " source " + std::to_string(i) + " is null");
  }
}

Lambdas lambdasOf(const double* weights, int n) {
  Lambdas lam{};
  for (int i = 0; i < n; ++i) {
    if (!(weights[i] == weights[i])) throw std::runtime_error("[ERR_SOUP_WEIGHTS] interpolate: weights[" + std::to_string(i) + "] is NaN");
    lam.f[i] = static_cast<float>(weights[i]);  // one round-to-nearest-even, as the CPU path
    lam.d[i] = weights[i];
  }
  return lam;
}
}  // namespace

Interpolator::Interpolator(void* stream, int64_t tableCapacity) : stream_(stream) {
  requireDevice();
  cap_ = std::max<int64_t>(16, tableCapacity);
  segCap_ = std::max<int64_t>(16, cap_ / 4);
  const size_t bytes = size_t(segCap_) * kSegBytes + size_t(cap_) * sizeof(uint2);
  SOUP_CUDA_CHECK(cudaMallocHost(reinterpret_cast<void**>(&hostTable_), bytes));
  try {
    SOUP_CUDA_CHECK(cudaMalloc(reinterpret_cast<void**>(&devTable_), bytes));
    cudaEvent_t ev;
    SOUP_CUDA_CHECK(cudaEventCreateWithFlags(&ev, cudaEventDisableTiming));
    copied_ = ev;
  } catch (...) {
    if (devTable_) cudaFree(devTable_);
    cudaFreeHost(hostTable_);
    throw;
  }
}

Interpolator::~Interpolator() {
  // Destructors never throw: pending work on stream_ may still read devTable_, so wait for it first.
  if (stream_)
    cudaStreamSynchronize(static_cast<cudaStream_t>(stream_));
  else
    cudaDeviceSynchronize();
  if (copied_) cudaEventDestroy(static_cast<cudaEvent_t>(copied_));
  if (devTable_) cudaFree(devTable_);
  if (hostTable_) cudaFreeHost(hostTable_);
}

void Interpolator::run(const std::vector<Segment>& segs, const double* weights, int n) {
  checkSegments(segs, n);
  (void)lambdasOf(weights, n);  // NaN weights are an error before any launch
  // One pass per (in, out) dtype pair present, in first-seen order.
  std::vector<std::pair<int, int>> pairs;
  for (const Segment& g : segs) {
    if (g.numel == 0) continue;
    auto p = std::make_pair(g.inDtype, g.outDtype);
    if (std::find(pairs.begin(), pairs.end(), p) == pairs.end()) pairs.push_back(p);
  }
  for (auto [inDt, outDt] : pairs) {
    pending_.clear();
    for (const Segment& g : segs)
      if (g.numel > 0 && g.inDtype == inDt && g.outDtype == outDt) pending_.push_back(&g);
    flush(n, weights, inDt, outDt);
  }
}

// Fills the tables from pending_ and launches, as many times as the tables' capacity requires.
void Interpolator::flush(int n, const double* weights, int inDt, int outDt) {
  KernelFn fn = pick(inDt, outDt);
  const Lambdas lam = lambdasOf(weights, n);
  size_t si = 0;      // next segment
  int64_t chunk = 0;  // next chunk of that segment
  while (si < pending_.size()) {
    // The staging buffer may still be read by the previous launch's table copy.
    SOUP_CUDA_CHECK(cudaEventSynchronize(static_cast<cudaEvent_t>(copied_)));
    SegDesc* hseg = reinterpret_cast<SegDesc*>(hostTable_);
    uint64_t* hsrc = reinterpret_cast<uint64_t*>(hostTable_ + segCap_ * sizeof(SegDesc));
    uint2* hwork = reinterpret_cast<uint2*>(hostTable_ + segCap_ * kSegBytes);
    int64_t nseg = 0, nwork = 0;
    while (si < pending_.size() && nseg < segCap_ && nwork < cap_) {
      const Segment& g = *pending_[si];
      const int64_t chunks = (g.numel + kChunk - 1) / kChunk;
      bool aligned = reinterpret_cast<uintptr_t>(g.out) % 16 == 0;
      for (int i = 0; i < n; ++i) aligned = aligned && reinterpret_cast<uintptr_t>(g.srcs[i]) % 16 == 0;
      SegDesc& d = hseg[nseg];
      d.out = reinterpret_cast<uint64_t>(g.out);
      d.numel = g.numel;
      d.srcBase = uint32_t(nseg * n);
      d.aligned = aligned ? 1u : 0u;
      d.pad = 0;
      for (int i = 0; i < n; ++i) hsrc[nseg * n + i] = reinterpret_cast<uint64_t>(g.srcs[i]);
      while (chunk < chunks && nwork < cap_) hwork[nwork++] = make_uint2(uint32_t(nseg), uint32_t(chunk++));
      ++nseg;
      if (chunk == chunks) {
        ++si;
        chunk = 0;
      }
    }
    // One copy of the three tables (they sit at fixed offsets; copy the whole used prefix of each).
    cudaStream_t st = static_cast<cudaStream_t>(stream_);
    const size_t srcOff = segCap_ * sizeof(SegDesc), workOff = segCap_ * kSegBytes;
    SOUP_CUDA_CHECK(cudaMemcpyAsync(devTable_, hostTable_, nseg * sizeof(SegDesc), cudaMemcpyHostToDevice, st));
    SOUP_CUDA_CHECK(cudaMemcpyAsync(devTable_ + srcOff, hostTable_ + srcOff, nseg * n * sizeof(uint64_t), cudaMemcpyHostToDevice, st));
    SOUP_CUDA_CHECK(cudaMemcpyAsync(devTable_ + workOff, hostTable_ + workOff, nwork * sizeof(uint2), cudaMemcpyHostToDevice, st));
    SOUP_CUDA_CHECK(cudaEventRecord(static_cast<cudaEvent_t>(copied_), st));
    SOUP_LAUNCH(fn, unsigned(nwork), pickThreads(), st, reinterpret_cast<const SegDesc*>(devTable_), reinterpret_cast<const uint64_t*>(devTable_ + srcOff),
                reinterpret_cast<const uint2*>(devTable_ + workOff), n, lam);
    SOUP_CUDA_CHECK_LAUNCH("soup_interpolate_multi_cuda");
    ++launches_;
  }
}

// ---------------------------------------------------------------------------------------------------
// Plan: tables uploaded once, launches only

Plan::Plan(const std::vector<Segment>& segs, int n) : n_(n) {
  requireDevice();
  checkSegments(segs, n);
  std::vector<std::pair<int, int>> pairs;
  for (const Segment& g : segs) {
    auto p = std::make_pair(g.inDtype, g.outDtype);
    if (g.numel > 0 && std::find(pairs.begin(), pairs.end(), p) == pairs.end()) pairs.push_back(p);
  }
  std::vector<char> host;
  auto reserve = [&](size_t bytes) {
    const size_t off = (host.size() + 255) / 256 * 256;
    host.resize(off + bytes);
    return off;
  };
  for (auto [inDt, outDt] : pairs) {
    std::vector<const Segment*> mine;
    int64_t nwork = 0;
    for (const Segment& g : segs)
      if (g.numel > 0 && g.inDtype == inDt && g.outDtype == outDt) {
        mine.push_back(&g);
        nwork += (g.numel + kChunk - 1) / kChunk;
      }
    if (nwork > int64_t(0x7fffffff)) throw std::runtime_error("[ERR_SOUP_INVALID_ARG] interpolate: more than 2^31 chunks in one plan");
    Group gr{inDt, outDt, nwork, 0, 0, 0};
    gr.segOff = reserve(mine.size() * sizeof(SegDesc));
    gr.srcOff = reserve(mine.size() * n * sizeof(uint64_t));
    gr.workOff = reserve(size_t(nwork) * sizeof(uint2));
    int64_t w = 0;
    for (size_t k = 0; k < mine.size(); ++k) {
      const Segment& g = *mine[k];
      bool aligned = reinterpret_cast<uintptr_t>(g.out) % 16 == 0;
      for (int i = 0; i < n; ++i) aligned = aligned && reinterpret_cast<uintptr_t>(g.srcs[i]) % 16 == 0;
      SegDesc d{reinterpret_cast<uint64_t>(g.out), g.numel, uint32_t(k * n), aligned ? 1u : 0u, 0};
      std::memcpy(host.data() + gr.segOff + k * sizeof(SegDesc), &d, sizeof d);
      for (int i = 0; i < n; ++i) {
        const uint64_t p = reinterpret_cast<uint64_t>(g.srcs[i]);
        std::memcpy(host.data() + gr.srcOff + (k * n + i) * sizeof(uint64_t), &p, sizeof p);
      }
      for (int64_t c = 0; c < (g.numel + kChunk - 1) / kChunk; ++c) {
        const uint2 wk = make_uint2(uint32_t(k), uint32_t(c));
        std::memcpy(host.data() + gr.workOff + size_t(w++) * sizeof(uint2), &wk, sizeof wk);
      }
    }
    groups_.push_back(gr);
  }
  if (!host.empty()) {
    SOUP_CUDA_CHECK(cudaMalloc(reinterpret_cast<void**>(&dev_), host.size()));
    const cudaError_t e = cudaMemcpy(dev_, host.data(), host.size(), cudaMemcpyHostToDevice);
    if (e != cudaSuccess) {
      cudaFree(dev_);
      dev_ = nullptr;
      throwCuda(e, "cudaMemcpy(plan tables)", __FILE__, __LINE__);
    }
  }
}

Plan::~Plan() {
  if (dev_) {
    cudaDeviceSynchronize();  // a launch still in flight may read the tables
    cudaFree(dev_);
  }
}

void Plan::run(const double* weights, void* stream) {
  const Lambdas lam = lambdasOf(weights, n_);
  cudaStream_t st = static_cast<cudaStream_t>(stream);
  for (const Group& g : groups_) {
    SOUP_LAUNCH(pick(g.inDtype, g.outDtype), unsigned(g.nwork), pickThreads(), st, reinterpret_cast<const SegDesc*>(dev_ + g.segOff),
                reinterpret_cast<const uint64_t*>(dev_ + g.srcOff), reinterpret_cast<const uint2*>(dev_ + g.workOff), n_, lam);
    SOUP_CUDA_CHECK_LAUNCH("soup_interpolate_multi_cuda");
  }
}

}  // namespace cuda
}  // namespace soup
