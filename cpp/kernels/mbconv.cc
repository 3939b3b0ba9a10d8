// Fused MBConv / depthwise-separable blocks in row bands: see mbconv.h for the why.
#include "mbconv.h"

#include <algorithm>
#include <cstring>

namespace pynas {
namespace {

size_t lines(size_t floats) { return (floats + 15) / 16 * 16; }  // whole 64-byte cache lines

struct ChunkLayout {
  size_t window, band, sums, hidden, gate, total;
};

ChunkLayout layout(const MbconvPlan& p) {
  ChunkLayout l{};
  const size_t window = p.has_expand() ? lines(p.window_rows(p.band_rows) * p.in_w * p.mid) : 0;
  const size_t band = p.has_se() ? 0 : lines(p.band_rows * p.out_w * p.mid);
  const size_t se = p.has_se() ? lines(p.mid) : 0;
  l.window = 0;
  l.band = l.window + window;
  l.sums = l.band + band;
  l.hidden = l.sums + se;
  l.gate = l.hidden + (p.has_se() ? lines(p.se_reduced) : 0);
  l.total = l.gate + se;
  return l;
}

SeArgs se_args(const MbconvPlan& p, float* dw_out, float* sums, float* hidden, float* gate) {
  return SeArgs{dw_out, dw_out, p.out_h, p.out_w, p.mid, p.se_reduced, p.se_w_reduce, p.se_b_reduce,
                p.se_w_expand, p.se_b_expand, p.se_act, p.se_gate, sums, hidden, gate};
}

// Walks output rows [oy_begin, oy_end) band by band: makes each band's expanded input rows
// available (expanding only rows the window does not hold yet), runs the depthwise conv of the band
// into `dw_out` (holding output rows from dw_row0 on, or from the band's first row if band_local),
// then calls done(y0, y1).
template <class Done>
void depthwise_bands(const MbconvPlan& p, const float* input, size_t oy_begin, size_t oy_end, float* window,
                     float* dw_out, bool band_local, Done done) {
  const size_t pad = static_cast<size_t>(p.kernel / 2);
  const size_t in_row = p.in_w * p.cin, mid_row = p.in_w * p.mid;
  size_t have_lo = 0, have_hi = 0;  // expanded rows held: window row 0 is input row have_lo
  for (size_t y0 = oy_begin; y0 < oy_end; y0 += p.band_rows) {
    const size_t y1 = std::min(oy_end, y0 + p.band_rows);
    // Input rows under the band's windows, clipped to the image (padding rows are never read).
    const size_t lo = y0 * p.stride > pad ? y0 * p.stride - pad : 0;
    const size_t hi = std::min(p.in_h, (y1 - 1) * p.stride + p.kernel - pad);
    DwConvArgs dw{input, p.dw_weights, p.dw_bias, dw_out, p.in_h, p.in_w, p.out_h, p.out_w, p.mid,
                  p.kernel, p.stride, static_cast<int>(pad), p.dw_act};
    if (p.has_expand()) {
      size_t first_new = lo;
      if (have_lo <= lo && lo < have_hi) {  // the previous band's last rows: move, don't recompute
        std::memmove(window, window + (lo - have_lo) * mid_row, (have_hi - lo) * mid_row * sizeof(float));
        first_new = have_hi;
      }
      if (first_new < hi) {
        const GemmArgs e{input + first_new * in_row, p.cin, p.expand_packed, window + (first_new - lo) * mid_row,
                         p.mid, nullptr, 0, (hi - first_new) * p.in_w, p.mid, p.cin, p.expand_act};
        p.expand(e, 0, (hi - first_new) * p.in_w);
      }
      have_lo = lo;
      have_hi = hi;
      dw.input = window;
      dw.in_row0 = lo;
    }
    dw.out_row0 = band_local ? y0 : 0;
    p.dw(dw, y0, y1);
    done(y0, y1);
  }
}

void project(const MbconvPlan& p, const float* dw_rows, const MbconvTensors& t, size_t y0, size_t y1) {
  const size_t out_row = p.out_w * p.cout;
  const size_t m = (y1 - y0) * p.out_w;
  const GemmArgs g{dw_rows, p.mid, p.project_packed, t.output + y0 * out_row, p.cout,
                   t.residual ? t.residual + y0 * out_row : nullptr, p.cout, m, p.cout, p.mid, p.project_act};
  p.project(g, 0, m);
}

}  // namespace

size_t mbconv_band_rows(const MbconvPlan& p, size_t budget_bytes) {
  // Floats per additional output row: its share of the window, its band row, and the input and
  // output rows the expand and project GEMMs stream through.
  const size_t per_row = p.stride * p.in_w * (p.mid + p.cin) + p.out_w * (p.mid + p.cout);
  const size_t fixed = (p.kernel - p.stride) * p.in_w * (p.mid + p.cin);  // the window's halo
  // Every band streams all of the expand and project weights through the GEMMs. When they outweigh
  // the block's whole activation working set (a mobile CNN's 7x7 stages: 160 -> 960 -> 160 at 7 x 7
  // is 1.2 MB of weights for 0.6 MB of activations), more bands only re-read them:
  // one band. MnasNet-A1's 7 x 7 blocks (Xeon, AVX-512) took 6-13% less time than in their 2 bands.
  const size_t weights = (p.has_expand() ? p.mid * (p.cin + 1) : 0) + p.cout * (p.mid + 1);
  if (weights >= fixed + p.out_h * per_row) return p.out_h;
  const size_t budget = budget_bytes / sizeof(float);
  const size_t most = std::clamp<size_t>(budget > fixed + per_row ? (budget - fixed) / per_row : 1, 1, p.out_h);
  // As many bands as `most` rows need, then rows spread evenly over them: 14 rows at most 9 per band
  // run as 7 + 7, not 9 + 5 (a short last band pays the halo and the GEMM tile tails for little work).
  const size_t bands = (p.out_h + most - 1) / most;
  return (p.out_h + bands - 1) / bands;
}

size_t mbconv_chunk_floats(const MbconvPlan& p) { return layout(p).total; }

size_t mbconv_shared_floats(const MbconvPlan& p) { return p.has_se() ? p.out_h * p.out_w * p.mid : 0; }

float* mbconv_se_partial_sums(const MbconvPlan& p, float* chunk) { return chunk + layout(p).sums; }

void mbconv_rows(const MbconvPlan& p, const MbconvTensors& t, size_t oy_begin, size_t oy_end, float* chunk) {
  const ChunkLayout l = layout(p);
  float* band = chunk + l.band;
  depthwise_bands(p, t.input, oy_begin, oy_end, chunk + l.window, band, /*band_local=*/true,
                  [&](size_t y0, size_t y1) { project(p, band, t, y0, y1); });
}

void mbconv_se_pool_rows(const MbconvPlan& p, const MbconvTensors& t, size_t oy_begin, size_t oy_end,
                         float* chunk) {
  const ChunkLayout l = layout(p);
  const SeArgs se = se_args(p, t.shared, chunk + l.sums, chunk + l.hidden, chunk + l.gate);
  std::fill(se.sum, se.sum + p.mid, 0.0f);
  depthwise_bands(p, t.input, oy_begin, oy_end, chunk + l.window, t.shared, /*band_local=*/false,
                  [&](size_t y0, size_t y1) { p.se(se, SeStage::kPool, y0, y1); });
}

void mbconv_se_excite(const MbconvPlan& p, const MbconvTensors& t, float* const* chunks, size_t n_chunks) {
  const ChunkLayout l = layout(p);
  float* sums = chunks[0] + l.sums;
  for (size_t i = 1; i < n_chunks; ++i) {
    const float* other = chunks[i] + l.sums;
    for (size_t c = 0; c < p.mid; ++c) sums[c] += other[c];
  }
  p.se(se_args(p, t.shared, sums, chunks[0] + l.hidden, chunks[0] + l.gate), SeStage::kExcite, 0, 0);
}

void mbconv_se_project_rows(const MbconvPlan& p, const MbconvTensors& t, size_t oy_begin, size_t oy_end,
                            const float* chunk0) {
  const ChunkLayout l = layout(p);
  // kScale only reads the gate; the other workspace pointers are not touched.
  const SeArgs se = se_args(p, t.shared, nullptr, nullptr, const_cast<float*>(chunk0) + l.gate);
  const size_t mid_row = p.out_w * p.mid;
  for (size_t y0 = oy_begin; y0 < oy_end; y0 += p.band_rows) {
    const size_t y1 = std::min(oy_end, y0 + p.band_rows);
    p.se(se, SeStage::kScale, y0, y1);
    project(p, t.shared + y0 * mid_row, t, y0, y1);
  }
}

}  // namespace pynas
