// Fully connected layer (batch 1): y = act(W x + b), weights packed like a 1x1 conv.
#pragma once

#include "conv.h"
#include "registry.h"

#define PYNAS_FC_VARIANTS(X)                \
  PYNAS_IF_X86(X(fc_c64__avx512f, avx512)) \
  PYNAS_IF_X86(X(fc_c32__avx2, avx2))      \
  PYNAS_IF_ARM(X(fc_c16__neon, neon))      \
  X(fc_c16__scalar, scalar)

namespace pynas {

struct FcArgs {
  const float* input;    // [in_c]
  const float* weights;  // conv_pack_weights(w [out_c][in_c], out_c, 1, in_c): [ceil(out_c/16)][in_c][16]
  const float* bias;     // [out_c]
  float* output;         // [out_c]; must not overlap input
  size_t in_c, out_c;
  Act act;
};
using FcFn = void (*)(const FcArgs&);

#define PYNAS_DECLARE(name, isa) void name(const FcArgs&);
PYNAS_FC_VARIANTS(PYNAS_DECLARE)
#undef PYNAS_DECLARE

}  // namespace pynas
