// Global average pool, fully connected, squeeze-and-excitation, 3x3 average pool and elementwise
// add, AVX2+FMA. Channel tiles of 32 (4 ymm), the channel tail through masked loads / stores.
#include "add.h"
#include "avgpool.h"
#include "fc.h"
#include "gap.h"
#include "se.h"
#include "simd__avx2.h"

namespace pynas {
namespace {

alignas(32) const int kMaskTable[16] = {-1, -1, -1, -1, -1, -1, -1, -1, 0, 0, 0, 0, 0, 0, 0, 0};
inline __m256i lanes(size_t n) {  // first min(n, 8) lanes
  return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(kMaskTable + 8 - std::min<size_t>(n, 8)));
}

struct Masks {  // the 4 ymm of a 32-channel tile starting at c0; `full` when all 32 lanes are valid
  __m256i m[4];
  bool full;
  Masks(size_t C, size_t c0) : full(c0 + 32 <= C) {
    for (int v = 0; v < 4; ++v) m[v] = c0 + 8 * v < C ? lanes(C - c0 - 8 * v) : _mm256_setzero_si256();
  }
};

template <bool FULL>
inline __m256 load(const float* p, const Masks& mk, int v) {
  return FULL ? _mm256_loadu_ps(p) : _mm256_maskload_ps(p, mk.m[v]);
}
inline void store(float* p, __m256 x, const Masks& mk, int v) {
  if (mk.full) _mm256_storeu_ps(p, x);
  else _mm256_maskstore_ps(p, mk.m[v], x);
}

template <bool FULL>
inline void sum_pixels_t(const float* in, size_t npix, size_t C, const Masks& mk, __m256 acc[4]) {
  __m256 b[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps()};
  size_t p = 0;
  for (; p + 2 <= npix; p += 2, in += 2 * C) {
#pragma GCC unroll 4
    for (int v = 0; v < 4; ++v) {
      acc[v] = _mm256_add_ps(acc[v], load<FULL>(in + 8 * v, mk, v));
      b[v] = _mm256_add_ps(b[v], load<FULL>(in + C + 8 * v, mk, v));
    }
  }
  if (p < npix)
#pragma GCC unroll 4
    for (int v = 0; v < 4; ++v) acc[v] = _mm256_add_ps(acc[v], load<FULL>(in + 8 * v, mk, v));
#pragma GCC unroll 4
  for (int v = 0; v < 4; ++v) acc[v] = _mm256_add_ps(acc[v], b[v]);
}
inline void sum_pixels(const float* in, size_t npix, size_t C, const Masks& mk, __m256 acc[4]) {
  if (mk.full) sum_pixels_t<true>(in, npix, C, mk, acc);
  else sum_pixels_t<false>(in, npix, C, mk, acc);
}

// y[o] = post(alpha * sum_i W[o][i] x[i] + b[o]) over packed [ceil(out/16)][in][16] weights, NBLK
// (1 or 2) blocks at once, the input loop unrolled by two.
template <int NBLK, class Post>
inline void fc_group(const float* x, const float* w, const float* b, float* y, size_t in_c, size_t out_valid,
                     float alpha, Post post) {
  constexpr int NV = 2 * NBLK;
  __m256 a0[NV], a1[NV];
#pragma GCC unroll 4
  for (int n = 0; n < NV; ++n) a0[n] = a1[n] = _mm256_setzero_ps();
  const size_t bs = in_c * 16;
  size_t i = 0;
  for (; i + 2 <= in_c; i += 2) {
    const __m256 x0 = _mm256_broadcast_ss(x + i), x1 = _mm256_broadcast_ss(x + i + 1);
#pragma GCC unroll 4
    for (int n = 0; n < NV; ++n) {
      const float* wp = w + (n / 2) * bs + i * 16 + (n % 2) * 8;
      a0[n] = _mm256_fmadd_ps(x0, _mm256_loadu_ps(wp), a0[n]);
      a1[n] = _mm256_fmadd_ps(x1, _mm256_loadu_ps(wp + 16), a1[n]);
    }
  }
  if (i < in_c) {
    const __m256 x0 = _mm256_broadcast_ss(x + i);
#pragma GCC unroll 4
    for (int n = 0; n < NV; ++n)
      a0[n] = _mm256_fmadd_ps(x0, _mm256_loadu_ps(w + (n / 2) * bs + i * 16 + (n % 2) * 8), a0[n]);
  }
  const __m256 va = _mm256_set1_ps(alpha);
#pragma GCC unroll 4
  for (int n = 0; n < NV; ++n) {
    if (8 * static_cast<size_t>(n) >= out_valid) break;
    const size_t valid = out_valid - 8 * n;
    const __m256 sum = _mm256_add_ps(a0[n], a1[n]);
    if (valid >= 8) {
      _mm256_storeu_ps(y + 8 * n, post(_mm256_fmadd_ps(sum, va, _mm256_loadu_ps(b + 8 * n))));
    } else {
      const __m256i m = lanes(valid);
      _mm256_maskstore_ps(y + 8 * n, m, post(_mm256_fmadd_ps(sum, va, _mm256_maskload_ps(b + 8 * n, m))));
    }
  }
}

template <class Post>
void fc_packed(const float* x, const float* w, const float* b, float* y, size_t in_c, size_t out_c, float alpha,
               Post post) {
  const size_t nblocks = (out_c + 15) / 16, bs = in_c * 16;
  size_t blk = 0;
  for (; blk + 2 <= nblocks; blk += 2)
    fc_group<2>(x, w + blk * bs, b + blk * 16, y + blk * 16, in_c, out_c - blk * 16, alpha, post);
  if (blk < nblocks) fc_group<1>(x, w + blk * bs, b + blk * 16, y + blk * 16, in_c, out_c - blk * 16, alpha, post);
}

template <Act A>
void fc_act(const FcArgs& a) {
  fc_packed(a.input, a.weights, a.bias, a.output, a.in_c, a.out_c, 1.0f, [](__m256 v) { return avx2::act<A>(v); });
}

template <Act A, Gate G>
void se_excite(const SeArgs& a) {
  const float inv = 1.0f / static_cast<float>(a.height * a.width);
  fc_packed(a.sum, a.w_reduce, a.b_reduce, a.hidden, a.channels, a.reduced, inv,
            [](__m256 v) { return avx2::act<A>(v); });
  fc_packed(a.hidden, a.w_expand, a.b_expand, a.scale, a.reduced, a.channels, 1.0f, [](__m256 z) {
    if constexpr (G == Gate::kSigmoid) {
      return _mm256_div_ps(_mm256_set1_ps(1.0f),
                           _mm256_add_ps(_mm256_set1_ps(1.0f), avx2::exp_ps(_mm256_sub_ps(_mm256_setzero_ps(), z))));
    } else {
      const __m256 t = _mm256_min_ps(_mm256_max_ps(_mm256_add_ps(z, _mm256_set1_ps(3.0f)), _mm256_setzero_ps()),
                                     _mm256_set1_ps(6.0f));
      return _mm256_mul_ps(t, _mm256_set1_ps(1.0f / 6.0f));
    }
  });
}

template <Act A>
void se_excite_gate(const SeArgs& a) {
  if (a.gate == Gate::kSigmoid) se_excite<A, Gate::kSigmoid>(a);
  else se_excite<A, Gate::kHSigmoid>(a);
}

void scale_pixels(const float* in, float* out, const float* scale, size_t C, size_t p0, size_t p1) {
  const size_t full = C / 8 * 8;
  const __m256i tail = lanes(C - full);
  in += p0 * C;
  out += p0 * C;
  for (size_t p = p0; p < p1; ++p, in += C, out += C) {
    size_t c = 0;
    for (; c + 32 <= full; c += 32) {
      const __m256 v0 = _mm256_mul_ps(_mm256_loadu_ps(in + c), _mm256_loadu_ps(scale + c));
      const __m256 v1 = _mm256_mul_ps(_mm256_loadu_ps(in + c + 8), _mm256_loadu_ps(scale + c + 8));
      const __m256 v2 = _mm256_mul_ps(_mm256_loadu_ps(in + c + 16), _mm256_loadu_ps(scale + c + 16));
      const __m256 v3 = _mm256_mul_ps(_mm256_loadu_ps(in + c + 24), _mm256_loadu_ps(scale + c + 24));
      _mm256_storeu_ps(out + c, v0);
      _mm256_storeu_ps(out + c + 8, v1);
      _mm256_storeu_ps(out + c + 16, v2);
      _mm256_storeu_ps(out + c + 24, v3);
    }
    for (; c < full; c += 8) _mm256_storeu_ps(out + c, _mm256_mul_ps(_mm256_loadu_ps(in + c), _mm256_loadu_ps(scale + c)));
    if (c < C)
      _mm256_maskstore_ps(out + c, tail,
                          _mm256_mul_ps(_mm256_maskload_ps(in + c, tail), _mm256_maskload_ps(scale + c, tail)));
  }
}

}  // namespace

