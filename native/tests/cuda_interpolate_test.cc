// SPDX-License-Identifier: MIT
// soup_cuda_tests: the CUDA interpolation kernel against CPU references, without Node.
//   ./soup_cuda_tests            all tests (GPU tests print "SKIP ... <reason>" without a device)
//   ./soup_cuda_tests --seed S   other random data (every run draws fresh data from the seed; default: time)
// Checks: every (input, output) dtype pair, N in {1, 2, 3, 8, 16}, sizes around the 16-byte vector
// width and the 65536-element chunk (65536 +- 1, 3*65536 + 5, ...), unaligned pointers (scalar path),
// thousands of tiny tensors with a table small enough to force refills, NaN/inf propagation, poisoned
// outputs with guard zones, the pinned-buffer pipeline (host memory and files) and its errors.
// Results must equal the exact CPU formula bit for bit (NaN: both NaN) and the float64 reference within
// (N + 1) * eps_acc * sum|l_i x_i| + eps_out * |ref| (+ half an fp16 subnormal step).
// Last line: "N passed, N failed" (and ", N skipped"). --quick: N in {1, 3, 16}, 2000 tiny tensors.
#include <cuda_runtime_api.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <iterator>
#include <memory>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include "reference.h"
#include "soup_cuda.h"

namespace sc = soup::cuda;

static int passed = 0, failed = 0, skipped = 0;
static bool quick = false;  // --quick: fewer N values and tiny tensors (the CPU emulation in CI)

#define EXPECT(cond, ...)                                         \
  do {                                                            \
    if (!(cond)) {                                                \
      std::fprintf(stderr, "  FAIL %s:%d: ", __FILE__, __LINE__); \
      std::fprintf(stderr, __VA_ARGS__);                          \
      std::fprintf(stderr, "\n");                                 \
      throw std::runtime_error("expectation failed");             \
    }                                                             \
  } while (0)

static void test(const char* name, const std::function<void()>& fn) {
  try {
    fn();
    ++passed;
    std::printf("ok   %s\n", name);
  } catch (const std::exception& e) {
    ++failed;
    std::printf("FAIL %s: %s\n", name, e.what());
  }
  std::fflush(stdout);
}

static bool hasDevice() { return sc::deviceCount() > 0; }

static void gpuTest(const char* name, const std::function<void()>& fn) {
  if (!hasDevice()) {
    ++skipped;
    std::printf("SKIP %s: %s\n", name, sc::noDeviceReason().c_str());
    return;
  }
  test(name, fn);
}

static void expectThrows(const std::function<void()>& fn, const char* code) {
  try {
    fn();
  } catch (const std::exception& e) {
    EXPECT(std::strstr(e.what(), code) == e.what() + 1, "expected an error starting [%s], got: %s", code, e.what());
    return;
  }
  EXPECT(false, "expected an error [%s], none thrown", code);
}

