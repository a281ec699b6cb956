// SPDX-License-Identifier: MIT
// Host-memory and file-to-file interpolation on the GPU, streamed through pinned buffers.
//
// NOTE: [Pipeline]
// The tensors are cut into windows of at most `windowBytes` input bytes per source (a tensor larger
// than a window spans several). Each window goes through one of K slots (K >= 2, default 3); a slot
// owns a CUDA stream, pinned input/output buffers and device buffers. The calling thread reads window w
// into its slot's pinned buffers (memcpy, or preadv from the files) and enqueues H2D -> kernel -> D2H on
// the slot's stream; a writer thread waits for the slot's event and drains its pinned output (memcpy, or
// pwritev into the output file), then frees the slot. So while window w is read, w-1 is on the GPU
// (copies and kernel) and w-2 is being written: the time is max(read, link, kernel, write), not the sum.
// Segments start on 256-byte boundaries inside every buffer, so the kernel's 16-byte vector path
// applies to all of them whatever the tensors' sizes.
#include <cuda_runtime_api.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <thread>

#include "check.h"
#include "soup_cuda.h"

namespace soup {
namespace cuda {

namespace {

constexpr int64_t kAlign = 256;
constexpr int64_t kMaxPinned = 1536ll << 20;  // all slots together
inline int64_t alignUp(int64_t x, int64_t a) { return (x + a - 1) / a * a; }

struct Item {  // one tensor, whatever its home (host memory or files)
  int64_t numel;
  int inDtype, outDtype;
};

struct Seg {  // piece [elem0, elem0 + numel) of tensor `t`, at these byte offsets in the slot buffers
  size_t t;
  int64_t elem0, numel;
  int64_t inOff, outOff;
};

struct Window {
  std::vector<Seg> segs;
  int64_t inBytes = 0, outBytes = 0;  // used prefix of each source region / of the output region
};

// Cuts the items into windows of at most W input bytes per source and W output bytes.
std::vector<Window> plan(const std::vector<Item>& items, int64_t W) {
  std::vector<Window> out;
  Window cur;
  for (size_t t = 0; t < items.size(); ++t) {
    const int64_t is = int64_t(dtypeSize(items[t].inDtype)), os = int64_t(dtypeSize(items[t].outDtype));
    int64_t done = 0;
    while (done < items[t].numel) {
      const int64_t inOff = alignUp(cur.inBytes, kAlign), outOff = alignUp(cur.outBytes, kAlign);
      const int64_t room = std::min((W - inOff) / is, (W - outOff) / os);
      if (room < std::min<int64_t>(items[t].numel - done, 64) && !cur.segs.empty()) {  // too little left: start a new window
        out.push_back(std::move(cur));
        cur = Window();
        continue;
      }
      // Pieces of a split tensor keep a multiple of 64 elements so each piece stays vector-sized.
      int64_t take = std::min(items[t].numel - done, room);
      if (take < items[t].numel - done) take = std::max<int64_t>(64, take / 64 * 64);
      cur.segs.push_back(Seg{t, done, take, inOff, outOff});
      cur.inBytes = inOff + take * is;
      cur.outBytes = outOff + take * os;
      done += take;
    }
  }
  if (!cur.segs.empty()) out.push_back(std::move(cur));
  return out;
}

struct Slot {
  cudaStream_t stream = nullptr;
  cudaEvent_t done = nullptr;
  char* hostIn = nullptr;   // N regions of W bytes
  char* hostOut = nullptr;  // W bytes
  char* devIn = nullptr;
  char* devOut = nullptr;
  std::unique_ptr<Interpolator> interp;
  const Window* window = nullptr;
  bool busy = false;
  ~Slot() {
    if (stream) cudaStreamSynchronize(stream);
    interp.reset();
    if (done) cudaEventDestroy(done);
    if (devIn) cudaFree(devIn);
    if (devOut) cudaFree(devOut);
    if (hostIn) cudaFreeHost(hostIn);
    if (hostOut) cudaFreeHost(hostOut);
    if (stream) cudaStreamDestroy(stream);
  }
};

using FillFn = std::function<void(const Window&, int /*source*/, char* /*region base*/)>;
using DrainFn = std::function<void(const Window&, const char* /*output region*/)>;

RunStats runPipeline(const std::vector<Item>& items, const double* weights, int n, const Progress& progress, const PipelineOptions& opt, const FillFn& fill,
                     const DrainFn& drain) {
  requireDevice();
  if (n < 1 || n > kMaxSources)
    throw std::runtime_error("[ERR_SOUP_INVALID_ARG] " + std::to_string(n) + " sources; the CUDA merge takes 1.." + std::to_string(kMaxSources));
  for (size_t t = 0; t < items.size(); ++t) {
    if (dtypeSize(items[t].inDtype) == 0 || dtypeSize(items[t].outDtype) == 0)
      throw std::runtime_error("[ERR_SOUP_INVALID_ARG] tensors[" + std::to_string(t) + "]: dtype codes " + std::to_string(items[t].inDtype) + "->" +
                               std::to_string(items[t].outDtype) + " (0..3 expected)");
    if (items[t].numel < 0) throw std::runtime_error("[ERR_SOUP_INVALID_ARG] tensors[" + std::to_string(t) + "]: numel < 0");
  }
  const auto t0 = std::chrono::steady_clock::now();
  const int K = std::max(2, opt.slots);
  // Window: as asked, no larger than the pinned budget allows, no larger than the whole job needs.
  int64_t total = 0;
  for (const Item& it : items) total += alignUp(it.numel * int64_t(std::max(dtypeSize(it.inDtype), dtypeSize(it.outDtype))), kAlign);
  int64_t W = std::max<int64_t>(1 << 20, opt.windowBytes);
  W = std::min<int64_t>(W, kMaxPinned / (int64_t(K) * (n + 1)));
  W = std::max<int64_t>(W / kAlign * kAlign, 64 * 1024);
  W = std::min<int64_t>(W, std::max<int64_t>(total, 64 * 1024));
  const std::vector<Window> windows = plan(items, W);

  RunStats st;
  for (const Item& it : items) {
    st.bytesRead += double(it.numel) * double(dtypeSize(it.inDtype)) * n;
    st.bytesWritten += double(it.numel) * double(dtypeSize(it.outDtype));
  }
  const int slotsUsed = int(std::min<size_t>(size_t(K), std::max<size_t>(1, windows.size())));
  std::vector<std::unique_ptr<Slot>> slots;
  for (int k = 0; k < slotsUsed; ++k) {
    auto s = std::make_unique<Slot>();
    SOUP_CUDA_CHECK(cudaStreamCreateWithFlags(&s->stream, cudaStreamNonBlocking));
    SOUP_CUDA_CHECK(cudaEventCreateWithFlags(&s->done, cudaEventDisableTiming));
    SOUP_CUDA_CHECK(cudaMallocHost(reinterpret_cast<void**>(&s->hostIn), size_t(W) * n));
    SOUP_CUDA_CHECK(cudaMallocHost(reinterpret_cast<void**>(&s->hostOut), size_t(W)));
    SOUP_CUDA_CHECK(cudaMalloc(reinterpret_cast<void**>(&s->devIn), size_t(W) * n));
    SOUP_CUDA_CHECK(cudaMalloc(reinterpret_cast<void**>(&s->devOut), size_t(W)));
    s->interp = std::make_unique<Interpolator>(s->stream, 1 << 14);
    slots.push_back(std::move(s));
  }

  // Writer thread: drains finished slots in window order.
  std::mutex mu;
  std::condition_variable cv;
  std::deque<Slot*> queue;
  bool stop = false;
  std::exception_ptr writerError;
  std::thread writer([&] {
    for (;;) {
      Slot* s;
      {
        std::unique_lock<std::mutex> lk(mu);
        cv.wait(lk, [&] { return stop || !queue.empty(); });
        if (queue.empty()) return;
        s = queue.front();
      }
      try {
        if (!writerError) {
          SOUP_CUDA_CHECK(cudaEventSynchronize(s->done));
          drain(*s->window, s->hostOut);
          double bytes = 0;
          for (const Seg& g : s->window->segs) bytes += double(g.numel) * double(dtypeSize(items[g.t].outDtype));
          // Added, not set: a multi-shard merge shares one counter across its calls (as the CPU path).
          if (progress.bytesDone) *progress.bytesDone = *progress.bytesDone + bytes;
        }
      } catch (...) {
        std::lock_guard<std::mutex> lk(mu);
        writerError = std::current_exception();
      }
      {
        std::lock_guard<std::mutex> lk(mu);
        queue.pop_front();
        s->busy = false;
      }
      cv.notify_all();
    }
  });
  auto finish = [&] {
    {
      std::lock_guard<std::mutex> lk(mu);
      stop = true;
    }
    cv.notify_all();
    writer.join();
  };

  int64_t launches0 = 0;
  try {
    std::vector<Segment> dsegs;
    for (size_t w = 0; w < windows.size(); ++w) {
      Slot* s = slots[w % slots.size()].get();
      {
        std::unique_lock<std::mutex> lk(mu);
        cv.wait(lk, [&] { return !s->busy || writerError; });
        if (writerError) std::rethrow_exception(writerError);
      }
      if (progress.cancel && *progress.cancel != 0) throw std::runtime_error("[ERR_SOUP_ABORTED] CUDA merge cancelled");
      const Window& win = windows[w];
      for (int i = 0; i < n; ++i) fill(win, i, s->hostIn + size_t(i) * W);
      for (int i = 0; i < n; ++i)
        SOUP_CUDA_CHECK(cudaMemcpyAsync(s->devIn + size_t(i) * W, s->hostIn + size_t(i) * W, size_t(win.inBytes), cudaMemcpyHostToDevice, s->stream));
      dsegs.resize(win.segs.size());
      for (size_t j = 0; j < win.segs.size(); ++j) {
        const Seg& g = win.segs[j];
        Segment& d = dsegs[j];
        d.out = s->devOut + g.outOff;
        for (int i = 0; i < n; ++i) d.srcs[i] = s->devIn + size_t(i) * W + g.inOff;
        d.numel = g.numel;
        d.inDtype = items[g.t].inDtype;
        d.outDtype = items[g.t].outDtype;
      }
      s->interp->run(dsegs, weights, n);
      SOUP_CUDA_CHECK(cudaMemcpyAsync(s->hostOut, s->devOut, size_t(win.outBytes), cudaMemcpyDeviceToHost, s->stream));
      SOUP_CUDA_CHECK(cudaEventRecord(s->done, s->stream));
      {
        std::lock_guard<std::mutex> lk(mu);
        s->busy = true;
        s->window = &win;
        queue.push_back(s);
      }
      cv.notify_all();
    }
    finish();
    if (writerError) std::rethrow_exception(writerError);
  } catch (...) {
    if (writer.joinable()) finish();
    throw;
  }
  for (auto& s : slots) launches0 += s->interp->launches();
  st.launches = launches0;
  st.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  st.kernel = "soup_interpolate_multi_cuda (fused multi-tensor, 16-byte vectors): " + std::to_string(st.launches) + " launches, " +
              std::to_string(windows.size()) + " windows of " + std::to_string(W >> 10) + " KiB/source on " + std::to_string(slots.size()) + " streams";
  return st;
}

std::string errnoText(int e) { return std::string(std::strerror(e)); }

// Reads exactly `len` bytes at `off`, or throws naming the file.
void preadFull(int fd, const std::string& name, char* dst, int64_t len, int64_t off) {
  while (len > 0) {
    ssize_t r = ::pread(fd, dst, size_t(std::min<int64_t>(len, 1ll << 30)), off);
    if (r < 0) {
      if (errno == EINTR) continue;
      throw std::runtime_error("[ERR_SOUP_IO] " + name + ": read at offset " + std::to_string(off) + " failed: " + errnoText(errno));
    }
    if (r == 0) throw std::runtime_error("[ERR_SOUP_IO] " + name + ": unexpected end of file at offset " + std::to_string(off));
    dst += r;
    len -= r;
    off += r;
  }
}

void pwriteFull(int fd, const std::string& name, const char* src, int64_t len, int64_t off) {
  while (len > 0) {
    ssize_t r = ::pwrite(fd, src, size_t(std::min<int64_t>(len, 1ll << 30)), off);
    if (r < 0) {
      if (errno == EINTR) continue;
      throw std::runtime_error("[ERR_SOUP_IO] " + name + ": write at offset " + std::to_string(off) + " failed: " + errnoText(errno));
    }
    src += r;
    len -= r;
    off += r;
  }
}

// Vectored I/O over runs of segments that are contiguous in the file (safetensors stores tensors back
// to back): one system call per run instead of one per tensor.
struct IoRun {
  std::vector<iovec> iov;
  int64_t off = -1, len = 0;
};

template <class Op>
void flushRun(IoRun& r, Op op) {
  if (r.iov.empty()) return;
  op(r);
  r.iov.clear();
  r.len = 0;
  r.off = -1;
}

}  // namespace

Resident::Resident(const std::vector<HostTensor>& tensors, int n) : n_(n) {
  requireDevice();
  if (n < 1 || n > kMaxSources)
    throw std::runtime_error("[ERR_SOUP_INVALID_ARG] " + std::to_string(n) + " sources; the CUDA kernel takes 1.." + std::to_string(kMaxSources));
  // Layout: source i's copy of tensor t at devIn_ + i * inStride + inOff[t]; outputs at devOut_ + outOff[t].
  std::vector<int64_t> inOff;
  int64_t inStride = 0;
  for (size_t t = 0; t < tensors.size(); ++t) {
    const HostTensor& h = tensors[t];
    if (dtypeSize(h.inDtype) == 0 || dtypeSize(h.outDtype) == 0)
      throw std::runtime_error("[ERR_SOUP_INVALID_ARG] tensors[" + std::to_string(t) + "]: dtype codes " + std::to_string(h.inDtype) + "->" +
                               std::to_string(h.outDtype) + " (0..3 expected)");
    if (h.numel < 0) throw std::runtime_error("[ERR_SOUP_INVALID_ARG] tensors[" + std::to_string(t) + "]: numel < 0");
    inOff.push_back(inStride);
    inStride += alignUp(h.numel * int64_t(dtypeSize(h.inDtype)), kAlign);
    outOff_.push_back(outBytes_);
    outBytes_ += alignUp(h.numel * int64_t(dtypeSize(h.outDtype)), kAlign);
    numel_.push_back(h.numel);
    outDt_.push_back(h.outDtype);
  }
  auto cleanup = [&] {
    if (devIn_) cudaFree(devIn_);
    if (devOut_) cudaFree(devOut_);
    if (hostOut_) cudaFreeHost(hostOut_);
    if (stream_) cudaStreamDestroy(static_cast<cudaStream_t>(stream_));
    devIn_ = devOut_ = hostOut_ = nullptr;
    stream_ = nullptr;
  };
  try {
    cudaStream_t st;
    SOUP_CUDA_CHECK(cudaStreamCreateWithFlags(&st, cudaStreamNonBlocking));
    stream_ = st;
    SOUP_CUDA_CHECK(cudaMalloc(reinterpret_cast<void**>(&devIn_), size_t(std::max<int64_t>(inStride, 1)) * n));
    SOUP_CUDA_CHECK(cudaMalloc(reinterpret_cast<void**>(&devOut_), size_t(std::max<int64_t>(outBytes_, 1))));
    SOUP_CUDA_CHECK(cudaMallocHost(reinterpret_cast<void**>(&hostOut_), size_t(std::max<int64_t>(outBytes_, 1))));
    deviceBytes_ = double(inStride) * n + double(outBytes_);
    std::vector<Segment> segs;
    for (size_t t = 0; t < tensors.size(); ++t) {
      const HostTensor& h = tensors[t];
      const size_t bytes = size_t(h.numel) * dtypeSize(h.inDtype);
      Segment g{};
      g.out = devOut_ + outOff_[t];
      g.numel = h.numel;
      g.inDtype = h.inDtype;
      g.outDtype = h.outDtype;
      for (int i = 0; i < n; ++i) {
        char* dst = devIn_ + size_t(i) * size_t(inStride) + size_t(inOff[t]);
        if (bytes) SOUP_CUDA_CHECK(cudaMemcpy(dst, h.srcs[i], bytes, cudaMemcpyHostToDevice));
        g.srcs[i] = dst;
      }
      segs.push_back(g);
    }
    plan_ = new Plan(segs, n);
    mu_ = new std::mutex;
  } catch (...) {
    cleanup();
    throw;
  }
}

Resident::~Resident() {
  if (stream_) cudaStreamSynchronize(static_cast<cudaStream_t>(stream_));
  delete plan_;
  delete static_cast<std::mutex*>(mu_);
  if (devIn_) cudaFree(devIn_);
  if (devOut_) cudaFree(devOut_);
  if (hostOut_) cudaFreeHost(hostOut_);
  if (stream_) cudaStreamDestroy(static_cast<cudaStream_t>(stream_));
}

RunStats Resident::run(const double* weights, const std::vector<void*>& outs) {
  if (outs.size() != numel_.size())
    throw std::runtime_error("[ERR_SOUP_INVALID_ARG] " + std::to_string(outs.size()) + " outputs for " + std::to_string(numel_.size()) + " tensors");
  std::lock_guard<std::mutex> lk(*static_cast<std::mutex*>(mu_));
  const auto t0 = std::chrono::steady_clock::now();
  cudaStream_t st = static_cast<cudaStream_t>(stream_);
  plan_->run(weights, st);
  SOUP_CUDA_CHECK(cudaMemcpyAsync(hostOut_, devOut_, size_t(outBytes_), cudaMemcpyDeviceToHost, st));
  SOUP_CUDA_CHECK(cudaStreamSynchronize(st));
  RunStats rs;
  for (size_t t = 0; t < numel_.size(); ++t) {
    const size_t bytes = size_t(numel_[t]) * dtypeSize(outDt_[t]);
    if (bytes) std::memcpy(outs[t], hostOut_ + outOff_[t], bytes);
    rs.bytesWritten += double(bytes);
  }
  rs.launches = plan_->launchesPerRun();
  rs.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  rs.kernel = "soup_interpolate_multi_cuda (resident sources, " + std::to_string(rs.launches) + " launches per run)";
  return rs;
}

RunStats interpolateHost(const std::vector<HostTensor>& tensors, const double* weights, int n, const Progress& progress, const PipelineOptions& opt) {
  std::vector<Item> items;
  items.reserve(tensors.size());
  for (size_t t = 0; t < tensors.size(); ++t) {
    const HostTensor& h = tensors[t];
    items.push_back(Item{h.numel, h.inDtype, h.outDtype});
    if (h.numel > 0 && !h.out) throw std::runtime_error("[ERR_SOUP_INVALID_ARG] outs[" + std::to_string(t) + "] is null");
  }
  FillFn fill = [&](const Window& win, int i, char* base) {
    for (const Seg& g : win.segs) {
      const HostTensor& h = tensors[g.t];
      const size_t is = dtypeSize(h.inDtype);
      std::memcpy(base + g.inOff, static_cast<const char*>(h.srcs[i]) + size_t(g.elem0) * is, size_t(g.numel) * is);
    }
  };
  DrainFn drain = [&](const Window& win, const char* base) {
    for (const Seg& g : win.segs) {
      const HostTensor& h = tensors[g.t];
      const size_t os = dtypeSize(h.outDtype);
      std::memcpy(static_cast<char*>(h.out) + size_t(g.elem0) * os, base + g.outOff, size_t(g.numel) * os);
    }
  };
  return runPipeline(items, weights, n, progress, opt, fill, drain);
}

RunStats mergeFiles(const std::vector<std::string>& files, const std::string& outPath, const uint8_t* header, size_t headerBytes,
                    const std::vector<FileTensor>& tensors, const double* weights, int n, const Progress& progress, const PipelineOptions& opt) {
  requireDevice();
  if (n < 1 || n > kMaxSources)
    throw std::runtime_error("[ERR_SOUP_INVALID_ARG] mergeFiles: " + std::to_string(n) + " weights; the CUDA merge takes 1.." + std::to_string(kMaxSources));
  // Open every source and check each tensor's byte range against its file's size before any work.
  struct Fd {
    int fd = -1;
    ~Fd() {
      if (fd >= 0) ::close(fd);
    }
  };
  std::vector<Fd> fds(files.size());
  std::vector<int64_t> sizes(files.size());
  for (size_t f = 0; f < files.size(); ++f) {
    fds[f].fd = ::open(files[f].c_str(), O_RDONLY | O_CLOEXEC);
    if (fds[f].fd < 0) throw std::runtime_error("[ERR_SOUP_IO] " + files[f] + ": cannot open: " + errnoText(errno));
    struct stat sb;
    if (::fstat(fds[f].fd, &sb) != 0) throw std::runtime_error("[ERR_SOUP_IO] " + files[f] + ": stat failed: " + errnoText(errno));
    sizes[f] = int64_t(sb.st_size);
#ifdef POSIX_FADV_SEQUENTIAL
    ::posix_fadvise(fds[f].fd, 0, 0, POSIX_FADV_SEQUENTIAL);
#endif
  }
  std::vector<Item> items;
  items.reserve(tensors.size());
  for (size_t t = 0; t < tensors.size(); ++t) {
    const FileTensor& ft = tensors[t];
    items.push_back(Item{ft.numel, ft.inDtype, ft.outDtype});
    const int64_t bytes = ft.numel * int64_t(dtypeSize(ft.inDtype));
    for (int i = 0; i < n; ++i) {
      const int f = ft.srcFile[i];
      if (f < 0 || size_t(f) >= files.size())
        throw std::runtime_error("[ERR_SOUP_INVALID_ARG] tensors[" + std::to_string(t) + "].srcFile[" + std::to_string(i) + "] = " + std::to_string(f) +
                                 " is not a file index (0.." + std::to_string(files.size()) + ")");
      if (ft.srcOffset[i] < 0 || ft.srcOffset[i] + bytes > sizes[f])
        throw std::runtime_error("[ERR_SOUP_FORMAT] tensors[" + std::to_string(t) + "] source " + std::to_string(i) + ": bytes [" +
                                 std::to_string(ft.srcOffset[i]) + ", " + std::to_string(ft.srcOffset[i] + bytes) + ") lie outside " + files[f] + " (" +
                                 std::to_string(sizes[f]) + " bytes)");
    }
  }
  Fd out;
  out.fd = ::open(outPath.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (out.fd < 0) throw std::runtime_error("[ERR_SOUP_IO] " + outPath + ": cannot create: " + errnoText(errno));
  pwriteFull(out.fd, outPath, reinterpret_cast<const char*>(header), int64_t(headerBytes), 0);
  // Output offset of each tensor: contiguous after the header, in order.
  std::vector<int64_t> outAt(tensors.size());
  int64_t pos = int64_t(headerBytes);
  for (size_t t = 0; t < tensors.size(); ++t) {
    outAt[t] = pos;
    pos += tensors[t].numel * int64_t(dtypeSize(tensors[t].outDtype));
  }

  FillFn fill = [&](const Window& win, int i, char* base) {
    IoRun run;
    int runFile = -1;
    auto doRead = [&](IoRun& r) {
      int64_t off = r.off;
      size_t k = 0;
      while (k < r.iov.size()) {  // preadv may return short: finish the rest piece by piece
        const int cnt = int(std::min<size_t>(r.iov.size() - k, IOV_MAX));
        ssize_t got = ::preadv(fds[runFile].fd, &r.iov[k], cnt, off);
        if (got < 0 && errno == EINTR) continue;
        if (got <= 0) {
          // Fall back to exact reads for a clear message (EOF or errno).
          for (; k < r.iov.size(); ++k) {
            preadFull(fds[runFile].fd, files[runFile], static_cast<char*>(r.iov[k].iov_base), int64_t(r.iov[k].iov_len), off);
            off += int64_t(r.iov[k].iov_len);
          }
          return;
        }
        off += got;
        while (got > 0 && k < r.iov.size()) {
          if (size_t(got) >= r.iov[k].iov_len) {
            got -= ssize_t(r.iov[k].iov_len);
            ++k;
          } else {
            r.iov[k].iov_base = static_cast<char*>(r.iov[k].iov_base) + got;
            r.iov[k].iov_len -= size_t(got);
            got = 0;
          }
        }
      }
    };
    for (const Seg& g : win.segs) {
      const FileTensor& ft = tensors[g.t];
      const int64_t is = int64_t(dtypeSize(ft.inDtype));
      const int f = ft.srcFile[i];
      const int64_t off = ft.srcOffset[i] + g.elem0 * is, len = g.numel * is;
      if (f != runFile || off != run.off + run.len) {
        flushRun(run, doRead);
        runFile = f;
        run.off = off;
      }
      run.iov.push_back(iovec{base + g.inOff, size_t(len)});
      run.len += len;
    }
    flushRun(run, doRead);
  };
  DrainFn drain = [&](const Window& win, const char* base) {
    // The window's outputs are contiguous in the file: one pwritev (or a few) per window.
    IoRun run;
    auto doWrite = [&](IoRun& r) {
      int64_t off = r.off;
      for (const iovec& v : r.iov) {  // pwritev of whole runs; short writes finished by pwriteFull
        pwriteFull(out.fd, outPath, static_cast<const char*>(v.iov_base), int64_t(v.iov_len), off);
        off += int64_t(v.iov_len);
      }
    };
    auto doWritev = [&](IoRun& r) {
      size_t k = 0;
      int64_t off = r.off;
      while (k < r.iov.size()) {
        const int cnt = int(std::min<size_t>(r.iov.size() - k, IOV_MAX));
        ssize_t put = ::pwritev(out.fd, &r.iov[k], cnt, off);
        if (put < 0 && errno == EINTR) continue;
        if (put < 0) throw std::runtime_error("[ERR_SOUP_IO] " + outPath + ": write at offset " + std::to_string(off) + " failed: " + errnoText(errno));
        off += put;
        while (put > 0 && k < r.iov.size()) {
          if (size_t(put) >= r.iov[k].iov_len) {
            put -= ssize_t(r.iov[k].iov_len);
            ++k;
          } else {
            IoRun rest;
            rest.off = off;
            rest.iov.assign(r.iov.begin() + ptrdiff_t(k), r.iov.end());
            rest.iov[0].iov_base = static_cast<char*>(rest.iov[0].iov_base) + put;
            rest.iov[0].iov_len -= size_t(put);
            doWrite(rest);
            return;
          }
        }
      }
    };
    for (const Seg& g : win.segs) {
      const int64_t os = int64_t(dtypeSize(tensors[g.t].outDtype));
      const int64_t off = outAt[g.t] + g.elem0 * os, len = g.numel * os;
      if (off != run.off + run.len) {
        flushRun(run, doWritev);
        run.off = off;
      }
      run.iov.push_back(iovec{const_cast<char*>(base + g.outOff), size_t(len)});
      run.len += len;
    }
    flushRun(run, doWritev);
  };
  RunStats st = runPipeline(items, weights, n, progress, opt, fill, drain);
  if (::fsync(out.fd) != 0) throw std::runtime_error("[ERR_SOUP_IO] " + outPath + ": fsync failed: " + errnoText(errno));
  st.bytesWritten += double(headerBytes);
  return st;
}

}  // namespace cuda
}  // namespace soup
