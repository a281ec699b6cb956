// SPDX-License-Identifier: MIT
// Device discovery. cudart is linked statically, so these work (and report "no driver") on machines
// with no NVIDIA driver at all: libcuda.so is looked up at the first runtime call, not at load.
#include <cuda_runtime_api.h>

#include <cstdio>
#include <mutex>
#include <stdexcept>
#include <string>

#include "check.h"
#include "soup_cuda.h"

namespace soup {
namespace cuda {

namespace {
std::once_flag probeOnce;
int probedCount = 0;
cudaError_t probedError = cudaSuccess;

void probe() {
  std::call_once(probeOnce, [] {
    int n = 0;
    probedError = cudaGetDeviceCount(&n);
    probedCount = probedError == cudaSuccess ? n : 0;
    (void)cudaGetLastError();  // a failed probe must not leave a sticky error for later calls
  });
}
}  // namespace

bool compiled() { return true; }

int deviceCount() {
  probe();
  return probedCount;
}

std::string noDeviceReason() {
  probe();
  if (probedCount > 0) return "";
  switch (probedError) {
    case cudaErrorInsufficientDriver:
      return "no usable NVIDIA driver (libcuda.so missing or older than CUDA runtime " + std::to_string(CUDART_VERSION / 1000) + "." +
             std::to_string(CUDART_VERSION % 1000 / 10) + ")";
    case cudaErrorNoDevice:
    case cudaSuccess:
      return "no CUDA device visible (driver present, 0 devices; check CUDA_VISIBLE_DEVICES)";
    default:
      return std::string("CUDA device query failed: ") + cudaGetErrorName(probedError) + " (" + cudaGetErrorString(probedError) + ")";
  }
}

void requireDevice() {
  if (deviceCount() > 0) return;
  throw std::runtime_error("[ERR_SOUP_NO_CUDA] device 'cuda' requested, but the CUDA kernels cannot run here: " + noDeviceReason() +
                           ". Use device 'cpu' (the default), or run on a machine with an NVIDIA GPU.");
}

std::string deviceSummary() {
  if (deviceCount() == 0) return "";
  int dev = 0, drv = 0, rt = 0;
  SOUP_CUDA_CHECK(cudaGetDevice(&dev));
  cudaDeviceProp p{};
  SOUP_CUDA_CHECK(cudaGetDeviceProperties(&p, dev));
  SOUP_CUDA_CHECK(cudaDriverGetVersion(&drv));
  SOUP_CUDA_CHECK(cudaRuntimeGetVersion(&rt));
  char buf[512];
  std::snprintf(buf, sizeof buf, "%s, cc %d.%d, %d SMs, %.1f GiB, L2 %d MiB, driver API %d.%d, runtime %d.%d", p.name, p.major, p.minor, p.multiProcessorCount,
                double(p.totalGlobalMem) / (1 << 30), p.l2CacheSize >> 20, drv / 1000, drv % 1000 / 10, rt / 1000, rt % 1000 / 10);
  return buf;
}

}  // namespace cuda
}  // namespace soup
