// A native network: a straight list of steps (fused kernels) over NHWC batch-1 tensors.
//
// Built step by step (the Python side walks the fused IR), then finalize() assigns buffers by
// liveness (a tensor's buffer is reused once its last reader ran, so activations stay cache-warm)
// and run() executes every step with the kernel variant chosen at build time. Weights are copied
// and packed at build time; a run allocates nothing.
#pragma once

#include <cstddef>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "../kernels/common.h"
#include "thread_pool.h"

namespace pynas {

struct AlignedFree {
  void operator()(float* p) const;
};
using AlignedBuffer = std::unique_ptr<float[], AlignedFree>;
AlignedBuffer aligned_floats(size_t n);  // 64-byte aligned, zeroed

class Network {
 public:
  struct Shape {
    size_t h, w, c;
    size_t size() const { return h * w * c; }
  };

  // threads: 1..kMaxThreads (thread_pool.h), else std::invalid_argument before any thread starts;
  // ThreadStartError if the OS refuses one (the pool joins those it started first).
  explicit Network(int threads);

  int input(size_t h, size_t w, size_t c);
  // Each returns the id of the tensor it produces. Weight layouts are pynas.native.weights'.
  int conv(int x, const float* w_ohwi, const float* bias, size_t cout, int kernel, int stride, Act act,
           int residual);
  int dwconv(int x, const float* w_kkc, const float* bias, int kernel, int stride, Act act);
  // w_oi: Cout x (Cin / groups). A grouped 1x1 conv runs one GEMM per group on column slices
  // (gemm.h's strides); with `shuffle` (groups > 1) the output is written channel-shuffled
  // (ShuffleNet, after the activation, before the residual add): the conv + shuffle of an FBNet
  // g2 block's expand as one step.
  int pointwise(int x, const float* w_oi, const float* bias, size_t cout, Act act, int residual,
                size_t groups = 1, bool shuffle = false);
  // ShuffleNet's channel shuffle on its own (gemm.h's channel_shuffle).
  int shuffle(int x, size_t groups);
  int se(int x, const float* w_reduce, const float* b_reduce, size_t reduced, const float* w_expand,
         const float* b_expand, Act act, int gate);
  // A fused inverted-residual or depthwise-separable block (kernels/mbconv.h), in row bands.
  struct BlockWeights {
    size_t mid = 0, cout = 0;
    int kernel = 3, stride = 1;
    const float* expand_w = nullptr;  // [mid][cin], or nullptr: no expand (depthwise-separable)
    const float* expand_b = nullptr;
    Act expand_act = Act::kNone;
    const float* dw_w = nullptr;  // [k][k][mid]
    const float* dw_b = nullptr;
    Act dw_act = Act::kNone;
    size_t se_reduced = 0;  // 0: no SE
    const float *se_w_reduce = nullptr, *se_b_reduce = nullptr, *se_w_expand = nullptr, *se_b_expand = nullptr;
    Act se_act = Act::kReLU;
    int se_gate = 0;  // 0 sigmoid, 1 h-sigmoid
    const float* project_w = nullptr;  // [cout][mid]
    const float* project_b = nullptr;
    Act project_act = Act::kNone;
    size_t band_rows = 0;  // output rows per band; 0: sized to the L2 budget
  };
  int block(int x, const BlockWeights& w, int residual);
  int avgpool(int x, int stride);
  int add(int a, int b);
  int gap(int x);
  int fc(int x, const float* w, const float* bias, size_t cout, Act act);

  // Steps of cell networks (pynas.cell; cell_steps.cc): plain loops, threaded over rows.
  // An activation on its own (a cell edge's ReLU comes before its conv).
  int act(int x, Act act);
  // kxk pooling with stride and padding; kind 0 average (padding not counted), 1 max.
  int pool(int x, int kind, int kernel, int stride, int pad);
  // Depthwise kxk conv with dilation, padding dilation * (k - 1) / 2 (DARTS's dil_conv).
  int dwconv_dilated(int x, const float* w_kkc, const float* bias, int kernel, int stride, int dilation, Act act);
  // The sum of any number (>= 2) of tensors of one shape: a cell node.
  int sum(const std::vector<int>& xs);
  // Channel concatenation of tensors of one H x W, in order: a cell's output, FactorizedReduce's halves.
  int concat(const std::vector<int>& xs);
  // x[1:, 1:]: the shifted path of DARTS's FactorizedReduce.
  int crop(int x);
  // A tensor of zeros (a cell node without edges); reads nothing.
  int zeros(size_t h, size_t w, size_t c);
  // y = x * scale[c] + shift[c]: a BatchNorm on its own (NAS-Bench-201's last BN), folded.
  int affine(int x, const float* scale, const float* shift);

  void finalize(int output);
  void run(const float* input, float* output);
  // run() `runs` times, timing every step on its own (steady_clock around each step, in the run, so
  // each step sees the caches its predecessors left, as in a plain run): seconds[run][step].
  std::vector<std::vector<double>> profile(const float* input, float* output, int runs);

  const Shape& shape(int tensor) const;
  int output() const { return output_; }
  // Per step: "<kernel variant> <output shape>".
  std::vector<std::string> describe() const;
  size_t arena_floats() const;
  size_t step_count() const { return steps_.size(); }

 private:
  struct Step {
    std::string kernel;
    std::vector<int> reads;
    int writes;
    std::function<void(float* const* tensors)> run;
  };
  int add_tensor(Shape shape);
  int add_step(std::string kernel, std::vector<int> reads, Shape out,
               std::function<void(float* const*)> run);
  void check_tensor(int id, const char* field) const;

  ThreadPool pool_;
  std::vector<Shape> shapes_;
  std::vector<Step> steps_;
  std::vector<AlignedBuffer> weights_;  // packed weights and per-step workspaces
  std::vector<AlignedBuffer> buffers_;  // activation arena
  AlignedBuffer scratch_;               // block workspaces: steps run one at a time, so they share it
  size_t scratch_floats_ = 0;
  std::vector<int> buffer_of_;          // tensor -> buffer
  std::vector<float*> pointers_;        // tensor -> its buffer, rebuilt per run for in/out
  int input_ = -1, output_ = -1;
};

}  // namespace pynas
