// Standalone checker for the depthwise conv kernels: every variant in PYNAS_DWCONV_VARIANTS
// (kernels/dwconv.h) compiled for this architecture against a float64 reference, over channels
// 1..40, sizes 1..13 (and a few wider rows), k 3/5/7, strides 1/2, every activation, whole and split
// row ranges. Buffers sit against PROT_NONE guard pages, so a read or write past the end of the
// input, weights, bias or output crashes, and NaN fills the slack before each buffer, so a read
// before the start shows up as a mismatch. Variants this CPU (or PYNAS_ISA) cannot run are skipped
// with a message. No Python, no pybind11: it runs where the wheel cannot, e.g. aarch64 under
// qemu-user. A CMake target linking pynas_native (the kernels with their ISA flags):
//   bash scripts/native-checks.sh host dwconv_check        (aarch64: under qemu)
// Options: --quick (fewer shapes). Exit status 0 when every case agrees.
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "check.h"
#include "kernels/dwconv.h"

namespace {

using pynas::Act;
using pynas::DwConvArgs;
using pynas::DwConvFn;

struct Variant {
  const char* name;
  const char* isa;
  DwConvFn fn;
};

// n floats ending exactly at a PROT_NONE page, with another PROT_NONE page before the mapping;
// the slack between that page and the data is NaN.
class Guarded {
 public:
  explicit Guarded(size_t n) {
    const size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
    const size_t bytes = (n * sizeof(float) + page - 1) / page * page;
    size_ = bytes + 2 * page;
    base_ = static_cast<char*>(mmap(nullptr, size_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
    if (base_ == MAP_FAILED) std::abort();
    mprotect(base_, page, PROT_NONE);
    mprotect(base_ + page + bytes, page, PROT_NONE);
    float* first = reinterpret_cast<float*>(base_ + page);
    data_ = reinterpret_cast<float*>(base_ + page + bytes) - n;
    for (float* p = first; p < data_; ++p) *p = std::numeric_limits<float>::quiet_NaN();
    slack_ = static_cast<size_t>(data_ - first);
  }
  ~Guarded() { munmap(base_, size_); }
  Guarded(const Guarded&) = delete;
  Guarded& operator=(const Guarded&) = delete;
  float* data() const { return data_; }
  bool slack_untouched() const {
    for (size_t i = 0; i < slack_; ++i)
      if (!std::isnan(data_[-1 - static_cast<long>(i)])) return false;
    return true;
  }

 private:
  char* base_;
  size_t size_;
  float* data_;
  size_t slack_;
};

double act_ref(Act act, double x) {
  switch (act) {
    case Act::kNone: return x;
    case Act::kReLU: return x > 0 ? x : 0;
    case Act::kReLU6: return x < 0 ? 0 : (x > 6 ? 6 : x);
    case Act::kHSwish: return x * std::min(std::max(x + 3.0, 0.0), 6.0) / 6.0;
    case Act::kSwish: return x / (1.0 + std::exp(-x));
  }
  return x;
}

const char* act_name(Act act) {
  static const char* names[] = {"none", "re", "r6", "hs", "sw"};
  return names[static_cast<int>(act)];
}

struct Stats {
  long cases = 0, failures = 0;
};

void check(const Variant& v, size_t H, size_t W, size_t C, int k, int s, Act act, std::mt19937& rng, Stats& st) {
  const int pad = k / 2;
  const size_t OH = (H + 2 * pad - k) / s + 1, OW = (W + 2 * pad - k) / s + 1;
  Guarded in(H * W * C), wt(static_cast<size_t>(k * k) * C), bias(C), out(OH * OW * C), out2(OH * OW * C);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  for (size_t i = 0; i < H * W * C; ++i) in.data()[i] = nd(rng);
  for (size_t i = 0; i < static_cast<size_t>(k * k) * C; ++i) wt.data()[i] = nd(rng);
  for (size_t i = 0; i < C; ++i) bias.data()[i] = nd(rng);
  for (size_t i = 0; i < OH * OW * C; ++i) out.data()[i] = out2.data()[i] = -12345.0f;  // every one is written

  DwConvArgs a{in.data(), wt.data(), bias.data(), out.data(), H, W, OH, OW, C, k, s, pad, act};
  v.fn(a, 0, OH);
  // The same rows computed in pieces (row ranges split work between threads and fused blocks).
  a.output = out2.data();
  for (size_t oy = 0; oy < OH;) {
    const size_t end = std::min(OH, oy + 1 + (oy * 7 + C) % 3);
    v.fn(a, oy, end);
    oy = end;
  }

  ++st.cases;
  const double tol = 1e-5 * k;
  long bad = 0;
  double worst = 0;
  for (size_t oy = 0; oy < OH; ++oy)
    for (size_t ox = 0; ox < OW; ++ox)
      for (size_t c = 0; c < C; ++c) {
        double sum = bias.data()[c];
        for (int ky = 0; ky < k; ++ky)
          for (int kx = 0; kx < k; ++kx) {
            const long iy = static_cast<long>(oy) * s + ky - pad, ix = static_cast<long>(ox) * s + kx - pad;
            if (iy < 0 || ix < 0 || iy >= static_cast<long>(H) || ix >= static_cast<long>(W)) continue;
            sum += static_cast<double>(in.data()[(iy * W + ix) * C + c]) * wt.data()[(ky * k + kx) * C + c];
          }
        const double want = act_ref(act, sum);
        const size_t i = (oy * OW + ox) * C + c;
        const double err = std::fabs(out.data()[i] - want);
        const bool ok = err <= tol + tol * std::fabs(want);  // numpy's assert_allclose(rtol=atol=tol)
        if (!ok || std::memcmp(&out.data()[i], &out2.data()[i], sizeof(float)) != 0) {
          if (bad == 0 || err > worst) worst = err;
          ++bad;
        }
      }
  const bool slack_ok = in.slack_untouched() && wt.slack_untouched() && bias.slack_untouched() &&
                        out.slack_untouched() && out2.slack_untouched();
  if (bad || !slack_ok) {
    ++st.failures;
    if (st.failures <= 20)
      std::printf("FAIL %s H=%zu W=%zu C=%zu k=%d s=%d act=%s: %ld wrong (worst error %g)%s\n", v.name, H, W, C, k, s,
                  act_name(act), bad, worst, slack_ok ? "" : ", wrote before a buffer");
  }
}

}  // namespace

int main(int argc, char** argv) {
  std::setvbuf(stdout, nullptr, _IOLBF, 0);  // progress survives a crash
  const bool quick = argc > 1 && std::strcmp(argv[1], "--quick") == 0;
  std::vector<Variant> variants;
#define PYNAS_ADD(name, isa) variants.push_back({#name, #isa, &pynas::name});
  PYNAS_DWCONV_VARIANTS(PYNAS_ADD)
#undef PYNAS_ADD
  std::vector<std::pair<size_t, size_t>> sizes;  // (H, W)
  for (size_t n = 1; n <= 13; ++n) sizes.push_back({n, n});
  for (auto hw : std::vector<std::pair<size_t, size_t>>{{1, 13}, {13, 1}, {2, 9}, {9, 2}, {4, 11}, {11, 6}, {3, 20},
                                                        {5, 27}, {6, 33}, {2, 40}})
    sizes.push_back(hw);
  const Act acts[] = {Act::kNone, Act::kReLU, Act::kReLU6, Act::kHSwish, Act::kSwish};
  std::mt19937 rng(12345);
  int status = 0;
  for (const Variant& v : variants) {
    if (!pynas_check::runnable(v.name, v.isa)) continue;
    Stats st;
    const size_t max_c = quick ? 20 : 40;
    for (int k : {3, 5, 7})
      for (int s : {1, 2})
        for (size_t c = 1; c <= max_c; ++c)
          for (size_t i = 0; i < sizes.size(); ++i) {
            if (quick && (i + c) % 3) continue;
            check(v, sizes[i].first, sizes[i].second, c, k, s, acts[(c + i + k) % 5], rng, st);
          }
    // Every activation on a few shapes around the 4 / 8 / 16 lane tiles.
    for (Act act : acts)
      for (size_t c : {3, 4, 7, 8, 12, 16, 17, 33})
        for (int k : {3, 5, 7})
          for (int s : {1, 2}) check(v, 9, 12, c, k, s, act, rng, st);
    // Wider channel counts (several full tiles plus a tail).
    for (size_t c : {48, 63, 64, 65, 144})
      for (int k : {3, 5, 7})
        for (int s : {1, 2}) check(v, 7, 10, c, k, s, acts[c % 5], rng, st);
    std::printf("%-22s %ld cases, %ld failed\n", v.name, st.cases, st.failures);
    if (st.failures) status = 1;
  }
  std::printf(status ? "FAILED\n" : "OK\n");
  return status;
}
