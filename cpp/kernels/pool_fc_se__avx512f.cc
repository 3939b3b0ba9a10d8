// Global average pool, fully connected, squeeze-and-excitation, 3x3 average pool and elementwise
// add, AVX-512F. All but the FCs are memory-bound: channel tiles of 64 (4 zmm, masked at the
// channel tail) keep sums in registers so each input float is loaded once.
#include "add.h"
#include "avgpool.h"
#include "fc.h"
#include "gap.h"
#include "se.h"
#include "simd__avx512f.h"

namespace pynas {
namespace {

inline __mmask16 lanes(size_t n) {  // first min(n, 16) lanes
  return n >= 16 ? static_cast<__mmask16>(0xFFFF) : static_cast<__mmask16>((1u << n) - 1);
}

// acc[v] (+)= sum over npix pixels (stride C floats) of in[p*C + c0 + 16v], v < 4, masked by m.
inline void sum_pixels(const float* in, size_t npix, size_t C, const __mmask16 m[4], __m512 acc[4]) {
  __m512 b[4] = {_mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps()};
  size_t p = 0;
  for (; p + 2 <= npix; p += 2, in += 2 * C) {
#pragma GCC unroll 4
    for (int v = 0; v < 4; ++v) {
      acc[v] = _mm512_add_ps(acc[v], _mm512_maskz_loadu_ps(m[v], in + 16 * v));
      b[v] = _mm512_add_ps(b[v], _mm512_maskz_loadu_ps(m[v], in + C + 16 * v));
    }
  }
  if (p < npix)
#pragma GCC unroll 4
    for (int v = 0; v < 4; ++v) acc[v] = _mm512_add_ps(acc[v], _mm512_maskz_loadu_ps(m[v], in + 16 * v));
#pragma GCC unroll 4
  for (int v = 0; v < 4; ++v) acc[v] = _mm512_add_ps(acc[v], b[v]);
}

inline void tile_masks(size_t C, size_t c0, __mmask16 m[4]) {
  for (int v = 0; v < 4; ++v) m[v] = c0 + 16 * v < C ? lanes(C - c0 - 16 * v) : 0;
}

// y[o] = post(alpha * sum_i W[o][i] x[i] + b[o]) over packed [ceil(out/16)][in][16] weights: NBLK
// blocks (streams) at once, the input loop unrolled by two into separate accumulators.
template <int NBLK, class Post>
inline void fc_group(const float* x, const float* w, const float* b, float* y, size_t in_c, size_t out_valid,
                     float alpha, Post post) {
  __m512 a0[NBLK], a1[NBLK];
#pragma GCC unroll 4
  for (int n = 0; n < NBLK; ++n) a0[n] = a1[n] = _mm512_setzero_ps();
  const size_t bs = in_c * 16;
  size_t i = 0;
  for (; i + 2 <= in_c; i += 2) {
    const __m512 x0 = _mm512_set1_ps(x[i]), x1 = _mm512_set1_ps(x[i + 1]);
#pragma GCC unroll 4
    for (int n = 0; n < NBLK; ++n) {
      a0[n] = _mm512_fmadd_ps(x0, _mm512_loadu_ps(w + n * bs + i * 16), a0[n]);
      a1[n] = _mm512_fmadd_ps(x1, _mm512_loadu_ps(w + n * bs + i * 16 + 16), a1[n]);
    }
  }
  if (i < in_c) {
    const __m512 x0 = _mm512_set1_ps(x[i]);
#pragma GCC unroll 4
    for (int n = 0; n < NBLK; ++n) a0[n] = _mm512_fmadd_ps(x0, _mm512_loadu_ps(w + n * bs + i * 16), a0[n]);
  }
  const __m512 va = _mm512_set1_ps(alpha);
#pragma GCC unroll 4
  for (int n = 0; n < NBLK; ++n) {
    const __mmask16 m = lanes(out_valid - 16 * n);
    const __m512 v = _mm512_fmadd_ps(_mm512_add_ps(a0[n], a1[n]), va, _mm512_maskz_loadu_ps(m, b + 16 * n));
    _mm512_mask_storeu_ps(y + 16 * n, m, post(v));
  }
}

template <class Post>
void fc_packed(const float* x, const float* w, const float* b, float* y, size_t in_c, size_t out_c, float alpha,
               Post post) {
  const size_t nblocks = (out_c + 15) / 16, bs = in_c * 16;
  size_t blk = 0;
  for (; blk + 4 <= nblocks; blk += 4)
    fc_group<4>(x, w + blk * bs, b + blk * 16, y + blk * 16, in_c, out_c - blk * 16, alpha, post);
  switch (nblocks - blk) {
    case 3: fc_group<3>(x, w + blk * bs, b + blk * 16, y + blk * 16, in_c, out_c - blk * 16, alpha, post); break;
    case 2: fc_group<2>(x, w + blk * bs, b + blk * 16, y + blk * 16, in_c, out_c - blk * 16, alpha, post); break;
    case 1: fc_group<1>(x, w + blk * bs, b + blk * 16, y + blk * 16, in_c, out_c - blk * 16, alpha, post); break;
    default: break;
  }
}

template <Act A>
void fc_act(const FcArgs& a) {
  fc_packed(a.input, a.weights, a.bias, a.output, a.in_c, a.out_c, 1.0f, [](__m512 v) { return avx512::act<A>(v); });
}

template <Act A, Gate G>
void se_excite(const SeArgs& a) {
  const float inv = 1.0f / static_cast<float>(a.height * a.width);
  fc_packed(a.sum, a.w_reduce, a.b_reduce, a.hidden, a.channels, a.reduced, inv,
            [](__m512 v) { return avx512::act<A>(v); });
  fc_packed(a.hidden, a.w_expand, a.b_expand, a.scale, a.reduced, a.channels, 1.0f, [](__m512 z) {
    if constexpr (G == Gate::kSigmoid) {
      return _mm512_div_ps(_mm512_set1_ps(1.0f),
                           _mm512_add_ps(_mm512_set1_ps(1.0f), avx512::exp_ps(_mm512_sub_ps(_mm512_setzero_ps(), z))));
    } else {
      const __m512 t = _mm512_min_ps(_mm512_max_ps(_mm512_add_ps(z, _mm512_set1_ps(3.0f)), _mm512_setzero_ps()),
                                     _mm512_set1_ps(6.0f));
      return _mm512_mul_ps(t, _mm512_set1_ps(1.0f / 6.0f));
    }
  });
}

template <Act A>
void se_excite_gate(const SeArgs& a) {
  if (a.gate == Gate::kSigmoid) se_excite<A, Gate::kSigmoid>(a);
  else se_excite<A, Gate::kHSigmoid>(a);
}

// out[p][c] = in[p][c] * scale[c] for pixels [p0, p1): one pass in memory order.
void scale_pixels(const float* in, float* out, const float* scale, size_t C, size_t p0, size_t p1) {
  const size_t full = C / 16 * 16;
  const __mmask16 tail = lanes(C - full);
  in += p0 * C;
  out += p0 * C;
  for (size_t p = p0; p < p1; ++p, in += C, out += C) {
    size_t c = 0;
    for (; c + 64 <= full; c += 64) {
      const __m512 v0 = _mm512_mul_ps(_mm512_loadu_ps(in + c), _mm512_loadu_ps(scale + c));
      const __m512 v1 = _mm512_mul_ps(_mm512_loadu_ps(in + c + 16), _mm512_loadu_ps(scale + c + 16));
      const __m512 v2 = _mm512_mul_ps(_mm512_loadu_ps(in + c + 32), _mm512_loadu_ps(scale + c + 32));
      const __m512 v3 = _mm512_mul_ps(_mm512_loadu_ps(in + c + 48), _mm512_loadu_ps(scale + c + 48));
      _mm512_storeu_ps(out + c, v0);
      _mm512_storeu_ps(out + c + 16, v1);
      _mm512_storeu_ps(out + c + 32, v2);
      _mm512_storeu_ps(out + c + 48, v3);
    }
    for (; c < full; c += 16) _mm512_storeu_ps(out + c, _mm512_mul_ps(_mm512_loadu_ps(in + c), _mm512_loadu_ps(scale + c)));
    if (tail)
      _mm512_mask_storeu_ps(out + c, tail,
                            _mm512_mul_ps(_mm512_maskz_loadu_ps(tail, in + c), _mm512_maskz_loadu_ps(tail, scale + c)));
  }
}

}  // namespace

void gap_c64__avx512f(const GapArgs& a) {
  const size_t C = a.channels, npix = a.height * a.width;
  const __m512 inv = _mm512_set1_ps(1.0f / static_cast<float>(npix));
  for (size_t c0 = 0; c0 < C; c0 += 64) {
    __mmask16 m[4];
    tile_masks(C, c0, m);
    __m512 acc[4] = {_mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps()};
    sum_pixels(a.input + c0, npix, C, m, acc);
    for (int v = 0; v < 4; ++v) _mm512_mask_storeu_ps(a.output + c0 + 16 * v, m[v], _mm512_mul_ps(acc[v], inv));
  }
}

void fc_c64__avx512f(const FcArgs& a) {
  with_act(a.act, [&](auto A) { return fc_act<A.value>(a); }, [] {});
}

void se_c64__avx512f(const SeArgs& a, SeStage stage, size_t y_begin, size_t y_end) {
  const size_t C = a.channels, W = a.width;
  switch (stage) {
    case SeStage::kAll:
      for (size_t c = 0; c < C; ++c) a.sum[c] = 0.0f;
      se_c64__avx512f(a, SeStage::kPool, 0, a.height);
      se_c64__avx512f(a, SeStage::kExcite, 0, 0);
      se_c64__avx512f(a, SeStage::kScale, 0, a.height);
      return;
    case SeStage::kPool:
      for (size_t c0 = 0; c0 < C; c0 += 64) {
        __mmask16 m[4];
        tile_masks(C, c0, m);
        __m512 acc[4];
        for (int v = 0; v < 4; ++v) acc[v] = _mm512_maskz_loadu_ps(m[v], a.sum + c0 + 16 * v);
        sum_pixels(a.input + y_begin * W * C + c0, (y_end - y_begin) * W, C, m, acc);
        for (int v = 0; v < 4; ++v) _mm512_mask_storeu_ps(a.sum + c0 + 16 * v, m[v], acc[v]);
      }
      return;
    case SeStage::kExcite:
      return with_act(a.act, [&](auto A) { return se_excite_gate<A.value>(a); }, [] {});
    case SeStage::kScale:
      scale_pixels(a.input, a.output, a.scale, C, y_begin * W, y_end * W);
      return;
  }
}

void avgpool_c64__avx512f(const AvgPoolArgs& a, size_t oy_begin, size_t oy_end) {
  const size_t C = a.channels, s = static_cast<size_t>(a.stride), rowC = a.in_w * C;
  for (size_t oy = oy_begin; oy < oy_end; ++oy) {
    const size_t y0 = oy * s > 0 ? oy * s - 1 : 0, y1 = std::min(a.in_h, oy * s + 2);
    for (size_t ox = 0; ox < a.out_w; ++ox) {
      const size_t x0 = ox * s > 0 ? ox * s - 1 : 0, x1 = std::min(a.in_w, ox * s + 2);
      const __m512 inv = _mm512_set1_ps(1.0f / static_cast<float>((y1 - y0) * (x1 - x0)));
      const float* win = a.input + y0 * rowC + x0 * C;
      float* out = a.output + (oy * a.out_w + ox) * C;
      for (size_t c0 = 0; c0 < C; c0 += 64) {
        __mmask16 m[4];
        tile_masks(C, c0, m);
        __m512 acc[4] = {_mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps()};
        for (size_t y = y0; y < y1; ++y)
          for (size_t x = 0; x < x1 - x0; ++x) {
            const float* in = win + (y - y0) * rowC + x * C + c0;
#pragma GCC unroll 4
            for (int v = 0; v < 4; ++v) acc[v] = _mm512_add_ps(acc[v], _mm512_maskz_loadu_ps(m[v], in + 16 * v));
          }
#pragma GCC unroll 4
        for (int v = 0; v < 4; ++v) _mm512_mask_storeu_ps(out + c0 + 16 * v, m[v], _mm512_mul_ps(acc[v], inv));
      }
    }
  }
}

void add_c64__avx512f(const float* a, const float* b, float* out, size_t n) {
  size_t i = 0;
  for (; i + 64 <= n; i += 64) {
    const __m512 v0 = _mm512_add_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i));
    const __m512 v1 = _mm512_add_ps(_mm512_loadu_ps(a + i + 16), _mm512_loadu_ps(b + i + 16));
    const __m512 v2 = _mm512_add_ps(_mm512_loadu_ps(a + i + 32), _mm512_loadu_ps(b + i + 32));
    const __m512 v3 = _mm512_add_ps(_mm512_loadu_ps(a + i + 48), _mm512_loadu_ps(b + i + 48));
    _mm512_storeu_ps(out + i, v0);
    _mm512_storeu_ps(out + i + 16, v1);
    _mm512_storeu_ps(out + i + 32, v2);
    _mm512_storeu_ps(out + i + 48, v3);
  }
  for (; i < n; i += 16) {
    const __mmask16 m = lanes(n - i);
    _mm512_mask_storeu_ps(out + i, m, _mm512_add_ps(_mm512_maskz_loadu_ps(m, a + i), _mm512_maskz_loadu_ps(m, b + i)));
  }
}

}  // namespace pynas
