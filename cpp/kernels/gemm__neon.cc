// GEMM microkernels, NEON (aarch64, 32 q registers). Main tile 8 rows x 8 channels: 16
// accumulators, 8 A registers holding 4 k-steps of each row (used lane by lane), 2 B vectors.
// A 4-wide last panel uses the same rows.
#include <cstdint>
#include <cstring>

#include "gemm.h"
#include "simd__neon.h"

namespace pynas {
namespace {

// Prefetches of the next tile, which may lie past the arrays (after the last tile): the address
// is computed in integers, so no out-of-range pointer is ever formed; a prefetch never faults.
static inline const char* ahead(const float* p, size_t floats) {
  return reinterpret_cast<const char*>(reinterpret_cast<uintptr_t>(p) + floats * sizeof(float));
}

// acc[r][j] += B row (b) * lane L of the A registers: one k-step of the 4 held in av.
template <int MR, int NV, int L>
static inline void lane_step(float32x4_t (&acc)[MR][NV], const float32x4_t (&av)[MR], const float* b) {
  float32x4_t bv[NV];
#pragma GCC unroll 4
  for (int j = 0; j < NV; ++j) bv[j] = vld1q_f32(b + 4 * j);
#pragma GCC unroll 16
  for (int r = 0; r < MR; ++r)
#pragma GCC unroll 4
    for (int j = 0; j < NV; ++j) acc[r][j] = vfmaq_laneq_f32(acc[r][j], bv[j], av[r], L);
}

static inline float32x4_t load_partial(const float* p, size_t n) {  // n < 4 floats, rest zero
  float t[4] = {0.0f, 0.0f, 0.0f, 0.0f};
  std::memcpy(t, p, n * sizeof(float));
  return vld1q_f32(t);
}

static inline void store_partial(float* p, float32x4_t v, size_t n) {
  float t[4];
  vst1q_f32(t, v);
  std::memcpy(p, t, n * sizeof(float));
}

// Rows [0, rows) of an MR-row, W-wide tile (rows past `rows` are clamped to the last valid one:
// computed twice, stored twice, the same values).
template <int MR, int W, Act A>
static inline void tile(const float* a, size_t lda, const float* panel, size_t K, float* c, size_t ldc,
                        const float* res, size_t ldr, size_t rows, size_t wvalid) {
  constexpr int NV = W / 4;
  static_assert(W % 4 == 0 && NV >= 1 && NV <= 2, "panel width");
  const float* ap[MR];
#pragma GCC unroll 16
  for (int r = 0; r < MR; ++r) ap[r] = a + (static_cast<size_t>(r) < rows ? r : rows - 1) * lda;

  float32x4_t acc[MR][NV];
#pragma GCC unroll 16
  for (int r = 0; r < MR; ++r)
#pragma GCC unroll 4
    for (int j = 0; j < NV; ++j) acc[r][j] = vld1q_f32(panel + 4 * j);

  const float* b = panel + W;
  const size_t pf = MR * lda;  // the next tile's A rows, prefetched as this one runs
  if (K > 0) {
#pragma GCC unroll 16
    for (int r = 0; r < MR; ++r) __builtin_prefetch(ahead(ap[r], pf + K - 1));
  }
#pragma GCC unroll 16
  for (int r = 0; r < MR; ++r) {  // and the next tile's C rows
    __builtin_prefetch(ahead(c, (MR + r) * ldc), 1, 3);
    __builtin_prefetch(ahead(c, (MR + r) * ldc + W - 1), 1, 3);
  }
  size_t k = 0;
  for (; k + 4 <= K; k += 4) {
    if (k % 16 == 0) {
#pragma GCC unroll 16
      for (int r = 0; r < MR; ++r) __builtin_prefetch(ahead(ap[r], pf + k));
    }
    float32x4_t av[MR];
#pragma GCC unroll 16
    for (int r = 0; r < MR; ++r) av[r] = vld1q_f32(ap[r] + k);
    lane_step<MR, NV, 0>(acc, av, b);
    lane_step<MR, NV, 1>(acc, av, b + W);
    lane_step<MR, NV, 2>(acc, av, b + 2 * W);
    lane_step<MR, NV, 3>(acc, av, b + 3 * W);
    b += 4 * W;
  }
  for (; k < K; ++k, b += W) {
    float32x4_t bv[NV];
#pragma GCC unroll 4
    for (int j = 0; j < NV; ++j) bv[j] = vld1q_f32(b + 4 * j);
#pragma GCC unroll 16
    for (int r = 0; r < MR; ++r)
#pragma GCC unroll 4
      for (int j = 0; j < NV; ++j) acc[r][j] = vfmaq_n_f32(acc[r][j], bv[j], ap[r][k]);
  }

  // Epilogue: activation; every residual load before any store (the residual may be C itself).
#pragma GCC unroll 16
  for (int r = 0; r < MR; ++r)
#pragma GCC unroll 4
    for (int j = 0; j < NV; ++j) acc[r][j] = neon::act<A>(acc[r][j]);
  const size_t rlast = rows - 1;
  if (wvalid == static_cast<size_t>(W)) {
    if (res != nullptr) {
#pragma GCC unroll 16
      for (int r = 0; r < MR; ++r) {
        const float* rp = res + (static_cast<size_t>(r) < rows ? r : rlast) * ldr;
#pragma GCC unroll 4
        for (int j = 0; j < NV; ++j) acc[r][j] = vaddq_f32(acc[r][j], vld1q_f32(rp + 4 * j));
      }
    }
#pragma GCC unroll 16
    for (int r = 0; r < MR; ++r) {
      float* cp = c + (static_cast<size_t>(r) < rows ? r : rlast) * ldc;
#pragma GCC unroll 4
      for (int j = 0; j < NV; ++j) vst1q_f32(cp + 4 * j, acc[r][j]);
    }
  } else {
    if (res != nullptr) {
#pragma GCC unroll 16
      for (int r = 0; r < MR; ++r) {
        const float* rp = res + (static_cast<size_t>(r) < rows ? r : rlast) * ldr;
#pragma GCC unroll 4
        for (int j = 0; j < NV; ++j) {
          const size_t left = wvalid > 4u * j ? wvalid - 4u * j : 0;
          if (left > 0) acc[r][j] = vaddq_f32(acc[r][j], left >= 4 ? vld1q_f32(rp + 4 * j) : load_partial(rp + 4 * j, left));
        }
      }
    }
#pragma GCC unroll 16
    for (int r = 0; r < MR; ++r) {
      float* cp = c + (static_cast<size_t>(r) < rows ? r : rlast) * ldc;
#pragma GCC unroll 4
      for (int j = 0; j < NV; ++j) {
        const size_t left = wvalid > 4u * j ? wvalid - 4u * j : 0;
        if (left >= 4)
          vst1q_f32(cp + 4 * j, acc[r][j]);
        else if (left > 0)
          store_partial(cp + 4 * j, acc[r][j], left);
      }
    }
  }
}

// Rows [m0, m1) of one panel: full MR-row tiles, then the tail with an MR/2 tile if it fits.
template <int MR, int W, Act A>
static void panel_rows(const GemmArgs& g, const float* panel, size_t n0, size_t wvalid, size_t m0, size_t m1) {
  const float* res = g.residual != nullptr ? g.residual + n0 : nullptr;
  size_t m = m0;
  for (; m + MR <= m1; m += MR)
    tile<MR, W, A>(g.a + m * g.lda, g.lda, panel, g.k, g.c + m * g.ldc + n0, g.ldc,
                   res ? res + m * g.ldr : nullptr, g.ldr, MR, wvalid);
  const size_t left = m1 - m;
  if (left == 0) return;
  if (left <= MR / 2)
    tile<MR / 2, W, A>(g.a + m * g.lda, g.lda, panel, g.k, g.c + m * g.ldc + n0, g.ldc,
                       res ? res + m * g.ldr : nullptr, g.ldr, left, wvalid);
  else
    tile<MR, W, A>(g.a + m * g.lda, g.lda, panel, g.k, g.c + m * g.ldc + n0, g.ldc,
                   res ? res + m * g.ldr : nullptr, g.ldr, left, wvalid);
}

constexpr size_t kNR = 8;

template <Act A>
static void run(const GemmArgs& g, size_t m_begin, size_t m_end) {
  const size_t K = g.k, N = g.n;
  // Row chunks whose A rows stay in L1/L2 while every panel passes over them.
  const size_t mc = gemm_row_chunk(m_end - m_begin, K, 32 * 1024, 8);
  for (size_t mb = m_begin; mb < m_end; mb += mc) {
    const size_t me = m_end - mb < mc ? m_end : mb + mc;
    for (size_t n0 = 0; n0 < N; n0 += kNR) {
      const size_t left = N - n0;
      const size_t wvalid = left < kNR ? left : kNR;
      const float* panel = g.packed + n0 * (K + 1);
      if (wvalid > 4)
        panel_rows<8, 8, A>(g, panel, n0, wvalid, mb, me);
      else
        panel_rows<8, 4, A>(g, panel, n0, wvalid, mb, me);
    }
  }
}

}  // namespace

void gemm_8x8__neon(const GemmArgs& g, size_t m_begin, size_t m_end) {
  if (m_begin >= m_end || g.n == 0) return;
  with_act(g.act, [&](auto A) { return run<A.value>(g, m_begin, m_end); }, [] {});
}

}  // namespace pynas
