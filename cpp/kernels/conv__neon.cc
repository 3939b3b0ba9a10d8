// Regular conv, NEON (aarch64): register tile of up to 5 output pixels x 16 output channels (one
// packed block, four q registers per pixel): 20 accumulators + 4 weights + 5 inputs fit the 32
// registers (6 pixels spill). See conv.h.
#include <array>
#include <utility>

#include "conv.h"
#include "conv_rows.h"
#include "simd__neon.h"

namespace pynas {
namespace {

constexpr int kMaxMR = 5;

struct Tile {
  const float* const* rows;
  size_t nrows, jlen, pix_stride;
  const float* w;  // packed block at the first valid kernel row
  size_t w_row;
  float32x4_t bias[4];
  size_t last_n;   // valid lanes (1..4) of the last q register
  size_t out_c;
};
using TileFn = void (*)(const Tile&, size_t x0, float* out, const float* res);

template <int MR, int NV, Act A>
void tile(const Tile& t, size_t x0, float* out, const float* res) {
  float32x4_t acc[MR][NV];
#pragma GCC unroll 8
  for (int i = 0; i < MR; ++i)
#pragma GCC unroll 4
    for (int n = 0; n < NV; ++n) acc[i][n] = t.bias[n];
  const size_t jlen = t.jlen, ps = t.pix_stride, w_row = t.w_row, nrows = t.nrows;
  for (size_t r = 0; r < nrows; ++r) {
    const float* p[MR];
#pragma GCC unroll 8
    for (int i = 0; i < MR; ++i) p[i] = t.rows[r] + x0 + i * ps;
    const float* w = t.w + r * w_row;
    for (size_t j = 0; j < jlen; ++j) {
      float32x4_t wv[NV];
#pragma GCC unroll 4
      for (int n = 0; n < NV; ++n) wv[n] = vld1q_f32(w + j * 16 + 4 * n);
#pragma GCC unroll 8
      for (int i = 0; i < MR; ++i) {
        const float x = p[i][j];
#pragma GCC unroll 4
        for (int n = 0; n < NV; ++n) acc[i][n] = vfmaq_n_f32(acc[i][n], wv[n], x);
      }
    }
  }
  const size_t out_c = t.out_c, last_n = t.last_n;
#pragma GCC unroll 8
  for (int i = 0; i < MR; ++i) {
    float* o = out + i * out_c;
    const float* rr = res ? res + i * out_c : nullptr;
#pragma GCC unroll 4
    for (int n = 0; n < NV - 1; ++n) {
      float32x4_t v = neon::act<A>(acc[i][n]);
      if (rr) v = vaddq_f32(v, vld1q_f32(rr + 4 * n));
      vst1q_f32(o + 4 * n, v);
    }
    float32x4_t v = neon::act<A>(acc[i][NV - 1]);
    const size_t off = (NV - 1) * 4;
    if (last_n == 4) {
      if (rr) v = vaddq_f32(v, vld1q_f32(rr + off));
      vst1q_f32(o + off, v);
    } else {
      float tmp[4];
      vst1q_f32(tmp, v);
      for (size_t l = 0; l < last_n; ++l) o[off + l] = tmp[l] + (rr ? rr[off + l] : 0.0f);
    }
  }
}

template <int NV, Act A, int... I>
constexpr std::array<TileFn, sizeof...(I)> tile_table(std::integer_sequence<int, I...>) {
  return {&tile<I + 1, NV, A>...};
}

template <Act A>
void conv_rows(const ConvArgs& a, size_t oy_begin, size_t oy_end) {
  static constexpr std::array<std::array<TileFn, kMaxMR>, 4> tiles = {
      tile_table<1, A>(std::make_integer_sequence<int, kMaxMR>()),
      tile_table<2, A>(std::make_integer_sequence<int, kMaxMR>()),
      tile_table<3, A>(std::make_integer_sequence<int, kMaxMR>()),
      tile_table<4, A>(std::make_integer_sequence<int, kMaxMR>())};
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
  float bias[16];
  for (size_t oy = oy_begin; oy < oy_end; ++oy) {
    size_t ky0, ky1;
    valid_kernel_rows(a, oy, ky0, ky1);
    for (size_t ky = ky0; ky < ky1; ++ky) rows[ky - ky0] = src.row(oy * s + ky - a.pad);
    t.nrows = ky1 - ky0;
    float* out_row = a.output + oy * a.out_w * Cout;
    const float* res_row = a.residual ? a.residual + oy * a.out_w * Cout : nullptr;
    for (size_t b = 0; b < nblocks; ++b) {
      const size_t valid = std::min<size_t>(16, Cout - b * 16);
      const size_t nv = (valid + 3) / 4;
      t.last_n = valid - (nv - 1) * 4;
      for (size_t l = 0; l < 16; ++l) bias[l] = l < valid ? a.bias[b * 16 + l] : 0.0f;
      for (int n = 0; n < 4; ++n) t.bias[n] = vld1q_f32(bias + 4 * n);
      t.w = a.weights + b * w_block + ky0 * t.w_row;
      const std::array<TileFn, kMaxMR>& row_tiles = tiles[nv - 1];
      size_t ox = 0;
      for (size_t i = 0; i < pb.count; ++i) {
        const size_t mr = pb.size(i);
        row_tiles[mr - 1](t, ox * t.pix_stride, out_row + ox * Cout + b * 16,
                          res_row ? res_row + ox * Cout + b * 16 : nullptr);
        ox += mr;
      }
    }
  }
}

}  // namespace

void conv_c16__neon(const ConvArgs& a, size_t oy_begin, size_t oy_end) {
  with_act(a.act, [&](auto A) { return conv_rows<A.value>(a, oy_begin, oy_end); }, [] {});
}

}  // namespace pynas
