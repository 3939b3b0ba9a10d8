// Squeeze-and-excitation as one kernel with separately callable stages:
//   kPool:   sum[c] += in[y][x][c] over rows [y_begin, y_end)         (row range; caller zeroes sum)
//   kExcite: hidden = act(W_r (sum / (H*W)) + b_r); scale = gate(W_e hidden + b_e)   (all at once)
//   kScale:  out[y][x][c] = in[y][x][c] * scale[c] over rows [y_begin, y_end)          (row range)
//   kAll:    zero sum, kPool over all rows, kExcite, kScale over all rows (the row range is ignored)
// gate: sigmoid 1 / (1 + exp(-z)) or h-sigmoid relu6(z + 3) / 6.
//
// Why stages: SE is the one op of an MBConv block that is not local. Every output pixel is scaled
// by a gate that depends on the mean of the WHOLE depthwise output, so no pixel can be scaled (and
// hence no projection row computed) before the last depthwise row exists. A fused MBConv block must
// therefore either (a) compute the depthwise output of all rows first (into a full-size buffer),
// pooling each row band as it is produced (kPool on that band, while it is still in cache), then
// kExcite once, then kScale + projection band by band; or (b) run two passes over the input: the
// first computes the depthwise rows only to pool them (kPool) and throws them away, the second
// recomputes them and scales (kScale) right before the projection. (a) costs a buffer of the full
// expanded tensor, (b) costs the expand + depthwise work twice. Either way the pool and the scale
// must be callable on row ranges, which is what kPool / kScale give. Strategy (a), per block:
//   SeArgs se{dw_out, dw_out /*in place*/, H, W, C, R, wr_packed, br, we_packed, be, act, gate, sum, hid, gate_buf};
//   std::fill(sum, sum + C, 0.0f);
//   for each band [y0, y1): dw(dw_args, y0, y1); se_fn(se, SeStage::kPool, y0, y1);
//   se_fn(se, SeStage::kExcite, 0, 0);
//   for each band [y0, y1): se_fn(se, SeStage::kScale, y0, y1); project(pw_args, y0, y1);
#pragma once

#include "registry.h"

#define PYNAS_SE_VARIANTS(X)                \
  PYNAS_IF_X86(X(se_c64__avx512f, avx512)) \
  PYNAS_IF_X86(X(se_c32__avx2, avx2))      \
  PYNAS_IF_ARM(X(se_c16__neon, neon))      \
  X(se_c16__scalar, scalar)

namespace pynas {

enum class Gate : int { kSigmoid = 0, kHSigmoid = 1 };
enum class SeStage : int { kPool = 0, kExcite = 1, kScale = 2, kAll = 3 };

struct SeArgs {
  const float* input;     // [height][width][channels]
  float* output;          // [height][width][channels]; may equal input (scale in place)
  size_t height, width, channels, reduced;
  const float* w_reduce;  // conv_pack_weights(W_r [reduced][channels], reduced, 1, channels)
  const float* b_reduce;  // [reduced]
  const float* w_expand;  // conv_pack_weights(W_e [channels][reduced], channels, 1, reduced)
  const float* b_expand;  // [channels]
  Act act;                // after the reduce FC: ReLU, or the block's activation
  Gate gate;
  // Caller-owned workspace, kept between stages:
  float* sum;     // [channels]: kPool accumulates here (zero it before the first band)
  float* hidden;  // [reduced]
  float* scale;   // [channels]: the gates, written by kExcite, read by kScale
};
using SeFn = void (*)(const SeArgs&, SeStage stage, size_t y_begin, size_t y_end);

#define PYNAS_DECLARE(name, isa) void name(const SeArgs&, SeStage stage, size_t y_begin, size_t y_end);
PYNAS_SE_VARIANTS(PYNAS_DECLARE)
#undef PYNAS_DECLARE

}  // namespace pynas
