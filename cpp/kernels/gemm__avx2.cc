// GEMM microkernels, AVX2 + FMA (16 ymm registers). Main tile 4 rows x 24 channels (12
// accumulators, 3 B vectors, 1 broadcast A); a narrower last panel is 16 wide (6 rows) or 8 wide
// (12 rows), keeping 12 accumulators in flight, enough to cover the FMA latency. Same structure
// as gemm__avx512f.cc (prefetching, clamped rows, epilogue order): see the notes there.
#include <cstdint>

#include "gemm.h"
#include "simd__avx2.h"

namespace pynas {
namespace {

// Prefetches of the next tile, which may lie past the arrays (after the last tile): the address
// is computed in integers, so no out-of-range pointer is ever formed; a prefetch never faults.
static inline const char* ahead(const float* p, size_t floats) {
  return reinterpret_cast<const char*>(reinterpret_cast<uintptr_t>(p) + floats * sizeof(float));
}

// Load masks for the N remainder: 8 ones then 8 zeros; the window at 8 - n has n leading ones.
alignas(32) static const int kMaskTable[16] = {-1, -1, -1, -1, -1, -1, -1, -1, 0, 0, 0, 0, 0, 0, 0, 0};

static inline __m256i tail_mask(size_t n) {  // first n lanes (n <= 8)
  return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(kMaskTable + 8 - n));
}

// Rows [0, rows) of an MR-row, W-wide tile (rows past `rows` are clamped to the last valid one:
// computed twice, stored twice, the same values).
template <int MR, int W, Act A>
static inline void tile(const float* a, size_t lda, const float* panel, size_t K, float* c, size_t ldc,
                        const float* res, size_t ldr, size_t rows, size_t wvalid, PanelPrefetch pf_next) {
  constexpr int NV = W / 8;
  static_assert(W % 8 == 0 && NV >= 1 && NV <= 3, "panel width");
  const float* ap[MR];
#pragma GCC unroll 16
  for (int r = 0; r < MR; ++r) ap[r] = a + (static_cast<size_t>(r) < rows ? r : rows - 1) * lda;

  __m256 acc[MR][NV];
#pragma GCC unroll 16
  for (int r = 0; r < MR; ++r)
#pragma GCC unroll 4
    for (int j = 0; j < NV; ++j) acc[r][j] = _mm256_loadu_ps(panel + 8 * j);

  // Prefetch the next tile's A rows (see gemm__avx512f.cc): each row's lines at multiples of 16
  // floats from its start, and its last float; and the next tile's C rows.
  const size_t pf = MR * lda;
  if (K > 0) {
#pragma GCC unroll 16
    for (int r = 0; r < MR; ++r) _mm_prefetch(ahead(ap[r], pf + K - 1), _MM_HINT_T0);
  }
#pragma GCC unroll 16
  for (int r = 0; r < MR; ++r) {
    __builtin_prefetch(ahead(c, (MR + r) * ldc), 1, 3);
    if (W > 16) __builtin_prefetch(ahead(c, (MR + r) * ldc + 16), 1, 3);
    __builtin_prefetch(ahead(c, (MR + r) * ldc + W - 1), 1, 3);
  }
  // The K loop: a packed B row against one broadcast A element per row. always_inline: GCC
  // outlined it in some instantiations, the accumulators then living in memory.
  const float* b = panel + W;
  auto step = [&](size_t k) __attribute__((always_inline)) {
    __m256 bv[NV];
#pragma GCC unroll 4
    for (int j = 0; j < NV; ++j) bv[j] = _mm256_loadu_ps(b + 8 * j);
#pragma GCC unroll 16
    for (int r = 0; r < MR; ++r) {
      const __m256 va = _mm256_broadcast_ss(ap[r] + k);
#pragma GCC unroll 4
      for (int j = 0; j < NV; ++j) acc[r][j] = _mm256_fmadd_ps(va, bv[j], acc[r][j]);
    }
    b += W;
  };
  // In runs of up to 16 k steps (the A prefetch stride): while the next panel has lines left to
  // prefetch, each step issues its share; after that a step is its loads and FMAs alone. (One loop
  // with the prefetch bookkeeping in every step spent ~8 of ~34 uops a step on it: the same speed
  // with the core to itself, 3-6% slower on the layer shapes while another hyperthread shares the
  // core, MnasNet-A1 at one thread 1.5% slower, up to 4% in slow spells.)
  size_t k = 0;
  while (k < K) {
    const size_t run_end = (k | 15) + 1 < K ? (k | 15) + 1 : K;
    if ((k & 15) == 0) {
#pragma GCC unroll 16
      for (int r = 0; r < MR; ++r) _mm_prefetch(ahead(ap[r], pf + k), _MM_HINT_T0);
    }
    if (pf_next.pending()) {
      for (; k < run_end; ++k) {
        pf_next.step();
        step(k);
      }
    } else {
      // One step an iteration: unrolled, GCC runs out of the 16 registers and reads B from memory
      // in each FMA (no faster measured, with 13 loads a step for 7).
#pragma GCC unroll 1
      for (; k < run_end; ++k) step(k);
    }
  }

  // Epilogue: activation; every residual load before any store (the residual may be C itself).
#pragma GCC unroll 16
  for (int r = 0; r < MR; ++r)
#pragma GCC unroll 4
    for (int j = 0; j < NV; ++j) acc[r][j] = avx2::act<A>(acc[r][j]);
  const size_t rlast = rows - 1;
  if (wvalid == static_cast<size_t>(W)) {
    if (res != nullptr) {
#pragma GCC unroll 16
      for (int r = 0; r < MR; ++r) {
        const float* rp = res + (static_cast<size_t>(r) < rows ? r : rlast) * ldr;
#pragma GCC unroll 4
        for (int j = 0; j < NV; ++j) acc[r][j] = _mm256_add_ps(acc[r][j], _mm256_loadu_ps(rp + 8 * j));
      }
    }
#pragma GCC unroll 16
    for (int r = 0; r < MR; ++r) {
      float* cp = c + (static_cast<size_t>(r) < rows ? r : rlast) * ldc;
#pragma GCC unroll 4
      for (int j = 0; j < NV; ++j) _mm256_storeu_ps(cp + 8 * j, acc[r][j]);
    }
  } else {
    __m256i mask[NV];
#pragma GCC unroll 4
    for (int j = 0; j < NV; ++j) {
      const size_t left = wvalid > 8u * j ? wvalid - 8u * j : 0;
      mask[j] = tail_mask(left < 8 ? left : 8);
    }
    if (res != nullptr) {
#pragma GCC unroll 16
      for (int r = 0; r < MR; ++r) {
        const float* rp = res + (static_cast<size_t>(r) < rows ? r : rlast) * ldr;
#pragma GCC unroll 4
        for (int j = 0; j < NV; ++j) acc[r][j] = _mm256_add_ps(acc[r][j], _mm256_maskload_ps(rp + 8 * j, mask[j]));
      }
    }
#pragma GCC unroll 16
    for (int r = 0; r < MR; ++r) {
      float* cp = c + (static_cast<size_t>(r) < rows ? r : rlast) * ldc;
#pragma GCC unroll 4
      for (int j = 0; j < NV; ++j) _mm256_maskstore_ps(cp + 8 * j, mask[j], acc[r][j]);
    }
  }
}

// Rows [m0, m1) of one panel: full MR-row tiles, then the tail with an MR/2 tile if it fits; the
// tiles prefetch `next` (the next panel, next_floats floats; nullptr for none) between them.
template <int MR, int W, Act A>
static void panel_rows(const GemmArgs& g, const float* panel, size_t n0, size_t wvalid, size_t m0, size_t m1,
                       const float* next, size_t next_floats) {
  const float* res = g.residual != nullptr ? g.residual + n0 : nullptr;
  const size_t tiles = (m1 - m0 + MR - 1) / MR;
  size_t index = 0;
  size_t m = m0;
  for (; m + MR <= m1; m += MR)
    tile<MR, W, A>(g.a + m * g.lda, g.lda, panel, g.k, g.c + m * g.ldc + n0, g.ldc,
                   res ? res + m * g.ldr : nullptr, g.ldr, MR, wvalid,
                   PanelPrefetch::share(next, next_floats, index++, tiles, g.k));
  const size_t left = m1 - m;
  if (left == 0) return;
  const PanelPrefetch pf = PanelPrefetch::share(next, next_floats, index, tiles, g.k);
  if (left <= MR / 2)
    tile<MR / 2, W, A>(g.a + m * g.lda, g.lda, panel, g.k, g.c + m * g.ldc + n0, g.ldc,
                       res ? res + m * g.ldr : nullptr, g.ldr, left, wvalid, pf);
  else
    tile<MR, W, A>(g.a + m * g.lda, g.lda, panel, g.k, g.c + m * g.ldc + n0, g.ldc,
                   res ? res + m * g.ldr : nullptr, g.ldr, left, wvalid, pf);
}

constexpr int kNR = 24;

template <Act A>
static void run(const GemmArgs& g, size_t m_begin, size_t m_end) {
  const size_t K = g.k, N = g.n;
  // Row chunks (a multiple of every tile's rows) whose A rows stay in L1/L2 while every panel
  // passes over them.
  const size_t mc = gemm_row_chunk(m_end - m_begin, K, 192 * 1024, 12);
  for (size_t mb = m_begin; mb < m_end; mb += mc) {
    const size_t me = m_end - mb < mc ? m_end : mb + mc;
    for (size_t n0 = 0; n0 < N; n0 += kNR) {
      const size_t left = N - n0;
      const size_t wvalid = left < kNR ? left : kNR;
      const size_t w = (wvalid + 7) & ~size_t(7);
      const float* panel = g.packed + n0 * (K + 1);
      const auto [next, next_floats] = PanelPrefetch::next_panel(g.packed, N, K, n0, kNR, 8);  // NR_MIN 8
      switch (w) {
        case 24: panel_rows<4, 24, A>(g, panel, n0, wvalid, mb, me, next, next_floats); break;
        case 16: panel_rows<6, 16, A>(g, panel, n0, wvalid, mb, me, next, next_floats); break;
        default: panel_rows<12, 8, A>(g, panel, n0, wvalid, mb, me, next, next_floats); break;
      }
    }
  }
}

}  // namespace

void gemm_4x24__avx2(const GemmArgs& g, size_t m_begin, size_t m_end) {
  if (m_begin >= m_end || g.n == 0) return;
  with_act(g.act, [&](auto A) { return run<A.value>(g, m_begin, m_end); }, [] {});
}

}  // namespace pynas
