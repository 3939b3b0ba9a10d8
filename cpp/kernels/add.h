// Elementwise add (residual shortcut): out[i] = a[i] + b[i] for i in [0, n). out may equal a or b;
// callers split large tensors into element ranges themselves (pass offset pointers).
#pragma once

#include "registry.h"

#define PYNAS_ADD_VARIANTS(X)                \
  PYNAS_IF_X86(X(add_c64__avx512f, avx512)) \
  PYNAS_IF_X86(X(add_c32__avx2, avx2))      \
  PYNAS_IF_ARM(X(add_c16__neon, neon))      \
  X(add_c1__scalar, scalar)

namespace pynas {

using AddFn = void (*)(const float* a, const float* b, float* out, size_t n);

#define PYNAS_DECLARE(name, isa) void name(const float* a, const float* b, float* out, size_t n);
PYNAS_ADD_VARIANTS(PYNAS_DECLARE)
#undef PYNAS_DECLARE

}  // namespace pynas