#define CK(call)                                                                                         \
  do {                                                                                                   \
    cudaError_t e_ = (call);                                                                             \
    if (e_ != cudaSuccess) throw std::runtime_error(std::string(#call) + ": " + cudaGetErrorString(e_)); \
  } while (0)

// ---------------------------------------------------------------------------------------------------
// Host-side checks (no GPU needed): the reference conversions themselves.

static void selfTestConversions() {
  // fp16 -> fp32: every one of the 65536 patterns against the compiler's _Float16.
  for (uint32_t h = 0; h < 65536; ++h) {
    _Float16 x;
    uint16_t hb = uint16_t(h);
    std::memcpy(&x, &hb, 2);
    const float want = float(x), got = ref::halfToFloat(hb);
    if (std::isnan(want))
      EXPECT(std::isnan(got), "halfToFloat(%04x) not NaN", h);
    else
      EXPECT(ref::bits(want) == ref::bits(got), "halfToFloat(%04x) = %a, want %a", h, got, want);
  }
  // fp32 -> fp16: random bit patterns over the whole range, plus the rounding edges.
  std::mt19937 rng(7);
  std::vector<uint32_t> cases = {0x477fefffu, 0x477ff000u, 0x33000000u, 0x33000001u, 0x387fe000u, 0x387ff000u,
                                 0x3f801000u, 0x3f803000u, 0x7f800000u, 0x80000001u, 0x00000000u, 0xc77ff000u};
  for (int k = 0; k < 2000000; ++k) cases.push_back(rng());
  for (uint32_t u : cases) {
    const float f = ref::fromBits(u);
    const _Float16 want = (_Float16)f;
    uint16_t wb;
    std::memcpy(&wb, &want, 2);
    const uint16_t got = ref::floatToHalf(f);
    if (std::isnan(f))
      EXPECT((got & 0x7c00) == 0x7c00 && (got & 0x3ff), "floatToHalf(NaN) = %04x", got);
    else
      EXPECT(got == wb, "floatToHalf(%08x) = %04x, want %04x", u, got, wb);
  }
  // bf16: round to nearest even at the tie, carry into the exponent, overflow to inf, NaN.
  EXPECT(ref::floatToBf16(1.0f) == 0x3f80, "bf16(1)");
  EXPECT(ref::floatToBf16(ref::fromBits(0x3f808000u)) == 0x3f80, "tie to even (down)");
  EXPECT(ref::floatToBf16(ref::fromBits(0x3f818000u)) == 0x3f82, "tie to even (up)");
  EXPECT(ref::floatToBf16(ref::fromBits(0x3f808001u)) == 0x3f81, "above the tie");
  EXPECT(ref::floatToBf16(ref::fromBits(0x7f7fffffu)) == 0x7f80, "overflow to inf");
  EXPECT(ref::floatToBf16(std::nanf("")) == 0x7fc0, "NaN");
  EXPECT(ref::bf16ToFloat(0xc0a0) == -5.0f, "bf16 widen");
}

// ---------------------------------------------------------------------------------------------------
// Device buffers with a poisoned guard zone after each output.

constexpr int64_t kGuard = 37;  // elements after each output that nobody may write

struct Dev {  // a device allocation, shared by copies (cases are copied around in vectors)
  std::shared_ptr<void> mem;
  size_t bytes = 0;
  Dev() = default;
  explicit Dev(size_t b) : bytes(b) {
    void* q = nullptr;
    CK(cudaMalloc(&q, std::max<size_t>(b, 1)));
    mem.reset(q, [](void* x) { cudaFree(x); });
  }
  void* ptr() const { return mem.get(); }
};

struct Case {
  int inDt, outDt;
  int64_t numel;
  int misalign = 0;  // elements by which the sources are offset (0: aligned)
  std::vector<std::vector<uint8_t>> srcHost;
  std::vector<Dev> srcDev;
  Dev outDev;
};

static double epsOf(int dt) {
  return dt == ref::F32 ? std::ldexp(1.0, -24) : dt == ref::F16 ? std::ldexp(1.0, -11) : dt == ref::BF16 ? std::ldexp(1.0, -8) : std::ldexp(1.0, -53);
}

// Checks out (host copy: numel elements, then any guard bytes) against both references.
static void checkOutput(const Case& c, const std::vector<uint8_t>& out, const std::vector<double>& w, const char* what) {
  const int n = int(w.size());
  const size_t os = ref::size(c.outDt), is = ref::size(c.inDt);
  std::vector<const void*> srcs(n);
  for (int i = 0; i < n; ++i) srcs[i] = c.srcHost[i].data() + c.misalign * is;
  std::vector<uint8_t> want(os);
  const double epsAcc = c.inDt == ref::F64 ? std::ldexp(1.0, -53) : std::ldexp(1.0, -24);
  const double epsOut = epsOf(c.outDt);
  for (int64_t k = 0; k < c.numel; ++k) {
    ref::exact(srcs, c.inDt, k, w, c.outDt, want.data());
    const double got = ref::load(out.data(), c.outDt, k), wantV = ref::load(want.data(), c.outDt, 0);
    if (std::isnan(wantV)) {
      EXPECT(std::isnan(got), "%s: %s->%s numel %lld N %d: element %lld = %g, want NaN", what, sc::dtypeName(c.inDt), sc::dtypeName(c.outDt),
             (long long)c.numel, n, (long long)k, got);
      continue;
    }
    EXPECT(std::memcmp(out.data() + k * os, want.data(), os) == 0, "%s: %s->%s numel %lld N %d: element %lld = %.9g, exact CPU formula %.9g", what,
           sc::dtypeName(c.inDt), sc::dtypeName(c.outDt), (long long)c.numel, n, (long long)k, got, wantV);
    double scale;
    const double r64 = ref::exact64(srcs, c.inDt, k, w, &scale);
    if (std::isfinite(r64)) {
      const double tol = (n + 1) * epsAcc * scale + epsOut * std::fabs(r64) + std::ldexp(1.0, -25);
      EXPECT(std::fabs(got - r64) <= tol, "%s: element %lld = %.9g, float64 ref %.12g (tol %.3g)", what, (long long)k, got, r64, tol);
    }
  }
  // Guard zone: still the poison.
  for (size_t b = size_t(c.numel) * os; b < out.size(); ++b) EXPECT(out[b] == 0xA5, "%s: guard byte %zu after the output was written", what, b);
}

static std::vector<double> randomWeights(int n, std::mt19937_64& rng) {
  std::uniform_real_distribution<double> u(-1.0, 1.0);
  std::vector<double> w(n);
  for (double& x : w) {
    do x = u(rng);
    while (std::fabs(x) < 1e-3);
  }
  return w;
}

// Runs the kernel on a list of cases in one Interpolator::run and checks each.
/** Gives a case n host sources of random values of its dtype (numel + misalign elements each). */
static void fillSources(Case& c, int n, std::mt19937_64& rng) {
  c.srcHost.assign(n, {});
  for (int i = 0; i < n; ++i) {
    c.srcHost[i].resize((c.numel + c.misalign) * ref::size(c.inDt));
    ref::fillRandom(c.srcHost[i].data(), c.inDt, c.numel + c.misalign, rng);
  }
}

static int64_t runCases(std::vector<Case>& cases, int n, std::mt19937_64& rng, int64_t tableCap = 1 << 16, const char* what = "") {
  std::vector<sc::Segment> segs;
  for (Case& c : cases) {
    const size_t is = ref::size(c.inDt), os = ref::size(c.outDt);
    c.srcHost.assign(n, {});
    c.srcDev.clear();
    sc::Segment s{};
    for (int i = 0; i < n; ++i) {
      c.srcHost[i].resize((c.numel + c.misalign) * is);
      ref::fillRandom(c.srcHost[i].data(), c.inDt, c.numel + c.misalign, rng);
      c.srcDev.emplace_back(c.srcHost[i].size());
      CK(cudaMemcpy(c.srcDev.back().ptr(), c.srcHost[i].data(), c.srcHost[i].size(), cudaMemcpyHostToDevice));
      s.srcs[i] = static_cast<char*>(c.srcDev.back().ptr()) + c.misalign * is;
    }
    c.outDev = Dev((c.numel + kGuard + c.misalign) * os);
    CK(cudaMemset(c.outDev.ptr(), 0xA5, c.outDev.bytes));  // poison: NaN in every float format
    s.out = static_cast<char*>(c.outDev.ptr()) + c.misalign * os;
    s.numel = c.numel;
    s.inDtype = c.inDt;
    s.outDtype = c.outDt;
    segs.push_back(s);
  }
  const std::vector<double> w = randomWeights(n, rng);
  sc::Interpolator interp(nullptr, tableCap);
  interp.run(segs, w.data(), n);
  CK(cudaDeviceSynchronize());
  for (Case& c : cases) {
    const size_t os = ref::size(c.outDt);
    std::vector<uint8_t> out((c.numel + kGuard) * os);
    CK(cudaMemcpy(out.data(), static_cast<char*>(c.outDev.ptr()) + c.misalign * os, out.size(), cudaMemcpyDeviceToHost));
    checkOutput(c, out, w, what);
  }
  return interp.launches();
}

static const int64_t kSizes[] = {1,  2,   3,    7,    8,    9,     15,    16,    17,     31,     33,     63,           64,
                                 65, 255, 1000, 4097, 8191, 65535, 65536, 65537, 131071, 131072, 131073, 3 * 65536 + 5};

// ---------------------------------------------------------------------------------------------------

int main(int argc, char** argv) {
  uint64_t seed = uint64_t(std::chrono::steady_clock::now().time_since_epoch().count());
  for (int a = 1; a + 1 < argc; ++a)
    if (std::string(argv[a]) == "--seed") seed = std::strtoull(argv[a + 1], nullptr, 10);
  for (int a = 1; a < argc; ++a)
    if (std::string(argv[a]) == "--quick") quick = true;
  std::printf("soup_cuda_tests: seed %llu; device: %s\n", (unsigned long long)seed, hasDevice() ? sc::deviceSummary().c_str() : sc::noDeviceReason().c_str());
  std::mt19937_64 rng(seed);

  if (!quick) test("reference conversions match _Float16 and bf16 rounding rules", selfTestConversions);
  test("kernel variants: 0 always; anything else refused unless compiled", [] {
    EXPECT(sc::setKernelVariant(0), "variant 0");
    EXPECT(!sc::setKernelVariant(7), "variant 7 accepted");
  });
  test("compiled() and a device count that never throws", [] {
    EXPECT(sc::compiled(), "compiled");
    EXPECT(sc::deviceCount() >= 0, "count");
    if (!hasDevice()) EXPECT(!sc::noDeviceReason().empty(), "a reason is given");
  });
  if (!hasDevice()) {
    test("without a device: every entry point fails with ERR_SOUP_NO_CUDA", [] {
      expectThrows([] { sc::requireDevice(); }, "ERR_SOUP_NO_CUDA");
      expectThrows([] { sc::Interpolator x; }, "ERR_SOUP_NO_CUDA");
      float a = 1, b = 0;
      const void* srcs[1] = {&a};
      std::vector<sc::HostTensor> t = {sc::HostTensor{srcs, &b, 1, 0, 0}};
      double w = 1;
      expectThrows([&] { sc::interpolateHost(t, &w, 1, {}); }, "ERR_SOUP_NO_CUDA");
      expectThrows([&] { sc::mergeFiles({"/nonexistent"}, "/tmp/x", nullptr, 0, {}, &w, 1, {}); }, "ERR_SOUP_NO_CUDA");
      expectThrows([&] { sc::Resident r(t, 1); }, "ERR_SOUP_NO_CUDA");
    });
  }

  gpuTest("every dtype pair x N in {1,2,3,8,16} x sizes around vector and chunk edges (one launch per pair)", [&] {
    const std::vector<int> ns = quick ? std::vector<int>{1, 3, 16} : std::vector<int>{1, 2, 3, 8, 16};
    for (int n : ns)
      for (int in = 0; in < 4; ++in)
        for (int out = 0; out < 4; ++out) {
          std::vector<Case> cases;
          for (int64_t sz : kSizes) cases.push_back(Case{in, out, sz});
          const int64_t launches = runCases(cases, n, rng, 1 << 16, "sizes");
          EXPECT(launches == 1, "%lld launches for one dtype pair, want 1 (fused)", (long long)launches);
        }
  });
  if (sc::setKernelVariant(1)) {  // SOUP_CUDA_VARIANTS builds: the alternative kernel must agree too
    gpuTest("variant 1 (256 threads, 2x vectors in flight): every dtype pair, sizes, N in {3, 16}", [&] {
      sc::setKernelVariant(1);
      for (int n : quick ? std::vector<int>{3} : std::vector<int>{3, 16})
        for (int in = 0; in < 4; ++in)
          for (int out = 0; out < 4; ++out) {
            std::vector<Case> cases;
            for (int64_t sz : kSizes) cases.push_back(Case{in, out, sz});
            for (int64_t sz : {1, 17, 65537}) cases.push_back(Case{in, out, sz, 1});
            runCases(cases, n, rng, 1 << 16, "variant 1");
          }
      sc::setKernelVariant(0);
    });
    sc::setKernelVariant(0);
  }
  gpuTest("mixed dtype pairs in one call: one launch per pair", [&] {
    std::vector<Case> cases;
    for (int in = 0; in < 4; ++in)
      for (int out = 0; out < 4; ++out) cases.push_back(Case{in, out, 65536 + 3 * in + out});
    const int64_t launches = runCases(cases, 4, rng, 1 << 16, "mixed");
    EXPECT(launches == 16, "%lld launches, want 16", (long long)launches);
  });
  gpuTest("unaligned sources and outputs take the guarded scalar path", [&] {
    for (int in = 0; in < 4; ++in)
      for (int out = 0; out < 4; ++out) {
        std::vector<Case> cases;
        for (int64_t sz : {1, 17, 65537, 70001}) cases.push_back(Case{in, out, sz, 1});
        runCases(cases, 3, rng, 1 << 16, "unaligned");
      }
  });
  gpuTest("thousands of tiny tensors, tables refilled (capacity 64) and not (default)", [&] {
    std::uniform_int_distribution<int> sz(1, 300);
    for (int dt : {ref::BF16, ref::F32}) {
      std::vector<Case> cases;
      for (int k = 0; k < (quick ? 2000 : 5000); ++k) cases.push_back(Case{dt, dt, sz(rng)});
      const int64_t refills = runCases(cases, 4, rng, 64, "tiny/refill");
      EXPECT(refills > 10, "capacity 64 should need many launches, got %lld", (long long)refills);
      const int64_t one = runCases(cases, 5, rng, 1 << 16, "tiny");
      EXPECT(one == 1, "%zu tensors should fit one launch, got %lld", cases.size(), (long long)one);
    }
  });
  gpuTest("a tensor larger than one table (chunks split across launches)", [&] {
    std::vector<Case> cases = {Case{ref::BF16, ref::BF16, 40 * 65536 + 11}};
    const int64_t launches = runCases(cases, 2, rng, 16, "split");
    EXPECT(launches == 3, "41 chunks with capacity 16: want 3 launches, got %lld", (long long)launches);
  });
  gpuTest("NaN and inf propagate; 2^-24 products stay exact (no flush to zero)", [&] {
    const int n = 3;
    std::vector<float> a = {1.f, NAN, INFINITY, 1e-30f, 3.f, -INFINITY, 1e-40f, 2.f};
    std::vector<float> b = {2.f, 1.f, 1.f, 1e-30f, NAN, INFINITY, 1e-40f, -2.f};
    std::vector<float> c = {3.f, 1.f, -1.f, 1e-30f, 1.f, 1.f, 1e-40f, 2.f};
    Dev da(32), db(32), dc(32), dout(32);
    CK(cudaMemcpy(da.ptr(), a.data(), 32, cudaMemcpyHostToDevice));
    CK(cudaMemcpy(db.ptr(), b.data(), 32, cudaMemcpyHostToDevice));
    CK(cudaMemcpy(dc.ptr(), c.data(), 32, cudaMemcpyHostToDevice));
    CK(cudaMemset(dout.ptr(), 0xA5, 32));
    sc::Segment s{};
    s.out = dout.ptr();
    s.srcs[0] = da.ptr();
    s.srcs[1] = db.ptr();
    s.srcs[2] = dc.ptr();
    s.numel = 8;
    s.inDtype = s.outDtype = 0;
    const std::vector<double> w = {0.5, 0.25, 0.125};
    sc::Interpolator interp;
    interp.run({s}, w.data(), n);
    std::vector<float> out(8);
    CK(cudaMemcpy(out.data(), dout.ptr(), 32, cudaMemcpyDeviceToHost));
    for (int k = 0; k < 8; ++k) {
      float want = 0.5f * a[k];
      want = std::fmaf(0.25f, b[k], want);
      want = std::fmaf(0.125f, c[k], want);
      if (std::isnan(want))
        EXPECT(std::isnan(out[k]), "element %d = %g, want NaN", k, out[k]);
      else
        EXPECT(ref::bits(out[k]) == ref::bits(want), "element %d = %a, want %a", k, out[k], want);
    }
    EXPECT(out[6] != 0.f, "subnormal result flushed to zero");
  });
  gpuTest("bad arguments are errors, not aborts", [&] {
    sc::Interpolator interp;
    double w[17] = {1};
    sc::Segment s{};
    s.numel = 4;
    s.inDtype = 7;
    expectThrows([&] { interp.run({s}, w, 1); }, "ERR_SOUP_INVALID_ARG");
    expectThrows([&] { interp.run({}, w, 17); }, "ERR_SOUP_INVALID_ARG");
    s.inDtype = 0;
    expectThrows([&] { interp.run({s}, w, 1); }, "ERR_SOUP_INVALID_ARG");  // null pointers
    double nanw = NAN;
    expectThrows([&] { interp.run({}, &nanw, 1); }, "ERR_SOUP_WEIGHTS");
  });
  gpuTest("Plan: tables uploaded once, a lambda sweep re-launches only, same bits as the one-shot path", [&] {
    const int n = 3;
    std::vector<Case> cases;
    for (int in = 0; in < 3; ++in) cases.push_back(Case{in, ref::BF16, 65536 * 2 + 17 + in});
    cases.push_back(Case{ref::F32, ref::F32, 9});
    runCases(cases, n, rng, 1 << 16, "plan setup");  // fills the device sources
    std::vector<sc::Segment> segs;
    for (Case& c : cases) {
      sc::Segment s{};
      for (int i = 0; i < n; ++i) s.srcs[i] = c.srcDev[i].ptr();
      s.out = c.outDev.ptr();
      s.numel = c.numel;
      s.inDtype = c.inDt;
      s.outDtype = c.outDt;
      segs.push_back(s);
    }
    sc::Plan plan(segs, n);
    EXPECT(plan.launchesPerRun() == 4, "4 dtype pairs, %d launches", plan.launchesPerRun());
    for (int sweep = 0; sweep < 5; ++sweep) {
      for (Case& c : cases) CK(cudaMemset(c.outDev.ptr(), 0xA5, c.outDev.bytes));
      const std::vector<double> w = randomWeights(n, rng);
      plan.run(w.data());
      CK(cudaDeviceSynchronize());
      for (Case& c : cases) {
        std::vector<uint8_t> out((c.numel + kGuard) * ref::size(c.outDt));
        CK(cudaMemcpy(out.data(), c.outDev.ptr(), out.size(), cudaMemcpyDeviceToHost));
        checkOutput(c, out, w, "plan");
      }
    }
  });
  gpuTest("Resident: sources uploaded once (host copies poisoned after), a lambda sweep copies only outputs back", [&] {
    const int n = 4;
    std::vector<Case> cases;
    for (int k = 0; k < 12; ++k) cases.push_back(Case{k % 4, (k / 4) % 3, k == 5 ? 65536 * 3 + 7 : 1 + 977 * k});
    cases.push_back(Case{ref::BF16, ref::BF16, 0});                      // an empty tensor is allowed
    std::vector<std::vector<std::vector<uint8_t>>> given(cases.size());  // what Resident reads, then poisoned
    std::vector<std::vector<const void*>> ptrs(cases.size());
    std::vector<sc::HostTensor> ts;
    for (size_t t = 0; t < cases.size(); ++t) {
      Case& c = cases[t];
      fillSources(c, n, rng);
      for (int i = 0; i < n; ++i) given[t].push_back(c.srcHost[i]);
      for (int i = 0; i < n; ++i) ptrs[t].push_back(given[t][i].data());
      ts.push_back(sc::HostTensor{ptrs[t].data(), nullptr, c.numel, c.inDt, c.outDt});
    }
    sc::Resident res(ts, n);
    for (auto& g : given)
      for (auto& b : g) std::fill(b.begin(), b.end(), 0xFF);
    for (int sweep = 0; sweep < 4; ++sweep) {
      const std::vector<double> w = randomWeights(n, rng);
      std::vector<std::vector<uint8_t>> outs(cases.size());
      std::vector<void*> outPtrs;
      for (size_t t = 0; t < cases.size(); ++t) {
        outs[t].assign((cases[t].numel + kGuard) * ref::size(cases[t].outDt), 0xA5);
        outPtrs.push_back(outs[t].data());
      }
      const sc::RunStats st = res.run(w.data(), outPtrs);
      EXPECT(st.launches >= 1 && st.launches <= 12, "%lld launches", (long long)st.launches);
      for (size_t t = 0; t < cases.size(); ++t) checkOutput(cases[t], outs[t], w, "resident");
    }
    std::vector<void*> tooFew(2);
    double w4[4] = {1, 1, 1, 1};
    expectThrows([&] { res.run(w4, tooFew); }, "ERR_SOUP_INVALID_ARG");
  });
  gpuTest("host pipeline: many windows, tensors split across windows, bit-exact", [&] {
    const int n = 3;
    std::uniform_int_distribution<int> sz(1, 200000);
    std::vector<Case> cases;
    for (int k = 0; k < 60; ++k) cases.push_back(Case{k % 4, (k / 4) % 4, k == 7 ? 3000001 : sz(rng)});
    std::vector<std::vector<const void*>> srcPtrs(cases.size());
    std::vector<std::vector<uint8_t>> outs(cases.size());
    std::vector<sc::HostTensor> ts;
    for (size_t t = 0; t < cases.size(); ++t) {
      Case& c = cases[t];
      fillSources(c, n, rng);
      for (int i = 0; i < n; ++i) srcPtrs[t].push_back(c.srcHost[i].data());
      outs[t].assign((c.numel + kGuard) * ref::size(c.outDt), 0xA5);
      ts.push_back(sc::HostTensor{srcPtrs[t].data(), outs[t].data(), c.numel, c.inDt, c.outDt});
    }
    const std::vector<double> w = randomWeights(n, rng);
    double cancel = 0, done = 0;
    sc::Progress pr;
    pr.cancel = &cancel;
    pr.bytesDone = &done;
    sc::PipelineOptions opt;
    opt.windowBytes = 1 << 20;
    const sc::RunStats st = sc::interpolateHost(ts, w.data(), n, pr, opt);
    std::printf("     %s, %.3f s\n", st.kernel.c_str(), st.seconds);
    EXPECT(done == st.bytesWritten, "bytes done %g != written %g", done, st.bytesWritten);
    for (size_t t = 0; t < cases.size(); ++t) checkOutput(cases[t], outs[t], w, "pipeline");
    cancel = 1;
    expectThrows([&] { sc::interpolateHost(ts, w.data(), n, pr, opt); }, "ERR_SOUP_ABORTED");
  });
  gpuTest("file merge: header, scattered source offsets, fsync'd output, and its errors", [&] {
    const int n = 4;
    char dir[] = "/tmp/soup_cuda_testXXXXXX";
    EXPECT(mkdtemp(dir), "mkdtemp");
    std::uniform_int_distribution<int> sz(1, 300000);
    std::vector<Case> cases;
    for (int k = 0; k < 40; ++k) cases.push_back(Case{k % 3 == 0 ? ref::F32 : ref::BF16, k % 2 ? ref::BF16 : ref::F32, sz(rng)});
    std::vector<std::string> files;
    std::vector<sc::FileTensor> fts(cases.size());
    for (int i = 0; i < n; ++i) {
      // Each source file: junk, then the tensors in a shuffled order (offsets differ per source).
      std::vector<size_t> order(cases.size());
      for (size_t t = 0; t < order.size(); ++t) order[t] = t;
      std::shuffle(order.begin(), order.end(), rng);
      std::string path = std::string(dir) + "/src" + std::to_string(i) + ".bin";
      std::ofstream f(path, std::ios::binary);
      int64_t pos = 0;
      std::string junk(size_t(100 + i * 13), 'j');
      f.write(junk.data(), std::streamsize(junk.size()));
      pos += int64_t(junk.size());
      for (size_t t : order) {
        Case& c = cases[t];
        if (c.srcHost.size() < size_t(n)) c.srcHost.resize(n);
        c.srcHost[i].resize(c.numel * ref::size(c.inDt));
        ref::fillRandom(c.srcHost[i].data(), c.inDt, c.numel, rng);
        fts[t].numel = c.numel;
        fts[t].inDtype = c.inDt;
        fts[t].outDtype = c.outDt;
        fts[t].srcFile[i] = i;
        fts[t].srcOffset[i] = pos;
        f.write(reinterpret_cast<const char*>(c.srcHost[i].data()), std::streamsize(c.srcHost[i].size()));
        pos += int64_t(c.srcHost[i].size());
      }
      files.push_back(path);
    }
    const std::vector<double> w = randomWeights(n, rng);
    const std::string header = "HEADER-0123456789";
    const std::string outPath = std::string(dir) + "/out.bin";
    sc::PipelineOptions opt;
    opt.windowBytes = 1 << 20;
    const sc::RunStats st = sc::mergeFiles(files, outPath, reinterpret_cast<const uint8_t*>(header.data()), header.size(), fts, w.data(), n, {}, opt);
    std::printf("     %s, %.3f s\n", st.kernel.c_str(), st.seconds);
    std::ifstream f(outPath, std::ios::binary);
    std::vector<uint8_t> all((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
    EXPECT(double(all.size()) == st.bytesWritten, "file size %zu, reported %g", all.size(), st.bytesWritten);
    EXPECT(std::memcmp(all.data(), header.data(), header.size()) == 0, "header");
    size_t pos = header.size();
    for (Case& c : cases) {
      const size_t bytes = c.numel * ref::size(c.outDt);
      std::vector<uint8_t> out(all.begin() + ptrdiff_t(pos), all.begin() + ptrdiff_t(pos + bytes));
      checkOutput(c, out, w, "mergeFiles");
      pos += bytes;
    }
    EXPECT(pos == all.size(), "trailing bytes");
    // Errors name the tensor / file.
    std::vector<sc::FileTensor> bad = fts;
    bad[5].srcOffset[2] = 1ll << 40;
    expectThrows([&] { sc::mergeFiles(files, outPath, nullptr, 0, bad, w.data(), n, {}, opt); }, "ERR_SOUP_FORMAT");
    bad = fts;
    bad[1].srcFile[0] = 9;
    expectThrows([&] { sc::mergeFiles(files, outPath, nullptr, 0, bad, w.data(), n, {}, opt); }, "ERR_SOUP_INVALID_ARG");
    expectThrows([&] { sc::mergeFiles({std::string(dir) + "/missing"}, outPath, nullptr, 0, {}, w.data(), 1, {}, opt); }, "ERR_SOUP_IO");
    // A write that fails in the writer thread (a full disk) comes back as an error, not a hang or abort.
    if (access("/dev/full", W_OK) == 0) expectThrows([&] { sc::mergeFiles(files, "/dev/full", nullptr, 0, fts, w.data(), n, {}, opt); }, "ERR_SOUP_IO");
    for (auto& p : files) unlink(p.c_str());
    unlink(outPath.c_str());
    rmdir(dir);
  });

  if (skipped)
    std::printf("%d passed, %d failed, %d skipped\n", passed, failed, skipped);
  else
    std::printf("%d passed, %d failed\n", passed, failed);
  return failed ? 1 : 0;
}
