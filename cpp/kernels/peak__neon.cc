#include <arm_neon.h>

#include "peak.h"

namespace pynas {

// 16 independent q-register chains.
double peak_fma__neon(size_t iterations, float* sink) {
  float32x4_t acc[16];
  for (int j = 0; j < 16; ++j) acc[j] = vdupq_n_f32(static_cast<float>(j));
  const float32x4_t a = vdupq_n_f32(0.999999f), b = vdupq_n_f32(1e-7f);
  for (size_t i = 0; i < iterations; ++i)
#pragma GCC unroll 16
    for (int j = 0; j < 16; ++j) acc[j] = vfmaq_f32(b, acc[j], a);
  float32x4_t s = acc[0];
  for (int j = 1; j < 16; ++j) s = vaddq_f32(s, acc[j]);
  *sink = vaddvq_f32(s);
  return 2.0 * 16 * 4 * iterations;
}

}  // namespace pynas
