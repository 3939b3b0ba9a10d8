// Python entry point for the depthwise conv kernels (tests, benchmarks, per-op timing).
#include "bindings.h"
#include "kernels/dwconv.h"

namespace py = pybind11;

namespace pynas {
namespace {

FloatArray dwconv(const FloatArray& input, const FloatArray& weights, const FloatArray& bias, int stride,
                  const std::string& act, const std::string& variant) {
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
  const DwConvFn fn = kernel_fn<DwConvFn>("dwconv", variant);
  const int pad = k / 2;
  const size_t OH = (H + 2 * pad - k) / stride + 1, OW = (W + 2 * pad - k) / stride + 1;
  FloatArray output({OH, OW, C});
  DwConvArgs a{input.data(), weights.data(), bias.data(), output.mutable_data(), H, W, OH, OW, C, k, stride, pad,
               parse_act(act)};
  {
    py::gil_scoped_release release;
    fn(a, 0, OH);
  }
  return output;
}

void bind_dwconv(py::module_& m) {
  m.def("dwconv", &dwconv, py::arg("input"), py::arg("weights"), py::arg("bias"), py::arg("stride") = 1,
        py::arg("act") = "none", py::arg("variant") = "",
        "Depthwise kxk conv (same padding k // 2) + bias + activation on an HxWxC float32 array. "
        "variant: a name from kernel_variants(), default the best this CPU runs.");
}

}  // namespace
PYNAS_REGISTER_BINDINGS(bind_dwconv)
}  // namespace pynas
