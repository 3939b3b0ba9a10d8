// 3x3 average pool, stride 1 or 2, padding 1, padded cells not counted (count_include_pad=False):
// the pooling-skip shortcut of the search space.
#pragma once

#include "registry.h"

#define PYNAS_AVGPOOL_VARIANTS(X)                \
  PYNAS_IF_X86(X(avgpool_c64__avx512f, avx512)) \
  PYNAS_IF_X86(X(avgpool_c32__avx2, avx2))      \
  PYNAS_IF_ARM(X(avgpool_c16__neon, neon))      \
  X(avgpool_c1__scalar, scalar)

namespace pynas {

struct AvgPoolArgs {
  const float* input;  // [in_h][in_w][channels]
  float* output;       // [out_h][out_w][channels], out = (in - 1) / stride + 1; must not overlap input
  size_t in_h, in_w, out_h, out_w, channels;
  int stride;
};
// Computes output rows [oy_begin, oy_end).
using AvgPoolFn = void (*)(const AvgPoolArgs&, size_t oy_begin, size_t oy_end);

#define PYNAS_DECLARE(name, isa) void name(const AvgPoolArgs&, size_t oy_begin, size_t oy_end);
PYNAS_AVGPOOL_VARIANTS(PYNAS_DECLARE)
#undef PYNAS_DECLARE

}  // namespace pynas
