// SPDX-License-Identifier: MIT
// Every CUDA runtime call goes through SOUP_CUDA_CHECK: a failure becomes a C++ exception whose message
// carries the JS error code, the call, the CUDA error name and the source line. Never an abort.
#pragma once
#include <cuda_runtime_api.h>

#include <stdexcept>
#include <string>

namespace soup {
namespace cuda {

[[noreturn]] inline void throwCuda(cudaError_t e, const char* what, const char* file, int line) {
  // Clear a sticky-free error so later calls on this thread do not see it again.
  (void)cudaGetLastError();
  const char* code = "ERR_SOUP_INTERNAL";
  if (e == cudaErrorMemoryAllocation) code = "ERR_SOUP_OOM";
  if (e == cudaErrorNoDevice || e == cudaErrorInsufficientDriver || e == cudaErrorInvalidDevice) code = "ERR_SOUP_NO_CUDA";
  std::string f(file);
  auto slash = f.find_last_of('/');
  if (slash != std::string::npos) f = f.substr(slash + 1);
  throw std::runtime_error(std::string("[") + code + "] " + what + " failed: " + cudaGetErrorName(e) + " (" + cudaGetErrorString(e) + ") at " + f + ":" +
                           std::to_string(line));
}

}  // namespace cuda
}  // namespace soup

#define SOUP_CUDA_CHECK(call)                                                                    \
  do {                                                                                           \
    cudaError_t soup_err_ = (call);                                                              \
    if (soup_err_ != cudaSuccess) ::soup::cuda::throwCuda(soup_err_, #call, __FILE__, __LINE__); \
  } while (0)

// After a kernel launch: launch-configuration errors show up here, not at the <<<>>> line.
#define SOUP_CUDA_CHECK_LAUNCH(name)                                                                         \
  do {                                                                                                       \
    cudaError_t soup_err_ = cudaGetLastError();                                                              \
    if (soup_err_ != cudaSuccess) ::soup::cuda::throwCuda(soup_err_, "launch of " name, __FILE__, __LINE__); \
  } while (0)

// Kernel launches go through one macro so that native/tests/emu can run the kernels on the CPU (a
// sequential emulation used to test the indexing, tables and pipeline on machines without a GPU).
#ifdef SOUP_CUDA_EMULATE
#define SOUP_LAUNCH(kernel, grid, block, stream, ...) ::soup_emu::launch(kernel, grid, block, __VA_ARGS__)
#else
#define SOUP_LAUNCH(kernel, grid, block, stream, ...) kernel<<<(grid), (block), 0, (stream)>>>(__VA_ARGS__)
#endif
