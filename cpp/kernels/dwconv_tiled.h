// Depthwise conv, the SIMD algorithm shared by every ISA variant (dwconv__avx512f.cc, dwconv__avx2.cc,
// dwconv__neon.cc). Include only from *__<isa>.cc files, then define the ISA's vector traits:
//
//   struct V {                                     // one vector of kLanes fp32 channels
//     using vec = ...; static constexpr int kLanes = ...;
//     static constexpr dwtiled::Tail kTail = ...;  // how channel tails are covered (see Tail)
//     static vec fma(vec acc, vec x, vec w);       // acc + x * w
//     static vec add(vec, vec); static vec zero();
//     template <Act A> static vec act(vec x);
//   };
//   IO objects (a full tile and a channel-tail tile): vec load(const float*) const;
//   void store(float*, vec) const. A tail IO must neither read nor write past its lanes.
//   Cfg<K, S>: kPixels (interior step) and kHoist (taps kept in registers), per ISA.
//
// Everything here is file-local (anonymous namespace / static): each ISA translation unit gets
// its own copy, compiled with its own flags, and nothing leaks to baseline code.
//
// Loop order, per call: output row (oy) -> channel tile (ct) -> output pixels (ox). The K input rows
// of one output row (K * W * C floats) stay in L1/L2 while every channel tile walks them, and a
// channel tile's weights are loaded once per row (kept in registers when they fit: `Hoist`).
// Along a row, pixels split into a left border [0, ox_lo), an interior [ox_lo, ox_hi) whose
// windows need no column checks and a right border [ox_hi, OW). The interior runs NP output pixels
// per step: each input vector is loaded once and feeds every pixel of the step whose window holds
// it (up to K of them at stride 1), and the NP accumulators are independent FMA chains. Rows
// whose window is clipped at the top or bottom run the same code with per-row checks (`kClip`).
// Border pixels take one pixel at a time with row and column checks.
#pragma once

#include <cstddef>

#include "dwconv.h"

#define PYNAS_DW_INLINE inline __attribute__((always_inline))
#define PYNAS_DW_UNROLL _Pragma("GCC unroll 64")

