// Global average pool, fully connected, squeeze-and-excitation, 3x3 average pool and elementwise
// add, scalar: the portable fallbacks and the plainest statement of each op.
#include "add.h"
#include "avgpool.h"
#include "fc.h"
#include "gap.h"
#include "se.h"

namespace pynas {

void gap_c1__scalar(const GapArgs& a) {
  const size_t C = a.channels, n = a.height * a.width;
  for (size_t c = 0; c < C; ++c) a.output[c] = 0.0f;
  for (size_t p = 0; p < n; ++p)
    for (size_t c = 0; c < C; ++c) a.output[c] += a.input[p * C + c];
  const float inv = 1.0f / static_cast<float>(n);
  for (size_t c = 0; c < C; ++c) a.output[c] *= inv;
}

namespace {

// y[o] = post(alpha * sum_i W[o][i] x[i] + b[o]) over the packed [ceil(out/16)][in][16] weights.
template <class Post>
void fc_packed(const float* x, const float* w, const float* b, float* y, size_t in_c, size_t out_c, float alpha,
               Post post) {
  constexpr size_t B = kPackBlock;
  for (size_t blk = 0; blk * B < out_c; ++blk) {
    float acc[B] = {};
    const float* wb = w + blk * in_c * B;
    for (size_t i = 0; i < in_c; ++i)
      for (size_t l = 0; l < B; ++l) acc[l] += x[i] * wb[i * B + l];
    const size_t n = std::min(B, out_c - blk * B);
    for (size_t l = 0; l < n; ++l) y[blk * B + l] = post(alpha * acc[l] + b[blk * B + l]);
  }
}

float gate_scalar(Gate g, float z) {
  return g == Gate::kSigmoid ? 1.0f / (1.0f + std::exp(-z)) : std::min(std::max(z + 3.0f, 0.0f), 6.0f) / 6.0f;
}

}  // namespace

void fc_c16__scalar(const FcArgs& a) {
  fc_packed(a.input, a.weights, a.bias, a.output, a.in_c, a.out_c, 1.0f,
            [&](float v) { return act_scalar(a.act, v); });
}

void se_c16__scalar(const SeArgs& a, SeStage stage, size_t y_begin, size_t y_end) {
  const size_t C = a.channels, W = a.width;
  if (stage == SeStage::kAll) {
    for (size_t c = 0; c < C; ++c) a.sum[c] = 0.0f;
    se_c16__scalar(a, SeStage::kPool, 0, a.height);
    se_c16__scalar(a, SeStage::kExcite, 0, 0);
    se_c16__scalar(a, SeStage::kScale, 0, a.height);
    return;
  }
  if (stage == SeStage::kPool) {
    for (size_t p = y_begin * W; p < y_end * W; ++p)
      for (size_t c = 0; c < C; ++c) a.sum[c] += a.input[p * C + c];
  } else if (stage == SeStage::kExcite) {
    const float inv = 1.0f / static_cast<float>(a.height * a.width);
    fc_packed(a.sum, a.w_reduce, a.b_reduce, a.hidden, C, a.reduced, inv,
              [&](float v) { return act_scalar(a.act, v); });
    fc_packed(a.hidden, a.w_expand, a.b_expand, a.scale, a.reduced, C, 1.0f,
              [&](float v) { return gate_scalar(a.gate, v); });
  } else {
    for (size_t p = y_begin * W; p < y_end * W; ++p)
      for (size_t c = 0; c < C; ++c) a.output[p * C + c] = a.input[p * C + c] * a.scale[c];
  }
}

void avgpool_c1__scalar(const AvgPoolArgs& a, size_t oy_begin, size_t oy_end) {
  const size_t C = a.channels, s = static_cast<size_t>(a.stride);
  for (size_t oy = oy_begin; oy < oy_end; ++oy) {
    const size_t y0 = oy * s > 0 ? oy * s - 1 : 0, y1 = std::min(a.in_h, oy * s + 2);
    for (size_t ox = 0; ox < a.out_w; ++ox) {
      const size_t x0 = ox * s > 0 ? ox * s - 1 : 0, x1 = std::min(a.in_w, ox * s + 2);
      float* out = a.output + (oy * a.out_w + ox) * C;
      for (size_t c = 0; c < C; ++c) out[c] = 0.0f;
      for (size_t y = y0; y < y1; ++y)
        for (size_t x = x0; x < x1; ++x)
          for (size_t c = 0; c < C; ++c) out[c] += a.input[(y * a.in_w + x) * C + c];
      const float inv = 1.0f / static_cast<float>((y1 - y0) * (x1 - x0));
      for (size_t c = 0; c < C; ++c) out[c] *= inv;
    }
  }
}

void add_c1__scalar(const float* a, const float* b, float* out, size_t n) {
  for (size_t i = 0; i < n; ++i) out[i] = a[i] + b[i];
}

}  // namespace pynas
