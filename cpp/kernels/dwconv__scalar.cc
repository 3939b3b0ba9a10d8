// Depthwise conv, scalar: the portable fallback and the plainest statement of the op.
#include "dwconv.h"

namespace pynas {

void dwconv_c1__scalar(const DwConvArgs& a, size_t oy_begin, size_t oy_end) {
  const size_t C = a.channels;
  for (size_t oy = oy_begin; oy < oy_end; ++oy) {
    for (size_t ox = 0; ox < a.out_w; ++ox) {
      float* out = a.output + ((oy - a.out_row0) * a.out_w + ox) * C;
      for (size_t c = 0; c < C; ++c) out[c] = a.bias[c];
      for (int ky = 0; ky < a.kernel; ++ky) {
        const long iy = static_cast<long>(oy * a.stride) + ky - a.pad;
        if (iy < 0 || iy >= static_cast<long>(a.in_h)) continue;
        for (int kx = 0; kx < a.kernel; ++kx) {
          const long ix = static_cast<long>(ox * a.stride) + kx - a.pad;
          if (ix < 0 || ix >= static_cast<long>(a.in_w)) continue;
          const float* in = a.input + ((iy - static_cast<long>(a.in_row0)) * a.in_w + ix) * C;
          const float* w = a.weights + (ky * a.kernel + kx) * C;
          for (size_t c = 0; c < C; ++c) out[c] += in[c] * w[c];
        }
      }
      for (size_t c = 0; c < C; ++c) out[c] = act_scalar(a.act, out[c]);
    }
  }
}

}  // namespace pynas
