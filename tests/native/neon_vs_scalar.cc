// NEON kernels against the scalar ones on many shapes (run under qemu-aarch64 on x86 hosts:
// scripts/neon-check.sh). Prints one line per family and "N passed, N failed"; exits non-zero on
// any mismatch. Tolerance allows for FMA contraction and a different summation order.
#include <cmath>
#include <cstdio>
#include <random>
#include <vector>

#include "add.h"
#include "avgpool.h"
#include "conv.h"
#include "fc.h"
#include "gap.h"
#include "se.h"

using namespace pynas;

namespace {

std::mt19937 rng(1234);
std::vector<float> randn(size_t n) {
  std::normal_distribution<float> d;
  std::vector<float> v(n);
  for (float& x : v) x = d(rng);
  return v;
}

int passed = 0, failed = 0;
void expect_close(const char* what, const std::vector<float>& got, const std::vector<float>& want, double tol,
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
    std::printf("FAIL %s %s: max rel err %g > %g\n", what, shape, worst, tol);
  }
}

const Act kActs[] = {Act::kNone, Act::kReLU, Act::kReLU6, Act::kHSwish, Act::kSwish};

void check_conv() {
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
            conv_c16__scalar(a, 0, OH);
            a.output = o2.data();
            for (size_t y = 0; y < OH; y += 2) conv_c16__neon(a, y, std::min(OH, y + 2));  // row bands
            char shape[128];
            std::snprintf(shape, sizeof shape, "%zux%zux%zu->%zu k%d s%d act%d res%d", H, W, cin, cout, k, s,
                          static_cast<int>(act), with_res);
            expect_close("conv", o2, o1, 2e-5 * k * std::sqrt(double(cin)), shape);
          }
}

void check_pool_fc_se() {
  const size_t chans[] = {1, 3, 4, 7, 8, 9, 15, 16, 17, 24, 31, 32, 33, 40, 64, 100};
  for (size_t C : chans) {
    char shape[128];
    for (auto hw : {std::pair<size_t, size_t>{1, 1}, {3, 5}, {7, 7}, {8, 9}}) {
      const size_t H = hw.first, W = hw.second;
      std::snprintf(shape, sizeof shape, "%zux%zux%zu", H, W, C);
      auto in = randn(H * W * C);
      std::vector<float> g1(C), g2(C);
      gap_c1__scalar({in.data(), g1.data(), H, W, C});
      gap_c16__neon({in.data(), g2.data(), H, W, C});
      expect_close("gap", g2, g1, 1e-5, shape);
      for (int s : {1, 2}) {
        const size_t OH = (H - 1) / s + 1, OW = (W - 1) / s + 1;
        std::vector<float> p1(OH * OW * C), p2(OH * OW * C);
        const AvgPoolArgs pa1{in.data(), p1.data(), H, W, OH, OW, C, s}, pa2{in.data(), p2.data(), H, W, OH, OW, C, s};
        avgpool_c1__scalar(pa1, 0, OH);
        for (size_t y = 0; y < OH; ++y) avgpool_c16__neon(pa2, y, y + 1);
        expect_close("avgpool", p2, p1, 1e-5, shape);
      }
      auto other = randn(H * W * C);
      std::vector<float> s1(H * W * C), s2(H * W * C);
      add_c1__scalar(in.data(), other.data(), s1.data(), s1.size());
      add_c16__neon(in.data(), other.data(), s2.data(), s2.size());
      expect_close("add", s2, s1, 0, shape);
      for (size_t R : {size_t(1), size_t(4), (C + 3) / 4, C + 9}) {
        auto wr = randn(R * C), br = randn(R), we = randn(C * R), be = randn(C);
        std::vector<float> wrp(conv_packed_size(R, 1, C)), wep(conv_packed_size(C, 1, R));
        conv_pack_weights(wr.data(), R, 1, C, wrp.data());
        conv_pack_weights(we.data(), C, 1, R, wep.data());
        for (int gi = 0; gi < 2; ++gi) {
          std::vector<float> o1(H * W * C), o2(H * W * C), sum(C), hidden(R), scale(C);
          SeArgs a{in.data(), o1.data(), H, W, C, R, wrp.data(), br.data(), wep.data(), be.data(),
                   kActs[(R + gi) % 5], gi ? Gate::kHSigmoid : Gate::kSigmoid, sum.data(), hidden.data(), scale.data()};
          se_c16__scalar(a, SeStage::kAll, 0, H);
          a.output = o2.data();
          std::fill(sum.begin(), sum.end(), 0.0f);
          for (size_t y = 0; y < H; y += 2) se_c16__neon(a, SeStage::kPool, y, std::min(H, y + 2));
          se_c16__neon(a, SeStage::kExcite, 0, 0);
          for (size_t y = 0; y < H; y += 3) se_c16__neon(a, SeStage::kScale, y, std::min(H, y + 3));
          std::snprintf(shape, sizeof shape, "%zux%zux%zu r%zu gate%d", H, W, C, R, gi);
          expect_close("se", o2, o1, 1e-4 * std::sqrt(double(C + R)), shape);
        }
      }
    }
    for (size_t out : {size_t(1), size_t(5), size_t(16), size_t(17), size_t(40), size_t(100)}) {
      auto x = randn(C), w = randn(out * C), b = randn(out);
      std::vector<float> wp(conv_packed_size(out, 1, C)), y1(out), y2(out);
      conv_pack_weights(w.data(), out, 1, C, wp.data());
      const Act act = kActs[(out + C) % 5];
      fc_c16__scalar({x.data(), wp.data(), b.data(), y1.data(), C, out, act});
      fc_c16__neon({x.data(), wp.data(), b.data(), y2.data(), C, out, act});
      std::snprintf(shape, sizeof shape, "%zu->%zu act%d", C, out, static_cast<int>(act));
      expect_close("fc", y2, y1, 2e-5 * std::sqrt(double(C)), shape);
    }
  }
}

}  // namespace

int main() {
  check_conv();
  const int conv_passed = passed, conv_failed = failed;
  std::printf("conv: %d passed, %d failed\n", conv_passed, conv_failed);
  check_pool_fc_se();
  std::printf("gap/avgpool/add/se/fc: %d passed, %d failed\n", passed - conv_passed, failed - conv_failed);
  std::printf("neon_vs_scalar: %d passed, %d failed\n", passed, failed);
  return failed ? 1 : 0;
}
