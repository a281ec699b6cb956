// SPDX-License-Identifier: MIT
// soup_cuda_bench: is a GPU file merge bounded by the disk / host link, or by the kernel?
//   ./soup_cuda_bench --dir /tmp/x --n 4 --mib 1024 [--json out.json]
// Writes N bf16 source files (random, never zero), then times, each from a cold page cache
// (posix_fadvise DONTNEED on the files, nothing global): a plain read of all source bytes, a plain write
// + fsync of the output's bytes, pinned H2D/D2H copies of the same bytes, the kernel alone on
// device-resident copies (Plan::run), and the whole mergeFiles. The merge is "bounded by I/O" when its
// time is near max(read, write, link) and far above the kernel's.
#include <cuda_runtime_api.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <stdexcept>
#include <string>
#include <vector>

#include "soup_cuda.h"

namespace sc = soup::cuda;

#define CK(call)                                                                                         \
  do {                                                                                                   \
    cudaError_t e_ = (call);                                                                             \
    if (e_ != cudaSuccess) throw std::runtime_error(std::string(#call) + ": " + cudaGetErrorString(e_)); \
  } while (0)

static double now() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }

static void dropCache(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY);
  if (fd < 0) return;
  ::fdatasync(fd);
  ::posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
  ::close(fd);
}

