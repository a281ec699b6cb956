// SPDX-License-Identifier: MIT
// soup_torch_cuda_check: the kernels on libtorch's CUDA tensors, in a process that also holds torch's
// own (dynamic) cudart: the resident lambda sweep native/torch would run (Plan on data_ptr()s), checked
// against torch's own arithmetic in float64. Built against the libtorch the addon uses (CI: the CPU
// libtorch here, where it reports SKIP) and by bench/gpu.sh against the GPU machine's pip torch.
// Last line: "N passed, N failed" (", N skipped").
#include <ATen/ATen.h>
#include <cuda_runtime_api.h>
#include <torch/cuda.h>

#include <cmath>
#include <stdexcept>

#include <cstdio>
#include <string>
#include <vector>

#include "soup_cuda.h"

namespace sc = soup::cuda;

int main() {
  if (!torch::cuda::is_available() || sc::deviceCount() == 0) {
    std::printf("SKIP torch CUDA tensors: %s\n",
                !torch::cuda::is_available() ? "this libtorch has no CUDA device (CPU build or no GPU)" : sc::noDeviceReason().c_str());
    std::printf("0 passed, 0 failed, 1 skipped\n");
    return 0;
  }
  int passed = 0, failed = 0;
  try {
    at::manual_seed(7);
    const int n = 4;
    // A LoRA-like adapter list: many small matrices in bf16, plus an fp32 bias and an odd-sized tensor.
    std::vector<std::vector<int64_t>> shapes;
    for (int l = 0; l < 64; ++l) shapes.push_back({16, 4096}), shapes.push_back({4096, 16});
    shapes.push_back({4097});
    shapes.push_back({65537});
    std::vector<std::vector<at::Tensor>> srcs(n);
    std::vector<at::Tensor> outs;
    for (auto& s : shapes) {
      const auto dt = s.size() == 1 ? at::kFloat : at::kBFloat16;
      for (int i = 0; i < n; ++i) srcs[i].push_back(at::randn(s, at::TensorOptions().device(at::kCUDA)).to(dt));
      outs.push_back(at::full(s, NAN, at::TensorOptions().device(at::kCUDA).dtype(dt)));
    }
    std::vector<sc::Segment> segs(shapes.size());
    for (size_t t = 0; t < shapes.size(); ++t) {
      sc::Segment& g = segs[t];
      g = sc::Segment{};
      g.out = outs[t].data_ptr();
      for (int i = 0; i < n; ++i) g.srcs[i] = srcs[i][t].data_ptr();
      g.numel = outs[t].numel();
      g.inDtype = g.outDtype = outs[t].scalar_type() == at::kBFloat16 ? sc::kBF16 : sc::kF32;
    }
    sc::Plan plan(segs, n);
    // A sweep: several lambda vectors over the same resident tensors, each checked.
    for (double a : {0.0, 0.25, 0.5, 1.0}) {
      std::vector<double> w = {1 - a, a, 0.5 * a, -0.25};
      plan.run(w.data(), nullptr);
      if (cudaDeviceSynchronize() != cudaSuccess) throw std::runtime_error("kernel failed");
      double worst = 0;
      for (size_t t = 0; t < shapes.size(); ++t) {
        at::Tensor ref = at::zeros(shapes[t], at::TensorOptions().device(at::kCUDA).dtype(at::kDouble));
        at::Tensor scale = at::zeros_like(ref);
        for (int i = 0; i < n; ++i) {
          at::Tensor term = srcs[i][t].to(at::kDouble) * double(float(w[i]));
          ref += term;
          scale += term.abs();
        }
        const double epsOut = outs[t].scalar_type() == at::kBFloat16 ? 1.0 / 256 : 1.0 / 16777216;
        at::Tensor tol = scale * ((n + 1) / 16777216.0) + ref.abs() * epsOut + 3e-8;
        at::Tensor o = outs[t].to(at::kDouble);
        if (o.isnan().any().item<bool>()) throw std::runtime_error("unwritten (NaN-poisoned) elements in tensor " + std::to_string(t));
        worst = std::max(worst, ((o - ref).abs() / tol).max().item<double>());
      }
      if (worst <= 1)
        ++passed;
      else
        ++failed;
      std::printf("%s lambda sweep a=%.2f: %d launches, worst error/tolerance %.3f\n", worst <= 1 ? "ok  " : "FAIL", a, plan.launchesPerRun(), worst);
    }
  } catch (const std::exception& e) {
    ++failed;
    std::printf("FAIL %s\n", e.what());
  }
  std::printf("%d passed, %d failed\n", passed, failed);
  return failed ? 1 : 0;
}
