// Regular conv, AVX-512F: register tile of up to 12 output pixels x 32 output channels (two packed
// blocks, 24 zmm accumulators); one broadcast input value feeds two FMAs. See conv.h.
#include <array>
#include <utility>

#include "conv.h"
#include "conv_rows.h"
#include "simd__avx512f.h"

namespace pynas {
namespace {

constexpr int kMaxMR = 12;

struct Tile {
  const float* const* rows;  // valid padded input rows
  size_t nrows, jlen, pix_stride;  // jlen = k * in_c; pix_stride = stride * in_c
  const float* w;            // packed weights of the first block at the first valid kernel row
  size_t w_row, w_block;     // floats per kernel row (jlen * 16), per packed block
  __m512 bias[2];
  __mmask16 last_mask;       // valid lanes of the last block
  size_t out_c;
};
using TileFn = void (*)(const Tile&, size_t x0, float* out, const float* res);

// PS, J > 0: the pixel stride and a kernel row's floats fixed at compile time (the 3 x 3 stride-2
// stem on 3 channels: PS = 6, J = 9), so the MR pixels' inputs are constant offsets from one
// pointer and the row is unrolled; with runtime values GCC keeps a pointer per pixel, 12 plus the
// loop's, and spills them.
template <int MR, int NB, Act A, int PS = 0, int J = 0>
void tile(const Tile& t, size_t x0, float* out, const float* res) {
  __m512 acc[MR][NB];
#pragma GCC unroll 16
  for (int i = 0; i < MR; ++i)
#pragma GCC unroll 2
    for (int n = 0; n < NB; ++n) acc[i][n] = t.bias[n];
  const size_t jlen = t.jlen, ps = t.pix_stride, w_row = t.w_row, w_block = t.w_block, nrows = t.nrows;
  for (size_t r = 0; r < nrows; ++r) {
    const float* w0 = t.w + r * w_row;
    const float* w1 = w0 + w_block;
    if constexpr (PS > 0) {
      const float* p0 = t.rows[r] + x0;
      // Not unrolled: pixel i's tap j is pixel i + 1's tap j - PS, and GCC, seeing that, keeps the
      // shared broadcasts across the row in registers and spills the accumulators (1.5-1.8x slower).
#pragma GCC unroll 1
      for (int j = 0; j < J; ++j) {
        const __m512 wa = _mm512_loadu_ps(w0 + j * 16);
        const __m512 wb = NB > 1 ? _mm512_loadu_ps(w1 + j * 16) : wa;
#pragma GCC unroll 16
        for (int i = 0; i < MR; ++i) {
          const __m512 x = _mm512_set1_ps(p0[i * PS + j]);
          acc[i][0] = _mm512_fmadd_ps(x, wa, acc[i][0]);
          if (NB > 1) acc[i][NB - 1] = _mm512_fmadd_ps(x, wb, acc[i][NB - 1]);
        }
      }
      continue;
    }
    const float* p[MR];
#pragma GCC unroll 16
    for (int i = 0; i < MR; ++i) p[i] = t.rows[r] + x0 + i * ps;
    for (size_t j = 0; j < jlen; ++j) {
      const __m512 wa = _mm512_loadu_ps(w0 + j * 16);
      const __m512 wb = NB > 1 ? _mm512_loadu_ps(w1 + j * 16) : wa;
#pragma GCC unroll 16
      for (int i = 0; i < MR; ++i) {
        const __m512 x = _mm512_set1_ps(p[i][j]);
        acc[i][0] = _mm512_fmadd_ps(x, wa, acc[i][0]);
        if (NB > 1) acc[i][NB - 1] = _mm512_fmadd_ps(x, wb, acc[i][NB - 1]);
      }
    }
  }
  const size_t out_c = t.out_c;
  const __mmask16 mask = t.last_mask;
#pragma GCC unroll 16
  for (int i = 0; i < MR; ++i) {
    float* o = out + i * out_c;
    const float* rr = res ? res + i * out_c : nullptr;
    if (NB > 1) {
      __m512 v = avx512::act<A>(acc[i][0]);
      if (rr) v = _mm512_add_ps(v, _mm512_loadu_ps(rr));
      _mm512_storeu_ps(o, v);
    }
    __m512 v = avx512::act<A>(acc[i][NB - 1]);
    if (rr) v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(mask, rr + (NB - 1) * 16));
    _mm512_mask_storeu_ps(o + (NB - 1) * 16, mask, v);
  }
}

template <int NB, Act A, int PS, int J, int... I>
constexpr std::array<TileFn, sizeof...(I)> tile_table(std::integer_sequence<int, I...>) {
  return {&tile<I + 1, NB, A, PS, J>...};
}

template <Act A>
void conv_rows(const ConvArgs& a, size_t oy_begin, size_t oy_end) {
  using Seq = std::make_integer_sequence<int, kMaxMR>;
  static constexpr std::array<TileFn, kMaxMR> tiles1 = tile_table<1, A, 0, 0>(Seq());
  static constexpr std::array<TileFn, kMaxMR> tiles2 = tile_table<2, A, 0, 0>(Seq());
  static constexpr std::array<TileFn, kMaxMR> stem1 = tile_table<1, A, 6, 9>(Seq());
  static constexpr std::array<TileFn, kMaxMR> stem2 = tile_table<2, A, 6, 9>(Seq());
  PaddedRows src(a);
  const size_t Cin = a.in_c, Cout = a.out_c, k = static_cast<size_t>(a.kernel), s = static_cast<size_t>(a.stride);
  const size_t nblocks = (Cout + 15) / 16;
  const PixelBlocks pb(a.out_w, kMaxMR);
  Tile t;
  t.jlen = k * Cin;
  t.pix_stride = s * Cin;
  t.w_row = t.jlen * 16;
  t.w_block = k * t.w_row;
  t.out_c = Cout;
  const float* rows[8];
  t.rows = rows;
  const bool stem = t.pix_stride == 6 && t.jlen == 9;  // 3 x 3, stride 2, 3 channels
  const std::array<TileFn, kMaxMR>& one = stem ? stem1 : tiles1;
  const std::array<TileFn, kMaxMR>& two = stem ? stem2 : tiles2;
  for (size_t oy = oy_begin; oy < oy_end; ++oy) {
    size_t ky0, ky1;
    valid_kernel_rows(a, oy, ky0, ky1);
    for (size_t ky = ky0; ky < ky1; ++ky) rows[ky - ky0] = src.row(oy * s + ky - a.pad);
    t.nrows = ky1 - ky0;
    float* out_row = a.output + oy * a.out_w * Cout;
    const float* res_row = a.residual ? a.residual + oy * a.out_w * Cout : nullptr;
    for (size_t b = 0; b < nblocks; b += 2) {
      const size_t nb = std::min<size_t>(2, nblocks - b);
      const size_t last_valid = std::min<size_t>(16, Cout - (b + nb - 1) * 16);
      t.last_mask = static_cast<__mmask16>((1u << last_valid) - 1);
      t.bias[0] = _mm512_maskz_loadu_ps(nb > 1 ? 0xFFFF : t.last_mask, a.bias + b * 16);
      t.bias[1] = nb > 1 ? _mm512_maskz_loadu_ps(t.last_mask, a.bias + b * 16 + 16) : t.bias[0];
      t.w = a.weights + b * t.w_block + ky0 * t.w_row;
      const std::array<TileFn, kMaxMR>& tiles = nb > 1 ? two : one;
      size_t ox = 0;
      for (size_t i = 0; i < pb.count; ++i) {
        const size_t mr = pb.size(i);
        tiles[mr - 1](t, ox * t.pix_stride, out_row + ox * Cout + b * 16, res_row ? res_row + ox * Cout + b * 16 : nullptr);
        ox += mr;
      }
    }
  }
}

}  // namespace

void conv_c32__avx512f(const ConvArgs& a, size_t oy_begin, size_t oy_end) {
  with_act(a.act, [&](auto A) { return conv_rows<A.value>(a, oy_begin, oy_end); }, [] {});
}

}  // namespace pynas
