// Regular conv, scalar: the portable fallback over the shared packed layout, and the weight
// packing (baseline code, used by every variant).
#include <cstring>

#include "conv.h"

namespace pynas {

void conv_pack_weights(const float* w, size_t out_c, int kernel, size_t in_c, float* packed) {
  const size_t taps = static_cast<size_t>(kernel) * kernel * in_c;  // (ky, kx, ci) per output channel
  const size_t blocks = (out_c + kPackBlock - 1) / kPackBlock;
  std::memset(packed, 0, blocks * kPackBlock * taps * sizeof(float));
  for (size_t co = 0; co < out_c; ++co) {
    float* dst = packed + (co / kPackBlock) * taps * kPackBlock + co % kPackBlock;
    const float* src = w + co * taps;
    for (size_t t = 0; t < taps; ++t) dst[t * kPackBlock] = src[t];
  }
}

void conv_c16__scalar(const ConvArgs& a, size_t oy_begin, size_t oy_end) {
  constexpr size_t B = kPackBlock;
  const size_t Cin = a.in_c, Cout = a.out_c, k = static_cast<size_t>(a.kernel);
  const size_t block_floats = k * k * Cin * B;
  for (size_t oy = oy_begin; oy < oy_end; ++oy) {
    for (size_t ox = 0; ox < a.out_w; ++ox) {
      const size_t pix = (oy * a.out_w + ox) * Cout;
      for (size_t b = 0; b * B < Cout; ++b) {
        const size_t n = std::min(B, Cout - b * B);
        float acc[B];
        for (size_t l = 0; l < B; ++l) acc[l] = l < n ? a.bias[b * B + l] : 0.0f;
        for (size_t ky = 0; ky < k; ++ky) {
          const long iy = static_cast<long>(oy) * a.stride + static_cast<long>(ky) - a.pad;
          if (iy < 0 || iy >= static_cast<long>(a.in_h)) continue;
          for (size_t kx = 0; kx < k; ++kx) {
            const long ix = static_cast<long>(ox) * a.stride + static_cast<long>(kx) - a.pad;
            if (ix < 0 || ix >= static_cast<long>(a.in_w)) continue;
            const float* in = a.input + (static_cast<size_t>(iy) * a.in_w + static_cast<size_t>(ix)) * Cin;
            const float* w = a.weights + b * block_floats + (ky * k + kx) * Cin * B;
            for (size_t c = 0; c < Cin; ++c)
              for (size_t l = 0; l < B; ++l) acc[l] += in[c] * w[c * B + l];
          }
        }
        for (size_t l = 0; l < n; ++l) {
          float v = act_scalar(a.act, acc[l]);
          if (a.residual) v += a.residual[pix + b * B + l];
          a.output[pix + b * B + l] = v;
        }
      }
    }
  }
}

}  // namespace pynas
