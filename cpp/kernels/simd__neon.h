// NEON (aarch64 Advanced SIMD) vector activations. Include only from *__neon.cc files.
#pragma once

#include <arm_neon.h>

#include "common.h"

namespace pynas {
namespace neon {

// exp(x), Cephes polynomial after range reduction; 2^n built in the exponent bits.
static inline float32x4_t exp_ps(float32x4_t x) {
  x = vminq_f32(vmaxq_f32(x, vdupq_n_f32(-87.33654f)), vdupq_n_f32(88.37626f));
  const float32x4_t n = vrndnq_f32(vmulq_f32(x, vdupq_n_f32(1.44269504088896341f)));
  float32x4_t r = vfmsq_f32(x, n, vdupq_n_f32(0.693359375f));
  r = vfmsq_f32(r, n, vdupq_n_f32(-2.12194440e-4f));
  float32x4_t p = vdupq_n_f32(1.9875691500e-4f);
  p = vfmaq_f32(vdupq_n_f32(1.3981999507e-3f), p, r);
  p = vfmaq_f32(vdupq_n_f32(8.3334519073e-3f), p, r);
  p = vfmaq_f32(vdupq_n_f32(4.1665795894e-2f), p, r);
  p = vfmaq_f32(vdupq_n_f32(1.6666665459e-1f), p, r);
  p = vfmaq_f32(vdupq_n_f32(5.0000001201e-1f), p, r);
  const float32x4_t y = vaddq_f32(vfmaq_f32(r, vmulq_f32(p, r), r), vdupq_n_f32(1.0f));
  const int32x4_t bits = vshlq_n_s32(vaddq_s32(vcvtq_s32_f32(n), vdupq_n_s32(127)), 23);
  return vmulq_f32(y, vreinterpretq_f32_s32(bits));
}

template <Act A>
static inline float32x4_t act(float32x4_t x) {
  if constexpr (A == Act::kReLU) return vmaxq_f32(x, vdupq_n_f32(0.0f));
  if constexpr (A == Act::kReLU6) return vminq_f32(vmaxq_f32(x, vdupq_n_f32(0.0f)), vdupq_n_f32(6.0f));
  if constexpr (A == Act::kHSwish) {
    const float32x4_t t = vminq_f32(vmaxq_f32(vaddq_f32(x, vdupq_n_f32(3.0f)), vdupq_n_f32(0.0f)), vdupq_n_f32(6.0f));
    return vmulq_f32(vmulq_f32(x, t), vdupq_n_f32(1.0f / 6.0f));
  }
  if constexpr (A == Act::kSwish)
    return vdivq_f32(x, vaddq_f32(vdupq_n_f32(1.0f), exp_ps(vnegq_f32(x))));
  return x;
}

}  // namespace neon
}  // namespace pynas
