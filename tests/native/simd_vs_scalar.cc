// Every SIMD variant of the conv, gap, avgpool, add, se and fc families against its family's scalar
// variant on many shapes. The variants are the families' X-macro lists (kernels/<family>.h), so this
// checks whatever is compiled for the architecture: AVX2 and AVX-512F on x86_64, NEON on aarch64 (on
// an x86 host under qemu: scripts/native-checks.sh aarch64 simd_vs_scalar). Variants this CPU (or
// PYNAS_ISA) cannot run are skipped with a message. Prints one line per variant and
// "simd_vs_scalar: N passed, N failed"; exits non-zero on any mismatch. The tolerance allows for FMA
// contraction and a different summation order. (gemm_check and dwconv_check cover gemm and dwconv
// against float64 references.)
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <vector>

#include "check.h"
#include "kernels/add.h"
#include "kernels/avgpool.h"
#include "kernels/conv.h"
#include "kernels/fc.h"
#include "kernels/gap.h"
#include "kernels/se.h"

using namespace pynas;

namespace {

template <class Fn>
struct Variant {
  const char* name;
  const char* isa;
  Fn fn;
};
template <class Fn>
using Family = std::vector<Variant<Fn>>;

#define PYNAS_CHECK_VARIANT(name, isa) {#name, #isa, &pynas::name},
const Family<ConvFn> kConv = {PYNAS_CONV_VARIANTS(PYNAS_CHECK_VARIANT)};
const Family<GapFn> kGap = {PYNAS_GAP_VARIANTS(PYNAS_CHECK_VARIANT)};
const Family<AvgPoolFn> kAvgPool = {PYNAS_AVGPOOL_VARIANTS(PYNAS_CHECK_VARIANT)};
const Family<AddFn> kAdd = {PYNAS_ADD_VARIANTS(PYNAS_CHECK_VARIANT)};
const Family<SeFn> kSe = {PYNAS_SE_VARIANTS(PYNAS_CHECK_VARIANT)};
const Family<FcFn> kFc = {PYNAS_FC_VARIANTS(PYNAS_CHECK_VARIANT)};
#undef PYNAS_CHECK_VARIANT

std::mt19937 rng(1234);
std::vector<float> randn(size_t n) {
  std::normal_distribution<float> d;
  std::vector<float> v(n);
  for (float& x : v) x = d(rng);
  return v;
}

int passed = 0, failed = 0;
void expect_close(const char* variant, const std::vector<float>& got, const std::vector<float>& want, double tol,
                  const char* shape) {
  double worst = 0;
  for (size_t i = 0; i < want.size(); ++i) {
    const double err = std::fabs(double(got[i]) - want[i]) / (1.0 + std::fabs(double(want[i])));
    if (!(err <= worst)) worst = err;  // also catches NaN
  }
  if (worst <= tol) {
    ++passed;
  } else {
    ++failed;
    std::printf("FAIL %s %s: max rel err %g > %g\n", variant, shape, worst, tol);
  }
}

const Act kActs[] = {Act::kNone, Act::kReLU, Act::kReLU6, Act::kHSwish, Act::kSwish};
const size_t kChannels[] = {1, 3, 4, 7, 8, 9, 15, 16, 17, 24, 31, 32, 33, 40, 64, 100};
const std::pair<size_t, size_t> kSizes[] = {{1, 1}, {3, 5}, {7, 7}, {8, 9}};  // H, W

// Each check runs the reference (scalar) on whole ranges and the variant in row bands where the
// kernel takes row ranges (threads and fused blocks split the rows).
void check_conv(const Variant<ConvFn>& ref, const Variant<ConvFn>& v) {
  const size_t couts[] = {1, 3, 4, 7, 8, 9, 15, 16, 17, 24, 31, 32, 33, 40, 64, 100};
  const size_t cins[] = {1, 3, 8, 17, 32};
  const size_t sizes[][2] = {{1, 1}, {2, 3}, {5, 5}, {7, 6}, {9, 13}, {14, 14}};
  int n = 0;
  for (size_t cout : couts)
    for (size_t cin : cins)
      for (int k : {1, 3, 5, 7})
        for (int s : {1, 2})
          for (auto& hw : sizes) {
            ++n;
            const size_t H = hw[0], W = hw[1];
            if ((n % 3) != 0 && cout > 17 && cin > 8) continue;  // keep the qemu run short
            const int pad = k / 2;
            const size_t OH = (H + 2 * pad - k) / s + 1, OW = (W + 2 * pad - k) / s + 1;
            auto in = randn(H * W * cin), w = randn(cout * k * k * cin), b = randn(cout), res = randn(OH * OW * cout);
            std::vector<float> packed(conv_packed_size(cout, k, cin));
            conv_pack_weights(w.data(), cout, k, cin, packed.data());
            std::vector<float> o1(OH * OW * cout), o2(OH * OW * cout);
            const Act act = kActs[n % 5];
            const bool with_res = n % 2;
            ConvArgs a{in.data(), packed.data(), b.data(), with_res ? res.data() : nullptr, o1.data(),
                       H, W, cin, OH, OW, cout, k, s, pad, act};
            ref.fn(a, 0, OH);
            a.output = o2.data();
            for (size_t y = 0; y < OH; y += 2) v.fn(a, y, std::min(OH, y + 2));
            char shape[128];
            std::snprintf(shape, sizeof shape, "%zux%zux%zu->%zu k%d s%d act%d res%d", H, W, cin, cout, k, s,
                          static_cast<int>(act), with_res);
            expect_close(v.name, o2, o1, 2e-5 * k * std::sqrt(double(cin)), shape);
          }
}

void check_gap(const Variant<GapFn>& ref, const Variant<GapFn>& v) {
  for (size_t C : kChannels)
    for (auto [H, W] : kSizes) {
      auto in = randn(H * W * C);
      std::vector<float> g1(C), g2(C);
      ref.fn({in.data(), g1.data(), H, W, C});
      v.fn({in.data(), g2.data(), H, W, C});
      char shape[64];
      std::snprintf(shape, sizeof shape, "%zux%zux%zu", H, W, C);
      expect_close(v.name, g2, g1, 1e-5, shape);
    }
}

void check_avgpool(const Variant<AvgPoolFn>& ref, const Variant<AvgPoolFn>& v) {
  for (size_t C : kChannels)
    for (auto [H, W] : kSizes)
      for (int s : {1, 2}) {
        auto in = randn(H * W * C);
        const size_t OH = (H - 1) / s + 1, OW = (W - 1) / s + 1;
        std::vector<float> p1(OH * OW * C), p2(OH * OW * C);
        ref.fn({in.data(), p1.data(), H, W, OH, OW, C, s}, 0, OH);
        const AvgPoolArgs banded{in.data(), p2.data(), H, W, OH, OW, C, s};
        for (size_t y = 0; y < OH; ++y) v.fn(banded, y, y + 1);
        char shape[64];
        std::snprintf(shape, sizeof shape, "%zux%zux%zu s%d", H, W, C, s);
        expect_close(v.name, p2, p1, 1e-5, shape);
      }
}

void check_add(const Variant<AddFn>& ref, const Variant<AddFn>& v) {
  for (size_t C : kChannels)
    for (auto [H, W] : kSizes) {
      auto a = randn(H * W * C), b = randn(H * W * C);
      std::vector<float> s1(H * W * C), s2(H * W * C);
      ref.fn(a.data(), b.data(), s1.data(), s1.size());
      v.fn(a.data(), b.data(), s2.data(), s2.size());
      char shape[64];
      std::snprintf(shape, sizeof shape, "%zux%zux%zu", H, W, C);
      expect_close(v.name, s2, s1, 0, shape);
    }
}

void check_se(const Variant<SeFn>& ref, const Variant<SeFn>& v) {
  for (size_t C : kChannels)
    for (auto [H, W] : kSizes)
      for (size_t R : {size_t(1), size_t(4), (C + 3) / 4, C + 9}) {
        auto in = randn(H * W * C), wr = randn(R * C), br = randn(R), we = randn(C * R), be = randn(C);
        std::vector<float> wrp(conv_packed_size(R, 1, C)), wep(conv_packed_size(C, 1, R));
        conv_pack_weights(wr.data(), R, 1, C, wrp.data());
        conv_pack_weights(we.data(), C, 1, R, wep.data());
        for (int gi = 0; gi < 2; ++gi) {
          std::vector<float> o1(H * W * C), o2(H * W * C), sum(C), hidden(R), scale(C);
          SeArgs a{in.data(), o1.data(), H, W, C, R, wrp.data(), br.data(), wep.data(), be.data(),
                   kActs[(R + gi) % 5], gi ? Gate::kHSigmoid : Gate::kSigmoid, sum.data(), hidden.data(), scale.data()};
          ref.fn(a, SeStage::kAll, 0, H);
          // The variant stage by stage, as a fused block calls it.
          a.output = o2.data();
          std::fill(sum.begin(), sum.end(), 0.0f);
          for (size_t y = 0; y < H; y += 2) v.fn(a, SeStage::kPool, y, std::min(H, y + 2));
          v.fn(a, SeStage::kExcite, 0, 0);
          for (size_t y = 0; y < H; y += 3) v.fn(a, SeStage::kScale, y, std::min(H, y + 3));
          char shape[64];
          std::snprintf(shape, sizeof shape, "%zux%zux%zu r%zu gate%d", H, W, C, R, gi);
          expect_close(v.name, o2, o1, 1e-4 * std::sqrt(double(C + R)), shape);
        }
      }
}

void check_fc(const Variant<FcFn>& ref, const Variant<FcFn>& v) {
  for (size_t C : kChannels)
    for (size_t out : {size_t(1), size_t(5), size_t(16), size_t(17), size_t(40), size_t(100)}) {
      auto x = randn(C), w = randn(out * C), b = randn(out);
      std::vector<float> wp(conv_packed_size(out, 1, C)), y1(out), y2(out);
      conv_pack_weights(w.data(), out, 1, C, wp.data());
      const Act act = kActs[(out + C) % 5];
      ref.fn({x.data(), wp.data(), b.data(), y1.data(), C, out, act});
      v.fn({x.data(), wp.data(), b.data(), y2.data(), C, out, act});
      char shape[64];
      std::snprintf(shape, sizeof shape, "%zu->%zu act%d", C, out, static_cast<int>(act));
      expect_close(v.name, y2, y1, 2e-5 * std::sqrt(double(C)), shape);
    }
}

// Every runnable non-scalar variant of `family` against its scalar variant, one line each.
template <class Fn, class Check>
void check_family(const Family<Fn>& family, Check check) {
  const auto scalar = std::find_if(family.begin(), family.end(),
                                   [](const Variant<Fn>& v) { return std::strcmp(v.isa, "scalar") == 0; });
  if (scalar == family.end()) {
    std::printf("FAIL %s: the family has no scalar variant to compare with\n", family.front().name);
    ++failed;
    return;
  }
  for (const Variant<Fn>& v : family) {
    if (&v == &*scalar || !pynas_check::runnable(v.name, v.isa)) continue;
    const int passed_before = passed, failed_before = failed;
    check(*scalar, v);
    std::printf("%-24s vs %s: %d passed, %d failed\n", v.name, scalar->name, passed - passed_before,
                failed - failed_before);
  }
}

}  // namespace

int main() {
  std::setvbuf(stdout, nullptr, _IOLBF, 0);  // progress survives a crash
  check_family(kConv, check_conv);
  check_family(kGap, check_gap);
  check_family(kAvgPool, check_avgpool);
  check_family(kAdd, check_add);
  check_family(kSe, check_se);
  check_family(kFc, check_fc);
  std::printf("simd_vs_scalar: %d passed, %d failed\n", passed, failed);
  return failed ? 1 : 0;
}
