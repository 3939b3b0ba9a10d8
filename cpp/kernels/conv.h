// Regular kxk conv (k in 1, 3, 5, 7; stride 1 or 2; "same" padding k / 2), NHWC batch 1, fused
// bias + activation + optional residual add: the variant list (best first), the argument struct and
// the weight packing shared by every variant.
//
// The kernels are an implicit GEMM: a tile of MR output pixels (of one output row) by NR output
// channels lives in registers; for each valid kernel row ky the kx and input-channel loops merge
// into one contiguous loop over j = kx * in_c + c, because an output pixel's k taps of one input
// row are k * in_c consecutive floats of a (zero-padded) copy of that input row, and the packed
// weights keep the same order. Each step broadcasts one input value per pixel against NR / lanes
// weight vectors. Zero-padded row copies (a ring of k rows, each input row copied once per call
// and stride-1 pass) make the borders as fast as the interior; rows above / below the input are
// skipped, not multiplied by zeros.
#pragma once

#include "registry.h"

// X(name, isa): tile = output channels per register tile.
#define PYNAS_CONV_VARIANTS(X)                \
  PYNAS_IF_X86(X(conv_c32__avx512f, avx512)) \
  PYNAS_IF_X86(X(conv_c16__avx2, avx2))      \
  PYNAS_IF_ARM(X(conv_c16__neon, neon))      \
  X(conv_c16__scalar, scalar)

namespace pynas {

// out[oy][ox][co] = act(bias[co] + sum_{ky,kx,ci} in[oy*s+ky-pad][ox*s+kx-pad][ci] * w[co][ky][kx][ci])
//                   (+ residual[oy][ox][co])
struct ConvArgs {
  const float* input;     // [in_h][in_w][in_c]
  const float* weights;   // packed by conv_pack_weights: [ceil(out_c / 16)][k][k][in_c][16]
  const float* bias;      // [out_c]
  const float* residual;  // [out_h][out_w][out_c], added after the activation; nullptr for none.
                          // May equal output (in-place residual add); output must not overlap input.
  float* output;          // [out_h][out_w][out_c]
  size_t in_h, in_w, in_c, out_h, out_w, out_c;
  int kernel, stride, pad;  // pad = kernel / 2; out = (in + 2 * pad - kernel) / stride + 1
  Act act;
};
// Computes output rows [oy_begin, oy_end) (thread-safe for disjoint ranges; each thread keeps a
// small scratch of k zero-padded input rows).
using ConvFn = void (*)(const ConvArgs&, size_t oy_begin, size_t oy_end);

// Packed weights: output channels in blocks of kPackBlock (zero-filled past out_c), each block
// [k][k][in_c][16] contiguous. One layout for every variant (AVX-512 reads two blocks at a time),
// so weights are packed once whichever kernel runs. A fully connected layer is the k = 1 case.
constexpr size_t kPackBlock = 16;
inline size_t conv_packed_size(size_t out_c, int kernel, size_t in_c) {
  return (out_c + kPackBlock - 1) / kPackBlock * kPackBlock * static_cast<size_t>(kernel) * kernel * in_c;
}
// w: [out_c][k][k][in_c] (PyTorch's OIHW weight permuted to OHWI) -> packed (conv_packed_size floats).
void conv_pack_weights(const float* w, size_t out_c, int kernel, size_t in_c, float* packed);

#define PYNAS_DECLARE(name, isa) void name(const ConvArgs&, size_t oy_begin, size_t oy_end);
PYNAS_CONV_VARIANTS(PYNAS_DECLARE)
#undef PYNAS_DECLARE

}  // namespace pynas
