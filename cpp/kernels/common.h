// Shared by every kernel: activation codes, argument structs and the scalar activation.
// Kept free of ISA intrinsics so every translation unit can include it.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <type_traits>

namespace pynas {

enum class Act : int { kNone = 0, kReLU = 1, kReLU6 = 2, kHSwish = 3, kSwish = 4 };

// `static`: each translation unit keeps its own copy, so a copy compiled with -mavx512f can never
// be picked by the linker for a baseline (or NEON-less) caller.
static inline float act_scalar(Act act, float x) {
  switch (act) {
    case Act::kNone: return x;
    case Act::kReLU: return std::max(x, 0.0f);
    case Act::kReLU6: return std::min(std::max(x, 0.0f), 6.0f);
    case Act::kHSwish: return x * std::min(std::max(x + 3.0f, 0.0f), 6.0f) * (1.0f / 6.0f);
    case Act::kSwish: return x / (1.0f + std::exp(-x));
  }
  return x;
}

// Calls fn(std::integral_constant<Act, A>{}) with A = act: turns the run-time activation code into a
// template argument once per call, so the hot loops are compiled per activation. A call site reads
//   with_act(a.act, [&](auto A) { return kernel<A.value>(a); }, [] {});
// An unknown code calls fallback() instead; each site says what that does (nothing, or the scalar
// kernel). `static` for the same reason as act_scalar.
template <class Fn, class Fallback>
static inline decltype(auto) with_act(Act act, Fn&& fn, Fallback&& fallback) {
  switch (act) {
    case Act::kNone: return fn(std::integral_constant<Act, Act::kNone>{});
    case Act::kReLU: return fn(std::integral_constant<Act, Act::kReLU>{});
    case Act::kReLU6: return fn(std::integral_constant<Act, Act::kReLU6>{});
    case Act::kHSwish: return fn(std::integral_constant<Act, Act::kHSwish>{});
    case Act::kSwish: return fn(std::integral_constant<Act, Act::kSwish>{});
  }
  return fallback();
}

// Depthwise kxk conv, NHWC batch 1, "same" padding pad = k / 2 on every side (PyTorch's).
// out[oy][ox][c] = act(bias[c] + sum_{ky,kx} in[oy*s+ky-pad][ox*s+kx-pad][c] * w[ky][kx][c])
struct DwConvArgs {
  const float* input;    // [in_h][in_w][channels]
  const float* weights;  // [kernel][kernel][channels]: tap-major, channels contiguous
  const float* bias;     // [channels]
  float* output;         // [out_h][out_w][channels]
  size_t in_h, in_w, out_h, out_w, channels;
  int kernel, stride, pad;
  Act act;
  // Row windows, for fused blocks that keep only a band of rows in a small buffer: `input` holds
  // input rows from in_row0 on (row iy at input + (iy - in_row0) * in_w * channels) and `output`
  // output rows from out_row0 on. The caller guarantees the rows a call reads and writes are there;
  // padding is still decided against the full in_h. Both 0 for whole tensors.
  size_t in_row0 = 0, out_row0 = 0;
};
// Computes output rows [oy_begin, oy_end): row ranges let fused blocks and threads split work.
using DwConvFn = void (*)(const DwConvArgs&, size_t oy_begin, size_t oy_end);

}  // namespace pynas
