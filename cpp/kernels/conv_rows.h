// Zero-padded input rows for the SIMD conv kernels (ISA-free; included by conv__<isa>.cc).
// Everything is in an anonymous namespace: each ISA translation unit gets its own copy.
#pragma once

#include <algorithm>
#include <cstdlib>
#include <cstring>

#include "conv.h"

namespace pynas {
namespace {

// Per-thread scratch. Deliberately not std::vector: its out-of-line members would be emitted as weak
// symbols compiled with this file's ISA flags, and the linker could hand them to baseline code.
struct Scratch {
  float* data = nullptr;
  size_t size = 0;
  float* get(size_t n) {
    if (n > size) {
      std::free(data);
      data = static_cast<float*>(std::aligned_alloc(64, (n * sizeof(float) + 63) / 64 * 64));
      if (data == nullptr) std::abort();
      size = n;
    }
    return data;
  }
  ~Scratch() { std::free(data); }
};

// Hands out input row iy as a row of padded_w = (out_w - 1) * stride + kernel pixels whose column p
// is input column p - pad (zeros outside the input), so the k taps of output pixel ox on that row
// are the kernel * in_c consecutive floats at column ox * stride. Rows are copied into a ring of
// `kernel` slots keyed by iy % kernel, so a call copies each input row at most once. When no
// padding is needed (1x1), input rows are used in place.
class PaddedRows {
 public:
  explicit PaddedRows(const ConvArgs& a)
      : a_(a), k_(static_cast<size_t>(a.kernel)), pad_(static_cast<size_t>(a.pad)),
        padded_w_((a.out_w - 1) * static_cast<size_t>(a.stride) + k_),
        direct_(a.pad == 0 && padded_w_ <= a.in_w) {
    if (direct_) return;
    static thread_local Scratch scratch;
    row_floats_ = (padded_w_ * a.in_c + 15) / 16 * 16;  // keep rows 64-byte apart
    buf_ = scratch.get(k_ * row_floats_);
    std::fill(tag_, tag_ + 8, -1L);
  }

  const float* row(size_t iy) {
    const size_t C = a_.in_c;
    if (direct_) return a_.input + iy * a_.in_w * C;
    const size_t slot = iy % k_;
    float* r = buf_ + slot * row_floats_;
    if (tag_[slot] != static_cast<long>(iy)) {
      tag_[slot] = static_cast<long>(iy);
      const size_t ncopy = std::min(a_.in_w, padded_w_ - pad_);
      std::memset(r, 0, pad_ * C * sizeof(float));
      std::memcpy(r + pad_ * C, a_.input + iy * a_.in_w * C, ncopy * C * sizeof(float));
      std::memset(r + (pad_ + ncopy) * C, 0, (padded_w_ - pad_ - ncopy) * C * sizeof(float));
    }
    return r;
  }

 private:
  const ConvArgs& a_;
  size_t k_, pad_, padded_w_;
  bool direct_;
  size_t row_floats_ = 0;
  float* buf_ = nullptr;
  long tag_[8];
};

// Valid kernel rows [ky_begin, ky_end) of output row oy (rows outside the input are skipped).
inline void valid_kernel_rows(const ConvArgs& a, size_t oy, size_t& ky_begin, size_t& ky_end) {
  const long top = static_cast<long>(oy) * a.stride - a.pad;  // input row of ky = 0
  ky_begin = static_cast<size_t>(std::max(0L, -top));
  ky_end = static_cast<size_t>(std::max(0L, std::min<long>(a.kernel, static_cast<long>(a.in_h) - top)));
  if (ky_end < ky_begin) ky_end = ky_begin;
}

// Splits n pixels into the fewest blocks of at most max_mr, as even as possible: block i has
// base + (i < extra) pixels.
struct PixelBlocks {
  size_t count, base, extra;
  PixelBlocks(size_t n, size_t max_mr) {
    count = (n + max_mr - 1) / max_mr;
    base = n / count;
    extra = n % count;
  }
  size_t size(size_t i) const { return base + (i < extra ? 1 : 0); }
};

}  // namespace
}  // namespace pynas
