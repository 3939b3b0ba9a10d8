// GEMM microkernels, AVX-512F. Weights packed in panels 32 channels wide (the variant's NR; the
// last panel 8, 16, 24 or 32); the tiles run 8 rows x 48 channels (24 zmm accumulators, 3 B vectors,
// the A element broadcast), reading a panel and a half or two halves and a panel, and 32 or 16
// where 48 does not divide the channels; a 24- or 8-wide last panel puts the last 8 channels of two
// rows in one zmm (tile_paired), so every FMA is 16 lanes wide.
// Only AVX-512F is assumed (no VL, no DQ).
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <type_traits>

#include "gemm.h"
#include "simd__avx512f.h"

namespace pynas {
namespace {

// Prefetches of the next tile, which may lie past the arrays (after the last tile): the address
// is computed in integers, so no out-of-range pointer is ever formed; a prefetch never faults.
static inline const char* ahead(const float* p, size_t floats) {
  return reinterpret_cast<const char*>(reinterpret_cast<uintptr_t>(p) + floats * sizeof(float));
}

// p + floats, floats possibly negative, for masked loads and stores that start before an array
// (the masked-off lanes are never accessed): again computed in integers.
static inline float* shifted(const float* p, ptrdiff_t floats) {
  return reinterpret_cast<float*>(reinterpret_cast<uintptr_t>(p) + static_cast<uintptr_t>(floats * 4));
}

// The next tile's A rows are prefetched as this one runs: a hardware prefetcher does not follow
// MR interleaved streams of a few cache lines each. Each line of a row holds one float at a
// multiple of 16 from the row start (prefetched when the K loop passes that k) or its last float
// (prefetched here). So are the next tile's C rows: without that, the stores' write-allocate
// misses stall the pipeline at the end of each tile, most on layers with a small K and large N.
template <int MR, int W>
static inline void prefetch_next_tile(const float* const (&ap)[MR], size_t lda, size_t K, const float* c,
                                      size_t ldc) {
  if (K > 0) {
#pragma GCC unroll 16
    for (int r = 0; r < MR; ++r) _mm_prefetch(ahead(ap[r], MR * lda + K - 1), _MM_HINT_T0);
  }
#pragma GCC unroll 16
  for (int r = 0; r < MR; ++r) {
    __builtin_prefetch(ahead(c, (MR + r) * ldc), 1, 3);
    if (W > 16) __builtin_prefetch(ahead(c, (MR + r) * ldc + 16), 1, 3);
    __builtin_prefetch(ahead(c, (MR + r) * ldc + W - 1), 1, 3);
  }
}

template <int MR>
static inline void prefetch_a(const float* const (&ap)[MR], size_t lda, size_t k) {
  if ((k & 15) == 0) {
#pragma GCC unroll 16
    for (int r = 0; r < MR; ++r) _mm_prefetch(ahead(ap[r], MR * lda + k), _MM_HINT_T0);
  }
}

// K steps per block of a tile's K loop (tile(), tile_paired()); 16 (prefetch_a's stride) is a multiple.
constexpr size_t kKBlock = 4;

static inline __mmask16 first_lanes(size_t n) {  // lanes [0, min(n, 16))
  return n >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << n) - 1);
}

