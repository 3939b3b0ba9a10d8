// Depthwise kxk conv: the variant list (best first) and its declarations.
#pragma once

#include "registry.h"

// X(name, isa)
#define PYNAS_DWCONV_VARIANTS(X)              \
  PYNAS_IF_X86(X(dwconv_c16__avx512f, avx512)) \
  PYNAS_IF_X86(X(dwconv_c8__avx2, avx2))       \
  PYNAS_IF_ARM(X(dwconv_c4__neon, neon))       \
  X(dwconv_c1__scalar, scalar)

namespace pynas {
#define PYNAS_DECLARE(name, isa) void name(const DwConvArgs&, size_t oy_begin, size_t oy_end);
PYNAS_DWCONV_VARIANTS(PYNAS_DECLARE)
#undef PYNAS_DECLARE
}  // namespace pynas
