// Depthwise conv, AVX-512F: 16 channels per zmm, channel tails with masked loads and stores.
// The algorithm is dwconv_tiled.h's; this file supplies the vector type and the tile shapes.
#include "dwconv.h"

// GCC 12 false positive in its own AVX-512 headers (_mm512_undefined_ps; GCC bug 105593, fixed in 13).
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#include "simd__avx512f.h"
#include "dwconv_tiled.h"

namespace pynas {
namespace {

struct V512 {
  using vec = __m512;
  static constexpr int kLanes = 16;
  static constexpr dwtiled::Tail kTail = dwtiled::Tail::kMasked;
  static PYNAS_DW_INLINE vec fma(vec acc, vec x, vec w) { return _mm512_fmadd_ps(x, w, acc); }
  static PYNAS_DW_INLINE vec add(vec x, vec y) { return _mm512_add_ps(x, y); }
  static PYNAS_DW_INLINE vec zero() { return _mm512_setzero_ps(); }
  template <Act A>
  static PYNAS_DW_INLINE vec act(vec x) { return avx512::act<A>(x); }
};

struct FullIO {
  PYNAS_DW_INLINE __m512 load(const float* p) const { return _mm512_loadu_ps(p); }
  PYNAS_DW_INLINE void store(float* p, __m512 v) const { _mm512_storeu_ps(p, v); }
};

// Masked-off lanes are neither read (no fault past the end of an array) nor written.
struct TailIO {
  __mmask16 mask;
  PYNAS_DW_INLINE __m512 load(const float* p) const { return _mm512_maskz_loadu_ps(mask, p); }
  PYNAS_DW_INLINE void store(float* p, __m512 v) const { _mm512_mask_storeu_ps(p, mask, v); }
};

// 32 zmm registers: 3x3 and 5x5 taps stay in registers next to the accumulators (3x3: 9 taps +
// 8 pixels; 5x5: 25 taps + 4 pixels, which measured ~8% faster than 8 pixels with row-wise taps);
// 7x7 loads a kernel row of taps per step.
template <int K, int S>
struct Cfg {
  static constexpr int kPixels = K == 3 ? 8 : 4;
  static constexpr bool kHoist = K <= 5;
};

}  // namespace

void dwconv_c16__avx512f(const DwConvArgs& a, size_t oy_begin, size_t oy_end) {
  dwtiled::dispatch<V512, Cfg, FullIO>(a, oy_begin, oy_end,
                                       [](size_t n) { return TailIO{static_cast<__mmask16>((1u << n) - 1)}; });
}

}  // namespace pynas