void gap_c32__avx2(const GapArgs& a) {
  const size_t C = a.channels, npix = a.height * a.width;
  const __m256 inv = _mm256_set1_ps(1.0f / static_cast<float>(npix));
  for (size_t c0 = 0; c0 < C; c0 += 32) {
    const Masks mk(C, c0);
    __m256 acc[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps()};
    sum_pixels(a.input + c0, npix, C, mk, acc);
    for (int v = 0; v < 4; ++v) store(a.output + c0 + 8 * v, _mm256_mul_ps(acc[v], inv), mk, v);
  }
}

void fc_c32__avx2(const FcArgs& a) {
  with_act(a.act, [&](auto A) { return fc_act<A.value>(a); }, [] {});
}

void se_c32__avx2(const SeArgs& a, SeStage stage, size_t y_begin, size_t y_end) {
  const size_t C = a.channels, W = a.width;
  switch (stage) {
    case SeStage::kAll:
      for (size_t c = 0; c < C; ++c) a.sum[c] = 0.0f;
      se_c32__avx2(a, SeStage::kPool, 0, a.height);
      se_c32__avx2(a, SeStage::kExcite, 0, 0);
      se_c32__avx2(a, SeStage::kScale, 0, a.height);
      return;
    case SeStage::kPool:
      for (size_t c0 = 0; c0 < C; c0 += 32) {
        const Masks mk(C, c0);
        __m256 acc[4];
        for (int v = 0; v < 4; ++v) acc[v] = _mm256_maskload_ps(a.sum + c0 + 8 * v, mk.m[v]);
        sum_pixels(a.input + y_begin * W * C + c0, (y_end - y_begin) * W, C, mk, acc);
        for (int v = 0; v < 4; ++v) store(a.sum + c0 + 8 * v, acc[v], mk, v);
      }
      return;
    case SeStage::kExcite:
      return with_act(a.act, [&](auto A) { return se_excite_gate<A.value>(a); }, [] {});
    case SeStage::kScale:
      scale_pixels(a.input, a.output, a.scale, C, y_begin * W, y_end * W);
      return;
  }
}

