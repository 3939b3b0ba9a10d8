// Steps of cell networks (pynas.cell, lowered by pynas.ir.cells): standalone activation, kxk
// average and max pooling, dilated depthwise conv, n-ary sum, channel concatenation, crop, zeros
// and a per-channel affine (a folded BatchNorm on its own). Plain loops in baseline code (no ISA
// flags: cpp/kernels' rules), threaded over output rows; their outputs are checked against PyTorch's
// (tests/test_native_cells.py). Faster variants belong in cpp/kernels with run-time dispatch.
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <limits>
#include <stdexcept>
#include <string>

#include "network.h"

namespace pynas {
namespace {

size_t rows_grain(size_t row_floats) { return std::max<size_t>(1, 16384 / std::max<size_t>(row_floats, 1)); }

size_t pooled(size_t in, int kernel, int stride, int pad, int dilation = 1) {
  const long span = static_cast<long>(dilation) * (kernel - 1) + 1;
  const long out = (static_cast<long>(in) + 2 * pad - span) / stride + 1;
  if (out < 1) throw std::invalid_argument("window larger than the padded input");
  return static_cast<size_t>(out);
}

}  // namespace

int Network::act(int x, Act act) {
  check_tensor(x, "act input");
  const Shape in = shapes_[x];
  const int y = static_cast<int>(shapes_.size());
  return add_step("cell_act", {x}, in, [=, this](float* const* t) {
    pool_.parallel_for(in.size(), 16384, [&](size_t i0, size_t i1) {
      // ReLU by bit mask, branch-free: act_scalar's std::max per element compiled to a data-dependent
      // branch, ~9x slower on inputs of mixed sign than of one sign, so a cell network's time
      // depended on its weights and on where its ReLUs read from. Other activations: act_scalar,
      // the code a template argument (no switch per element).
      const float* __restrict src = t[x];
      float* __restrict dst = t[y];
      with_act(act, [&](auto A) {
        if constexpr (A.value == Act::kReLU) {  // clear the bits of each value whose sign bit is set
          using Bits = int32_t __attribute__((may_alias));  // the floats' bits, read as integers legally
          const Bits* __restrict from = reinterpret_cast<const Bits*>(src);
          Bits* __restrict to = reinterpret_cast<Bits*>(dst);
          for (size_t i = i0; i < i1; ++i) to[i] = from[i] & ~(from[i] >> 31);
        } else {
          for (size_t i = i0; i < i1; ++i) dst[i] = act_scalar(A.value, src[i]);
        }
      }, [] {});
    });
  });
}

int Network::pool(int x, int kind, int kernel, int stride, int pad) {
  check_tensor(x, "pool input");
  if (kind != 0 && kind != 1) throw std::invalid_argument("pool kind: expected 0 (average) or 1 (max)");
  if (kernel < 1 || stride < 1 || pad < 0 || pad >= kernel)
    throw std::invalid_argument("pool: expected kernel >= 1, stride >= 1, 0 <= pad < kernel");
  const Shape in = shapes_[x];
  const Shape out{pooled(in.h, kernel, stride, pad), pooled(in.w, kernel, stride, pad), in.c};
  const int y = static_cast<int>(shapes_.size());
  const std::string name = std::string(kind ? "cell_maxpool" : "cell_avgpool") + std::to_string(kernel);
  return add_step(name, {x}, out, [=, this](float* const* t) {
    pool_.parallel_for(out.h, rows_grain(out.w * in.c), [&](size_t r0, size_t r1) {
      for (size_t oy = r0; oy < r1; ++oy)
        for (size_t ox = 0; ox < out.w; ++ox) {
          float* o = t[y] + (oy * out.w + ox) * in.c;
          const long y0 = static_cast<long>(oy) * stride - pad, x0 = static_cast<long>(ox) * stride - pad;
          const long y1 = std::min<long>(y0 + kernel, in.h), x1 = std::min<long>(x0 + kernel, in.w);
          const long ys = std::max<long>(y0, 0), xs = std::max<long>(x0, 0);
          for (size_t c = 0; c < in.c; ++c) o[c] = kind ? -std::numeric_limits<float>::infinity() : 0.0f;
          for (long iy = ys; iy < y1; ++iy)
            for (long ix = xs; ix < x1; ++ix) {
              const float* p = t[x] + (iy * in.w + ix) * in.c;
              if (kind)
                for (size_t c = 0; c < in.c; ++c) o[c] = std::max(o[c], p[c]);
              else
                for (size_t c = 0; c < in.c; ++c) o[c] += p[c];
            }
          if (!kind) {
            const float inv = 1.0f / static_cast<float>((y1 - ys) * (x1 - xs));  // padding not counted
            for (size_t c = 0; c < in.c; ++c) o[c] *= inv;
          }
        }
    });
  });
}

int Network::dwconv_dilated(int x, const float* w_kkc, const float* bias, int kernel, int stride, int dilation,
                            Act act) {
  check_tensor(x, "dwconv_dilated input");
  if (kernel < 1 || stride < 1 || dilation < 1)
    throw std::invalid_argument("dwconv_dilated: expected kernel, stride and dilation >= 1");
  const Shape in = shapes_[x];
  const int pad = dilation * (kernel - 1) / 2;
  const Shape out{pooled(in.h, kernel, stride, pad, dilation), pooled(in.w, kernel, stride, pad, dilation), in.c};
  const size_t taps = static_cast<size_t>(kernel) * kernel * in.c;
  weights_.push_back(aligned_floats(taps + in.c));
  float* w = weights_.back().get();
  std::memcpy(w, w_kkc, taps * sizeof(float));
  std::memcpy(w + taps, bias, in.c * sizeof(float));
  const int y = static_cast<int>(shapes_.size());
  return add_step("cell_dwconv_d" + std::to_string(dilation), {x}, out, [=, this](float* const* t) {
    pool_.parallel_for(out.h, rows_grain(out.w * in.c), [&](size_t r0, size_t r1) {
      for (size_t oy = r0; oy < r1; ++oy)
        for (size_t ox = 0; ox < out.w; ++ox) {
          float* o = t[y] + (oy * out.w + ox) * in.c;
          std::memcpy(o, w + taps, in.c * sizeof(float));
          for (int ky = 0; ky < kernel; ++ky) {
            const long iy = static_cast<long>(oy) * stride - pad + static_cast<long>(ky) * dilation;
            if (iy < 0 || iy >= static_cast<long>(in.h)) continue;
            for (int kx = 0; kx < kernel; ++kx) {
              const long ix = static_cast<long>(ox) * stride - pad + static_cast<long>(kx) * dilation;
              if (ix < 0 || ix >= static_cast<long>(in.w)) continue;
              const float* p = t[x] + (iy * in.w + ix) * in.c;
              const float* k = w + (static_cast<size_t>(ky) * kernel + kx) * in.c;
              for (size_t c = 0; c < in.c; ++c) o[c] += p[c] * k[c];
            }
          }
          for (size_t c = 0; c < in.c; ++c) o[c] = act_scalar(act, o[c]);
        }
    });
  });
}

int Network::sum(const std::vector<int>& xs) {
  if (xs.size() < 2) throw std::invalid_argument("sum: expected at least 2 inputs");
  for (int x : xs) {
    check_tensor(x, "sum input");
    const Shape& s = shapes_[x];
    if (s.h != shapes_[xs[0]].h || s.w != shapes_[xs[0]].w || s.c != shapes_[xs[0]].c)
      throw std::invalid_argument("sum: input shapes differ");
  }
  const Shape out = shapes_[xs[0]];
  const int y = static_cast<int>(shapes_.size());
  return add_step("cell_sum" + std::to_string(xs.size()), xs, out, [=, this](float* const* t) {
    pool_.parallel_for(out.size(), 16384, [&](size_t i0, size_t i1) {
      for (size_t i = i0; i < i1; ++i) {
        float acc = t[xs[0]][i];
        for (size_t k = 1; k < xs.size(); ++k) acc += t[xs[k]][i];
        t[y][i] = acc;
      }
    });
  });
}

int Network::concat(const std::vector<int>& xs) {
  if (xs.size() < 2) throw std::invalid_argument("concat: expected at least 2 inputs");
  size_t channels = 0;
  std::vector<size_t> widths;
  for (int x : xs) {
    check_tensor(x, "concat input");
    if (shapes_[x].h != shapes_[xs[0]].h || shapes_[x].w != shapes_[xs[0]].w)
      throw std::invalid_argument("concat: inputs of different H x W");
    widths.push_back(shapes_[x].c);
    channels += shapes_[x].c;
  }
  const Shape out{shapes_[xs[0]].h, shapes_[xs[0]].w, channels};
  const int y = static_cast<int>(shapes_.size());
  return add_step("cell_concat" + std::to_string(xs.size()), xs, out, [=, this](float* const* t) {
    pool_.parallel_for(out.h * out.w, rows_grain(channels), [&](size_t p0, size_t p1) {
      for (size_t p = p0; p < p1; ++p) {
        float* o = t[y] + p * channels;
        for (size_t k = 0; k < xs.size(); ++k) {
          std::memcpy(o, t[xs[k]] + p * widths[k], widths[k] * sizeof(float));
          o += widths[k];
        }
      }
    });
  });
}

int Network::crop(int x) {
  check_tensor(x, "crop input");
  const Shape in = shapes_[x];
  if (in.h < 2 || in.w < 2) throw std::invalid_argument("crop: expected at least 2 x 2 pixels");
  const Shape out{in.h - 1, in.w - 1, in.c};
  const int y = static_cast<int>(shapes_.size());
  return add_step("cell_crop", {x}, out, [=, this](float* const* t) {
    pool_.parallel_for(out.h, rows_grain(out.w * in.c), [&](size_t r0, size_t r1) {
      for (size_t r = r0; r < r1; ++r)
        std::memcpy(t[y] + r * out.w * in.c, t[x] + ((r + 1) * in.w + 1) * in.c, out.w * in.c * sizeof(float));
    });
  });
}

int Network::zeros(size_t h, size_t w, size_t c) {
  if (output_ >= 0) throw std::logic_error("network already finalized: no more steps can be added");
  if (!h || !w || !c) throw std::invalid_argument("zeros: expected a positive H x W x C shape");
  const Shape out{h, w, c};
  const int y = static_cast<int>(shapes_.size());
  // Written on every run: the buffer is shared with other tensors by liveness.
  return add_step("cell_zeros", {}, out, [=](float* const* t) { std::memset(t[y], 0, out.size() * sizeof(float)); });
}

int Network::affine(int x, const float* scale, const float* shift) {
  check_tensor(x, "affine input");
  const Shape in = shapes_[x];
  weights_.push_back(aligned_floats(2 * in.c));
  float* w = weights_.back().get();
  std::memcpy(w, scale, in.c * sizeof(float));
  std::memcpy(w + in.c, shift, in.c * sizeof(float));
  const int y = static_cast<int>(shapes_.size());
  return add_step("cell_affine", {x}, in, [=, this](float* const* t) {
    pool_.parallel_for(in.h * in.w, rows_grain(in.c), [&](size_t p0, size_t p1) {
      for (size_t p = p0; p < p1; ++p)
        for (size_t c = 0; c < in.c; ++c) t[y][p * in.c + c] = t[x][p * in.c + c] * w[c] + w[in.c + c];
    });
  });
}

}  // namespace pynas
