// Packed-weight GEMM microkernels: the pointwise (1x1) conv, NHWC batch 1, and its variant list.
//
//   C[m][n] = act(bias[n] + sum_k A[m][k] * B[k][n]) (+ residual[m][n], added after the activation)
//
// with m the pixel (M = H*W), k the input channel (K = Cin) and n the output channel (N = Cout).
// A, C and the residual are row-major with their own row strides (lda, ldc, ldr, in floats), so a
// grouped conv runs one GEMM per group on column offsets of the same arrays, and a block can write
// into a channel slice of a larger tensor, in place.
//
// B and the bias are packed once per layer (network build time) by gemm_pack() into column panels:
//
//   panel p covers output channels [n0, n0 + w) with n0 = p * NR and
//   w = min(NR, round_up(N - n0, NR_MIN)); it starts at packed + n0 * (K + 1) and holds
//   w floats of bias, then K rows of w floats (row k = B[k][n0 .. n0 + w)), zero-padded past N.
//
// Every panel but the last is NR wide; the last one is only as wide as the N remainder rounded
// up to NR_MIN (the ISA's narrowest vector), so e.g. N = 24 packs into one 24-wide panel and no
// lane is wasted. The packed buffer holds round_up(N, NR_MIN) * (K + 1) floats
// (gemm_packed_size). A kernel may read it at any alignment; 64-byte aligned is best (then every
// full panel starts on a cache line).
#pragma once

#include <cstddef>
#include <string>
#include <utility>

#include "registry.h"

// X(name, isa, MR, NR, NR_MIN): MR rows per register tile, NR the packed panels' width, NR_MIN the
// packing granule of the last panel (see above); the name's tile is the main register tile (rows x
// output channels), MR x NR but on AVX-512. Best first.
//   avx512: 8x48 over 32-wide panels (24 zmm accumulators, a panel and a half per tile; 32- or
//           16-wide tiles where 48 does not divide N); a 24- or 8-wide last panel puts the last 8
//           channels of two rows in one zmm, so N = 24 runs at full vector width.
//   avx2:   4x24 (12 ymm accumulators); 16-wide last panel 6 rows, 8-wide 12 rows.
//   neon:   8x8 (16 q accumulators, A read 4 k-steps at a time, lane FMAs); 4-wide last panel.
//   scalar: 4x8, last panel exactly the N remainder.
#define PYNAS_GEMM_VARIANTS(X)                                     \
  PYNAS_IF_X86(X(gemm_8x48__avx512f, avx512, 8, 32, 8))            \
  PYNAS_IF_X86(X(gemm_4x24__avx2, avx2, 4, 24, 8))                 \
  PYNAS_IF_ARM(X(gemm_8x8__neon, neon, 8, 8, 4))                   \
  X(gemm_4x8__scalar, scalar, 4, 8, 1)

