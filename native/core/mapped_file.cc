// SPDX-License-Identifier: MIT
#include "core/mapped_file.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>

namespace soup {

std::string errnoMessage(int err) {
  char buf[256];
  return std::string(strerror_r(err, buf, sizeof buf));
}

MappedFile::MappedFile(const std::string& path, bool writable) : path_(path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw std::runtime_error("[ERR_SOUP_IO] cannot open '" + path + "': " + errnoMessage(errno));
  struct stat st;
  if (fstat(fd, &st) != 0) {
    int e = errno;
    ::close(fd);
    throw std::runtime_error("[ERR_SOUP_IO] cannot stat '" + path + "': " + errnoMessage(e));
  }
  size_ = static_cast<size_t>(st.st_size);
  if (size_ > 0) {
    base_ = mmap(nullptr, size_, writable ? PROT_READ | PROT_WRITE : PROT_READ, MAP_PRIVATE, fd, 0);
    if (base_ == MAP_FAILED) {
      int e = errno;
      base_ = nullptr;
      ::close(fd);
      throw std::runtime_error("[ERR_SOUP_IO] cannot map '" + path + "': " + errnoMessage(e));
    }
    madvise(base_, size_, MADV_SEQUENTIAL);
  }
  ::close(fd);  // the mapping keeps the file alive
}

MappedFile::~MappedFile() {
  if (base_) munmap(base_, size_);
}

void MappedFile::release(size_t off, size_t len) const {
  if (!base_ || len == 0) return;
  const size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
  size_t b = (off + page - 1) / page * page;
  size_t e = (off + len) / page * page;
  if (e > size_) e = size_ / page * page;
  if (e > b) madvise(static_cast<uint8_t*>(base_) + b, e - b, MADV_DONTNEED);
}

void* MappedFile::detach() {
  void* p = base_;
  base_ = nullptr;
  return p;
}

}  // namespace soup