// An MR x W tile at A rows a, C rows c: rows [0, rows) are real, the rest are clamped to the last
// real row (computed and stored twice, the same values); channels [0, wvalid) are stored. Its B:
// NA 16-channel vectors from `pa` (in a packed panel whose rows are SA floats apart: its width),
// then NB from `pb` (the next panel, rows SB apart); row 0 of each is the bias. W = 16 (NA + NB) is
// 48 where it can be (`run`): per k, 3 B vectors and MR broadcasts feed 3 MR FMAs (24 accumulators),
// against 2 and MR for 2 MR in a 32-wide tile: K = 672, N = 96 ran at 176 GFLOP/s in 48-wide tiles,
// 150 in 32-wide ones (14 x 14, one core). Loops are fully unrolled (constant indices) so that GCC
// keeps the accumulator arrays in registers. Inlined into the tile loop (as tile_paired()): GCC had
// made each a function, called per tile, each call ending in a vzeroupper and register restores;
// inlined, MnasNet-A1 and MobileNetV2 ran 1.3-3.2% faster at one and two threads on a Zen 5 (the
// layers with a small K most: a tile of K = 16 is only 192 FMA cycles).
template <int MR, int NA, int SA, int NB, int SB, Act A>
__attribute__((always_inline)) static inline void tile(const float* a, size_t lda, const float* pa, const float* pb,
                                                       size_t K, float* c, size_t ldc, const float* res, size_t ldr,
                                                       size_t rows, size_t wvalid, PanelPrefetch pf) {
  constexpr int NZ = NA + NB, W = 16 * NZ;
  static_assert(NA >= 1 && NB >= 0 && NZ <= 3 && SA >= 16 * NA && (NB == 0 || SB >= 16 * NB), "tile sources");
  const float* ap[MR];
#pragma GCC unroll 16
  for (int r = 0; r < MR; ++r) ap[r] = a + (static_cast<size_t>(r) < rows ? r : rows - 1) * lda;

  __m512 z[MR][NZ];
#pragma GCC unroll 16
  for (int r = 0; r < MR; ++r) {  // the bias
#pragma GCC unroll 4
    for (int j = 0; j < NA; ++j) z[r][j] = _mm512_loadu_ps(pa + 16 * j);
#pragma GCC unroll 4
    for (int j = 0; j < NB; ++j) z[r][NA + j] = _mm512_loadu_ps(pb + 16 * j);
  }
  prefetch_next_tile<MR, W>(ap, lda, K, c, ldc);

  const float* b = pa + SA;
  const float* bb = pb + SB;
  auto step = [&](size_t k) {
    __m512 bz[NZ];
#pragma GCC unroll 4
    for (int j = 0; j < NA; ++j) bz[j] = _mm512_loadu_ps(b + 16 * j);
#pragma GCC unroll 4
    for (int j = 0; j < NB; ++j) bz[NA + j] = _mm512_loadu_ps(bb + 16 * j);
#pragma GCC unroll 16
    for (int r = 0; r < MR; ++r) {
      const __m512 va = _mm512_set1_ps(ap[r][k]);
#pragma GCC unroll 4
      for (int j = 0; j < NZ; ++j) z[r][j] = _mm512_fmadd_ps(va, bz[j], z[r][j]);
    }
    b += SA;
    if constexpr (NB > 0) bb += SB;
  };
  // K in blocks of kKBlock steps, the prefetches once per block: per k step the loop is then the
  // FMAs and their loads (with the prefetch bookkeeping in it, ~35 uops per 16 FMAs, the kernel
  // ran at ~75% of the FMA peak with everything in L1).
  size_t k = 0;
  for (; k + kKBlock <= K; k += kKBlock) {
    prefetch_a<MR>(ap, lda, k);
    pf.steps(kKBlock);
#pragma GCC unroll 4
    for (size_t i = 0; i < kKBlock; ++i) step(k + i);
  }
  for (; k < K; ++k) step(k);

  // Epilogue: activation; every residual load before any store (the residual may be C itself).
#pragma GCC unroll 16
  for (int r = 0; r < MR; ++r)
#pragma GCC unroll 4
    for (int j = 0; j < NZ; ++j) z[r][j] = avx512::act<A>(z[r][j]);
  __mmask16 mz[NZ];
#pragma GCC unroll 4
  for (int j = 0; j < NZ; ++j) mz[j] = first_lanes(wvalid > 16u * j ? wvalid - 16u * j : 0);
  const size_t rlast = rows - 1;
  if (res != nullptr) {
#pragma GCC unroll 16
    for (int r = 0; r < MR; ++r) {
      const float* rp = res + (static_cast<size_t>(r) < rows ? r : rlast) * ldr;
#pragma GCC unroll 4
      for (int j = 0; j < NZ; ++j) z[r][j] = _mm512_add_ps(z[r][j], _mm512_maskz_loadu_ps(mz[j], rp + 16 * j));
    }
  }
#pragma GCC unroll 16
  for (int r = 0; r < MR; ++r) {
    float* cp = c + (static_cast<size_t>(r) < rows ? r : rlast) * ldc;
#pragma GCC unroll 4
    for (int j = 0; j < NZ; ++j) _mm512_mask_storeu_ps(cp + 16 * j, mz[j], z[r][j]);
  }
}

