// Regular conv, AVX2+FMA: register tile of up to 6 output pixels x 16 output channels (one packed
// block, two ymm per pixel: 12 accumulators of the 16 ymm). See conv.h.
#include <array>
#include <utility>

#include "conv.h"
#include "conv_rows.h"
#include "simd__avx2.h"

namespace pynas {
namespace {

constexpr int kMaxMR = 6;

alignas(32) const int kMaskTable[16] = {-1, -1, -1, -1, -1, -1, -1, -1, 0, 0, 0, 0, 0, 0, 0, 0};
inline __m256i lane_mask(size_t n) {  // first n (1..8) lanes
  return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(kMaskTable + 8 - n));
}

struct Tile {
  const float* const* rows;
  size_t nrows, jlen, pix_stride;
  const float* w;  // packed block at the first valid kernel row
  size_t w_row;
  __m256 bias[2];
  size_t last_n;   // valid lanes (1..8) of the last ymm
  __m256i last_mask;
  size_t out_c;
};
using TileFn = void (*)(const Tile&, size_t x0, float* out, const float* res);

template <int MR, int NV, Act A>
void tile(const Tile& t, size_t x0, float* out, const float* res) {
  __m256 acc[MR][NV];
#pragma GCC unroll 8
  for (int i = 0; i < MR; ++i)
#pragma GCC unroll 2
    for (int n = 0; n < NV; ++n) acc[i][n] = t.bias[n];
  const size_t jlen = t.jlen, ps = t.pix_stride, w_row = t.w_row, nrows = t.nrows;
  for (size_t r = 0; r < nrows; ++r) {
    const float* p[MR];
#pragma GCC unroll 8
    for (int i = 0; i < MR; ++i) p[i] = t.rows[r] + x0 + i * ps;
    const float* w = t.w + r * w_row;
    for (size_t j = 0; j < jlen; ++j) {
      const __m256 wa = _mm256_loadu_ps(w + j * 16);
      const __m256 wb = NV > 1 ? _mm256_loadu_ps(w + j * 16 + 8) : wa;
#pragma GCC unroll 8
      for (int i = 0; i < MR; ++i) {
        const __m256 x = _mm256_broadcast_ss(p[i] + j);
        acc[i][0] = _mm256_fmadd_ps(x, wa, acc[i][0]);
        if (NV > 1) acc[i][NV - 1] = _mm256_fmadd_ps(x, wb, acc[i][NV - 1]);
      }
    }
  }
  const size_t out_c = t.out_c, last_n = t.last_n;
  const __m256i mask = t.last_mask;
#pragma GCC unroll 8
  for (int i = 0; i < MR; ++i) {
    float* o = out + i * out_c;
    const float* rr = res ? res + i * out_c : nullptr;
    if (NV > 1) {
      __m256 v = avx2::act<A>(acc[i][0]);
      if (rr) v = _mm256_add_ps(v, _mm256_loadu_ps(rr));
      _mm256_storeu_ps(o, v);
    }
    __m256 v = avx2::act<A>(acc[i][NV - 1]);
    const size_t off = (NV - 1) * 8;
    if (last_n == 8) {
      if (rr) v = _mm256_add_ps(v, _mm256_loadu_ps(rr + off));
      _mm256_storeu_ps(o + off, v);
    } else {
      if (rr) v = _mm256_add_ps(v, _mm256_maskload_ps(rr + off, mask));
      _mm256_maskstore_ps(o + off, mask, v);
    }
  }
}

template <int NV, Act A, int... I>
constexpr std::array<TileFn, sizeof...(I)> tile_table(std::integer_sequence<int, I...>) {
  return {&tile<I + 1, NV, A>...};
}

template <Act A>
void conv_rows(const ConvArgs& a, size_t oy_begin, size_t oy_end) {
  static constexpr std::array<TileFn, kMaxMR> tiles1 = tile_table<1, A>(std::make_integer_sequence<int, kMaxMR>());
  static constexpr std::array<TileFn, kMaxMR> tiles2 = tile_table<2, A>(std::make_integer_sequence<int, kMaxMR>());
  PaddedRows src(a);
  const size_t Cin = a.in_c, Cout = a.out_c, k = static_cast<size_t>(a.kernel), s = static_cast<size_t>(a.stride);
  const size_t nblocks = (Cout + 15) / 16;
  const PixelBlocks pb(a.out_w, kMaxMR);
  Tile t;
  t.jlen = k * Cin;
  t.pix_stride = s * Cin;
  t.w_row = t.jlen * 16;
  const size_t w_block = k * t.w_row;
  t.out_c = Cout;
  const float* rows[8];
  t.rows = rows;
  alignas(32) float bias[16];
  for (size_t oy = oy_begin; oy < oy_end; ++oy) {
    size_t ky0, ky1;
    valid_kernel_rows(a, oy, ky0, ky1);
    for (size_t ky = ky0; ky < ky1; ++ky) rows[ky - ky0] = src.row(oy * s + ky - a.pad);
    t.nrows = ky1 - ky0;
    float* out_row = a.output + oy * a.out_w * Cout;
    const float* res_row = a.residual ? a.residual + oy * a.out_w * Cout : nullptr;
    for (size_t b = 0; b < nblocks; ++b) {
      const size_t valid = std::min<size_t>(16, Cout - b * 16);
      const int nv = valid > 8 ? 2 : 1;
      t.last_n = valid - (nv - 1) * 8;
      t.last_mask = lane_mask(t.last_n);
      for (size_t l = 0; l < 16; ++l) bias[l] = l < valid ? a.bias[b * 16 + l] : 0.0f;
      t.bias[0] = _mm256_load_ps(bias);
      t.bias[1] = _mm256_load_ps(bias + 8);
      t.w = a.weights + b * w_block + ky0 * t.w_row;
      const std::array<TileFn, kMaxMR>& tiles = nv > 1 ? tiles2 : tiles1;
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

void conv_c16__avx2(const ConvArgs& a, size_t oy_begin, size_t oy_end) {
  with_act(a.act, [&](auto A) { return conv_rows<A.value>(a, oy_begin, oy_end); }, [] {});
}

}  // namespace pynas
