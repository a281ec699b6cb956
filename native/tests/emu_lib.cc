// SPDX-License-Identifier: MIT
// native/cuda's sources compiled for the CPU emulation in emu/ (one translation unit, no nvcc): the
// library behind soup_cuda_emu_tests, soup_cuda_emu_bench and libsoup_cuda_emu_capi.so.
#include "../cuda/interpolate.cu"
#include "../cuda/device.cc"
#include "../cuda/pipeline.cc"