// 8 floats broadcast to both halves of a zmm (vbroadcastf64x4: AVX-512F has no f32x8 form).
static inline __m512 load8_twice(const float* p) {
  return _mm512_castpd_ps(_mm512_broadcast_f64x4(_mm256_loadu_pd(reinterpret_cast<const double*>(p))));
}

// An MR x W tile, W = 24 or 8 (16 * NZ + 8), MR even: the first 16 * NZ channels as in tile();
// the last 8 channels of rows 2p and 2p + 1 share the zmm t[p] (lanes 0-7 row 2p, lanes 8-15 row
// 2p + 1): the B row's last 8 floats are loaded into both halves and the two rows' broadcast A
// elements blended. A ymm FMA would take a full FMA slot for half the work; so for W = 24 a row
// pair costs 3 FMAs per k, not 4.
template <int MR, int W, Act A>
__attribute__((always_inline)) static inline void tile_paired(const float* a, size_t lda, const float* panel, size_t K,
                                                              float* c, size_t ldc, const float* res, size_t ldr,
                                                              size_t rows, size_t wvalid, PanelPrefetch pf) {
  constexpr int NZ = W / 16;
  constexpr int NZA = NZ > 0 ? NZ : 1;
  constexpr int MP = MR / 2;
  static_assert(W % 16 == 8 && W <= 24 && MR % 2 == 0, "paired tile");
  const float* ap[MR];
#pragma GCC unroll 16
  for (int r = 0; r < MR; ++r) ap[r] = a + (static_cast<size_t>(r) < rows ? r : rows - 1) * lda;

  __m512 z[MR][NZA];
  __m512 t[MP];
#pragma GCC unroll 16
  for (int r = 0; r < MR; ++r)
#pragma GCC unroll 4
    for (int j = 0; j < NZ; ++j) z[r][j] = _mm512_loadu_ps(panel + 16 * j);
#pragma GCC unroll 16
  for (int p = 0; p < MP; ++p) t[p] = load8_twice(panel + 16 * NZ);
  prefetch_next_tile<MR, W>(ap, lda, K, c, ldc);

  const float* b = panel + W;
  auto step = [&](size_t k) {
    __m512 bz[NZA];
#pragma GCC unroll 4
    for (int j = 0; j < NZ; ++j) bz[j] = _mm512_loadu_ps(b + 16 * j);
    const __m512 bt = load8_twice(b + 16 * NZ);
#pragma GCC unroll 16
    for (int p = 0; p < MP; ++p) {
      const __m512 a0 = _mm512_set1_ps(ap[2 * p][k]);
      const __m512 a1 = _mm512_set1_ps(ap[2 * p + 1][k]);
#pragma GCC unroll 4
      for (int j = 0; j < NZ; ++j) {
        z[2 * p][j] = _mm512_fmadd_ps(a0, bz[j], z[2 * p][j]);
        z[2 * p + 1][j] = _mm512_fmadd_ps(a1, bz[j], z[2 * p + 1][j]);
      }
      t[p] = _mm512_fmadd_ps(_mm512_mask_blend_ps(0xFF00, a0, a1), bt, t[p]);
    }
    b += W;
  };
  // In blocks, as tile(). (The two loops as one always-inline helper taking the step as a lambda
  // compiled differently: 5% slower on the 7x7 shapes of bench/pointwise.py.)
  size_t k = 0;
  for (; k + kKBlock <= K; k += kKBlock) {
    prefetch_a<MR>(ap, lda, k);
    pf.steps(kKBlock);
#pragma GCC unroll 4
    for (size_t i = 0; i < kKBlock; ++i) step(k + i);
  }
  for (; k < K; ++k) step(k);

#pragma GCC unroll 16
  for (int r = 0; r < MR; ++r)
#pragma GCC unroll 4
    for (int j = 0; j < NZ; ++j) z[r][j] = avx512::act<A>(z[r][j]);
#pragma GCC unroll 16
  for (int p = 0; p < MP; ++p) t[p] = avx512::act<A>(t[p]);
  __mmask16 mz[NZA];
#pragma GCC unroll 4
  for (int j = 0; j < NZ; ++j) mz[j] = first_lanes(wvalid > 16u * j ? wvalid - 16u * j : 0);
  const size_t left8 = wvalid > 16u * NZ ? wvalid - 16u * NZ : 0;
  const __mmask16 mlo = first_lanes(left8 < 8 ? left8 : 8);  // the paired tail: row 2p
  const __mmask16 mhi = __mmask16(mlo << 8);                   // and row 2p + 1
  const size_t rlast = rows - 1;
  // Every residual load before any store (the residual may be C itself).
  if (res != nullptr) {
#pragma GCC unroll 16
    for (int p = 0; p < MP; ++p) {
      const float* r0 = res + (static_cast<size_t>(2 * p) < rows ? 2 * p : rlast) * ldr;
      const float* r1 = res + (static_cast<size_t>(2 * p + 1) < rows ? 2 * p + 1 : rlast) * ldr;
#pragma GCC unroll 4
      for (int j = 0; j < NZ; ++j) {
        z[2 * p][j] = _mm512_add_ps(z[2 * p][j], _mm512_maskz_loadu_ps(mz[j], r0 + 16 * j));
        z[2 * p + 1][j] = _mm512_add_ps(z[2 * p + 1][j], _mm512_maskz_loadu_ps(mz[j], r1 + 16 * j));
      }
      // Row 2p's tail into lanes 0-7; row 2p + 1's into lanes 8-15, addressed 8 floats early
      // (masked-off lanes are not accessed).
      const __m512 lo = _mm512_maskz_loadu_ps(mlo, r0 + 16 * NZ);
      t[p] = _mm512_add_ps(t[p], _mm512_mask_loadu_ps(lo, mhi, shifted(r1, 16 * NZ - 8)));
    }
  }
#pragma GCC unroll 16
  for (int p = 0; p < MP; ++p) {
    float* c0 = c + (static_cast<size_t>(2 * p) < rows ? 2 * p : rlast) * ldc;
    float* c1 = c + (static_cast<size_t>(2 * p + 1) < rows ? 2 * p + 1 : rlast) * ldc;
#pragma GCC unroll 4
    for (int j = 0; j < NZ; ++j) {
      _mm512_mask_storeu_ps(c0 + 16 * j, mz[j], z[2 * p][j]);
      _mm512_mask_storeu_ps(c1 + 16 * j, mz[j], z[2 * p + 1][j]);
    }
    _mm512_mask_storeu_ps(c0 + 16 * NZ, mlo, t[p]);
    _mm512_mask_storeu_ps(shifted(c1, 16 * NZ - 8), mhi, t[p]);
  }
}

