// SPDX-License-Identifier: MIT
// Allocation of large working buffers (soup outputs, merge windows, probe arrays).
#pragma once
#include <sys/mman.h>

#include <cstdlib>
#include <stdexcept>
#include <string>

namespace soup {

constexpr size_t kHugePage = size_t(2) << 20;

// 64-byte aligned; from `kHugePage` up, 2 MiB aligned and advised onto transparent huge pages. Debian's
// default THP mode is "madvise", so without the advice every 4 KiB page faults on first touch: a fresh
// 256 MiB output cost ~9 µs per fault on this VM (interpolate() allocating its outputs, N=2 fp32: 585 vs
// 69 ms, docs/notes/merge-measuring.md "Fresh outputs"). Where THP is off the advice is a no-op. Free with std::free.
inline void* allocLarge(size_t n, bool hugePages, const std::string& what) {
  const bool huge = hugePages && n >= kHugePage;
  void* p = nullptr;
  if (posix_memalign(&p, huge ? kHugePage : 64, n < 64 ? 64 : n) != 0)
    throw std::runtime_error("[ERR_SOUP_OOM] cannot allocate " + std::to_string(n) + " bytes for " + what);
  if (huge) madvise(p, n - n % kHugePage, MADV_HUGEPAGE);
  return p;
}

}  // namespace soup