namespace pynas {

struct GemmArgs {
  const float* a;         // A: row m at a + m * lda, K floats (the input pixels, Cin channels)
  size_t lda;             // A row stride, in floats (>= K)
  const float* packed;    // B and bias, packed by gemm_pack() with this variant's NR and NR_MIN
  float* c;               // C: row m at c + m * ldc, N floats
  size_t ldc;             // C row stride, in floats (>= N)
  const float* residual;  // nullptr, or row m at residual + m * ldr: added after the activation.
  size_t ldr;             // May be C itself (residual == c, ldr == ldc: an in-place add); must
                          // not otherwise overlap C, and C must not overlap A.
  size_t m, n, k;         // M (informational: the kernel touches only the rows it is given), N, K
  Act act;
};
// Computes C rows [m_begin, m_end) (reading the same rows of A and the residual): fused blocks
// and threads split the rows, any range is fine (the kernel blocks it for cache reuse, in tiles
// of MR rows; a last partial tile recomputes its last row rather than reading past m_end). No
// alignment is required of any pointer or stride. The kernels prefetch one tile past m_end (a
// prefetch never faults), keep no state and may run concurrently on disjoint row ranges.
using GemmFn = void (*)(const GemmArgs&, size_t m_begin, size_t m_end);

// The next panel of B, prefetched into L2 a few cache lines per k step while the tiles of this one
// run. In a network a layer's weights come from L3 or DRAM (a 224 px mobile CNN has 15 MB of them;
// each is read once per run): the hardware prefetcher follows a panel's stream but only starts
// after its first misses, and the first tile of each panel then waits on L3 for every k. Measured
// in-cache, the 8x32 AVX-512 tile ran at 75-82% of the FMA peak on 7x7 and 14x14 layer shapes; in a
// network, with the weights coming from L3, at about half that.
struct PanelPrefetch {
  const char* next = nullptr;  // the next line to prefetch
  const char* end = nullptr;   // past the last one
  size_t per_k = 0;            // lines per k step
  inline bool pending() const { return next < end; }  // lines left to prefetch
  inline void step() {
    for (size_t i = 0; i < per_k && next < end; ++i, next += 64) __builtin_prefetch(next, 0, 2);
  }
  // The lines of `steps` k steps at once: a kernel whose K loop runs in blocks of k steps calls
  // this once per block, keeping the prefetch loop out of the FMA loop.
  inline void steps(size_t n) {
    for (size_t i = 0, lines = per_k * n; i < lines && next < end; ++i, next += 64) __builtin_prefetch(next, 0, 2);
  }
  // The panel after the one at output channel n0 of a packed N x K layer (gemm.h's layout: panels
  // nr wide, the last rounded up to nr_min), as (its first float, its floats); (nullptr, 0) after the
  // last panel, or when the packed weights are under kPrefetchBytes: then they are in L2 from the last
  // run anyway and prefetching only costs (the 56x56 layers of MnasNet-A1 measured 4-9% slower with
  // it, its 7x7 blocks and head 8-19% faster, on AVX-512).
  static constexpr size_t kPrefetchBytes = 128 * 1024;
  static std::pair<const float*, size_t> next_panel(const float* packed, size_t n, size_t k, size_t n0, size_t nr,
                                                    size_t nr_min) {
    return panels(packed, n, k, n0 + nr, n0 + nr, nr, nr_min);
  }
  // Likewise the panels holding output channels first .. last (a tile wider than a panel reads
  // two): from the start of first's panel to the end of last's; (nullptr, 0) as above.
  static std::pair<const float*, size_t> panels(const float* packed, size_t n, size_t k, size_t first, size_t last,
                                                size_t nr, size_t nr_min) {
    if (n * (k + 1) * sizeof(float) < kPrefetchBytes || first >= n) return {nullptr, 0};
    const size_t p0 = first / nr * nr, p1 = last / nr * nr;
    const size_t width = n - p1 < nr ? n - p1 : nr;
    return {packed + p0 * (k + 1), (p1 - p0 + (width + nr_min - 1) / nr_min * nr_min) * (k + 1)};
  }
  // The lines of `panel_floats` floats at `panel` (nullptr: none) that tile `index` of `tiles` (over
  // K steps) prefetches: an equal share per tile, so that they are spread over the panel's tiles.
  static PanelPrefetch share(const float* panel, size_t panel_floats, size_t index, size_t tiles, size_t k) {
    PanelPrefetch p;
    if (panel == nullptr || k == 0 || tiles == 0) return p;
    const size_t lines = (panel_floats * sizeof(float) + 63) / 64;
    const size_t each = (lines + tiles - 1) / tiles;
    const size_t first = index * each < lines ? index * each : lines;
    const size_t last = first + each < lines ? first + each : lines;
    p.next = reinterpret_cast<const char*>(panel) + first * 64;
    p.end = reinterpret_cast<const char*>(panel) + last * 64;
    p.per_k = (last - first + k - 1) / k;
    return p;
  }
};

// Rows per chunk of a GEMM over `rows` rows: each chunk's A rows (K floats each) stay in cache while
// every panel of B passes over them, so B is read once per chunk. At most `budget_bytes` of A per
// chunk, a multiple of `granule` rows (the tiles'), and the chunks as even as that allows: a chunk
// of 48 rows and one of 1 would read every weight twice for one row (MnasNet-A1's 7 x 7 layers have
// 49 rows; their weights come from L3).
inline size_t gemm_row_chunk(size_t rows, size_t k, size_t budget_bytes, size_t granule) {
  size_t most = budget_bytes / (sizeof(float) * (k + 1));
  // All the rows fit: one chunk, whatever the granule (rounding `most` down to it first split
  // MnasNet-A1's 7 x 7 K = 960 layers, 49 rows in 188 KB, in two and read their weights twice).
  if (rows <= most) return (rows + granule - 1) / granule * granule;
  most = most < granule ? granule : most - most % granule;
  const size_t chunks = (rows + most - 1) / most;
  const size_t even = chunks ? (rows + chunks - 1) / chunks : rows;
  return (even + granule - 1) / granule * granule;
}

#define PYNAS_DECLARE(name, isa, mr, nr, nr_min) void name(const GemmArgs&, size_t m_begin, size_t m_end);
PYNAS_GEMM_VARIANTS(PYNAS_DECLARE)
#undef PYNAS_DECLARE

// The tile of a variant (baseline code: gemm_pack.cc).
struct GemmTile {
  int mr, nr, nr_min;
};
// The tile of the variant called `name`; throws std::invalid_argument if there is none.
GemmTile gemm_tile(const std::string& name);

// Floats of packed weights for an N x K layer: round_up(N, nr_min) * (K + 1).
size_t gemm_packed_size(size_t n, size_t k, int nr, int nr_min);

// Packs weights w (N rows of K floats, row n at w + n * ldw: PyTorch's Cout x Cin) and bias
// (N floats, or nullptr for zeros) into `packed` (gemm_packed_size floats; see the layout above).
void gemm_pack(const float* w, size_t ldw, const float* bias, size_t n, size_t k, int nr, int nr_min,
               float* packed);

// ShuffleNet's channel shuffle on rows [m_begin, m_end): out channel j * groups + g = in channel
// g * (C / groups) + j, i.e. channels (g, C/g) -> (C/g, g); plus residual (if not nullptr),
// added after the shuffle. in and out must not overlap; out and residual may be the same array.
void channel_shuffle(const float* in, size_t ldi, float* out, size_t ldo, const float* residual, size_t ldr,
                     size_t channels, size_t groups, size_t m_begin, size_t m_end);

}  // namespace pynas