// Rows [m0, m1) in MR-row tiles, then the rest with an MH-row tile if it fits: `fn(mr, m, rows, pf)`
// runs one (mr a std::integral_constant); the tiles share the prefetch of `next` (the next panel,
// next_floats floats; nullptr for none) between them.
template <int MR, int MH, class TileFn>
static inline void tile_rows(size_t m0, size_t m1, size_t k, const float* next, size_t next_floats, TileFn&& fn) {
  const size_t tiles = (m1 - m0 + MR - 1) / MR;
  size_t index = 0;
  auto run_tile = [&](auto mr, size_t m, size_t rows) {
    fn(mr, m, rows, PanelPrefetch::share(next, next_floats, index++, tiles, k));
  };
  size_t m = m0;
  for (; m + MR <= m1; m += MR) run_tile(std::integral_constant<int, MR>(), m, MR);
  const size_t left = m1 - m;
  if (left == 0) return;
  if (left <= static_cast<size_t>(MH))
    run_tile(std::integral_constant<int, MH>(), m, left);
  else
    run_tile(std::integral_constant<int, MR>(), m, left);
}

// Output channels [n0, n0 + 16 (NA + NB)) over rows [m0, m1) in tile()s (see there for pa, pb).
template <int NA, int SA, int NB, int SB, Act A>
static void group_rows(const GemmArgs& g, const float* pa, const float* pb, size_t n0, size_t wvalid, size_t m0,
                       size_t m1, const float* next, size_t next_floats) {
  const float* res = g.residual != nullptr ? g.residual + n0 : nullptr;
  tile_rows<8, 4>(m0, m1, g.k, next, next_floats, [&](auto mr, size_t m, size_t rows, PanelPrefetch pf) {
    tile<decltype(mr)::value, NA, SA, NB, SB, A>(g.a + m * g.lda, g.lda, pa, pb, g.k, g.c + m * g.ldc + n0, g.ldc,
                                                 res ? res + m * g.ldr : nullptr, g.ldr, rows, wvalid, pf);
  });
}

