#include "peak.h"

namespace pynas {

double peak_fma__scalar(size_t iterations, float* sink) {
  float acc[8] = {0, 1, 2, 3, 4, 5, 6, 7};
  const float a = 0.999999f, b = 1e-7f;
  for (size_t i = 0; i < iterations; ++i)
#pragma GCC unroll 16
    for (float& x : acc) x = x * a + b;
  float s = 0;
  for (float x : acc) s += x;
  *sink = s;
  return 2.0 * 8 * iterations;
}

}  // namespace pynas
