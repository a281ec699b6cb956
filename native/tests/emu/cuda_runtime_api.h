// SPDX-License-Identifier: MIT
// A CPU stand-in for the parts of the CUDA runtime and device intrinsics that native/cuda uses, so its
// kernels, tables and pipeline run (sequentially) on machines without a GPU: soup_cuda_emu_tests.
// Not a simulator of the GPU: it checks indexing, vector/tail paths, chunk tables, refills, windows and
// file I/O. The numerics are the same functions (fmaf, RNE conversions through _Float16); the memory
// model, alignment faults and timing are not emulated. Selected by SOUP_CUDA_EMULATE and an include
// path that puts this folder before any CUDA one.
#pragma once
#ifndef SOUP_CUDA_EMULATE
#error "native/tests/emu is only for SOUP_CUDA_EMULATE builds"
#endif
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <vector>

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __launch_bounds__(...)
// One block runs at a time, so function-scope statics serve as the block's shared memory.
#define __shared__ static
#define CUDARTAPI
#define CUDART_VERSION 13000

struct EmuDim3 {
  unsigned x = 0, y = 0, z = 0;
};
inline thread_local EmuDim3 threadIdx, blockIdx, blockDim, gridDim;

struct uint2 {
  unsigned x, y;
};
struct alignas(16) uint4 {
  unsigned x, y, z, w;
};
inline uint2 make_uint2(unsigned x, unsigned y) { return uint2{x, y}; }
inline uint4 make_uint4(unsigned x, unsigned y, unsigned z, unsigned w) { return uint4{x, y, z, w}; }

