// SPDX-License-Identifier: MIT
// soup_cuda_emu_bench: cuda_bench.cc over the CPU emulation, so the file-merge bench's flow (files,
// cold-cache passes, merge, JSON) is exercised without a GPU. Its timings mean nothing.
#include "../cuda/interpolate.cu"
#include "../cuda/device.cc"
#include "../cuda/pipeline.cc"
#include "cuda_bench.cc"