namespace pynas {
namespace dwtiled {
namespace {  // file-local in every ISA translation unit, like the `static` functions in it

// Hides a pointer's value from the optimizer: walking columns with one pointer and an add each,
// rather than letting it keep a base pointer per column (GPR spills in the hot loop).
template <class T>
static PYNAS_DW_INLINE void opaque(T*& p) {
#if defined(__GNUC__)
  __asm__("" : "+r"(p));
#endif
}

// Weights of one channel tile: tap t = ky * K + kx.
template <class V, int K, bool Hoist, class IO>
struct Weights;

// All K*K tap vectors loaded once (per row and channel tile) into locals the compiler keeps in
// registers.
template <class V, int K, class IO>
struct Weights<V, K, true, IO> {
  typename V::vec w[K * K];
  PYNAS_DW_INLINE Weights(const IO& io, const float* p, size_t C) {
    PYNAS_DW_UNROLL for (int t = 0; t < K * K; ++t) w[t] = io.load(p + t * C);
  }
  PYNAS_DW_INLINE typename V::vec get(const IO&, int t) const { return w[t]; }
};

// Loaded from memory (L1) where used, one kernel row at a time: for kernels too large to keep.
template <class V, int K, class IO>
struct Weights<V, K, false, IO> {
  const float* p;
  size_t C;
  PYNAS_DW_INLINE Weights(const IO&, const float* p_, size_t C_) : p(p_), C(C_) {}
  PYNAS_DW_INLINE typename V::vec get(const IO& io, int t) const { return io.load(p + t * C); }
};

// NP consecutive output pixels whose windows lie inside the row: no column checks. rows[ky] points
// at input row iy0 + ky, column 0, this channel tile; with kClip only ky in [ky_lo, ky_hi) is read.
template <class V, int K, int S, int NP, bool kClip, Act A, class IO, class WS>
static PYNAS_DW_INLINE void interior_pixels(const IO& io, const WS& ws, typename V::vec bias,
                                            const float* const* rows, int ky_lo, int ky_hi, size_t C,
                                            size_t ix0, float* out) {
  using vec = typename V::vec;
  constexpr int kCols = (NP - 1) * S + K;
  vec acc[NP];
  PYNAS_DW_UNROLL for (int p = 0; p < NP; ++p) acc[p] = bias;
  PYNAS_DW_UNROLL for (int ky = 0; ky < K; ++ky) {
    if (kClip && (ky < ky_lo || ky >= ky_hi)) continue;
    vec w[K];
    PYNAS_DW_UNROLL for (int kx = 0; kx < K; ++kx) w[kx] = ws.get(io, ky * K + kx);
    const float* in = rows[ky] + ix0 * C;
    PYNAS_DW_UNROLL for (int j = 0; j < kCols; ++j) {
      const vec x = io.load(in);
      in += C;
      opaque(in);
      PYNAS_DW_UNROLL for (int p = 0; p < NP; ++p) {
        const int kx = j - S * p;
        if (kx >= 0 && kx < K) acc[p] = V::fma(acc[p], x, w[kx]);
      }
    }
  }
  PYNAS_DW_UNROLL for (int p = 0; p < NP; ++p) {
    io.store(out, V::template act<A>(acc[p]));
    out += C;
    opaque(out);
  }
}

// One output pixel with row and column checks: borders, and rows too narrow for an interior.
// Two accumulators (even / odd kernel rows) halve the FMA dependency chain.
template <class V, int K, Act A, class IO, class WS>
static PYNAS_DW_INLINE void border_pixel(const IO& io, const WS& ws, typename V::vec bias,
                                         const float* const* rows, int ky_lo, int ky_hi, size_t C,
                                         long ix0, size_t in_w, float* out) {
  using vec = typename V::vec;
  const int kx_lo = ix0 < 0 ? static_cast<int>(-ix0) : 0;
  const long right = static_cast<long>(in_w) - ix0;
  const int kx_hi = right < K ? static_cast<int>(right) : K;
  vec acc[2] = {bias, V::zero()};
  PYNAS_DW_UNROLL for (int ky = 0; ky < K; ++ky) {
    if (ky < ky_lo || ky >= ky_hi) continue;
    PYNAS_DW_UNROLL for (int kx = 0; kx < K; ++kx) {
      if (kx < kx_lo || kx >= kx_hi) continue;
      const vec x = io.load(rows[ky] + static_cast<size_t>(ix0 + kx) * C);
      acc[ky & 1] = V::fma(acc[ky & 1], x, ws.get(io, ky * K + kx));
    }
  }
  io.store(out, V::template act<A>(V::add(acc[0], acc[1])));
}

// Interior pixels [ox, ox_end), NP at a time. A remainder of more than NP / 2 pixels reruns the
// last NP of the run (overlapping: recomputes identical values), a shorter one goes NP / 2 at a time.
template <class V, int K, int S, int NP, bool kClip, Act A, class IO, class WS>
static PYNAS_DW_INLINE void interior_run(const IO& io, const WS& ws, typename V::vec bias, const float* const* rows,
                                         int ky_lo, int ky_hi, size_t C, size_t pad, size_t ox, size_t ox_end,
                                         float* out_row) {
  const size_t start = ox;
  for (; ox + NP <= ox_end; ox += NP)
    interior_pixels<V, K, S, NP, kClip, A>(io, ws, bias, rows, ky_lo, ky_hi, C, ox * S - pad, out_row + ox * C);
  if (ox == ox_end) return;
  if (2 * (ox_end - ox) > static_cast<size_t>(NP) && ox_end - start >= static_cast<size_t>(NP)) {
    interior_pixels<V, K, S, NP, kClip, A>(io, ws, bias, rows, ky_lo, ky_hi, C, (ox_end - NP) * S - pad,
                                           out_row + (ox_end - NP) * C);
  } else if constexpr (NP > 1) {
    interior_run<V, K, S, NP / 2, kClip, A>(io, ws, bias, rows, ky_lo, ky_hi, C, pad, ox, ox_end, out_row);
  }
}

// One output row, one channel tile (io says full or tail).
template <class V, int K, int S, int NP, bool Hoist, Act A, class IO>
static PYNAS_DW_INLINE void row_tile(const IO& io, const DwConvArgs& a, const float* const* rows, int ky_lo,
                                     int ky_hi, size_t ct, size_t ox_lo, size_t ox_hi, float* out_row) {
  const size_t C = a.channels;
  const size_t pad = static_cast<size_t>(K / 2);
  const Weights<V, K, Hoist, IO> ws(io, a.weights + ct, C);
  const typename V::vec bias = io.load(a.bias + ct);
  const float* tile_rows[K];
  for (int ky = 0; ky < K; ++ky) tile_rows[ky] = rows[ky] + ct;
  float* out = out_row + ct;
  if (ky_lo == 0 && ky_hi == K)
    interior_run<V, K, S, NP, false, A>(io, ws, bias, tile_rows, ky_lo, ky_hi, C, pad, ox_lo, ox_hi, out);
  else
    interior_run<V, K, S, NP, true, A>(io, ws, bias, tile_rows, ky_lo, ky_hi, C, pad, ox_lo, ox_hi, out);
  // Border pixels: [0, ox_lo), then [ox_hi, out_w).
  for (size_t ox = ox_lo ? 0 : ox_hi; ox < a.out_w; ox = ox + 1 == ox_lo ? ox_hi : ox + 1)
    border_pixel<V, K, A>(io, ws, bias, tile_rows, ky_lo, ky_hi, C, static_cast<long>(ox * S) - static_cast<long>(pad),
                          a.in_w, out + ox * C);
}

// How a variant covers C channels with kLanes-wide tiles (V::kTail):
enum class Tail {
  kMasked,   // full tiles, then one tail tile through a masked IO (AVX-512: masks are cheap)
  kOverlap,  // full tiles, the last one moved back to end at C (recomputing up to kLanes - 1
             // channels, identical values); C < kLanes: one masked tile with a small pixel step.
             // Half the code of kMasked, and no slow masked stores in the hot loop (AVX2, NEON).
};
enum class Tiles { kFullAndTail, kFullOverlapping, kTailOnly };

template <class V, int K, int S, int NP, bool Hoist, Act A, Tiles T, class FullIO, class MakeTail>
static void run_tiles(const DwConvArgs& a, size_t oy_begin, size_t oy_end, MakeTail make_tail) {
  constexpr size_t L = V::kLanes;
  const size_t C = a.channels, H = a.in_h, W = a.in_w, OW = a.out_w;
  const long pad = K / 2;
  // Interior columns: ox * S - pad >= 0 and ox * S - pad + K - 1 <= W - 1.
  size_t ox_lo = static_cast<size_t>((pad + S - 1) / S);
  if (ox_lo > OW) ox_lo = OW;
  const long last = static_cast<long>(W) + pad - K;  // the last interior ox * S
  size_t ox_hi = last >= 0 ? static_cast<size_t>(last / S + 1) : 0;
  if (ox_hi > OW) ox_hi = OW;
  if (ox_hi < ox_lo) ox_hi = ox_lo;
  const FullIO full_io{};
  // kFullOverlapping: ceil(C / L) tiles, the last starting at C - L (C >= L).
  const size_t full_tiles = T == Tiles::kFullOverlapping ? (C + L - 1) / L : C / L;
  for (size_t oy = oy_begin; oy < oy_end; ++oy) {
    const long iy0 = static_cast<long>(oy * S) - pad;
    const int ky_lo = iy0 < 0 ? static_cast<int>(-iy0) : 0;
    const long below = static_cast<long>(H) - iy0;
    const int ky_hi = below < K ? static_cast<int>(below) : K;
    const float* rows[K];
    for (int ky = 0; ky < K; ++ky)  // rows outside [ky_lo, ky_hi) are never read
      rows[ky] = ky >= ky_lo && ky < ky_hi ? a.input + (static_cast<size_t>(iy0 + ky) - a.in_row0) * W * C : a.input;
    float* out_row = a.output + (oy - a.out_row0) * OW * C;
    if constexpr (T != Tiles::kTailOnly) {
      for (size_t t = 0; t < full_tiles; ++t) {
        const size_t ct = t * L + L <= C ? t * L : C - L;
        row_tile<V, K, S, NP, Hoist, A>(full_io, a, rows, ky_lo, ky_hi, ct, ox_lo, ox_hi, out_row);
      }
    }
    if constexpr (T != Tiles::kFullOverlapping) {
      const size_t ct = C / L * L;
      if (ct < C) row_tile<V, K, S, NP, Hoist, A>(make_tail(C - ct), a, rows, ky_lo, ky_hi, ct, ox_lo, ox_hi, out_row);
    }
  }
}

// The whole op for one (K, S, A). FullIO: a full tile; make_tail(n): IO for the first n < kLanes lanes.
template <class V, int K, int S, int NP, bool Hoist, Act A, class FullIO, class MakeTail>
static void run(const DwConvArgs& a, size_t oy_begin, size_t oy_end, MakeTail make_tail) {
  if constexpr (V::kTail == Tail::kOverlap) {
    if (a.channels < static_cast<size_t>(V::kLanes))
      return run_tiles<V, K, S, (NP < 4 ? NP : 4), Hoist, A, Tiles::kTailOnly, FullIO>(a, oy_begin, oy_end, make_tail);
    return run_tiles<V, K, S, NP, Hoist, A, Tiles::kFullOverlapping, FullIO>(a, oy_begin, oy_end, make_tail);
  } else {
    return run_tiles<V, K, S, NP, Hoist, A, Tiles::kFullAndTail, FullIO>(a, oy_begin, oy_end, make_tail);
  }
}

// Entry point: dispatches on (kernel, stride) and once on the activation. Cfg<K, S>::kPixels and
// Cfg<K, S>::kHoist pick the interior step and weight policy per ISA. Arguments outside what the
// tiles cover (kernel not 3/5/7, stride not 1/2, pad != kernel / 2) go to the scalar kernel.
template <class V, template <int, int> class Cfg, class FullIO, int K, int S, class MakeTail>
static void dispatch_act(const DwConvArgs& a, size_t oy_begin, size_t oy_end, MakeTail make_tail) {
  constexpr int NP = Cfg<K, S>::kPixels;
  constexpr bool kHoist = Cfg<K, S>::kHoist;
  with_act(
      a.act, [&](auto A) { return run<V, K, S, NP, kHoist, A.value, FullIO>(a, oy_begin, oy_end, make_tail); },
      [&] { dwconv_c1__scalar(a, oy_begin, oy_end); });  // an unknown activation code: the scalar kernel's behaviour
}

template <class V, template <int, int> class Cfg, class FullIO, class MakeTail>
static void dispatch(const DwConvArgs& a, size_t oy_begin, size_t oy_end, MakeTail make_tail) {
  if (oy_begin >= oy_end || a.out_w == 0 || a.channels == 0) return;
  const int k = a.kernel, s = a.stride;
  if (a.pad == k / 2) {
    if (k == 3 && s == 1) return dispatch_act<V, Cfg, FullIO, 3, 1>(a, oy_begin, oy_end, make_tail);
    if (k == 3 && s == 2) return dispatch_act<V, Cfg, FullIO, 3, 2>(a, oy_begin, oy_end, make_tail);
    if (k == 5 && s == 1) return dispatch_act<V, Cfg, FullIO, 5, 1>(a, oy_begin, oy_end, make_tail);
    if (k == 5 && s == 2) return dispatch_act<V, Cfg, FullIO, 5, 2>(a, oy_begin, oy_end, make_tail);
    if (k == 7 && s == 1) return dispatch_act<V, Cfg, FullIO, 7, 1>(a, oy_begin, oy_end, make_tail);
    if (k == 7 && s == 2) return dispatch_act<V, Cfg, FullIO, 7, 2>(a, oy_begin, oy_end, make_tail);
  }
  dwconv_c1__scalar(a, oy_begin, oy_end);
}

}  // namespace
}  // namespace dwtiled
}  // namespace pynas
