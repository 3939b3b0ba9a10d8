// Peak fp32 FMA throughput probes: independent FMA chains with no memory traffic. Benchmarks
// report kernels as a share of the measured peak of the ISA they run (clock boost makes the
// nominal 32 FLOP/cycle figure a poor guide).
#pragma once

#include <cstddef>

#include "registry.h"

// X(name, isa)
#define PYNAS_PEAK_VARIANTS(X)              \
  PYNAS_IF_X86(X(peak_fma__avx512f, avx512)) \
  PYNAS_IF_X86(X(peak_fma__avx2, avx2))      \
  PYNAS_IF_ARM(X(peak_fma__neon, neon))      \
  X(peak_fma__scalar, scalar)

namespace pynas {
// Runs `iterations` rounds of FMAs; returns the FLOPs done (2 per lane per FMA) and writes a
// value derived from the accumulators to *sink so the work cannot be optimised away.
using PeakFn = double (*)(size_t iterations, float* sink);
#define PYNAS_DECLARE(name, isa) double name(size_t iterations, float* sink);
PYNAS_PEAK_VARIANTS(PYNAS_DECLARE)
#undef PYNAS_DECLARE
}  // namespace pynas
