// Fused inverted-residual (MBConv) and depthwise-separable blocks, computed in bands of output rows:
//
//   [expand 1x1 + act] -> depthwise kxk + act -> [SE] -> project 1x1 (+ act) (+ residual)
//
// A depthwise-separable block is the same without the expand (mid == cin; the depthwise conv reads
// the block input directly). Baseline code: the arithmetic is done by the ISA variants the caller
// selected (GemmFn, DwConvFn, SeFn), this file only walks the bands and keeps the buffers small.
//
// Why bands: the expanded tensor (mid = e * cin channels at the input resolution) is the largest
// tensor of the block, e.g. 56 x 56 x 144 floats = 1.8 MB for MobileNetV2's second stage, larger than
// L2. Unfused, the expand conv writes it out whole and the depthwise conv reads it back from L3 or
// DRAM; then the depthwise output (as large at stride 1) makes the same round trip into the
// projection. Here a band of B output rows needs only the (B - 1) * stride + k expanded rows under
// its windows: they are expanded into a small window buffer, convolved into a band buffer of B
// output rows, and projected straight into the block output, all while they sit in L1/L2. The k -
// stride rows shared by consecutive bands are moved to the front of the window, not recomputed.
//
// SE needs the whole depthwise output (see se.h): every output pixel is scaled by a gate computed
// from the mean over ALL depthwise output pixels, so no band can be projected before the last band
// is convolved. With SE the block runs in two phases: phase 1 expands and convolves band by band
// (the expanded tensor still never exists whole) into a full-size depthwise output buffer, pooling
// each band (SeStage::kPool) right after it is written, while it is in cache; then the gate is
// computed once (kExcite); phase 2 scales each band in place (kScale) and projects it while it is
// in cache. The depthwise output is what SE forces us to keep; it is stride^2 smaller than the
// expanded tensor on the stride-2 blocks, where SE blocks usually start a stage.
//
// Threads split the output rows into contiguous chunks, each with its own window and band buffers
// (the window halo of a chunk's first band is recomputed: k - stride rows per chunk).
#pragma once

#include <cstddef>

#include "common.h"
#include "gemm.h"
#include "se.h"

namespace pynas {

struct MbconvPlan {
  size_t in_h, in_w, cin, mid, cout, out_h, out_w;
  int kernel, stride;
  // Expand: expand_packed == nullptr for a depthwise-separable block (then mid == cin).
  GemmFn expand;
  const float* expand_packed;  // gemm_pack(W [mid][cin], bias) with the expand variant's tile
  Act expand_act;
  DwConvFn dw;
  const float* dw_weights;  // [k][k][mid]
  const float* dw_bias;     // [mid]
  Act dw_act;
  // SE: se == nullptr for none; weights as SeArgs wants them.
  SeFn se;
  size_t se_reduced;
  const float *se_w_reduce, *se_b_reduce, *se_w_expand, *se_b_expand;
  Act se_act;
  Gate se_gate;
  GemmFn project;
  const float* project_packed;  // gemm_pack(W [cout][mid], bias) with the project variant's tile
  Act project_act;
  size_t band_rows;  // output rows per band (>= 1)

  bool has_expand() const { return expand_packed != nullptr; }
  bool has_se() const { return se != nullptr; }
  // Input rows under the windows of `rows` consecutive output rows.
  size_t window_rows(size_t rows) const { return (rows - 1) * stride + kernel; }
};

// Output rows per band that keep a band's working set (window, band buffer, its input and output
// rows) within about `budget_bytes`; at least 1, at most out_h.
size_t mbconv_band_rows(const MbconvPlan& plan, size_t budget_bytes);

// Workspace floats of one thread's chunk: the expanded-row window, the depthwise band buffer and
// the SE partial sums (each rounded up to whole cache lines).
size_t mbconv_chunk_floats(const MbconvPlan& plan);
// Floats of the full-size depthwise output a block with SE keeps (0 without SE).
size_t mbconv_shared_floats(const MbconvPlan& plan);

struct MbconvTensors {
  const float* input;     // [in_h][in_w][cin]
  const float* residual;  // nullptr, or [out_h][out_w][cout], added after the projection's act
  float* output;          // [out_h][out_w][cout]; must not overlap input (may equal residual)
  float* shared;          // mbconv_shared_floats(plan) floats (SE blocks only)
};

// Without SE: computes output rows [oy_begin, oy_end) using one chunk workspace
// (mbconv_chunk_floats). Chunks on disjoint row ranges may run concurrently.
void mbconv_rows(const MbconvPlan& plan, const MbconvTensors& t, size_t oy_begin, size_t oy_end, float* chunk);

// With SE, phase 1: expands and convolves output rows [oy_begin, oy_end) into t.shared and adds
// their per-channel sums into the chunk's partial sums (mbconv_se_partial_sums(chunk), which this
// zeroes first).
void mbconv_se_pool_rows(const MbconvPlan& plan, const MbconvTensors& t, size_t oy_begin, size_t oy_end,
                         float* chunk);
float* mbconv_se_partial_sums(const MbconvPlan& plan, float* chunk);
// With SE, between the phases (one thread): sums the chunks' partial sums into the first chunk's and
// computes the gate from them; the gate lives in chunk 0's workspace.
void mbconv_se_excite(const MbconvPlan& plan, const MbconvTensors& t, float* const* chunks, size_t n_chunks);
// With SE, phase 2: scales output rows [oy_begin, oy_end) of t.shared in place by chunk 0's gate and
// projects them into the output.
void mbconv_se_project_rows(const MbconvPlan& plan, const MbconvTensors& t, size_t oy_begin, size_t oy_end,
                            const float* chunk0);

}  // namespace pynas
