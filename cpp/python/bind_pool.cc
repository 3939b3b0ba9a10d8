// Python entry points for global average pool, 3x3 average pool and the elementwise add.
#include "bindings.h"
#include "kernels/add.h"
#include "kernels/avgpool.h"
#include "kernels/gap.h"

namespace py = pybind11;

namespace pynas {
namespace {

FloatArray global_avg_pool(const FloatArray& input, const std::string& variant) {
  check_ndim(input, "input", 3, "HxWxC");
  const size_t H = input.shape(0), W = input.shape(1), C = input.shape(2);
  if (H == 0 || W == 0 || C == 0) throw std::invalid_argument("input: expected a non-empty HxWxC array");
  const GapFn fn = kernel_fn<GapFn>("gap", variant);
  FloatArray output(C);
  const GapArgs a{input.data(), output.mutable_data(), H, W, C};
  {
    py::gil_scoped_release release;
    fn(a);
  }
  return output;
}

FloatArray avg_pool_3x3(const FloatArray& input, int stride, const std::string& variant, size_t rows_per_call) {
  check_ndim(input, "input", 3, "HxWxC");
  const size_t H = input.shape(0), W = input.shape(1), C = input.shape(2);
  if (H == 0 || W == 0 || C == 0) throw std::invalid_argument("input: expected a non-empty HxWxC array");
  if (stride != 1 && stride != 2) throw std::invalid_argument("stride: expected 1 or 2, got " + std::to_string(stride));
  const AvgPoolFn fn = kernel_fn<AvgPoolFn>("avgpool", variant);
  const size_t OH = (H - 1) / stride + 1, OW = (W - 1) / stride + 1;
  FloatArray output({OH, OW, C});
  const AvgPoolArgs a{input.data(), output.mutable_data(), H, W, OH, OW, C, stride};
  {
    py::gil_scoped_release release;
    const size_t step = rows_per_call ? rows_per_call : OH;
    for (size_t y = 0; y < OH; y += step) fn(a, y, std::min(OH, y + step));
  }
  return output;
}

FloatArray add(const FloatArray& a, const FloatArray& b, const std::string& variant) {
  bool same = a.ndim() == b.ndim();
  for (py::ssize_t i = 0; same && i < a.ndim(); ++i) same = a.shape(i) == b.shape(i);
  if (!same) throw std::invalid_argument("b: expected the shape of a");
  const AddFn fn = kernel_fn<AddFn>("add", variant);
  FloatArray out(std::vector<py::ssize_t>(a.shape(), a.shape() + a.ndim()));
  {
    py::gil_scoped_release release;
    fn(a.data(), b.data(), out.mutable_data(), static_cast<size_t>(a.size()));
  }
  return out;
}

void bind_pool(py::module_& m) {
  m.def("global_avg_pool", &global_avg_pool, py::arg("input"), py::arg("variant") = "",
        "Mean over H and W of an HxWxC float32 array -> (C,).");
  m.def("avg_pool_3x3", &avg_pool_3x3, py::arg("input"), py::arg("stride") = 1, py::arg("variant") = "",
        py::arg("rows_per_call") = 0,
        "3x3 average pool, padding 1, padded cells not counted, stride 1 or 2, on an HxWxC float32 array.");
  m.def("add", &add, py::arg("a"), py::arg("b"), py::arg("variant") = "",
        "Elementwise a + b of two float32 arrays of one shape (the residual add).");
}

}  // namespace
PYNAS_REGISTER_BINDINGS(bind_pool)
}  // namespace pynas
