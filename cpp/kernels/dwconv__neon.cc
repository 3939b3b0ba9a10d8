// Depthwise conv, NEON (aarch64 Advanced SIMD): 4 channels per q register. A channel tail reruns
// the last 4 channels (overlapping the previous tile); fewer than 4 channels, where NEON has no
// masked loads, go through single-lane loads and stores.
// The algorithm is dwconv_tiled.h's; this file supplies the vector type and the tile shapes.
#include "dwconv.h"
#include "simd__neon.h"
#include "dwconv_tiled.h"

namespace pynas {
namespace {

struct VNeon {
  using vec = float32x4_t;
  static constexpr int kLanes = 4;
  static constexpr dwtiled::Tail kTail = dwtiled::Tail::kOverlap;
  static PYNAS_DW_INLINE vec fma(vec acc, vec x, vec w) { return vfmaq_f32(acc, x, w); }
  static PYNAS_DW_INLINE vec add(vec x, vec y) { return vaddq_f32(x, y); }
  static PYNAS_DW_INLINE vec zero() { return vdupq_n_f32(0.0f); }
  template <Act A>
  static PYNAS_DW_INLINE vec act(vec x) { return neon::act<A>(x); }
};

struct FullIO {
  PYNAS_DW_INLINE float32x4_t load(const float* p) const { return vld1q_f32(p); }
  PYNAS_DW_INLINE void store(float* p, float32x4_t v) const { vst1q_f32(p, v); }
};

// The first n (1..3) lanes only (C < 4); the others read as zero and are never written.
struct TailIO {
  size_t n;
  PYNAS_DW_INLINE float32x4_t load(const float* p) const {
    float32x4_t v = vdupq_n_f32(0.0f);
    v = vld1q_lane_f32(p, v, 0);
    if (n > 1) v = vld1q_lane_f32(p + 1, v, 1);
    if (n > 2) v = vld1q_lane_f32(p + 2, v, 2);
    return v;
  }
  PYNAS_DW_INLINE void store(float* p, float32x4_t v) const {
    vst1q_lane_f32(p, v, 0);
    if (n > 1) vst1q_lane_f32(p + 1, v, 1);
    if (n > 2) vst1q_lane_f32(p + 2, v, 2);
  }
};

// 32 q registers. Typical cores (Cortex-A7x / Neoverse) run 2-4 FMA pipes of 4-cycle latency, so
// 8 pixels (independent accumulator chains) per step; 3x3 taps stay in registers next to them,
// larger kernels load one kernel row of taps per step (K loads per 8 * K FMAs).
template <int K, int S>
struct Cfg {
  static constexpr int kPixels = 8;
  static constexpr bool kHoist = K == 3;
};

}  // namespace

void dwconv_c4__neon(const DwConvArgs& a, size_t oy_begin, size_t oy_end) {
  dwtiled::dispatch<VNeon, Cfg, FullIO>(a, oy_begin, oy_end, [](size_t n) { return TailIO{n}; });
}

}  // namespace pynas
