#include <immintrin.h>

#include "peak.h"

namespace pynas {

// 16 independent zmm chains: enough to cover FMA latency x throughput on current x86 cores.
double peak_fma__avx512f(size_t iterations, float* sink) {
  __m512 acc[16];
  for (int j = 0; j < 16; ++j) acc[j] = _mm512_set1_ps(static_cast<float>(j));
  const __m512 a = _mm512_set1_ps(0.999999f), b = _mm512_set1_ps(1e-7f);
  for (size_t i = 0; i < iterations; ++i)
#pragma GCC unroll 16
    for (int j = 0; j < 16; ++j) acc[j] = _mm512_fmadd_ps(acc[j], a, b);
  __m512 s = acc[0];
  for (int j = 1; j < 16; ++j) s = _mm512_add_ps(s, acc[j]);
  *sink = _mm512_reduce_add_ps(s);
  return 2.0 * 16 * 16 * iterations;
}

}  // namespace pynas
