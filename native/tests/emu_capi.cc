// SPDX-License-Identifier: MIT
// libsoup_cuda_emu_capi.so: the C ABI (native/cuda/capi.cc) over the CPU emulation, so that
// bench/gpu_torch.py --dry-run exercises its whole flow with CPU torch tensors on machines without a GPU.
#include "../cuda/interpolate.cu"
#include "../cuda/device.cc"
#include "../cuda/pipeline.cc"
#include "../cuda/capi.cc"
