// SPDX-License-Identifier: MIT
// soup_cuda_emu_tests: native/cuda's sources compiled for the CPU emulation in emu/ and run under the
// same tests as the GPU (cuda_interpolate_test.cc). One translation unit, so the build needs no nvcc.
#include "../cuda/interpolate.cu"
#include "../cuda/device.cc"
#include "../cuda/pipeline.cc"
#include "cuda_interpolate_test.cc"
