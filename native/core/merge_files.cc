// SPDX-License-Identifier: MIT
#include "core/merge_files.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <memory>
#include <stdexcept>

#include "core/dtype.h"
#include "core/large_buffer.h"
#include "core/mapped_file.h"
#include "core/thread_pool.h"

namespace soup {
namespace {

using Clock = std::chrono::steady_clock;
double since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

class OutFile {
 public:
  explicit OutFile(const std::string& path) : path_(path) {
    fd_ = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd_ < 0) throw std::runtime_error("[ERR_SOUP_IO] cannot create '" + path + "': " + errnoMessage(errno));
  }
  ~OutFile() {
    if (fd_ >= 0) ::close(fd_);
  }
  void write(const void* p, size_t n) {
    const uint8_t* b = static_cast<const uint8_t*>(p);
    while (n > 0) {
      ssize_t w = ::write(fd_, b, n);
      if (w < 0) {
        if (errno == EINTR) continue;
        throw std::runtime_error("[ERR_SOUP_IO] writing '" + path_ + "': " + errnoMessage(errno));
      }
      b += w;
      n -= static_cast<size_t>(w);
      written_ += static_cast<double>(w);
    }
  }
  void syncAndClose() {
    if (::fsync(fd_) != 0) throw std::runtime_error("[ERR_SOUP_IO] fsync '" + path_ + "': " + errnoMessage(errno));
    int fd = fd_;
    fd_ = -1;
    if (::close(fd) != 0) throw std::runtime_error("[ERR_SOUP_IO] closing '" + path_ + "': " + errnoMessage(errno));
  }
  double written() const { return written_; }

 private:
  std::string path_;
  int fd_ = -1;
  double written_ = 0;
};

struct AlignedBuffer {
  void* p = nullptr;
  explicit AlignedBuffer(size_t n) { p = allocLarge(n, true, "a merge window"); }
  ~AlignedBuffer() { free(p); }
};

// An input file read with pread() into reused buffers: no page faults per 4 KiB page (mmap costs ~1 µs
// per fault on this VM) and page-cache pages never count toward this process's RSS.
class InFile {
 public:
  explicit InFile(const std::string& path) : path_(path) {
    fd_ = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd_ < 0) throw std::runtime_error("[ERR_SOUP_IO] cannot open '" + path + "': " + errnoMessage(errno));
    struct stat st;
    if (fstat(fd_, &st) != 0) throw std::runtime_error("[ERR_SOUP_IO] cannot stat '" + path + "': " + errnoMessage(errno));
    size_ = static_cast<uint64_t>(st.st_size);
    posix_fadvise(fd_, 0, 0, POSIX_FADV_SEQUENTIAL);
  }
  ~InFile() {
    if (fd_ >= 0) ::close(fd_);
  }
  InFile(const InFile&) = delete;
  InFile& operator=(const InFile&) = delete;
  uint64_t size() const { return size_; }
  const std::string& path() const { return path_; }
  void read(void* dst, uint64_t off, uint64_t n) const {
    uint8_t* d = static_cast<uint8_t*>(dst);
    while (n > 0) {
      ssize_t r = ::pread(fd_, d, n, static_cast<off_t>(off));
      if (r < 0) {
        if (errno == EINTR) continue;
        throw std::runtime_error("[ERR_SOUP_IO] reading '" + path_ + "': " + errnoMessage(errno));
      }
      if (r == 0) throw std::runtime_error("[ERR_SOUP_IO] reading '" + path_ + "': unexpected end of file (was it truncated during the merge?)");
      d += r;
      off += static_cast<uint64_t>(r);
      n -= static_cast<uint64_t>(r);
    }
  }

 private:
  std::string path_;
  int fd_ = -1;
  uint64_t size_ = 0;
};

void checkRange(const InFile& f, uint64_t off, uint64_t bytes, const std::string& tensor) {
  if (off > f.size() || bytes > f.size() - off)
    throw std::runtime_error("[ERR_SOUP_FORMAT] tensor '" + tensor + "' in '" + f.path() + "': bytes [" + std::to_string(off) + ", " +
                             std::to_string(off + bytes) + ") are beyond the file size " + std::to_string(f.size()));
}

}  // namespace

