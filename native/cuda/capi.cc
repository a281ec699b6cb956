// SPDX-License-Identifier: MIT
// libsoup_cuda_capi.so: a C ABI over the kernels, for callers that are neither Node nor C++ — the
// PyTorch comparison in bench/gpu_torch.py loads it with ctypes and passes tensor.data_ptr() values,
// so the kernel and torch's _foreach / eager ops run on the same device buffers in the same process.
// Every function returns 0 on success or -1 with the message in soup_cuda_last_error().
#include <cstdint>
#include <cstring>
#include <exception>
#include <string>
#include <vector>

#include "soup_cuda.h"

namespace {
thread_local std::string lastError;

template <class F>
int guarded(F f) {
  try {
    f();
    return 0;
  } catch (const std::exception& e) {
    lastError = e.what();
  } catch (...) {
    lastError = "[ERR_SOUP_INTERNAL] unknown error";
  }
  return -1;
}

std::vector<soup::cuda::Segment> segmentsOf(int n, int64_t T, const uint64_t* srcs, const uint64_t* outs, const int64_t* numels, const int32_t* inDt,
                                            const int32_t* outDt) {
  std::vector<soup::cuda::Segment> segs(static_cast<size_t>(T));
  for (int64_t t = 0; t < T; ++t) {
    soup::cuda::Segment& s = segs[size_t(t)];
    std::memset(&s, 0, sizeof s);
    s.out = reinterpret_cast<void*>(outs[t]);
    for (int i = 0; i < n && i < soup::cuda::kMaxSources; ++i) s.srcs[i] = reinterpret_cast<const void*>(srcs[t * n + i]);
    s.numel = numels[t];
    s.inDtype = inDt[t];
    s.outDtype = outDt[t];
  }
  return segs;
}
}  // namespace

extern "C" {

__attribute__((visibility("default"))) const char* soup_cuda_last_error() { return lastError.c_str(); }

__attribute__((visibility("default"))) int soup_cuda_device_count() { return soup::cuda::deviceCount(); }

// 0 on success; -1 when this build lacks the variant (NOTE: [Variants]).
__attribute__((visibility("default"))) int soup_cuda_set_variant(int v) { return soup::cuda::setKernelVariant(v) ? 0 : -1; }

// srcs: T*n device pointers, tensor-major (srcs[t*n + i] is tensor t of source i).
__attribute__((visibility("default"))) int soup_cuda_plan_create(void** plan, int n, int64_t T, const uint64_t* srcs, const uint64_t* outs,
                                                                 const int64_t* numels, const int32_t* inDt, const int32_t* outDt) {
  return guarded([&] { *plan = new soup::cuda::Plan(segmentsOf(n, T, srcs, outs, numels, inDt, outDt), n); });
}

__attribute__((visibility("default"))) int soup_cuda_plan_run(void* plan, const double* weights, void* stream) {
  return guarded([&] { static_cast<soup::cuda::Plan*>(plan)->run(weights, stream); });
}

__attribute__((visibility("default"))) int soup_cuda_plan_launches(void* plan) { return static_cast<soup::cuda::Plan*>(plan)->launchesPerRun(); }

__attribute__((visibility("default"))) void soup_cuda_plan_destroy(void* plan) { delete static_cast<soup::cuda::Plan*>(plan); }

// One-shot: tables built and uploaded on every call (what a single merge of device tensors costs).
__attribute__((visibility("default"))) int soup_cuda_interpolate_once(int n, int64_t T, const uint64_t* srcs, const uint64_t* outs, const int64_t* numels,
                                                                      const int32_t* inDt, const int32_t* outDt, const double* weights, void* stream,
                                                                      int64_t* launches) {
  return guarded([&] {
    static thread_local soup::cuda::Interpolator* interp = nullptr;
    static thread_local void* interpStream = nullptr;
    if (!interp || interpStream != stream) {
      delete interp;
      interp = new soup::cuda::Interpolator(stream);
      interpStream = stream;
    }
    const int64_t before = interp->launches();
    interp->run(segmentsOf(n, T, srcs, outs, numels, inDt, outDt), weights, n);
    if (launches) *launches = interp->launches() - before;
  });
}

}  // extern "C"
