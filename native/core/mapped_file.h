// SPDX-License-Identifier: MIT
// Read-only memory mapping of a whole file (RAII). Pages are mapped copy-on-write, so a stray write
// through a view never reaches the file and never faults.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>

namespace soup {

class MappedFile {
 public:
  // writable: copy-on-write pages (for views handed to JS, where a stray write must not fault).
  explicit MappedFile(const std::string& path, bool writable = false);
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;
  const uint8_t* data() const { return static_cast<const uint8_t*>(base_); }
  size_t size() const { return size_; }
  const std::string& path() const { return path_; }
  // Drops the resident pages of [off, off+len) from this process (they stay in the page cache), so a
  // streaming merge holds only a window of its inputs.
  void release(size_t off, size_t len) const;
  // Hands ownership of the mapping to the caller (munmap(ptr, size) frees it).
  void* detach();

 private:
  std::string path_;
  void* base_ = nullptr;
  size_t size_ = 0;
};

std::string errnoMessage(int err);

}  // namespace soup
