// Depthwise kxk conv: the variant list (best first) and its declarations.
#pragma once

#include "registry.h"

// X(name, isa)
#define PYNAS_DWCONV_VARIANTS(X) \
  X(dwconv_c1__scalar, scalar)

namespace pynas {
#define PYNAS_DECLARE(name, isa) void name(const DwConvArgs&, size_t oy_begin, size_t oy_end);
PYNAS_DWCONV_VARIANTS(PYNAS_DECLARE)
#undef PYNAS_DECLARE
}  // namespace pynas