void avgpool_c32__avx2(const AvgPoolArgs& a, size_t oy_begin, size_t oy_end) {
  const size_t C = a.channels, s = static_cast<size_t>(a.stride), rowC = a.in_w * C;
  for (size_t oy = oy_begin; oy < oy_end; ++oy) {
    const size_t y0 = oy * s > 0 ? oy * s - 1 : 0, y1 = std::min(a.in_h, oy * s + 2);
    for (size_t ox = 0; ox < a.out_w; ++ox) {
      const size_t x0 = ox * s > 0 ? ox * s - 1 : 0, x1 = std::min(a.in_w, ox * s + 2);
      const __m256 inv = _mm256_set1_ps(1.0f / static_cast<float>((y1 - y0) * (x1 - x0)));
      const float* win = a.input + y0 * rowC + x0 * C;
      float* out = a.output + (oy * a.out_w + ox) * C;
      for (size_t c0 = 0; c0 < C; c0 += 32) {
        const Masks mk(C, c0);
        __m256 acc[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps()};
        for (size_t y = y0; y < y1; ++y)
          for (size_t x = 0; x < x1 - x0; ++x) {
            const float* in = win + (y - y0) * rowC + x * C + c0;
            if (mk.full) {
#pragma GCC unroll 4
              for (int v = 0; v < 4; ++v) acc[v] = _mm256_add_ps(acc[v], _mm256_loadu_ps(in + 8 * v));
            } else {
#pragma GCC unroll 4
              for (int v = 0; v < 4; ++v) acc[v] = _mm256_add_ps(acc[v], _mm256_maskload_ps(in + 8 * v, mk.m[v]));
            }
          }
        for (int v = 0; v < 4; ++v) store(out + c0 + 8 * v, _mm256_mul_ps(acc[v], inv), mk, v);
      }
    }
  }
}

void add_c32__avx2(const float* a, const float* b, float* out, size_t n) {
  size_t i = 0;
  for (; i + 32 <= n; i += 32) {
    const __m256 v0 = _mm256_add_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i));
    const __m256 v1 = _mm256_add_ps(_mm256_loadu_ps(a + i + 8), _mm256_loadu_ps(b + i + 8));
    const __m256 v2 = _mm256_add_ps(_mm256_loadu_ps(a + i + 16), _mm256_loadu_ps(b + i + 16));
    const __m256 v3 = _mm256_add_ps(_mm256_loadu_ps(a + i + 24), _mm256_loadu_ps(b + i + 24));
    _mm256_storeu_ps(out + i, v0);
    _mm256_storeu_ps(out + i + 8, v1);
    _mm256_storeu_ps(out + i + 16, v2);
    _mm256_storeu_ps(out + i + 24, v3);
  }
  for (; i + 8 <= n; i += 8) _mm256_storeu_ps(out + i, _mm256_add_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i)));
  for (; i < n; ++i) out[i] = a[i] + b[i];
}

}  // namespace pynas
