// Python entry point for the squeeze-and-excitation kernels.
#include <vector>

#include "bindings.h"
#include "kernels/se.h"

namespace py = pybind11;

namespace pynas {

FloatArray fc_weights(const FloatArray& w, size_t out_c, size_t in_c, const char* field);  // bind_fc.cc

namespace {

FloatArray squeeze_excite(FloatArray input, const FloatArray& w_reduce, const FloatArray& b_reduce,
                          const FloatArray& w_expand, const FloatArray& b_expand, const std::string& act,
                          const std::string& gate, bool inplace, const std::string& variant, size_t rows_per_call) {
  check_ndim(input, "input", 3, "HxWxC");
  check_ndim(b_reduce, "b_reduce", 1, "(reduced,)");
  check_ndim(b_expand, "b_expand", 1, "(channels,)");
  const size_t H = input.shape(0), W = input.shape(1), C = input.shape(2), R = b_reduce.shape(0);
  if (H == 0 || W == 0 || C == 0) throw std::invalid_argument("input: expected a non-empty HxWxC array");
  if (R == 0) throw std::invalid_argument("b_reduce: expected at least one reduced channel");
  if (static_cast<size_t>(b_expand.shape(0)) != C)
    throw std::invalid_argument("b_expand: expected " + std::to_string(C) + " values (the input's channels), got " +
                                std::to_string(b_expand.shape(0)));
  const FloatArray wr = fc_weights(w_reduce, R, C, "w_reduce");
  const FloatArray we = fc_weights(w_expand, C, R, "w_expand");
  const Act a_act = parse_act(act);
  Gate a_gate;
  if (gate == "sigmoid") a_gate = Gate::kSigmoid;
  else if (gate == "hsigmoid") a_gate = Gate::kHSigmoid;
  else throw std::invalid_argument("gate: expected sigmoid or hsigmoid, got '" + gate + "'");
  if (inplace && !input.writeable()) throw std::invalid_argument("input: inplace=True needs a writeable array");
  const SeFn fn = kernel_fn<SeFn>("se", variant);
  FloatArray output = inplace ? input : FloatArray({H, W, C});
  std::vector<float> sum(C), hidden(R), scale(C);
  const SeArgs a{input.data(), output.mutable_data(), H, W, C, R, wr.data(), b_reduce.data(), we.data(),
                 b_expand.data(), a_act, a_gate, sum.data(), hidden.data(), scale.data()};
  {
    py::gil_scoped_release release;
    if (rows_per_call == 0) {
      fn(a, SeStage::kAll, 0, H);
    } else {  // as a fused block would: pool band by band, excite once, scale band by band
      for (size_t y = 0; y < H; y += rows_per_call) fn(a, SeStage::kPool, y, std::min(H, y + rows_per_call));
      fn(a, SeStage::kExcite, 0, 0);
      for (size_t y = 0; y < H; y += rows_per_call) fn(a, SeStage::kScale, y, std::min(H, y + rows_per_call));
    }
  }
  return output;
}

void bind_se(py::module_& m) {
  m.def("squeeze_excite", &squeeze_excite, py::arg("input"), py::arg("w_reduce"), py::arg("b_reduce"),
        py::arg("w_expand"), py::arg("b_expand"), py::arg("act") = "re", py::arg("gate") = "sigmoid",
        py::arg("inplace") = false, py::arg("variant") = "", py::arg("rows_per_call") = 0,
        "Squeeze-and-excitation on an HxWxC float32 array: x * gate(W_e act(W_r mean(x) + b_r) + b_e). "
        "w_reduce: (reduced, C), w_expand: (C, reduced), or fc_pack's outputs. gate: sigmoid | hsigmoid. "
        "inplace=True scales the (float32, C-contiguous) input itself and returns it. rows_per_call > 0 runs "
        "the stages separately (pool per row band, excite, scale per row band) as a fused block would.");
}

}  // namespace
PYNAS_REGISTER_BINDINGS(bind_se)
}  // namespace pynas