template <class T>
inline T __ldcs(const T* p) {
  return *p;
}
template <class T>
inline void __stcs(T* p, T v) {
  *p = v;
}
inline float __fmul_rn(float a, float b) { return a * b; }  // built with -ffp-contract=off
inline float __fmaf_rn(float a, float b, float c) { return std::fmaf(a, b, c); }
inline double __dmul_rn(double a, double b) { return a * b; }
inline double __fma_rn(double a, double b, double c) { return std::fma(a, b, c); }
inline float __double2float_rn(double d) { return static_cast<float>(d); }
inline unsigned __float_as_uint(float f) {
  unsigned u;
  std::memcpy(&u, &f, 4);
  return u;
}
inline float __uint_as_float(unsigned u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

namespace soup_emu {
struct Barrier {};
inline thread_local int phase = 1;
}  // namespace soup_emu

// The kernels have exactly one barrier, after idempotent shared-memory setup: phase 0 runs the first
// threads up to it (throwing out of the kernel), phase 1 runs every thread in order with it a no-op.
inline void __syncthreads() {
  if (soup_emu::phase == 0) throw soup_emu::Barrier{};
}

typedef int cudaError_t;
enum : int {
  cudaSuccess = 0,
  cudaErrorInvalidValue = 1,
  cudaErrorMemoryAllocation = 2,
  cudaErrorInsufficientDriver = 35,
  cudaErrorNoDevice = 100,
  cudaErrorInvalidDevice = 101,
};
enum cudaMemcpyKind { cudaMemcpyHostToHost = 0, cudaMemcpyHostToDevice = 1, cudaMemcpyDeviceToHost = 2, cudaMemcpyDeviceToDevice = 3 };
struct EmuStream {};
struct EmuEvent {};
typedef EmuStream* cudaStream_t;
typedef EmuEvent* cudaEvent_t;
constexpr unsigned cudaStreamNonBlocking = 1, cudaEventDisableTiming = 2;

struct cudaDeviceProp {
  char name[256];
  int major, minor, multiProcessorCount, l2CacheSize;
  size_t totalGlobalMem;
};

namespace soup_emu {
// Allocations and launches are counted so tests can check nothing leaks.
inline long live = 0;
inline long launches = 0;
}  // namespace soup_emu

inline const char* cudaGetErrorName(cudaError_t e) { return e == 0 ? "cudaSuccess" : "cudaErrorEmulated"; }
inline const char* cudaGetErrorString(cudaError_t e) { return e == 0 ? "no error" : "emulated error"; }
inline cudaError_t cudaGetLastError() { return cudaSuccess; }
inline cudaError_t cudaPeekAtLastError() { return cudaSuccess; }
inline cudaError_t cudaGetDeviceCount(int* n) {
  *n = std::getenv("SOUP_EMU_NO_DEVICE") ? 0 : 1;
  return *n ? cudaSuccess : cudaErrorNoDevice;
}
inline cudaError_t cudaGetDevice(int* d) {
  *d = 0;
  return cudaSuccess;
}
inline cudaError_t cudaGetDeviceProperties(cudaDeviceProp* p, int) {
  std::memset(p, 0, sizeof *p);
  std::strcpy(p->name, "CPU emulation of the CUDA kernels");
  p->multiProcessorCount = 1;
  return cudaSuccess;
}
inline cudaError_t cudaDriverGetVersion(int* v) {
  *v = 0;
  return cudaSuccess;
}
inline cudaError_t cudaRuntimeGetVersion(int* v) {
  *v = CUDART_VERSION;
  return cudaSuccess;
}
inline cudaError_t emuAlloc(void** p, size_t n) {
  *p = std::aligned_alloc(256, (std::max<size_t>(n, 1) + 255) / 256 * 256);
  if (!*p) return cudaErrorMemoryAllocation;
  ++soup_emu::live;
  return cudaSuccess;
}
inline cudaError_t emuFree(void* p) {
  if (p) --soup_emu::live, std::free(p);
  return cudaSuccess;
}
inline cudaError_t cudaMalloc(void** p, size_t n) { return emuAlloc(p, n); }
inline cudaError_t cudaMallocHost(void** p, size_t n) { return emuAlloc(p, n); }
inline cudaError_t cudaFree(void* p) { return emuFree(p); }
inline cudaError_t cudaFreeHost(void* p) { return emuFree(p); }
inline cudaError_t cudaMemcpy(void* d, const void* s, size_t n, cudaMemcpyKind) {
  std::memmove(d, s, n);
  return cudaSuccess;
}
inline cudaError_t cudaMemcpyAsync(void* d, const void* s, size_t n, cudaMemcpyKind k, cudaStream_t = nullptr) { return cudaMemcpy(d, s, n, k); }
inline cudaError_t cudaMemset(void* d, int v, size_t n) {
  std::memset(d, v, n);
  return cudaSuccess;
}
inline cudaError_t cudaDeviceSynchronize() { return cudaSuccess; }
inline cudaError_t cudaStreamCreateWithFlags(cudaStream_t* s, unsigned) {
  *s = new EmuStream;
  ++soup_emu::live;
  return cudaSuccess;
}
inline cudaError_t cudaStreamSynchronize(cudaStream_t) { return cudaSuccess; }
inline cudaError_t cudaStreamDestroy(cudaStream_t s) {
  --soup_emu::live;
  delete s;
  return cudaSuccess;
}
inline cudaError_t cudaEventCreateWithFlags(cudaEvent_t* e, unsigned) {
  *e = new EmuEvent;
  ++soup_emu::live;
  return cudaSuccess;
}
inline cudaError_t cudaEventCreate(cudaEvent_t* e) { return cudaEventCreateWithFlags(e, 0); }
inline cudaError_t cudaEventRecord(cudaEvent_t, cudaStream_t = nullptr) { return cudaSuccess; }
inline cudaError_t cudaEventSynchronize(cudaEvent_t) { return cudaSuccess; }
inline cudaError_t cudaEventElapsedTime(float* ms, cudaEvent_t, cudaEvent_t) {
  *ms = 1;
  return cudaSuccess;
}
inline cudaError_t cudaEventDestroy(cudaEvent_t e) {
  --soup_emu::live;
  delete e;
  return cudaSuccess;
}

namespace soup_emu {
// Runs grid x block threads in order (see __syncthreads above). Synchronous, like everything here.
template <class... P, class... A>
void launch(void (*kernel)(P...), unsigned grid, int block, A... args) {
  ++launches;
  blockDim.x = unsigned(block);
  gridDim.x = grid;
  std::vector<char> done(static_cast<size_t>(block));
  for (unsigned b = 0; b < grid; ++b) {
    blockIdx.x = b;
    std::fill(done.begin(), done.end(), 0);
    phase = 0;
    for (int t = 0; t < std::min(block, 32); ++t) {
      threadIdx.x = unsigned(t);
      try {
        kernel(args...);
        done[size_t(t)] = 1;  // finished without a barrier: do not run it twice
      } catch (const Barrier&) {
      }
    }
    phase = 1;
    for (int t = 0; t < block; ++t) {
      if (done[size_t(t)]) continue;
      threadIdx.x = unsigned(t);
      kernel(args...);
    }
  }
}
}  // namespace soup_emu
