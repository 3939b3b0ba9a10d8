// Stand-alone check of every GEMM variant in PYNAS_GEMM_VARIANTS (kernels/gemm.h) compiled for this
// architecture against a float64 reference: strided A/C/residual, row ranges (rows outside
// untouched), in-place residual, every activation, shapes around the tiles. Variants this CPU (or
// PYNAS_ISA) cannot run are skipped with a message. No Python: it reaches ISAs the Python tests
// cannot from this machine (NEON under qemu). A CMake target linking pynas_native (the kernels with
// their ISA flags): scripts/native-checks.sh host|aarch64 gemm_check builds and runs it.
// Exit status 0 when all pass.
#include <cmath>
#include <cstdio>
#include <cstring>
#include <random>
#include <vector>

#include "check.h"
#include "kernels/gemm.h"

using namespace pynas;

namespace {

struct Variant {
  const char* name;
  const char* isa;
  GemmFn fn;
};

const Variant kVariants[] = {
#define PYNAS_ENTRY(name, isa, mr, nr, nr_min) {#name, #isa, &name},
    PYNAS_GEMM_VARIANTS(PYNAS_ENTRY)
#undef PYNAS_ENTRY
};

double act_ref(Act act, double x) {
  switch (act) {
    case Act::kNone: return x;
    case Act::kReLU: return x > 0 ? x : 0;
    case Act::kReLU6: return x < 0 ? 0 : (x > 6 ? 6 : x);
    case Act::kHSwish: return x * (x + 3 < 0 ? 0 : (x + 3 > 6 ? 6 : x + 3)) / 6;
    case Act::kSwish: return x / (1 + std::exp(-x));
  }
  return x;
}

std::mt19937 rng(12345);
long cases = 0, failures = 0;

// One case: M x K times K x N, strides with slack, rows [mb, me) computed into a C full of NaN
// (rows outside must stay NaN); residual none, separate, or C itself (in place).
void check(const Variant& v, size_t M, size_t K, size_t N, Act act, int res_mode, size_t mb, size_t me) {
  const GemmTile t = gemm_tile(v.name);
  std::normal_distribution<float> nd;
  const size_t lda = K + 3, ldc = N + 5, ldr = res_mode == 2 ? ldc : N + 2;
  std::vector<float> a(M * lda + 1), w(N * K), bias(N), c(M * ldc + 1, NAN), res(M * ldr + 1);
  for (float& x : a) x = nd(rng);
  for (float& x : w) x = nd(rng);
  for (float& x : bias) x = nd(rng);
  for (float& x : res) x = nd(rng);
  if (res_mode == 2)
    for (size_t i = 0; i < c.size(); ++i) c[i] = res[i];
  const std::vector<float> res0 = res_mode == 2 ? c : res;
  std::vector<float> packed(gemm_packed_size(N, K, t.nr, t.nr_min) + 16);
  gemm_pack(w.data(), K, bias.data(), N, K, t.nr, t.nr_min, packed.data());
  const float* rp = res_mode == 0 ? nullptr : res_mode == 1 ? res.data() : c.data();
  GemmArgs g{a.data(), lda, packed.data(), c.data(), ldc, rp, ldr, M, N, K, act};
  v.fn(g, mb, me);
  ++cases;
  double worst = 0;
  bool untouched = true;
  for (size_t m = 0; m < M; ++m)
    for (size_t n = 0; n < ldc && m * ldc + n < c.size(); ++n) {
      const float got = c[m * ldc + n];
      if (m < mb || m >= me || n >= N) {  // outside the rows or the N columns: as before
        const float before = res_mode == 2 ? res0[m * ldc + n] : NAN;
        untouched &= res_mode == 2 ? std::memcmp(&got, &before, 4) == 0 : std::isnan(got);
        continue;
      }
      double s = bias[n], scale = std::fabs(bias[n]);
      for (size_t k = 0; k < K; ++k) {
        s += double(a[m * lda + k]) * w[n * K + k];
        scale += std::fabs(double(a[m * lda + k]) * w[n * K + k]);
      }
      double want = act_ref(act, s);
      if (res_mode != 0) {
        want += res0[m * ldr + n];
        scale += std::fabs(res0[m * ldr + n]);
      }
      const double err = std::fabs(got - want) / (scale > 1e-30 ? scale : 1e-30);
      if (!(err <= worst)) worst = std::isnan(err) ? INFINITY : err;
    }
  const double tol = 1e-5 * std::sqrt(K > 1 ? double(K) : 1.0);
  if (worst > tol || !untouched) {
    if (++failures <= 20)
      std::printf("FAIL %s M=%zu K=%zu N=%zu act=%d res=%d rows=[%zu,%zu): rel err %.3g (tol %.3g)%s\n", v.name, M, K,
                  N, int(act), res_mode, mb, me, worst, tol, untouched ? "" : ", wrote outside its rows/columns");
  }
}

}  // namespace

int main() {
  const size_t Ms[] = {1, 2, 3, 4, 5, 7, 8, 9, 12, 13, 16, 17, 25, 49};
  const size_t Ks[] = {1, 2, 3, 4, 5, 7, 8, 9, 16, 17, 33, 64, 144};
  const size_t Ns[] = {1, 2, 3, 4, 5, 7, 8, 9, 12, 15, 16, 17, 23, 24, 25, 31, 32, 33, 40, 47, 48, 64, 100};
  std::setvbuf(stdout, nullptr, _IOLBF, 0);  // progress survives a crash
  for (const Variant& v : kVariants) {
    if (!pynas_check::runnable(v.name, v.isa)) continue;
    const long before = failures;
    const long cases0 = cases;
    for (size_t M : Ms)
      for (size_t K : Ks)
        for (size_t N : Ns) check(v, M, K, N, Act::kNone, int((M + K + N) % 3), 0, M);
    for (int act = 0; act <= 4; ++act)
      for (size_t N : {3, 8, 13, 24, 36})
        for (int res_mode = 0; res_mode < 3; ++res_mode) check(v, 21, 19, N, Act(act), res_mode, 0, 21);
    for (size_t mb : {0, 1, 5, 8, 9})  // row ranges
      for (size_t me : {9, 10, 17, 30, 31})
        if (mb <= me) check(v, 31, 12, 20, Act::kReLU6, 2, mb, me);
    check(v, 3136, 144, 24, Act::kNone, 1, 0, 3136);  // the layer the kernels are tuned for
    check(v, 3136, 24, 144, Act::kReLU6, 0, 100, 3000);
    std::printf("%-24s %6ld cases, %ld failures\n", v.name, cases - cases0, failures - before);
  }
  std::printf("%s: %ld cases, %ld failures\n", failures ? "FAILED" : "OK", cases, failures);
  return failures ? 1 : 0;
}
