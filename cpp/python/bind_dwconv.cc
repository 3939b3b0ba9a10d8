// Python entry point for the depthwise conv kernels (tests, benchmarks, per-op timing).
#include <pybind11/stl.h>

#include <chrono>
#include <cstdint>

#include "bindings.h"
#include "kernels/dwconv.h"

namespace py = pybind11;

namespace pynas {
namespace {

// Checks the arrays and fills every DwConvArgs field but input and output.
DwConvArgs dwconv_args(const FloatArray& input, const FloatArray& weights, const FloatArray& bias, int stride,
                       const std::string& act) {
  check_ndim(input, "input", 3, "HxWxC");
  check_ndim(weights, "weights", 3, "KxKxC");
  check_ndim(bias, "bias", 1, "C");
  const size_t H = input.shape(0), W = input.shape(1), C = input.shape(2);
  const int k = static_cast<int>(weights.shape(0));
  if (weights.shape(1) != k || weights.shape(2) != static_cast<py::ssize_t>(C) || (k != 3 && k != 5 && k != 7))
    throw std::invalid_argument("weights: expected shape (k, k, " + std::to_string(C) + ") with k in 3, 5, 7");
  if (bias.shape(0) != static_cast<py::ssize_t>(C))
    throw std::invalid_argument("bias: expected " + std::to_string(C) + " values, got " + std::to_string(bias.shape(0)));
  if (stride != 1 && stride != 2) throw std::invalid_argument("stride: expected 1 or 2, got " + std::to_string(stride));
  const int pad = k / 2;
  const size_t OH = (H + 2 * pad - k) / stride + 1, OW = (W + 2 * pad - k) / stride + 1;
  return DwConvArgs{nullptr, weights.data(), bias.data(), nullptr, H, W, OH, OW, C, k, stride, pad, parse_act(act)};
}

FloatArray dwconv(const FloatArray& input, const FloatArray& weights, const FloatArray& bias, int stride,
                  const std::string& act, const std::string& variant) {
  DwConvArgs a = dwconv_args(input, weights, bias, stride, act);
  const DwConvFn fn = kernel_fn<DwConvFn>("dwconv", variant);
  FloatArray output({a.out_h, a.out_w, a.channels});
  a.input = input.data();
  a.output = output.mutable_data();
  {
    py::gil_scoped_release release;
    fn(a, 0, a.out_h);
  }
  return output;
}

// Seconds per call of `calls` back-to-back calls, the inputs (and one output buffer each) taken in
// rotation, after untimed calls for `warmup_seconds` (at least one): the loop runs in C++, so no
// Python call overhead. The warm-up matters here: right after other heavy code (torch, in
// bench/dwconv.py) the first few hundred microseconds of calls run 2-5x slower on the test VM. The
// inputs are used where they are (align them as wanted); outputs start on 64-byte boundaries.
std::vector<double> time_dwconv(const std::vector<FloatArray>& inputs, const FloatArray& weights,
                                const FloatArray& bias, int stride, const std::string& act, const std::string& variant,
                                size_t calls, double warmup_seconds) {
  if (inputs.empty()) throw std::invalid_argument("inputs: expected at least one HxWxC array");
  DwConvArgs a = dwconv_args(inputs[0], weights, bias, stride, act);
  for (const FloatArray& in : inputs) {
    check_ndim(in, "inputs[i]", 3, "HxWxC");
    if (static_cast<size_t>(in.shape(0)) != a.in_h || static_cast<size_t>(in.shape(1)) != a.in_w ||
        static_cast<size_t>(in.shape(2)) != a.channels)
      throw std::invalid_argument("inputs: expected arrays of one shape");
  }
  const DwConvFn fn = kernel_fn<DwConvFn>("dwconv", variant);
  // Output buffers start on a 64-byte boundary, as a network runner's arena would place them.
  const size_t out_size = a.out_h * a.out_w * a.channels;
  std::vector<std::vector<float>> outputs(inputs.size(), std::vector<float>(out_size + 16));
  std::vector<float*> out_ptrs;
  for (std::vector<float>& o : outputs) {
    const size_t misalign = reinterpret_cast<uintptr_t>(o.data()) % 64 / sizeof(float);
    out_ptrs.push_back(o.data() + (misalign ? 16 - misalign : 0));
  }
  std::vector<double> seconds(calls);
  {
    py::gil_scoped_release release;
    size_t i = 0;
    const auto warm_end = std::chrono::steady_clock::now() + std::chrono::duration<double>(warmup_seconds);
    do {
      a.input = inputs[i % inputs.size()].data();
      a.output = out_ptrs[i % inputs.size()];
      fn(a, 0, a.out_h);
      ++i;
    } while (std::chrono::steady_clock::now() < warm_end);
    for (size_t n = 0; n < calls; ++n, ++i) {
      a.input = inputs[i % inputs.size()].data();
      a.output = out_ptrs[i % inputs.size()];
      const auto t0 = std::chrono::steady_clock::now();
      fn(a, 0, a.out_h);
      const auto t1 = std::chrono::steady_clock::now();
      seconds[n] = std::chrono::duration<double>(t1 - t0).count();
    }
  }
  return seconds;
}

void bind_dwconv(py::module_& m) {
  m.def("dwconv", &dwconv, py::arg("input"), py::arg("weights"), py::arg("bias"), py::arg("stride") = 1,
        py::arg("act") = "none", py::arg("variant") = "",
        "Depthwise kxk conv (same padding k // 2) + bias + activation on an HxWxC float32 array. "
        "variant: a name from kernel_variants(), default the best this CPU runs.");
  m.def("time_dwconv", &time_dwconv, py::arg("inputs"), py::arg("weights"), py::arg("bias"), py::arg("stride") = 1,
        py::arg("act") = "none", py::arg("variant") = "", py::arg("calls") = 100, py::arg("warmup_seconds") = 0.003,
        "Benchmark helper: seconds of each of `calls` dwconv calls timed in a C++ loop (no Python overhead), "
        "rotating through `inputs` (same-shape HxWxC arrays, one output buffer each), after untimed calls "
        "for warmup_seconds (at least one).");
}

}  // namespace
PYNAS_REGISTER_BINDINGS(bind_dwconv)
}  // namespace pynas