// The last panel, W = 24 or 8 wide, over rows [m0, m1) in tile_paired()s.
template <int MR, int MH, int W, Act A>
static void paired_rows(const GemmArgs& g, const float* panel, size_t n0, size_t wvalid, size_t m0, size_t m1) {
  const float* res = g.residual != nullptr ? g.residual + n0 : nullptr;
  tile_rows<MR, MH>(m0, m1, g.k, nullptr, 0, [&](auto mr, size_t m, size_t rows, PanelPrefetch pf) {
    tile_paired<decltype(mr)::value, W, A>(g.a + m * g.lda, g.lda, panel, g.k, g.c + m * g.ldc + n0, g.ldc,
                                           res ? res + m * g.ldr : nullptr, g.ldr, rows, wvalid, pf);
  });
}

constexpr size_t kNR = 32;
// 192 KB of A rows: in L2 on every AVX-512 core (1-2 MB), where 64 KB chunks left MnasNet-A1's
// 7 x 7 layers (49 rows) in chunks of 48 + 1 and 16 x 3 + 1, each re-reading the weights.
constexpr size_t kChunkBytes = 192 * 1024;

// The channels' 16-wide vectors in groups of 3 (48-wide tiles) and 2, as few 2s as the count allows
// (10 = 2 + 3 + 3 + 2; 7 = 2 + 3 + 2; a single vector alone), and each group's sources in the packed
// panels: a group may span two panels (NR = 32 wide, the last one narrower).
template <Act A>
static void channel_groups(const GemmArgs& g, size_t vectors, size_t last_w, size_t m0, size_t m1) {
  const size_t K = g.k, N = g.n, full = N / kNR;
  auto width = [&](size_t panel) { return panel < full ? kNR : last_w; };
  auto at = [&](size_t vector) { return g.packed + vector / 2 * kNR * (K + 1) + vector % 2 * 16; };
  auto group_size = [&](size_t v) {
    const size_t left = vectors - v;
    return left % 3 == 1 && left >= 4 ? 2 : left < 3 ? left : 3;
  };
  for (size_t v = 0; v < vectors;) {
    const size_t size = group_size(v);
    const size_t p0 = v / 2, na = std::min<size_t>(size, width(p0) / 16 - v % 2), nb = size - na;
    const size_t n0 = 16 * v, wvalid = std::min<size_t>(N - n0, 16 * size);
    // The next group's weights, prefetched as this group's tiles run: the panels its vectors lie in
    // (a 48-wide group takes a panel and a half; prefetching only the panel after this group's last
    // one left every third panel to demand misses, from DRAM on MnasNet-A1's 7 x 7 layers).
    // After the last group: the 8- or 24-wide last panel that paired tiles run next, if any.
    const size_t u = v + size;
    const auto [next, next_floats] =
        u < vectors ? PanelPrefetch::panels(g.packed, N, K, 16 * u, 16 * (u + group_size(u) - 1), kNR, 8)
                    : PanelPrefetch::next_panel(g.packed, N, K, (u - 1) / 2 * kNR, kNR, 8);
    const float *pa = at(v), *pb = nb > 0 ? at(v + na) : nullptr;
    const bool b16 = nb > 0 && width(p0 + 1) == 16;
    if (na == 2 && nb == 1)
      (b16 ? group_rows<2, 32, 1, 16, A> : group_rows<2, 32, 1, 32, A>)(g, pa, pb, n0, wvalid, m0, m1, next, next_floats);
    else if (na == 1 && nb == 2)
      group_rows<1, 32, 2, 32, A>(g, pa, pb, n0, wvalid, m0, m1, next, next_floats);
    else if (na == 2)
      group_rows<2, 32, 0, 0, A>(g, pa, pb, n0, wvalid, m0, m1, next, next_floats);
    else if (nb == 1)
      (b16 ? group_rows<1, 32, 1, 16, A> : group_rows<1, 32, 1, 32, A>)(g, pa, pb, n0, wvalid, m0, m1, next, next_floats);
    else  // a single vector: only a layer of N <= 16 (the rule above never leaves one vector after others)
      group_rows<1, 16, 0, 0, A>(g, pa, pb, n0, wvalid, m0, m1, next, next_floats);
    v += size;
  }
}