MergeFilesResult mergeFiles(const MergeFilesJob& job, Control* ctl) {
  auto t0 = Clock::now();
  MergeFilesResult res;
  auto weightsOf = [&](const FileTensor& t) -> const std::vector<double>& { return t.weights.empty() ? job.weights : t.weights; };

  std::vector<std::unique_ptr<InFile>> maps;
  for (const auto& f : job.files) maps.push_back(std::make_unique<InFile>(f));
  // Validate every range up front: nothing is written for a job that would read out of bounds.
  for (const auto& t : job.tensors) {
    if (!validDType(t.inDtype) || !validDType(t.outDtype)) throw std::runtime_error("[ERR_SOUP_INVALID_ARG] tensor '" + t.name + "': bad dtype code");
    if (t.kind == FileTensor::Interp) {
      const size_t n = weightsOf(t).size();
      if (n == 0 || t.srcFile.size() != n || t.srcOffset.size() != n)
        throw std::runtime_error("[ERR_SOUP_INVALID_ARG] tensor '" + t.name + "': expected " + std::to_string(n) + " sources");
      for (size_t i = 0; i < n; i++) {
        if (t.srcFile[i] < 0 || static_cast<size_t>(t.srcFile[i]) >= maps.size())
          throw std::runtime_error("[ERR_SOUP_INVALID_ARG] tensor '" + t.name + "': bad file index");
        checkRange(*maps[t.srcFile[i]], t.srcOffset[i], t.numel * dtypeSize(t.inDtype), t.name);
      }
    } else {
      if (t.rows * t.cols != t.numel || !t.L || !t.R) throw std::runtime_error("[ERR_SOUP_INVALID_ARG] tensor '" + t.name + "': inconsistent low-rank update");
      if (t.baseFile >= 0) {
        if (static_cast<size_t>(t.baseFile) >= maps.size()) throw std::runtime_error("[ERR_SOUP_INVALID_ARG] tensor '" + t.name + "': bad base file index");
        checkRange(*maps[t.baseFile], t.baseOffset, t.numel * dtypeSize(t.inDtype), t.name);
      }
    }
  }

  OutFile out(job.out);
  out.write(job.header.data(), job.header.size());
  const size_t window = std::max<size_t>(job.windowBytes, 1 << 16);
  AlignedBuffer buf(window);
  uint8_t* base = static_cast<uint8_t*>(buf.p);
  // Input windows, one per source slot; twice the output window covers every in/out dtype pair up to
  // fp64 in, half out (4x) at half occupancy.
  size_t maxN = job.weights.size();
  for (const auto& t : job.tensors) maxN = std::max(maxN, t.weights.size());
  const size_t inWindow = 2 * window;
  std::vector<std::unique_ptr<AlignedBuffer>> inBufs;
  for (size_t i = 0; i < maxN; i++) inBufs.push_back(std::make_unique<AlignedBuffer>(inWindow));

  std::vector<Segment> segs;
  std::vector<std::vector<const void*>> srcPtrs;  // storage for Segment::src
  struct Read {
    const InFile* f;
    uint64_t off, len;
    void* dst;
  };
  std::vector<Read> reads;
  size_t used = 0, inUsed = 0;
  const std::vector<double>* batchWeights = nullptr;  // all segments of one batch share their λ

  auto flush = [&]() {
    if (used == 0) return;
    auto tr = Clock::now();
    ThreadPool::instance().parallelFor(reads.size(), job.opt.threads, [&](size_t k) { reads[k].f->read(reads[k].dst, reads[k].off, reads[k].len); });
    res.readSeconds += since(tr);
    auto tk = Clock::now();
    for (size_t k = 0; k < segs.size(); k++) segs[k].src = srcPtrs[k].data();
    interpolateSegments(segs, Weights(*batchWeights), job.opt, ctl);
    res.kernelSeconds += since(tk);
    auto tw = Clock::now();
    out.write(base, used);
    res.writeSeconds += since(tw);
    if (ctl) ctl->addProgress(static_cast<double>(used));
    segs.clear();
    srcPtrs.clear();
    reads.clear();
    used = 0;
    inUsed = 0;
    if (ctl && ctl->cancelled()) throw std::runtime_error("[ERR_SOUP_ABORTED] merge cancelled");
  };

  for (const auto& t : job.tensors) {
    const size_t inSize = dtypeSize(t.inDtype), outSize = dtypeSize(t.outDtype);
    if (t.kind == FileTensor::Interp) {
      const std::vector<double>& tw = weightsOf(t);
      if (batchWeights && *batchWeights != tw) flush();
      batchWeights = &tw;
      const size_t n = tw.size();
      uint64_t done = 0;
      while (done < t.numel) {
        size_t room = std::min((window - used) / outSize, (inWindow - inUsed) / inSize);
        if (room == 0) {
          flush();
          continue;
        }
        uint64_t take = std::min<uint64_t>(room, t.numel - done);
        Segment s;
        s.inDtype = t.inDtype;
        s.outDtype = t.outDtype;
        s.out = base + used;
        s.count = take;
        std::vector<const void*> ptrs(n);
        for (size_t i = 0; i < n; i++) {
          void* dst = static_cast<uint8_t*>(inBufs[i]->p) + inUsed;
          reads.push_back({maps[t.srcFile[i]].get(), t.srcOffset[i] + done * inSize, take * inSize, dst});
          ptrs[i] = dst;
          res.bytesRead += static_cast<double>(take * inSize);
        }
        srcPtrs.push_back(std::move(ptrs));
        segs.push_back(s);
        used += take * outSize;
        inUsed += (take * inSize + 63) / 64 * 64;  // keep every segment's inputs 64-byte aligned
        done += take;
      }
    } else {
      flush();
      const size_t rowBytes = t.cols * outSize;
      const size_t rowsPer = std::max<size_t>(1, window / std::max<size_t>(rowBytes, 1));
      std::unique_ptr<AlignedBuffer> big, baseBuf;
      uint64_t baseBufSize = 0;
      uint8_t* dst = base;
      if (rowBytes > window) {  // one row larger than the window: a bigger buffer for this tensor only
        big = std::make_unique<AlignedBuffer>(rowBytes);
        dst = static_cast<uint8_t*>(big->p);
      }
      for (uint64_t r0 = 0; r0 < t.rows; r0 += rowsPer) {
        uint64_t r1 = std::min<uint64_t>(t.rows, r0 + rowsPer);
        LowRank lr;
        lr.rows = r1 - r0;
        lr.cols = t.cols;
        lr.rank = t.rank;
        lr.L = t.L + r0 * t.rank;
        lr.R = t.R;
        lr.out = dst;
        lr.outDtype = t.outDtype;
        lr.baseDtype = t.inDtype;
        if (t.baseFile >= 0) {
          uint64_t bytes = lr.rows * t.cols * inSize;
          if (!baseBuf || baseBufSize < bytes) {
            baseBuf = std::make_unique<AlignedBuffer>(bytes);
            baseBufSize = bytes;
          }
          auto tr = Clock::now();
          maps[t.baseFile]->read(baseBuf->p, t.baseOffset + r0 * t.cols * inSize, bytes);
          res.readSeconds += since(tr);
          lr.base = baseBuf->p;
          res.bytesRead += static_cast<double>(bytes);
        }
        auto tk = Clock::now();
        lowRankUpdate(lr, job.opt, ctl);
        res.kernelSeconds += since(tk);
        auto tw = Clock::now();
        out.write(dst, lr.rows * rowBytes);
        res.writeSeconds += since(tw);
        if (ctl) ctl->addProgress(static_cast<double>(lr.rows * rowBytes));
        if (ctl && ctl->cancelled()) throw std::runtime_error("[ERR_SOUP_ABORTED] merge cancelled");
      }
    }
  }
  flush();
  auto tw = Clock::now();
  out.syncAndClose();
  res.writeSeconds += since(tw);
  res.bytesWritten = out.written();
  res.seconds = since(t0);
  return res;
}

}  // namespace soup
