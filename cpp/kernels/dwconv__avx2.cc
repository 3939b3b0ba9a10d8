// Depthwise conv, AVX2 + FMA: 8 channels per ymm. A channel tail reruns the last 8 channels
// (overlapping the previous tile; vmaskmovps stores are slow on AMD); fewer than 8 channels use
// maskload / maskstore.
// The algorithm is dwconv_tiled.h's; this file supplies the vector type and the tile shapes.
#include "dwconv.h"
#include "simd__avx2.h"
#include "dwconv_tiled.h"

namespace pynas {
namespace {

struct V256 {
  using vec = __m256;
  static constexpr int kLanes = 8;
  static constexpr dwtiled::Tail kTail = dwtiled::Tail::kOverlap;
  static PYNAS_DW_INLINE vec fma(vec acc, vec x, vec w) { return _mm256_fmadd_ps(x, w, acc); }
  static PYNAS_DW_INLINE vec add(vec x, vec y) { return _mm256_add_ps(x, y); }
  static PYNAS_DW_INLINE vec zero() { return _mm256_setzero_ps(); }
  template <Act A>
  static PYNAS_DW_INLINE vec act(vec x) { return avx2::act<A>(x); }
};

struct FullIO {
  PYNAS_DW_INLINE __m256 load(const float* p) const { return _mm256_loadu_ps(p); }
  PYNAS_DW_INLINE void store(float* p, __m256 v) const { _mm256_storeu_ps(p, v); }
};

// vmaskmovps: masked-off lanes are neither read (no fault past the end of an array) nor written.
struct TailIO {
  __m256i mask;
  PYNAS_DW_INLINE __m256 load(const float* p) const { return _mm256_maskload_ps(p, mask); }
  PYNAS_DW_INLINE void store(float* p, __m256 v) const { _mm256_maskstore_ps(p, mask, v); }
};

static TailIO make_tail(size_t n) {
  return TailIO{_mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(n)), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7))};
}

// 16 ymm registers: only 3x3 taps fit next to the accumulators (9 taps + 4 accumulators); larger
// kernels load a kernel row of taps per step. Measured on Zen 5 (bench/dwconv.py): 4 pixels beat
// 8 pixels with row-wise taps for 3x3 (~8%) and match it for 5x5.
template <int K, int S>
struct Cfg {
  static constexpr int kPixels = 4;
  static constexpr bool kHoist = K == 3;
};

}  // namespace

void dwconv_c8__avx2(const DwConvArgs& a, size_t oy_begin, size_t oy_end) {
  dwtiled::dispatch<V256, Cfg, FullIO>(a, oy_begin, oy_end, make_tail);
}

}  // namespace pynas
