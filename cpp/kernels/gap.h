// Global average pool, HxWxC -> C (the classifier head). SE's pool is the `se` family's kPool
// stage, which accumulates a row range into a sum instead.
#pragma once

#include "registry.h"

#define PYNAS_GAP_VARIANTS(X)                \
  PYNAS_IF_X86(X(gap_c64__avx512f, avx512)) \
  PYNAS_IF_X86(X(gap_c32__avx2, avx2))      \
  PYNAS_IF_ARM(X(gap_c16__neon, neon))      \
  X(gap_c1__scalar, scalar)

namespace pynas {

struct GapArgs {
  const float* input;  // [height][width][channels]
  float* output;       // [channels]: the mean over all pixels
  size_t height, width, channels;
};
using GapFn = void (*)(const GapArgs&);

#define PYNAS_DECLARE(name, isa) void name(const GapArgs&);
PYNAS_GAP_VARIANTS(PYNAS_DECLARE)
#undef PYNAS_DECLARE

}  // namespace pynas
