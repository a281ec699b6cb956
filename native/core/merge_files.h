// SPDX-License-Identifier: MIT
// Streaming file-to-file merge: inputs are read with pread() into reused buffers, the output is produced window by window into
// one reused buffer and written to a (temporary) file, which is fsynced. Peak memory is bounded by the
// windows ((2N + 1) × windowBytes), not by the model size.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "core/interp.h"

namespace soup {

struct FileTensor {
  enum Kind { Interp = 0, LowRankUpdate = 1 } kind = Interp;
  uint64_t numel = 0;
  int32_t inDtype = 0, outDtype = 0;
  std::vector<double> weights;      // Interp: this tensor's λ (empty: the job's weights)
  std::vector<int32_t> srcFile;     // Interp: N file indices
  std::vector<uint64_t> srcOffset;  // Interp: N absolute byte offsets
  // LowRankUpdate: out = base + L·R, base at (baseFile, baseOffset) with inDtype, or no base (baseFile -1)
  int32_t baseFile = -1;
  uint64_t baseOffset = 0;
  uint64_t rows = 0, cols = 0, rank = 0;
  const float* L = nullptr;
  const float* R = nullptr;
  std::string name;  // for error messages
};

struct MergeFilesJob {
  std::vector<std::string> files;
  std::string out;
  std::vector<uint8_t> header;
  std::vector<double> weights;
  std::vector<FileTensor> tensors;
  size_t windowBytes = 32u << 20;
  InterpOptions opt;
};

struct MergeFilesResult {
  double seconds = 0, readSeconds = 0, kernelSeconds = 0, writeSeconds = 0;
  double bytesRead = 0, bytesWritten = 0;
};

MergeFilesResult mergeFiles(const MergeFilesJob& job, Control* ctl);

}  // namespace soup