template <Act A>
static void run(const GemmArgs& g, size_t m_begin, size_t m_end) {
  const size_t K = g.k, N = g.n;
  const size_t full = N / kNR, rest = N - full * kNR;  // full panels; channels in the last, narrower one
  const size_t last_w = (rest + 7) / 8 * 8;           // its packed width: 0, 8, 16, 24 or 32
  // 16-wide vectors for tile(): the full panels', and a 32- or 16-wide last panel's; an 8- or
  // 24-wide last panel runs in paired tiles after them.
  const size_t vectors = 2 * full + (last_w == 32 ? 2 : last_w == 16 ? 1 : 0);
  // Row chunks (a multiple of every tile's rows) whose A rows stay in L1/L2 while every panel
  // passes over them.
  const size_t mc = gemm_row_chunk(m_end - m_begin, K, kChunkBytes, 16);
  for (size_t mb = m_begin; mb < m_end; mb += mc) {
    const size_t me = m_end - mb < mc ? m_end : mb + mc;
    channel_groups<A>(g, vectors, last_w, mb, me);
    const size_t n0 = full * kNR;
    const float* panel = g.packed + n0 * (K + 1);
    if (last_w == 24) paired_rows<8, 4, 24, A>(g, panel, n0, rest, mb, me);
    if (last_w == 8) paired_rows<16, 8, 8, A>(g, panel, n0, rest, mb, me);
  }
}

}  // namespace

void gemm_8x48__avx512f(const GemmArgs& g, size_t m_begin, size_t m_end) {
  if (m_begin >= m_end || g.n == 0) return;
  with_act(g.act, [&](auto A) { return run<A.value>(g, m_begin, m_end); }, [] {});
}

}  // namespace pynas
