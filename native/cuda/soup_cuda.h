// SPDX-License-Identifier: MIT
// Host-side API of the CUDA kernels (native/cuda). Plain C++: no CUDA header needed to include it, so
// the N-API binding, native/torch and the C++ tests all call the same entry points.
//
// Errors are thrown as std::runtime_error whose message starts with "[ERR_SOUP_...]" (the code the JS
// layer maps to SoupError): ERR_SOUP_NO_CUDA when no driver or device, ERR_SOUP_OOM when an
// allocation fails, ERR_SOUP_INVALID_ARG for bad input, ERR_SOUP_ABORTED on cancel, ERR_SOUP_IO for
// file errors, ERR_SOUP_INTERNAL for any other CUDA failure.
#pragma once
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace soup {
namespace cuda {

// Same codes as the JS baton: 0=float32, 1=float16, 2=bfloat16, 3=float64.
enum Dtype : int { kF32 = 0, kF16 = 1, kBF16 = 2, kF64 = 3 };
constexpr int kMaxSources = 16;
// Elements per work item (one block): ATen's multi-tensor-apply chunk. See NOTE: [Chunk tables].
constexpr int64_t kChunk = 65536;

size_t dtypeSize(int dt);
// Kernel variant for later launches (NOTE: [Variants]): 0 always; 1 only in SOUP_CUDA_VARIANTS builds.
bool setKernelVariant(int v);
const char* dtypeName(int dt);

// True when this build has the kernels (always, when this header's library is linked).
bool compiled();
// Number of visible devices; 0 when the driver is missing or reports none (never throws).
int deviceCount();
// Why deviceCount() is 0 ("no CUDA driver", "no CUDA device", ...); empty when a device is there.
std::string noDeviceReason();
// Throws [ERR_SOUP_NO_CUDA] with noDeviceReason() when there is no usable device.
void requireDevice();
// "NVIDIA H100 80GB HBM3, cc 9.0, 132 SMs, driver 13.0, runtime 13.0"; empty without a device.
std::string deviceSummary();

// One output segment: out[k] = sum_i lambda_i * srcs[i][k], k < numel. Pointers are device pointers.
struct Segment {
  void* out;
  const void* srcs[kMaxSources];
  int64_t numel;
  int inDtype;
  int outDtype;
};

// Fused multi-tensor interpolation of device-resident tensors (the lambda sweep without leaving the
// GPU). Enqueues on `stream` (a cudaStream_t; nullptr = legacy default stream) and returns without
// synchronizing. Reusable: keeps its device/pinned table buffers between calls. Not thread-safe.
class Interpolator {
 public:
  explicit Interpolator(void* stream = nullptr, int64_t tableCapacity = 1 << 16);
  ~Interpolator();
  Interpolator(const Interpolator&) = delete;
  Interpolator& operator=(const Interpolator&) = delete;
  // weights: N doubles (rounded once to fp32 for fp32/fp16/bf16 inputs, used as-is for fp64).
  void run(const std::vector<Segment>& segs, const double* weights, int n);
  // Number of kernel launches so far (tests assert the fused path ran in few launches).
  int64_t launches() const { return launches_; }
  void* stream() const { return stream_; }

 private:
  void flush(int n, const double* weights, int inDt, int outDt);
  void* stream_;
  int64_t cap_;                // work items per launch
  int64_t segCap_;             // segments per launch
  char* hostTable_ = nullptr;  // pinned staging
  char* devTable_ = nullptr;
  void* copied_ = nullptr;  // cudaEvent_t: staging may be reused after it
  int64_t launches_ = 0;
  // pending group being filled
  std::vector<const Segment*> pending_;
};

// A fixed list of device tensors interpolated many times with different weights (the lambda sweep of
// adapters without leaving the GPU): the chunk tables are built and uploaded once, so each run() is one
// kernel launch per (input, output) dtype pair and nothing else. Segments must stay valid meanwhile.
class Plan {
 public:
  Plan(const std::vector<Segment>& segs, int n);
  ~Plan();
  Plan(const Plan&) = delete;
  Plan& operator=(const Plan&) = delete;
  // Enqueues on `stream` (cudaStream_t; nullptr = legacy default stream); does not synchronize.
  void run(const double* weights, void* stream = nullptr);
  int launchesPerRun() const { return int(groups_.size()); }
  int sources() const { return n_; }

 private:
  struct Group {
    int inDtype, outDtype;
    int64_t nwork;
    size_t segOff, srcOff, workOff;
  };
  std::vector<Group> groups_;
  char* dev_ = nullptr;
  int n_;
};

// Host-memory interpolation (the interpolateCuda baton) and file merges (mergeFilesCuda) stream
// through pinned buffers on several CUDA streams; see NOTE: [Pipeline] in pipeline.cc.
struct HostTensor {
  const void* const* srcs;  // N host pointers
  void* out;
  int64_t numel;
  int inDtype;
  int outDtype;
};

struct FileTensor {
  int64_t numel;
  int inDtype;
  int outDtype;
  int32_t srcFile[kMaxSources];
  int64_t srcOffset[kMaxSources];
};

struct Progress {
  // Set to non-zero by the caller to cancel (checked between windows).
  const volatile double* cancel = nullptr;
  // Output bytes finished are added here as windows complete (written by the pipeline's writer thread).
  volatile double* bytesDone = nullptr;
};

struct RunStats {
  double seconds = 0;
  double bytesRead = 0;
  double bytesWritten = 0;
  int64_t launches = 0;
  std::string kernel;  // e.g. "soup_interpolate_multi_cuda[bf16->bf16] x3 launches, 2 streams, window 64 MiB"
};

struct PipelineOptions {
  int64_t windowBytes = 64ll << 20;  // input bytes per source per window
  int slots = 3;                     // windows in flight (each has its own stream)
};

// Host tensors uploaded to the GPU once; each run(weights) interpolates there and copies only the
// outputs back: the lambda sweep of adapters without re-sending the sources. Thread-safe (runs are
// serialized); the device memory is freed by the destructor.
class Resident {
 public:
  // tensors[t].srcs / numel / inDtype / outDtype are used; .out is ignored.
  Resident(const std::vector<HostTensor>& tensors, int n);
  ~Resident();
  Resident(const Resident&) = delete;
  Resident& operator=(const Resident&) = delete;
  // outs[t]: host memory of numel(t) elements of outDtype(t).
  RunStats run(const double* weights, const std::vector<void*>& outs);
  int sources() const { return n_; }
  size_t tensors() const { return numel_.size(); }
  int64_t numel(size_t t) const { return numel_[t]; }
  int outDtype(size_t t) const { return outDt_[t]; }
  double deviceBytes() const { return deviceBytes_; }

 private:
  int n_;
  std::vector<int64_t> numel_, outOff_;
  std::vector<int> outDt_;
  char* devIn_ = nullptr;
  char* devOut_ = nullptr;
  char* hostOut_ = nullptr;
  int64_t outBytes_ = 0;
  double deviceBytes_ = 0;
  void* stream_ = nullptr;
  Plan* plan_ = nullptr;
  void* mu_ = nullptr;  // std::mutex
};

RunStats interpolateHost(const std::vector<HostTensor>& tensors, const double* weights, int n, const Progress& progress, const PipelineOptions& opt = {});

RunStats mergeFiles(const std::vector<std::string>& files, const std::string& out, const uint8_t* header, size_t headerBytes,
                    const std::vector<FileTensor>& tensors, const double* weights, int n, const Progress& progress, const PipelineOptions& opt = {});

}  // namespace cuda
}  // namespace soup
