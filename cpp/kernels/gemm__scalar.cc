// GEMM, scalar: the portable fallback and the plainest statement of the packed layout. Tile of
// 4 rows x one panel of up to 8 channels (NR_MIN 1: the last panel is exactly the N remainder).
#include "gemm.h"

namespace pynas {
namespace {

constexpr size_t kMR = 4, kNR = 8;

// Rows [m, m + rows) of one panel of width w (a compile-time 8 for full panels, so the compiler
// keeps the accumulators in registers and may vectorize; 0 = the run-time width `wr`).
template <Act A, size_t W>
static inline void tile(const GemmArgs& g, const float* panel, size_t n0, size_t wr, size_t m, size_t rows) {
  const size_t w = W ? W : wr;
  float acc[kMR][kNR];
  for (size_t r = 0; r < kMR; ++r)
    for (size_t j = 0; j < kNR; ++j) acc[r][j] = j < w ? panel[j] : 0.0f;
  const float* a[kMR];
  for (size_t r = 0; r < kMR; ++r) a[r] = g.a + (m + (r < rows ? r : rows - 1)) * g.lda;
  const float* b = panel + w;
  for (size_t k = 0; k < g.k; ++k, b += w)
    for (size_t r = 0; r < kMR; ++r) {
      const float av = a[r][k];
      for (size_t j = 0; j < w; ++j) acc[r][j] += av * b[j];
    }
  for (size_t r = 0; r < rows; ++r) {
    float* cp = g.c + (m + r) * g.ldc + n0;
    const float* rp = g.residual != nullptr ? g.residual + (m + r) * g.ldr + n0 : nullptr;
    for (size_t j = 0; j < w; ++j) {
      const float v = act_scalar(A, acc[r][j]);
      cp[j] = rp != nullptr ? v + rp[j] : v;
    }
  }
}

template <Act A>
static void run(const GemmArgs& g, size_t m_begin, size_t m_end) {
  for (size_t n0 = 0; n0 < g.n; n0 += kNR) {
    const size_t w = g.n - n0 < kNR ? g.n - n0 : kNR;  // panel width = valid columns
    const float* panel = g.packed + n0 * (g.k + 1);
    for (size_t m = m_begin; m < m_end; m += kMR) {
      const size_t rows = m_end - m < kMR ? m_end - m : kMR;
      if (w == kNR)
        tile<A, kNR>(g, panel, n0, w, m, rows);
      else
        tile<A, 0>(g, panel, n0, w, m, rows);
    }
  }
}

}  // namespace

void gemm_4x8__scalar(const GemmArgs& g, size_t m_begin, size_t m_end) {
  if (m_begin >= m_end || g.n == 0) return;
  with_act(g.act, [&](auto A) { return run<A.value>(g, m_begin, m_end); }, [] {});
}

}  // namespace pynas
