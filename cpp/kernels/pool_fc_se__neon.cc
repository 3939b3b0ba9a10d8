// Global average pool, fully connected, squeeze-and-excitation, 3x3 average pool and elementwise
// add, NEON (aarch64). Channel tiles of 16 (4 q registers), then 4, then a scalar tail.
#include "add.h"
#include "avgpool.h"
#include "fc.h"
#include "gap.h"
#include "se.h"
#include "simd__neon.h"

namespace pynas {
namespace {

// sum over npix pixels (stride C floats) of in[p*C + c0 .. c0+16) / +4 / scalar, added to acc.
inline void sum16(const float* in, size_t npix, size_t C, float32x4_t acc[4]) {
  for (size_t p = 0; p < npix; ++p, in += C)
#pragma GCC unroll 4
    for (int v = 0; v < 4; ++v) acc[v] = vaddq_f32(acc[v], vld1q_f32(in + 4 * v));
}
inline float32x4_t sum4(const float* in, size_t npix, size_t C, float32x4_t acc) {
  for (size_t p = 0; p < npix; ++p, in += C) acc = vaddq_f32(acc, vld1q_f32(in));
  return acc;
}
inline float sum1(const float* in, size_t npix, size_t C, float acc) {
  for (size_t p = 0; p < npix; ++p, in += C) acc += *in;
  return acc;
}

// sum[c] += (or =, when !ACCUM) the sums over npix pixels, scaled by mul.
template <bool ACCUM>
void pool_pixels(const float* in, size_t npix, size_t C, float* sum, float mul) {
  const float32x4_t m = vdupq_n_f32(mul);
  size_t c = 0;
  for (; c + 16 <= C; c += 16) {
    float32x4_t acc[4];
    for (int v = 0; v < 4; ++v) acc[v] = ACCUM ? vld1q_f32(sum + c + 4 * v) : vdupq_n_f32(0.0f);
    sum16(in + c, npix, C, acc);
    for (int v = 0; v < 4; ++v) vst1q_f32(sum + c + 4 * v, vmulq_f32(acc[v], m));
  }
  for (; c + 4 <= C; c += 4)
    vst1q_f32(sum + c, vmulq_f32(sum4(in + c, npix, C, ACCUM ? vld1q_f32(sum + c) : vdupq_n_f32(0.0f)), m));
  for (; c < C; ++c) sum[c] = sum1(in + c, npix, C, ACCUM ? sum[c] : 0.0f) * mul;
}

// y[o] = post(alpha * sum_i W[o][i] x[i] + b[o]) over packed [ceil(out/16)][in][16] weights, one
// block (4 q registers) at a time, the input loop unrolled by two.
template <class Post>
void fc_packed(const float* x, const float* w, const float* b, float* y, size_t in_c, size_t out_c, float alpha,
               Post post) {
  for (size_t blk = 0; blk * 16 < out_c; ++blk) {
    const float* wb = w + blk * in_c * 16;
    float32x4_t a0[4], a1[4];
    for (int n = 0; n < 4; ++n) a0[n] = a1[n] = vdupq_n_f32(0.0f);
    size_t i = 0;
    for (; i + 2 <= in_c; i += 2) {
#pragma GCC unroll 4
      for (int n = 0; n < 4; ++n) {
        a0[n] = vfmaq_n_f32(a0[n], vld1q_f32(wb + i * 16 + 4 * n), x[i]);
        a1[n] = vfmaq_n_f32(a1[n], vld1q_f32(wb + i * 16 + 16 + 4 * n), x[i + 1]);
      }
    }
    if (i < in_c)
#pragma GCC unroll 4
      for (int n = 0; n < 4; ++n) a0[n] = vfmaq_n_f32(a0[n], vld1q_f32(wb + i * 16 + 4 * n), x[i]);
    const size_t valid = std::min<size_t>(16, out_c - blk * 16);
    float bias[16] = {}, out[16];
    for (size_t l = 0; l < valid; ++l) bias[l] = b[blk * 16 + l];
    for (int n = 0; n < 4; ++n)
      vst1q_f32(out + 4 * n, post(vfmaq_n_f32(vld1q_f32(bias + 4 * n), vaddq_f32(a0[n], a1[n]), alpha)));
    for (size_t l = 0; l < valid; ++l) y[blk * 16 + l] = out[l];
  }
}

template <Act A>
void fc_act(const FcArgs& a) {
  fc_packed(a.input, a.weights, a.bias, a.output, a.in_c, a.out_c, 1.0f, [](float32x4_t v) { return neon::act<A>(v); });
}

template <Act A, Gate G>
void se_excite(const SeArgs& a) {
  const float inv = 1.0f / static_cast<float>(a.height * a.width);
  fc_packed(a.sum, a.w_reduce, a.b_reduce, a.hidden, a.channels, a.reduced, inv,
            [](float32x4_t v) { return neon::act<A>(v); });
  fc_packed(a.hidden, a.w_expand, a.b_expand, a.scale, a.reduced, a.channels, 1.0f, [](float32x4_t z) {
    if constexpr (G == Gate::kSigmoid) {
      return vdivq_f32(vdupq_n_f32(1.0f), vaddq_f32(vdupq_n_f32(1.0f), neon::exp_ps(vnegq_f32(z))));
    } else {
      const float32x4_t t = vminq_f32(vmaxq_f32(vaddq_f32(z, vdupq_n_f32(3.0f)), vdupq_n_f32(0.0f)), vdupq_n_f32(6.0f));
      return vmulq_f32(t, vdupq_n_f32(1.0f / 6.0f));
    }
  });
}

template <Act A>
void se_excite_gate(const SeArgs& a) {
  if (a.gate == Gate::kSigmoid) se_excite<A, Gate::kSigmoid>(a);
  else se_excite<A, Gate::kHSigmoid>(a);
}

void scale_pixels(const float* in, float* out, const float* scale, size_t C, size_t p0, size_t p1) {
  in += p0 * C;
  out += p0 * C;
  for (size_t p = p0; p < p1; ++p, in += C, out += C) {
    size_t c = 0;
    for (; c + 16 <= C; c += 16) {
      const float32x4_t v0 = vmulq_f32(vld1q_f32(in + c), vld1q_f32(scale + c));
      const float32x4_t v1 = vmulq_f32(vld1q_f32(in + c + 4), vld1q_f32(scale + c + 4));
      const float32x4_t v2 = vmulq_f32(vld1q_f32(in + c + 8), vld1q_f32(scale + c + 8));
      const float32x4_t v3 = vmulq_f32(vld1q_f32(in + c + 12), vld1q_f32(scale + c + 12));
      vst1q_f32(out + c, v0);
      vst1q_f32(out + c + 4, v1);
      vst1q_f32(out + c + 8, v2);
      vst1q_f32(out + c + 12, v3);
    }
    for (; c + 4 <= C; c += 4) vst1q_f32(out + c, vmulq_f32(vld1q_f32(in + c), vld1q_f32(scale + c)));
    for (; c < C; ++c) out[c] = in[c] * scale[c];
  }
}

}  // namespace

void gap_c16__neon(const GapArgs& a) {
  pool_pixels<false>(a.input, a.height * a.width, a.channels, a.output, 1.0f / static_cast<float>(a.height * a.width));
}

void fc_c16__neon(const FcArgs& a) {
  with_act(a.act, [&](auto A) { return fc_act<A.value>(a); }, [] {});
}

void se_c16__neon(const SeArgs& a, SeStage stage, size_t y_begin, size_t y_end) {
  const size_t C = a.channels, W = a.width;
  switch (stage) {
    case SeStage::kAll:
      for (size_t c = 0; c < C; ++c) a.sum[c] = 0.0f;
      se_c16__neon(a, SeStage::kPool, 0, a.height);
      se_c16__neon(a, SeStage::kExcite, 0, 0);
      se_c16__neon(a, SeStage::kScale, 0, a.height);
      return;
    case SeStage::kPool:
      pool_pixels<true>(a.input + y_begin * W * C, (y_end - y_begin) * W, C, a.sum, 1.0f);
      return;
    case SeStage::kExcite:
      return with_act(a.act, [&](auto A) { return se_excite_gate<A.value>(a); }, [] {});
    case SeStage::kScale:
      scale_pixels(a.input, a.output, a.scale, C, y_begin * W, y_end * W);
      return;
  }
}

void avgpool_c16__neon(const AvgPoolArgs& a, size_t oy_begin, size_t oy_end) {
  const size_t C = a.channels, s = static_cast<size_t>(a.stride), rowC = a.in_w * C;
  for (size_t oy = oy_begin; oy < oy_end; ++oy) {
    const size_t y0 = oy * s > 0 ? oy * s - 1 : 0, y1 = std::min(a.in_h, oy * s + 2);
    for (size_t ox = 0; ox < a.out_w; ++ox) {
      const size_t x0 = ox * s > 0 ? ox * s - 1 : 0, x1 = std::min(a.in_w, ox * s + 2);
      const float inv = 1.0f / static_cast<float>((y1 - y0) * (x1 - x0));
      const float* win = a.input + y0 * rowC + x0 * C;
      float* out = a.output + (oy * a.out_w + ox) * C;
      size_t c = 0;
      for (; c + 16 <= C; c += 16) {
        float32x4_t acc[4] = {vdupq_n_f32(0.0f), vdupq_n_f32(0.0f), vdupq_n_f32(0.0f), vdupq_n_f32(0.0f)};
        for (size_t y = 0; y < y1 - y0; ++y)
          for (size_t x = 0; x < x1 - x0; ++x) {
            const float* in = win + y * rowC + x * C + c;
#pragma GCC unroll 4
            for (int v = 0; v < 4; ++v) acc[v] = vaddq_f32(acc[v], vld1q_f32(in + 4 * v));
          }
        for (int v = 0; v < 4; ++v) vst1q_f32(out + c + 4 * v, vmulq_n_f32(acc[v], inv));
      }
      for (; c + 4 <= C; c += 4) {
        float32x4_t acc = vdupq_n_f32(0.0f);
        for (size_t y = 0; y < y1 - y0; ++y)
          for (size_t x = 0; x < x1 - x0; ++x) acc = vaddq_f32(acc, vld1q_f32(win + y * rowC + x * C + c));
        vst1q_f32(out + c, vmulq_n_f32(acc, inv));
      }
      for (; c < C; ++c) {
        float acc = 0.0f;
        for (size_t y = 0; y < y1 - y0; ++y)
          for (size_t x = 0; x < x1 - x0; ++x) acc += win[y * rowC + x * C + c];
        out[c] = acc * inv;
      }
    }
  }
}

void add_c16__neon(const float* a, const float* b, float* out, size_t n) {
  size_t i = 0;
  for (; i + 16 <= n; i += 16) {
    const float32x4_t v0 = vaddq_f32(vld1q_f32(a + i), vld1q_f32(b + i));
    const float32x4_t v1 = vaddq_f32(vld1q_f32(a + i + 4), vld1q_f32(b + i + 4));
    const float32x4_t v2 = vaddq_f32(vld1q_f32(a + i + 8), vld1q_f32(b + i + 8));
    const float32x4_t v3 = vaddq_f32(vld1q_f32(a + i + 12), vld1q_f32(b + i + 12));
    vst1q_f32(out + i, v0);
    vst1q_f32(out + i + 4, v1);
    vst1q_f32(out + i + 8, v2);
    vst1q_f32(out + i + 12, v3);
  }
  for (; i + 4 <= n; i += 4) vst1q_f32(out + i, vaddq_f32(vld1q_f32(a + i), vld1q_f32(b + i)));
  for (; i < n; ++i) out[i] = a[i] + b[i];
}

}  // namespace pynas