int main(int argc, char** argv) {
  std::string dir = "/tmp/soup_bench", json;
  int n = 4;
  int64_t mib = 1024;
  for (int a = 1; a + 1 < argc; a += 2) {
    std::string k = argv[a], v = argv[a + 1];
    if (k == "--dir")
      dir = v;
    else if (k == "--n")
      n = std::atoi(v.c_str());
    else if (k == "--mib")
      mib = std::atoll(v.c_str());
    else if (k == "--json")
      json = v;
  }
  try {
    if (sc::deviceCount() == 0) {
      std::printf("soup_cuda_bench: SKIP: %s\n", sc::noDeviceReason().c_str());
      return 0;
    }
    std::printf("device: %s\n", sc::deviceSummary().c_str());
    ::mkdir(dir.c_str(), 0755);
    // Layout: per source, a 4 KiB "header", then tensors of 16 Mi elements and a few odd small ones.
    const int64_t perSource = mib << 20;
    std::vector<int64_t> numels;
    int64_t used = 0;
    while (used + (32ll << 20) <= perSource) {
      numels.push_back(16ll << 20);
      used += 32ll << 20;
    }
    for (int64_t s : {4097ll, 65537ll, 333ll, 1ll << 20}) numels.push_back(s), used += 2 * s;
    const int64_t header = 4096;
    std::vector<std::string> files;
    std::vector<sc::FileTensor> fts(numels.size());
    std::vector<uint16_t> buf(16ll << 20);
    uint64_t x = 0x9E3779B97F4A7C15ull;
    const double tw0 = now();
    for (int i = 0; i < n; ++i) {
      std::string p = dir + "/src" + std::to_string(i) + ".bin";
      FILE* f = std::fopen(p.c_str(), "wb");
      if (!f) throw std::runtime_error("cannot create " + p);
      std::vector<char> h(header, 'h');
      std::fwrite(h.data(), 1, h.size(), f);
      int64_t off = header;
      for (size_t t = 0; t < numels.size(); ++t) {
        for (int64_t k = 0; k < numels[t]; ++k) {  // xorshift -> bf16 in +-[2^-7, 2), never zero
          x ^= x << 13, x ^= x >> 7, x ^= x << 17;
          buf[k] = uint16_t(((x >> 20) & 1) << 15 | (120 + ((x >> 8) & 7)) << 7 | (x & 0x7f));
        }
        std::fwrite(buf.data(), 2, size_t(numels[t]), f);
        fts[t].numel = numels[t];
        fts[t].inDtype = fts[t].outDtype = sc::kBF16;
        fts[t].srcFile[i] = i;
        fts[t].srcOffset[i] = off;
        off += 2 * numels[t];
      }
      std::fclose(f);
      files.push_back(p);
    }
    for (auto& p : files) dropCache(p);
    const double inBytes = double(used) * n, outBytes = double(used);
    std::printf("wrote %d sources of %.0f MiB in %.1f s\n", n, used / 1048576.0, now() - tw0);

    // 1. plain read of every source byte (64 MiB preads into pinned memory), cold cache
    char* pin = nullptr;
    CK(cudaMallocHost(reinterpret_cast<void**>(&pin), 64 << 20));
    double t0 = now();
    for (auto& p : files) {
      int fd = ::open(p.c_str(), O_RDONLY);
      int64_t off = header;
      while (off < header + used) {
        ssize_t r = ::pread(fd, pin, size_t(std::min<int64_t>(64 << 20, header + used - off)), off);
        if (r <= 0) throw std::runtime_error("read failed");
        off += r;
      }
      ::close(fd);
    }
    const double readS = now() - t0;
    for (auto& p : files) dropCache(p);

    // 2. plain write + fsync of the output's bytes
    const std::string outPath = dir + "/out.bin";
    t0 = now();
    {
      int fd = ::open(outPath.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      for (int64_t off = 0; off < used; off += 64 << 20)
        if (::pwrite(fd, pin, size_t(std::min<int64_t>(64 << 20, used - off)), off) < 0) throw std::runtime_error("write failed");
      ::fsync(fd);
      ::close(fd);
    }
    const double writeS = now() - t0;
    ::unlink(outPath.c_str());

    // 3. pinned host link, both directions (64 MiB copies, enough of them to move the same bytes)
    char* dbuf = nullptr;
    CK(cudaMalloc(reinterpret_cast<void**>(&dbuf), 64 << 20));
    CK(cudaMemcpy(dbuf, pin, 64 << 20, cudaMemcpyHostToDevice));
    cudaEvent_t e0, e1;
    CK(cudaEventCreate(&e0));
    CK(cudaEventCreate(&e1));
    auto timeCopies = [&](cudaMemcpyKind kind, int reps) {
      CK(cudaEventRecord(e0));
      for (int r = 0; r < reps; ++r)
        CK(cudaMemcpyAsync(kind == cudaMemcpyHostToDevice ? dbuf : pin, kind == cudaMemcpyHostToDevice ? pin : dbuf, 64 << 20, kind));
      CK(cudaEventRecord(e1));
      CK(cudaEventSynchronize(e1));
      float ms = 0;
      CK(cudaEventElapsedTime(&ms, e0, e1));
      return double(reps) * (64 << 20) / (ms / 1e3);
    };
    const double h2d = timeCopies(cudaMemcpyHostToDevice, 32), d2h = timeCopies(cudaMemcpyDeviceToHost, 32);
    const double linkS = inBytes / h2d + outBytes / d2h;

    // 4. kernel alone on device-resident copies of the same sizes
    std::vector<char*> dsrc(n);
    char* dout = nullptr;
    for (int i = 0; i < n; ++i) {
      CK(cudaMalloc(reinterpret_cast<void**>(&dsrc[i]), size_t(used) + 256 * numels.size()));
      CK(cudaMemset(dsrc[i], 0x3c, size_t(used) + 256 * numels.size()));
    }
    CK(cudaMalloc(reinterpret_cast<void**>(&dout), size_t(used) + 256 * numels.size()));
    std::vector<sc::Segment> segs(numels.size());
    int64_t off = 0;
    for (size_t t = 0; t < numels.size(); ++t) {
      std::memset(&segs[t], 0, sizeof segs[t]);
      segs[t].out = dout + off;
      for (int i = 0; i < n; ++i) segs[t].srcs[i] = dsrc[i] + off;
      segs[t].numel = numels[t];
      segs[t].inDtype = segs[t].outDtype = sc::kBF16;
      off += (2 * numels[t] + 255) / 256 * 256;
    }
    std::vector<double> w(n, 1.0 / n);
    double kernelS;
    {
      sc::Plan plan(segs, n);
      plan.run(w.data());
      CK(cudaDeviceSynchronize());
      CK(cudaEventRecord(e0));
      for (int r = 0; r < 10; ++r) plan.run(w.data());
      CK(cudaEventRecord(e1));
      CK(cudaEventSynchronize(e1));
      float ms = 0;
      CK(cudaEventElapsedTime(&ms, e0, e1));
      kernelS = ms / 1e3 / 10;
    }
    for (int i = 0; i < n; ++i) cudaFree(dsrc[i]);
    cudaFree(dout);
    cudaFree(dbuf);
    cudaFreeHost(pin);

    // 5. the whole file merge, cold cache
    std::vector<uint8_t> hdr(header, 'H');
    const sc::RunStats st = sc::mergeFiles(files, outPath, hdr.data(), hdr.size(), fts, w.data(), n, {});
    const double mergeS = st.seconds;
    struct stat sb;
    ::stat(outPath.c_str(), &sb);
    if (double(sb.st_size) != double(header) + outBytes) throw std::runtime_error("merge output has the wrong size");
    ::unlink(outPath.c_str());
    for (auto& p : files) ::unlink(p.c_str());

    const double bound = std::max({readS, writeS, linkS});
    std::printf(
        "file merge N=%d bf16, %.0f MiB/source: merge %.3f s | read %.3f s (%.2f GB/s) | write+fsync %.3f s (%.2f GB/s) | "
        "link %.3f s (H2D %.1f, D2H %.1f GB/s) | kernel %.4f s\n",
        n, used / 1048576.0, mergeS, readS, inBytes / readS / 1e9, writeS, outBytes / writeS / 1e9, linkS, h2d / 1e9, d2h / 1e9, kernelS);
    std::printf("merge / max(read, write, link) = %.2f; kernel share of merge time = %.1f%%; %s\n", mergeS / bound, 100 * kernelS / mergeS, st.kernel.c_str());
    if (!json.empty()) {
      FILE* f = std::fopen(json.c_str(), "w");
      if (f) {
        std::fprintf(f,
                     "{\"n\":%d,\"dtype\":\"bf16\",\"bytesPerSource\":%lld,\"mergeS\":%.6f,\"readS\":%.6f,\"writeS\":%.6f,\"linkS\":%.6f,"
                     "\"h2dBps\":%.0f,\"d2hBps\":%.0f,\"kernelS\":%.6f,\"mergeOverBound\":%.4f,\"kernelShare\":%.4f,\"kernel\":\"%s\"}\n",
                     n, (long long)used, mergeS, readS, writeS, linkS, h2d, d2h, kernelS, mergeS / bound, kernelS / mergeS, st.kernel.c_str());
        std::fclose(f);
      }
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "soup_cuda_bench: %s\n", e.what());
    return 1;
  }
  return 0;
}
